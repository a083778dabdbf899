//! `palisade audit`: verify names the first damaged line (file:line and what is wrong) or says
//! "intact"; signed checkpoints are checked with the key; a missing key is said to be missing;
//! show filters; export reaches syslog and files; a full disk is an error, never a drop.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use palisade_audit::{Actor, AuditLog, EcdsaP256Signer, Event};

const PALISADE: &str = env!("CARGO_BIN_EXE_palisade");

fn palisade(root: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut command = Command::new(PALISADE);
    command
        .arg("--root")
        .arg(root)
        .args(args)
        .env_remove("PALISADE_AUDIT_KEY")
        .env_remove("PALISADE_AUDIT_VERIFY_KEY");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("run palisade")
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A private key made by openssl, and its public half.
fn keys(dir: &Path) -> (PathBuf, PathBuf) {
    let private = dir.join("audit-key.pem");
    let public = dir.join("audit-key.pub");
    let made = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(&private)
        .status()
        .expect("run openssl (apt-get install openssl)");
    assert!(made.success());
    let made = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&private)
        .arg("-out")
        .arg(&public)
        .status()
        .unwrap();
    assert!(made.success());
    (private, public)
}

fn event(index: usize) -> Event {
    match index % 3 {
        0 => Event::ContainerStarted {
            actor: Actor::user("root"),
            container_id: format!("c{}", index % 2),
            pid: Some(100 + index as u32),
        },
        1 => Event::ImagePulled {
            actor: Actor::user("root"),
            reference: "localhost:5000/busybox:latest".into(),
            digest: format!("sha256:{}", "ab".repeat(32)),
        },
        _ => Event::SeccompViolation {
            actor: Actor::process(7, "sh"),
            container_id: Some(format!("c{}", index % 2)),
            syscall_number: 165,
            syscall: Some("mount".into()),
            arch: "x86_64".into(),
            action: "errno".into(),
            decision: palisade_audit::Decision::Deny,
            count: Some(1),
        },
    }
}

/// A store root whose engine log has `count` events, sealed by `key` every 4 records.
fn store_with_log(dir: &Path, count: usize, key: Option<&Path>) -> (PathBuf, PathBuf) {
    let root = dir.join("store");
    let log_path = root.join("audit/engine.log");
    let mut log = AuditLog::open(&log_path).unwrap();
    if let Some(key) = key {
        log = log.with_checkpoints(Arc::new(EcdsaP256Signer::from_pem_file(key).unwrap()), 4);
    }
    for index in 0..count {
        log.append(event(index)).unwrap();
    }
    (root, log_path)
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn rewrite(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn an_intact_sealed_log_verifies_with_its_key_and_says_so_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = keys(dir.path());
    let (root, _) = store_with_log(dir.path(), 10, Some(&private));

    let output = palisade(&root, &["audit", "verify", "--key"], &[]);
    assert_eq!(output.status.code(), Some(125), "--key needs a value");

    let mut args = vec!["audit", "verify", "--key", public.to_str().unwrap()];
    let output = palisade(&root, &args, &[]);
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}{stderr}");
    // 10 events and checkpoints at seqs 4 and 9 (every 4 records): 12 records.
    assert!(
        stdout.contains("intact: 12 records, 2 checkpoints verified"),
        "{stdout}"
    );

    let output = palisade(&root, &["audit", "verify"], &[]);
    let (stdout, _) = text(&output);
    assert!(output.status.success());
    assert!(
        stdout.contains(
            "2 checkpoints (signatures not checked: no checkpoint key given; pass --key PEM)"
        ),
        "{stdout}"
    );

    // A missing key file is named as missing.
    let absent = dir.path().join("absent.pub");
    args[3] = absent.to_str().unwrap();
    let output = palisade(&root, &args, &[]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.contains("checkpoint key") && stderr.contains("does not exist"),
        "{stderr}"
    );

    // JSON for programs.
    let output = palisade(&root, &["--format", "json", "audit", "verify"], &[]);
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(value[0]["report"]["intact"], true);
    assert_eq!(value[0]["report"]["checkpoints"], 2);
}

