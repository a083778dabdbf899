//! The `palisade` binary's image commands, driven as a user would, each test on its own store
//! (`--root`) with a busybox image built from the host's static `/bin/busybox`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const BUSYBOX: &str = "/bin/busybox";

struct Palisade {
    dir: tempfile::TempDir,
}

impl Palisade {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run_in(&self, root: &Path, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_palisade"))
            .arg("--root")
            .arg(root)
            .args(args)
            .env_remove("PALISADE_ROOT")
            .output()
            .unwrap()
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_in(&self.root(), args)
    }

    /// Runs and expects success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "palisade {args:?} failed ({:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--format", "json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    /// A busybox rootfs with a few applet links.
    fn rootfs(&self) -> PathBuf {
        assert!(
            Path::new(BUSYBOX).is_file(),
            "{BUSYBOX} is missing: install busybox-static (scripts/setup.sh does)"
        );
        let root = self.path("rootfs");
        if root.exists() {
            return root;
        }
        fs::create_dir_all(root.join("bin")).unwrap();
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::copy(BUSYBOX, root.join("bin/busybox")).unwrap();
        for applet in ["sh", "ls", "echo", "cat", "true"] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
        fs::write(root.join("etc/hostname"), "palisade\n").unwrap();
        root
    }

    fn import_busybox(&self, name: &str) -> String {
        let rootfs = self.rootfs();
        self.ok(&["image", "import", rootfs.to_str().unwrap(), name])
            .trim()
            .to_owned()
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn import_then_list_inspect_and_history() {
    let p = Palisade::new();
    let rootfs = p.rootfs();
    let digest = p
        .ok(&[
            "image",
            "import",
            rootfs.to_str().unwrap(),
            "busybox:test",
            "--cmd",
            r#"["/bin/echo","hello"]"#,
            "--env",
            "GREETING=hi",
            "-m",
            "built by the test",
        ])
        .trim()
        .to_owned();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );

    let list = p.json(&["image", "ls"]);
    let images = list.as_array().unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0]["repository"], "busybox");
    assert_eq!(images[0]["tag"], "test");
    assert_eq!(images[0]["digest"], digest.as_str());
    assert!(images[0]["size"].as_u64().unwrap() > 100_000);

    let table = p.ok(&["images"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["REPOSITORY", "TAG", "DIGEST", "SIZE", "CREATED"]);
    let row = lines.next().unwrap();
    assert!(
        row.starts_with("busybox") && row.contains("test") && row.contains(&digest[7..19]),
        "{row}"
    );

    let inspect = p.json(&["image", "inspect", "busybox:test"]);
    let image = &inspect[0];
    assert_eq!(image["digest"], digest.as_str());
    assert_eq!(
        image["config"]["config"]["Cmd"],
        serde_json::json!(["/bin/echo", "hello"])
    );
    let env = image["config"]["config"]["Env"].as_array().unwrap();
    assert!(env.iter().any(|e| e == "GREETING=hi"));
    assert!(env.iter().any(|e| e.as_str().unwrap().starts_with("PATH=")));
    assert_eq!(image["config"]["os"], "linux");
    assert_eq!(image["manifest"]["layers"].as_array().unwrap().len(), 1);
    assert_eq!(
        image["layers"][0]["diff_id"],
        image["config"]["rootfs"]["diff_ids"][0]
    );

    let history = p.json(&["image", "history", "busybox:test"]);
    assert_eq!(history[0]["comment"], "built by the test");
    assert!(history[0]["created_by"]
        .as_str()
        .unwrap()
        .contains("import"));
    let table = p.ok(&["image", "history", "busybox:test"]);
    assert!(table.starts_with("CREATED"), "{table}");
}

#[test]
fn tag_save_load_rm_and_prune() {
    let p = Palisade::new();
    let digest = p.import_busybox("busybox");
    p.ok(&["tag", "busybox", "localhost:5000/tools/busybox:v1"]);
    p.ok(&["image", "tag", "busybox:latest", "busybox:copy"]);
    let names: Vec<String> = p
        .json(&["images"])
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["reference"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        [
            "docker.io/library/busybox:copy",
            "docker.io/library/busybox:latest",
            "localhost:5000/tools/busybox:v1"
        ]
    );

    let archive = p.path("images.tar");
    p.ok(&[
        "image",
        "save",
        "-o",
        archive.to_str().unwrap(),
        "busybox",
        "localhost:5000/tools/busybox:v1",
    ]);
    assert!(archive.is_file());
    assert!(!fs::read_dir(p.dir.path()).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains(".tmp-")));

    // Load into a second store: same digests.
    let other = p.path("other");
    let out = p.run_in(&other, &["load", "-i", archive.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let loaded = String::from_utf8(out.stdout).unwrap();
    assert!(loaded.contains("Loaded image: busybox:latest"), "{loaded}");
    assert!(
        loaded.contains("Loaded image: localhost:5000/tools/busybox:v1"),
        "{loaded}"
    );
    let out = p.run_in(&other, &["--format", "json", "images"]);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["digest"] == digest.as_str()));

    // Loading from standard input works as well.
    let third = p.path("third");
    let out = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .arg("--root")
        .arg(&third)
        .args(["image", "load", "-q"])
        .stdin(fs::File::open(&archive).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    // rm untags; blobs go when the last tag does.
    let removed = p.ok(&["rmi", "busybox:copy"]);
    assert_eq!(removed.trim(), "Untagged: busybox:copy");
    p.ok(&["image", "rm", "localhost:5000/tools/busybox:v1"]);
    let removed = p.ok(&["image", "rm", "busybox"]);
    assert!(removed.contains("Untagged: busybox:latest"));
    assert_eq!(removed.matches("Deleted: sha256:").count(), 3, "{removed}");
    assert_eq!(p.json(&["images"]), serde_json::json!([]));

    // Removing by digest removes every tag of it.
    let out = p.run_in(&other, &["rmi", &digest]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = p.run_in(&other, &["--format", "json", "images"]);
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        serde_json::json!([])
    );

    // prune reports what it frees.
    p.import_busybox("busybox");
    p.ok(&["rmi", "busybox"]);
    let report = p.json(&["image", "prune"]);
    assert_eq!(report["removed_blobs"], serde_json::json!([]));
    let text = p.ok(&["image", "prune"]);
    assert!(text.contains("Total reclaimed space: 0B"), "{text}");
}

