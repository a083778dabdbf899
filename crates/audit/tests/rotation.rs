//! Rotation: the chain continues across files, and a missing or altered file breaks it.

// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::path::PathBuf;
use std::sync::{Arc, Barrier};

use common::{first_break, lines, rewrite, started};
use palisade_audit::{
    verify, verify_with, Actor, AuditLog, BreakKind, RecordHash, Records, VerifyOptions,
};

/// Writes three files: two archives and the live one, 4 records + 1 rotation record each.
fn rotated_logs(root: &std::path::Path) -> (Vec<PathBuf>, AuditLog) {
    let live = root.join("runtime.log");
    let mut log = AuditLog::open(&live).unwrap();
    let mut files = Vec::new();
    let mut index = 0;
    for generation in 0..2 {
        for _ in 0..4 {
            log.append(started(index)).unwrap();
            index += 1;
        }
        let archive = root.join(format!("runtime.{generation}.log"));
        log.rotate(&archive, Actor::user("logrotate")).unwrap();
        files.push(archive);
    }
    for _ in 0..4 {
        log.append(started(index)).unwrap();
        index += 1;
    }
    files.push(live);
    (files, log)
}

#[test]
fn the_chain_verifies_across_rotated_files() {
    let root = tempfile::tempdir().unwrap();
    let (files, mut log) = rotated_logs(root.path());
    let report = verify(&files).unwrap();
    assert!(report.intact && report.complete, "{report:#?}");
    assert!(report.from_genesis);
    assert_eq!(report.records, 14);
    assert_eq!((report.first_seq, report.last_seq), (Some(0), Some(13)));
    assert_eq!(report.head, log.checkpoint().unwrap().map(|c| c.hash));
    let per_file: Vec<_> = report
        .files
        .iter()
        .map(|file| (file.records, file.first_seq, file.last_seq))
        .collect();
    assert_eq!(
        per_file,
        [
            (4, Some(0), Some(3)),
            (5, Some(4), Some(8)),
            (5, Some(9), Some(13))
        ]
    );
    // Each file links to the previous one's head.
    for pair in report.files.windows(2) {
        let next_first = Records::open(&[&pair[1].path]).next().unwrap().unwrap();
        assert_eq!(next_first.event.kind(), "log_rotated");
        assert_eq!(Some(next_first.prev), pair[0].head);
    }
}

#[test]
fn a_suffix_of_the_files_verifies_as_a_continuation() {
    let root = tempfile::tempdir().unwrap();
    let (files, _) = rotated_logs(root.path());
    let report = verify(&files[1..]).unwrap();
    assert!(report.intact, "{report:#?}");
    assert!(!report.from_genesis);
    assert_eq!(report.first_seq, Some(4));
    let first_report = verify(&files[..1]).unwrap();
    assert_eq!(report.anchor, first_report.head);
    // Pinning the start to the archived head accepts it; pinning it elsewhere does not.
    let start = Some(palisade_audit::Checkpoint {
        seq: 3,
        hash: first_report.head.unwrap(),
    });
    let pinned = verify_with(&files[1..], &VerifyOptions { start, head: None }).unwrap();
    assert!(pinned.intact);
    let wrong = Some(palisade_audit::Checkpoint {
        seq: 3,
        hash: RecordHash::GENESIS,
    });
    let report = verify_with(
        &files[1..],
        &VerifyOptions {
            start: wrong,
            head: None,
        },
    )
    .unwrap();
    assert_eq!(first_break(&report), (1, BreakKind::Edited));
}

#[test]
fn a_missing_file_in_the_middle_breaks_the_chain() {
    let root = tempfile::tempdir().unwrap();
    let (files, _) = rotated_logs(root.path());
    let report = verify(&[&files[0], &files[2]]).unwrap();
    assert_eq!(first_break(&report), (1, BreakKind::Removed));
    let chain_break = report.first_break.unwrap();
    assert_eq!(chain_break.path, files[2]);
    assert!(
        chain_break.detail.contains("records 4 to 8"),
        "{}",
        chain_break.detail
    );
    assert!(
        chain_break.detail.contains("file"),
        "{}",
        chain_break.detail
    );
    assert_eq!(report.records, 4);
}

#[test]
fn files_out_of_order_or_repeated_break_the_chain() {
    let root = tempfile::tempdir().unwrap();
    let (files, _) = rotated_logs(root.path());
    // The second file alone is a valid continuation; the first one after it is not.
    let report = verify(&[&files[1], &files[0], &files[2]]).unwrap();
    let chain_break = report.first_break.unwrap();
    assert_eq!(
        (chain_break.path.clone(), chain_break.line),
        (files[0].clone(), 1)
    );
    assert_eq!(chain_break.kind, BreakKind::Reordered);

    let report = verify(&[&files[0], &files[0], &files[1]]).unwrap();
    let chain_break = report.first_break.unwrap();
    assert_eq!((chain_break.path, chain_break.line), (files[0].clone(), 1));
    assert_eq!(chain_break.kind, BreakKind::Inserted);
}

#[test]
fn an_edit_in_an_archive_is_found_in_that_archive() {
    let root = tempfile::tempdir().unwrap();
    let (files, _) = rotated_logs(root.path());
    let mut text = lines(&files[1]);
    text[2] = text[2].replace("\"uid\":0", "\"uid\":7");
    rewrite(&files[1], &text);
    let report = verify(&files).unwrap();
    let chain_break = report.first_break.unwrap();
    assert_eq!(
        (chain_break.path, chain_break.line, chain_break.kind),
        (files[1].clone(), 3, BreakKind::Edited)
    );
}

#[test]
fn rotation_while_other_handles_append_loses_and_forks_nothing() {
    let root = tempfile::tempdir().unwrap();
    let live = root.path().join("busy.log");
    AuditLog::open(&live).unwrap();
    const THREADS: usize = 3;
    const PER_THREAD: usize = 150;
    const ROTATIONS: usize = 6;
    let barrier = Arc::new(Barrier::new(THREADS + 1));
    let writers: Vec<_> = (0..THREADS)
        .map(|thread| {
            let live = live.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let mut log = AuditLog::open(&live).unwrap();
                barrier.wait();
                for index in 0..PER_THREAD {
                    log.append(started(thread * 1000 + index)).unwrap();
                }
            })
        })
        .collect();
    let mut rotator = AuditLog::open(&live).unwrap();
    barrier.wait();
    let mut files = Vec::new();
    for generation in 0..ROTATIONS {
        std::thread::sleep(std::time::Duration::from_millis(5));
        let archive = root.path().join(format!("busy.{generation}.log"));
        rotator.rotate(&archive, Actor::user("logrotate")).unwrap();
        files.push(archive);
    }
    for writer in writers {
        writer.join().unwrap();
    }
    files.push(live);
    let report = verify(&files).unwrap();
    assert!(report.intact, "{report:#?}");
    assert_eq!(report.records, (THREADS * PER_THREAD + ROTATIONS) as u64);
    assert_eq!(report.last_seq, Some(report.records - 1));
    let names: Vec<_> = fs::read_dir(root.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with('.'))
        .collect();
    assert!(names.is_empty(), "temporary files left behind: {names:?}");
}
