//! `palisade db` and `palisade scan`, end to end, and the vulnerability gate on `run`.
//!
//! The database is built from the scan crate's hand-written OSV fixtures; the images are
//! imported from its root filesystem extracts (and, for `run`, a busybox rootfs), so nothing
//! leaves the machine.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const PALISADE: &str = env!("CARGO_BIN_EXE_palisade");
const RUNTIME: &str = env!("CARGO_BIN_EXE_palisade-runtime");

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scan/tests/fixtures")
}

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("palisade-scan")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("tempdir");
        Env { dir }
    }
    fn db(&self) -> PathBuf {
        self.dir.path().join("vulndb")
    }
    fn policy(&self) -> PathBuf {
        self.dir.path().join("policy.toml")
    }
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(PALISADE);
        c.arg("--root")
            .arg(self.dir.path().join("store"))
            .args(args)
            .env("PALISADE_VULNDB", self.db())
            .env("PALISADE_VULN_POLICY", self.policy())
            .env("PALISADE_RUNTIME", RUNTIME)
            .env_remove("PALISADE_ROOT");
        c
    }
    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run palisade")
    }
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "palisade {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn db_import_info_and_corruption() {
    let env = Env::new();
    let osv = fixtures().join("osv");
    let out = env.run(&[
        "db",
        "import",
        path(&osv.join("debian")),
        path(&osv.join("malformed")),
    ]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("truncated.json") && stderr.contains("garbage.yaml"),
        "{stderr}"
    );
    let info = env.ok(&["db", "info"]);
    assert!(
        info.contains("Debian:12") && info.contains("schema version:  1"),
        "{info}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["--format", "json", "db", "info"])).expect("json");
    assert_eq!(json["meta"]["withdrawn"], 1);

    // One flipped byte: refused, with what to do.
    let mut bytes = std::fs::read(env.db()).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(env.db(), &bytes).expect("write");
    let out = env.run(&["db", "info"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("corrupt") && stderr.contains("palisade db import"),
        "{stderr}"
    );
    // Another layout version: refused too.
    bytes[last] ^= 0xff;
    bytes[8] = 99;
    std::fs::write(env.db(), &bytes).expect("write");
    let stderr = String::from_utf8_lossy(&env.run(&["db", "info"]).stderr).into_owned();
    assert!(stderr.contains("schema version 99"), "{stderr}");
    std::fs::write(env.db(), b"not a database").expect("write");
    let stderr = String::from_utf8_lossy(
        &env.run(&["scan", path(&fixtures().join("rootfs/debian12"))])
            .stderr,
    )
    .into_owned();
    assert!(
        stderr.contains("not a Palisade vulnerability database"),
        "{stderr}"
    );
}

#[test]
fn scan_directory_and_image_agree() {
    let env = Env::new();
    let osv = fixtures().join("osv");
    env.ok(&[
        "db",
        "import",
        path(&osv.join("debian")),
        path(&osv.join("pypi")),
    ]);
    let rootfs = fixtures().join("rootfs/debian12");

    let table = env.ok(&["scan", path(&rootfs)]);
    assert!(
        table.contains("CVE-2023-4911") && table.contains("2.36-9+deb12u3"),
        "{table}"
    );
    assert!(table.contains("Total: 5"), "{table}");

    let dir_report: serde_json::Value =
        serde_json::from_str(&env.ok(&["scan", "--format", "json", path(&rootfs)])).expect("json");
    env.ok(&["image", "import", path(&rootfs), "vulnerable:1"]);
    let image_report: serde_json::Value =
        serde_json::from_str(&env.ok(&["scan", "--format", "json", "vulnerable:1"])).expect("json");
    assert_eq!(dir_report["findings"], image_report["findings"]);
    assert_eq!(dir_report["packages"], image_report["packages"]);

    // Filters and exit codes.
    let out = env.run(&["scan", "--exit-code", "3", "vulnerable:1"]);
    assert_eq!(out.status.code(), Some(3));
    let out = env.run(&[
        "scan",
        "--exit-code",
        "3",
        "--severity",
        "CRITICAL",
        "vulnerable:1",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let unfixed: serde_json::Value = serde_json::from_str(&env.ok(&[
        "scan",
        "--format",
        "json",
        "--ignore-unfixed",
        "vulnerable:1",
    ]))
    .expect("json");
    assert!(unfixed["findings"]
        .as_array()
        .expect("array")
        .iter()
        .all(|f| !f["fixed"].as_array().expect("fixed").is_empty()));
    assert_eq!(
        env.run(&["scan", "--severity", "SEVERE", "vulnerable:1"])
            .status
            .code(),
        Some(125)
    );

    // Machine formats.
    let sarif: serde_json::Value =
        serde_json::from_str(&env.ok(&["scan", "--format", "sarif", "vulnerable:1"]))
            .expect("sarif");
    assert_eq!(sarif["version"], "2.1.0");
    assert!(!sarif["runs"][0]["results"]
        .as_array()
        .expect("results")
        .is_empty());
    let cdx: serde_json::Value =
        serde_json::from_str(&env.ok(&["scan", "--format", "cyclonedx", "vulnerable:1"]))
            .expect("cdx");
    assert_eq!(cdx["bomFormat"], "CycloneDX");
    assert!(cdx["components"]
        .as_array()
        .expect("components")
        .iter()
        .any(|c| c["purl"] == "pkg:pypi/urllib3@1.26.4"));
    let spdx: serde_json::Value =
        serde_json::from_str(&env.ok(&["scan", "--format", "spdx", "vulnerable:1"])).expect("spdx");
    assert_eq!(spdx["spdxVersion"], "SPDX-2.3");

    // A policy file on the command line.
    std::fs::write(env.policy(), "max_severity = \"HIGH\"\n").expect("policy");
    assert_eq!(
        env.run(&["scan", "--policy", path(&env.policy()), "vulnerable:1"])
            .status
            .code(),
        Some(0)
    );
    std::fs::write(env.policy(), "max_severity = \"LOW\"\n").expect("policy");
    let out = env.run(&["scan", "--policy", path(&env.policy()), "vulnerable:1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused by vulnerability policy"));
}

/// A busybox rootfs, plus a vulnerable Python package when `vulnerable`.
fn busybox_rootfs(dir: &Path, vulnerable: bool) -> PathBuf {
    let root = dir.join(if vulnerable {
        "rootfs-vuln"
    } else {
        "rootfs-clean"
    });
    std::fs::create_dir_all(root.join("bin")).expect("mkdir");
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("busybox");
    for applet in ["sh", "true", "echo"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).expect("symlink");
    }
    if vulnerable {
        let meta = root.join("usr/lib/python3/site-packages/urllib3-1.26.4.dist-info");
        std::fs::create_dir_all(&meta).expect("mkdir");
        std::fs::write(
            meta.join("METADATA"),
            "Metadata-Version: 2.1\nName: urllib3\nVersion: 1.26.4\n\n",
        )
        .expect("write");
    }
    root
}

#[test]
fn run_gate_refuses_images_above_policy() {
    if !support::privileged() {
        return;
    }
    let env = Env::new();
    let clean = busybox_rootfs(env.dir.path(), false);
    let vuln = busybox_rootfs(env.dir.path(), true);
    env.ok(&["image", "import", path(&clean), "clean:1"]);
    env.ok(&["image", "import", path(&vuln), "vuln:1"]);

    // No policy: no scan, no note (busybox images run as before).
    let out = env.run(&["run", "--rm", "clean:1", "true"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("not scanned"));

    // A policy but no database: runs, says so.
    std::fs::write(env.policy(), "name = \"test\"\nmax_severity = \"MEDIUM\"\n").expect("policy");
    let out = env.run(&["run", "--rm", "vuln:1", "true"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("not scanned"));
    // ... unless the policy requires a scan.
    std::fs::write(
        env.policy(),
        "max_severity = \"MEDIUM\"\nrequire_scan = true\n",
    )
    .expect("policy");
    let out = env.run(&["run", "--rm", "clean:1", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("requires a scan"));

    // With a database: the vulnerable image is refused with its worst findings named.
    env.ok(&["db", "import", path(&fixtures().join("osv/pypi"))]);
    std::fs::write(env.policy(), "name = \"test\"\nmax_severity = \"MEDIUM\"\n").expect("policy");
    let out = env.run(&["run", "--rm", "vuln:1", "true"]);
    assert_eq!(out.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refused by vulnerability policy \"test\"")
            && stderr.contains("CVE-2021-33503"),
        "{stderr}"
    );
    let out = env.run(&["run", "--rm", "clean:1", "true"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The reports are kept beside the images, stamped with the database that made them.
    let reports: Vec<PathBuf> = std::fs::read_dir(env.dir.path().join("store/scan-reports"))
        .expect("scan-reports")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(reports.len(), 2, "{reports:?}");
    let built = |p: &Path| -> String {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(p).expect("read")).expect("json");
        v["database"]["built"].as_str().expect("built").to_owned()
    };
    let before = built(&reports[0]);
    // The verdicts are in the engine's audit log.
    let audit =
        std::fs::read_to_string(env.dir.path().join("store/audit/engine.log")).expect("audit log");
    assert!(
        audit.contains("scan_verdict") && audit.contains("vuln:1"),
        "{audit}"
    );

    // A rebuilt database makes the kept reports stale: the next run scans again.
    env.ok(&["db", "import", path(&fixtures().join("osv/pypi"))]);
    assert_eq!(
        env.run(&["run", "--rm", "vuln:1", "true"]).status.code(),
        Some(125)
    );
    assert_eq!(
        env.run(&["run", "--rm", "clean:1", "true"]).status.code(),
        Some(0)
    );
    assert_ne!(built(&reports[0]), before);

    // An exception with a reason lets it through until it expires.
    std::fs::write(
        env.policy(),
        "name = \"test\"\nmax_severity = \"MEDIUM\"\n[[allow]]\nid = \"CVE-2021-33503\"\nexpires = \"2999-01-01\"\nreason = \"no URL parsing of untrusted input\"\n",
    )
    .expect("policy");
    let out = env.run(&["run", "--rm", "vuln:1", "true"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(
        env.policy(),
        "max_severity = \"MEDIUM\"\n[[allow]]\nid = \"CVE-2021-33503\"\nexpires = \"2001-01-01\"\nreason = \"expired\"\n",
    )
    .expect("policy");
    assert_eq!(
        env.run(&["run", "--rm", "vuln:1", "true"]).status.code(),
        Some(125)
    );
}