#[test]
fn system_check_finds_and_repairs_corruption() {
    let p = Palisade::new();
    p.import_busybox("busybox");
    let clean = p.ok(&["system", "check"]);
    assert!(clean.contains(": ok"), "{clean}");

    // Alter the layer on disk.
    let inspect = p.json(&["image", "inspect", "busybox"]);
    let layer = inspect[0]["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = p.root().join("blobs/sha256").join(&layer[7..]);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(&path, bytes).unwrap();

    let out = p.run(&["system", "check"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("corrupt blob") && text.contains(&layer),
        "{text}"
    );

    let out = p.run(&["--format", "json", "system", "check", "--repair"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the image is still incomplete after repair"
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["problems"][0]["kind"], "missing_blob", "{report}");
    assert_eq!(report["repaired"][0]["kind"], "corrupt_blob");
    assert!(!path.exists());

    // Saving the broken image fails with one clear line; re-importing fixes the store.
    let out = p.run(&[
        "image",
        "save",
        "-o",
        p.path("x.tar").to_str().unwrap(),
        "busybox",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(!p.path("x.tar").exists());
    p.import_busybox("busybox:again");
    p.ok(&["rmi", "busybox"]);
    assert!(p.ok(&["system", "check"]).contains(": ok"));

    // An interrupted layer unpack is found, and removed by --repair.
    let stale = p.root().join("layers/.tmp-0123abcd-1-2");
    fs::create_dir_all(stale.join("bin")).unwrap();
    let out = p.run(&["system", "check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("interrupted layer unpack"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = p.run(&["--format", "json", "system", "check", "--repair"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["containers"]["problems"], serde_json::json!([]));
    assert!(!stale.exists());
}

#[test]
fn tampered_archive_is_refused_with_one_line() {
    let p = Palisade::new();
    p.import_busybox("busybox");
    let archive = p.path("a.tar");
    p.ok(&["save", "-o", archive.to_str().unwrap(), "busybox"]);
    // Flip a byte in the middle of the archive: it lands in the busybox layer's data.
    let mut bytes = fs::read(&archive).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(&archive, bytes).unwrap();
    let other = p.path("other");
    let out = p.run_in(&other, &["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let message = stderr(&out);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(message.starts_with("palisade: "), "{message}");
    assert!(message.contains("does not match its digest"), "{message}");
    let out = p.run_in(&other, &["--format", "json", "images"]);
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        serde_json::json!([])
    );
}

#[test]
fn errors_and_usage_exit_codes() {
    let p = Palisade::new();
    // Usage errors: 125, one line.
    for args in [
        &["image", "inspect", "Bad/Name"][..],
        &["image", "frobnicate"],
        &["image", "tag", "only-one"],
        &["--format", "yaml", "images"],
        &["image", "import", "/nonexistent", "x", "--cmd", "[not json"],
    ] {
        let out = p.run(args);
        assert_eq!(out.status.code(), Some(125), "{args:?}: {}", stderr(&out));
        assert_eq!(
            stderr(&out).lines().count(),
            1,
            "{args:?}: {}",
            stderr(&out)
        );
    }
    // Failures: 1, one line saying what to do.
    let out = p.run(&["image", "inspect", "missing"]);
    assert_eq!(out.status.code(), Some(1));
    let message = stderr(&out);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(
        message.contains("not found") && message.contains("palisade image ls"),
        "{message}"
    );
    let out = p.run(&["image", "import", p.path("nope").to_str().unwrap(), "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot read import source"),
        "{}",
        stderr(&out)
    );
    // Help explains each command.
    let help = p.ok(&["image", "--help"]);
    for command in [
        "import", "load", "save", "tag", "ls", "inspect", "rm", "prune", "history",
    ] {
        assert!(
            help.contains(command),
            "{command} missing from help:\n{help}"
        );
    }
    assert!(p.ok(&["--help"]).contains("system"));
}