#[test]
fn every_tamper_kind_is_reported_at_its_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let (root, path) = store_with_log(dir.path(), 8, None);
    let original = lines(&path);
    let file = path.display().to_string();

    let mut cases: Vec<(&str, Vec<String>, String)> = Vec::new();
    let mut altered = original.clone();
    altered[3] = altered[3].replacen("\"pid\":103", "\"pid\":104", 1);
    assert_ne!(altered[3], original[3]);
    cases.push(("altered", altered, format!("{file}:4: altered:")));
    let mut removed = original.clone();
    removed.remove(5);
    cases.push((
        "removed",
        removed,
        format!("{file}:6: removed: record 5 is missing"),
    ));
    let mut reordered = original.clone();
    reordered.swap(2, 3);
    cases.push(("reordered", reordered, format!("{file}:3: reordered:")));
    let mut truncated = original.clone();
    let last = truncated.len() - 1;
    truncated[last].truncate(40);
    cases.push(("truncated", truncated, format!("{file}:8: truncated:")));
    let mut inserted = original.clone();
    inserted.insert(4, original[1].clone());
    cases.push(("inserted", inserted, format!("{file}:5: inserted:")));

    for (name, content, expected) in cases {
        if name == "truncated" {
            // Cut the file itself mid-line: no final newline.
            let mut text = content.join("\n");
            text.truncate(text.len());
            std::fs::write(&path, text).unwrap();
        } else {
            rewrite(&path, &content);
        }
        let output = palisade(&root, &["audit", "verify", &file], &[]);
        let (stdout, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(1), "{name}: {stdout}{stderr}");
        assert!(
            stdout.contains(&expected),
            "{name}: expected {expected:?} in {stdout}"
        );
        assert!(stdout.contains("NOT intact"), "{name}: {stdout}");
    }

    // Garbage instead of a file: a clear report, not a crash.
    std::fs::write(&path, b"\xff\xfegarbage\n{\"seq\":\n").unwrap();
    let output = palisade(&root, &["audit", "verify", &file], &[]);
    let (stdout, _) = text(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout.contains(&format!("{file}:1: not a record")),
        "{stdout}"
    );
}

#[test]
fn a_rewritten_chain_is_caught_only_by_the_signed_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = keys(dir.path());
    let (root, path) = store_with_log(dir.path(), 6, Some(&private));
    // Forge: edit the first record and recompute every hash after it, as a forger without
    // the key would; the checkpoints' signatures are left as they were.
    let mut content = lines(&path);
    content[0] = content[0].replacen("\"pid\":100", "\"pid\":999", 1);
    let mut prev = "0".repeat(64);
    for line in &mut content {
        use sha2::Digest as _;
        let at = line.find("\"prev\":\"").unwrap() + 8;
        let relinked = format!("{}{prev}{}", &line[..at], &line[at + 64..]);
        let cut = relinked.find(",\"hash\":\"").unwrap();
        let hash = hex_digest(sha2::Sha256::digest(
            format!("{}}}", &relinked[..cut]).as_bytes(),
        ));
        *line = format!("{},\"hash\":\"{hash}\"}}", &relinked[..cut]);
        prev = hash;
    }
    rewrite(&path, &content);
    let file = path.display().to_string();
    let output = palisade(&root, &["audit", "verify", &file], &[]);
    assert!(output.status.success(), "the chain alone is consistent");
    let output = palisade(
        &root,
        &["audit", "verify", "--key", public.to_str().unwrap(), &file],
        &[],
    );
    let (stdout, _) = text(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout.contains(&format!("{file}:5: bad checkpoint:")),
        "{stdout}"
    );
}

fn hex_digest(bytes: impl AsRef<[u8]>) -> String {
    bytes.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn seal_and_rotate_keep_one_chain_across_files() {
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = keys(dir.path());
    let (root, _) = store_with_log(dir.path(), 2, None);
    let key_env = [("PALISADE_AUDIT_KEY", private.as_path())];

    let output = palisade(&root, &["audit", "seal"], &[]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(125));
    assert!(
        stderr.contains("no checkpoint key: set PALISADE_AUDIT_KEY"),
        "{stderr}"
    );

    let output = palisade(&root, &["audit", "seal"], &key_env);
    assert!(output.status.success(), "{:?}", text(&output));
    let output = palisade(&root, &["audit", "rotate"], &key_env);
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(stdout.contains("engine.1.log"), "{stdout}");
    let output = palisade(&root, &["audit", "rotate"], &key_env);
    assert!(output.status.success());
    assert!(root.join("audit/engine.2.log").exists());

    let output = palisade(
        &root,
        &["audit", "verify", "--key", public.to_str().unwrap()],
        &[],
    );
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}{stderr}");
    // 2 events, seal, (rotation seal + log_rotated) twice: 7 records, 3 checkpoints.
    assert!(
        stdout.contains("intact: 7 records, 3 checkpoints verified"),
        "{stdout}"
    );

    // Removing the middle archive breaks the chain at the next file's first line.
    let middle = root.join("audit/engine.2.log");
    let saved = std::fs::read(&middle).unwrap();
    std::fs::remove_file(&middle).unwrap();
    let output = palisade(&root, &["audit", "verify"], &[]);
    let (stdout, _) = text(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout.contains("engine.log:1: removed"), "{stdout}");
    // Pruning the oldest archive leaves a chain that continues from a known point, and says so.
    std::fs::write(&middle, saved).unwrap();
    std::fs::remove_file(root.join("audit/engine.1.log")).unwrap();
    let output = palisade(&root, &["audit", "verify"], &[]);
    let (stdout, _) = text(&output);
    assert!(output.status.success());
    assert!(stdout.contains("continuing from seq"), "{stdout}");
}

