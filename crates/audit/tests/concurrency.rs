//! Many writers on one log at once: real processes (this test binary re-run as children) and
//! threads with their own handles, all appending together; the result must be one unbroken chain.

// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use palisade_audit::{
    verify, Actor, AuditLog, Confinement, Durability, Event, LandlockStatus, Records,
};

const PER_WRITER: usize = 200;
const CHILD_LOG: &str = "PALISADE_AUDIT_TEST_CHILD_LOG";
const CHILD_WRITER: &str = "PALISADE_AUDIT_TEST_CHILD_WRITER";
const CHILD_GO: &str = "PALISADE_AUDIT_TEST_CHILD_GO";

/// A deliberately long event (about 2 KiB) so unsynchronized writes would visibly interleave.
fn event(writer: usize, index: usize) -> Event {
    Event::ContainerExecuted {
        actor: Actor::process(std::process::id(), format!("writer-{writer}")),
        container_id: format!("w{writer}"),
        pid: Some(index as u32),
        args: vec![format!("{writer}:{index}"), "x".repeat(2000)],
        confinement: Confinement {
            seccomp: None,
            landlock: LandlockStatus::NotSupported,
            landlock_abi: None,
            capabilities: Vec::new(),
            no_new_privileges: true,
            read_only_rootfs: true,
        },
    }
}

fn append_all(path: &Path, writer: usize) {
    let mut log = AuditLog::open(path).unwrap();
    if writer % 2 == 1 {
        log = log.with_durability(Durability::Sync);
    }
    for index in 0..PER_WRITER {
        log.append(event(writer, index)).unwrap();
    }
}

/// Not a test of its own: the body of a child process spawned by the tests below. Run
/// normally (without the environment variables) it does nothing.
#[test]
fn child_appender_process() {
    let (Ok(path), Ok(writer), Ok(go)) = (
        std::env::var(CHILD_LOG),
        std::env::var(CHILD_WRITER),
        std::env::var(CHILD_GO),
    ) else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !Path::new(&go).exists() {
        assert!(Instant::now() < deadline, "never told to start");
        std::thread::sleep(Duration::from_millis(1));
    }
    append_all(Path::new(&path), writer.parse().unwrap());
}

fn spawn_child(path: &Path, writer: usize, go: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_appender_process",
            "--test-threads=1",
            "--quiet",
        ])
        .env(CHILD_LOG, path)
        .env(CHILD_WRITER, writer.to_string())
        .env(CHILD_GO, go)
        // The child's harness prints its own summary; keep it out of this test's output.
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

/// Checks the chain and that every writer's events are all there, in its own order.
fn check_log(files: &[PathBuf], writers: usize, extra_records: u64) {
    let report = verify(files).unwrap();
    assert!(report.intact && report.complete, "{report:#?}");
    let total = (writers * PER_WRITER) as u64 + extra_records;
    assert_eq!(report.records, total);
    assert_eq!(
        (report.first_seq, report.last_seq),
        (Some(0), Some(total - 1))
    );

    let mut next_index = vec![0u32; writers];
    for (expected_seq, record) in Records::open(files).enumerate() {
        let record = record.unwrap();
        assert_eq!(record.seq, expected_seq as u64, "contiguous seq");
        if let Event::ContainerExecuted {
            container_id, pid, ..
        } = &record.event
        {
            let writer: usize = container_id[1..].parse().unwrap();
            assert_eq!(
                *pid,
                Some(next_index[writer]),
                "writer {writer} out of order"
            );
            next_index[writer] += 1;
        }
    }
    assert!(
        next_index.iter().all(|&count| count as usize == PER_WRITER),
        "{next_index:?}"
    );
}

#[test]
fn processes_and_threads_append_to_one_file_at_once() {
    const PROCESSES: usize = 4;
    const THREADS: usize = 4;
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("audit/shared.log");
    let go = root.path().join("go");
    AuditLog::open(&path).unwrap();

    let children: Vec<Child> = (0..PROCESSES)
        .map(|writer| spawn_child(&path, writer, &go))
        .collect();
    let barrier = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|thread| {
            let path = path.clone();
            let barrier = Arc::clone(&barrier);
            let go = go.clone();
            std::thread::spawn(move || {
                if barrier.wait().is_leader() {
                    std::fs::write(&go, b"").unwrap();
                }
                append_all(&path, PROCESSES + thread);
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    for mut child in children {
        assert!(child.wait().unwrap().success(), "a child process failed");
    }

    check_log(&[path], PROCESSES + THREADS, 0);
}

#[test]
fn processes_keep_appending_while_the_log_rotates() {
    const PROCESSES: usize = 3;
    const ROTATIONS: usize = 5;
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("rotating.log");
    let go = root.path().join("go");
    let mut rotator = AuditLog::open(&path).unwrap();
    let children: Vec<Child> = (0..PROCESSES)
        .map(|writer| spawn_child(&path, writer, &go))
        .collect();
    std::fs::write(&go, b"").unwrap();
    let mut files = Vec::new();
    for generation in 0..ROTATIONS {
        std::thread::sleep(Duration::from_millis(20));
        let archive = root.path().join(format!("rotating.{generation}.log"));
        rotator.rotate(&archive, Actor::user("logrotate")).unwrap();
        files.push(archive);
    }
    for mut child in children {
        assert!(child.wait().unwrap().success(), "a child process failed");
    }
    files.push(path);
    check_log(&files, PROCESSES, ROTATIONS as u64);
}
