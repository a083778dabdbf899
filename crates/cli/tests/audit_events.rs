//! `palisade events`: follows the audit logs as they grow, and a rule file turns a burst of
//! denials into an alert that is itself recorded in the chain.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use palisade_audit::{Actor, AuditLog, Decision, Event};

const PALISADE: &str = env!("CARGO_BIN_EXE_palisade");

fn denial(container: &str) -> Event {
    Event::SeccompViolation {
        actor: Actor::process(42, "exploit"),
        container_id: Some(container.into()),
        syscall_number: 246,
        syscall: Some("kexec_load".into()),
        arch: "x86_64".into(),
        action: "notify_errno".into(),
        decision: Decision::Deny,
        count: Some(1),
    }
}

fn palisade(root: &Path) -> Command {
    let mut command = Command::new(PALISADE);
    command
        .arg("--root")
        .arg(root)
        .env_remove("PALISADE_AUDIT_KEY");
    command
}

#[test]
fn a_burst_of_denials_becomes_a_recorded_alert() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let mut log = AuditLog::open(root.join("audit/engine.log")).unwrap();
    for _ in 0..6 {
        log.append(denial("c1")).unwrap();
    }
    log.append(denial("c2")).unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"seccomp-burst\"\nkind = \"seccomp_violation\"\nthreshold = 5\nwindow = \"1m\"\n",
    )
    .unwrap();
    let output = palisade(&root)
        .args(["--format", "json", "events", "--no-follow", "--rules"])
        .arg(&rules)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let alerts: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|r| r["event"]["kind"] == "alert")
        .collect();
    assert_eq!(alerts.len(), 1, "{lines:#?}");
    assert_eq!(alerts[0]["event"]["rule"], "seccomp-burst");
    assert_eq!(alerts[0]["event"]["container_id"], "c1");
    assert_eq!(alerts[0]["event"]["count"], 5);
    // The alert is part of the chain.
    let report = palisade_audit::verify(&[root.join("audit/engine.log")]).unwrap();
    assert!(report.intact);
    assert_eq!(report.records, 8);

    // A bad rule file is refused with the reason.
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"x\"\nthreshold = 0\nwindow = \"1m\"\n",
    )
    .unwrap();
    let output = palisade(&root)
        .args(["events", "--no-follow", "--rules"])
        .arg(&rules)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("threshold must be at least 1"));
}

#[test]
fn new_records_are_streamed_as_they_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let mut log = AuditLog::open(root.join("audit/runtime.log")).unwrap();
    log.append(denial("old")).unwrap();
    let mut child = palisade(&root)
        .args(["--format", "json", "events", "--kind", "oom_killed"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if sender.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    // Past records are not replayed; new ones are, filtered.
    std::thread::sleep(Duration::from_millis(600));
    log.append(denial("new")).unwrap();
    log.append(Event::OomKilled {
        actor: Actor::process(7, "hog"),
        container_id: Some("web".into()),
        memory_limit: Some(64 << 20),
        count: Some(1),
    })
    .unwrap();
    let line = receiver.recv_timeout(Duration::from_secs(10));
    let _ = child.kill();
    let _ = child.wait();
    let line = line.expect("no event streamed");
    let record: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(record["event"]["kind"], "oom_killed");
    assert_eq!(record["event"]["container_id"], "web");
    assert_eq!(record["seq"], 2);
}