#[test]
fn a_bad_fsync_policy_or_key_in_the_environment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (root, _) = store_with_log(dir.path(), 1, None);
    let bogus = dir.path().join("bogus.pem");
    std::fs::write(&bogus, "not a key").unwrap();
    let output = palisade(&root, &["audit", "seal"], &[("PALISADE_AUDIT_KEY", &bogus)]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.contains("PALISADE_AUDIT_KEY") && stderr.contains("is not a PEM P-256 private key"),
        "{stderr}"
    );
    let output = palisade(
        &root,
        &["audit", "rotate"],
        &[("PALISADE_AUDIT_FSYNC", Path::new("sometimes"))],
    );
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("PALISADE_AUDIT_FSYNC"), "{stderr}");
}

#[test]
fn show_filters_and_export_reaches_syslog_and_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let (root, _) = store_with_log(dir.path(), 9, None);

    let output = palisade(
        &root,
        &[
            "--format",
            "json",
            "audit",
            "show",
            "--kind",
            "seccomp_violation",
            "--container",
            "c1",
        ],
        &[],
    );
    assert!(output.status.success());
    let records: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    // Indices 2, 5, 8 are seccomp; containers c0, c1, c0.
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["event"]["syscall"], "mount");

    let output = palisade(
        &root,
        &["audit", "show", "--image", "localhost:5000/busybox"],
        &[],
    );
    let (stdout, _) = text(&output);
    assert_eq!(stdout.matches("image_pulled").count(), 3, "{stdout}");
    let output = palisade(
        &root,
        &[
            "audit",
            "show",
            "--since",
            "1h",
            "--until",
            "2000-01-01T00:00:00Z",
        ],
        &[],
    );
    assert_eq!(text(&output).0.lines().count(), 1, "only the header");
    let output = palisade(&root, &["audit", "show", "--since", "tomorrow"], &[]);
    assert_eq!(output.status.code(), Some(125));

    let socket = dir.path().join("log.sock");
    let server = UnixDatagram::bind(&socket).unwrap();
    let output = palisade(
        &root,
        &[
            "audit",
            "export",
            "--syslog",
            socket.to_str().unwrap(),
            "--kind",
            "image_pulled",
        ],
        &[],
    );
    assert!(output.status.success(), "{:?}", text(&output));
    let mut buffer = vec![0u8; 65536];
    for _ in 0..3 {
        let size = server.recv(&mut buffer).unwrap();
        let message = std::str::from_utf8(&buffer[..size]).unwrap();
        assert!(message.starts_with("<86>1 "), "{message}");
        assert!(
            message.contains(" image_pulled [palisade@32473 seq="),
            "{message}"
        );
    }

    let out = dir.path().join("collector.jsonl");
    let output = palisade(
        &root,
        &["audit", "export", "-o", out.to_str().unwrap()],
        &[],
    );
    assert!(output.status.success());
    assert_eq!(lines(&out).len(), 9);

    let output = palisade(
        &root,
        &[
            "audit",
            "export",
            "--syslog",
            dir.path().join("nobody").to_str().unwrap(),
        ],
        &[],
    );
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.contains("cannot connect to the syslog socket"),
        "{stderr}"
    );
}

#[test]
fn a_full_disk_is_an_error_of_the_append_and_loses_nothing_written() {
    if !support::privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("small");
    std::fs::create_dir(&mount).unwrap();
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&mount)
        .status()
        .unwrap();
    assert!(status.success());
    let result = std::panic::catch_unwind(|| {
        let path = mount.join("audit/engine.log");
        let mut log = AuditLog::open(&path).unwrap();
        let mut written = 0u64;
        let error = loop {
            match log.append(event(0)) {
                Ok(_) => written += 1,
                Err(error) => break error,
            }
            assert!(written < 10_000, "a 64k tmpfs never filled");
        };
        assert!(
            matches!(error, palisade_audit::AuditError::Write { .. }),
            "{error}"
        );
        let report = palisade_audit::verify(&[&path]).unwrap();
        // Every record append said it wrote is there; at most the failed one is torn.
        assert_eq!(report.records, written);
        assert!(report
            .problems
            .iter()
            .all(|p| p.kind == palisade_audit::BreakKind::Truncated));
    });
    unmount(&mount);
    result.unwrap();
}

/// Unmounts, retrying while a concurrently forked test child still holds a descriptor.
fn unmount(path: &Path) {
    for _ in 0..20 {
        if Command::new("umount")
            .arg(path)
            .status()
            .is_ok_and(|s| s.success())
        {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = Command::new("umount").arg("-l").arg(path).status();
}
