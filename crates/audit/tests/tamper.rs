//! Tampering with a log file in every way the verifier promises to catch, at every line.

// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::path::Path;

use common::{first_break, lines, rewrite, started, write_log};
use palisade_audit::{verify, verify_with, AuditLog, BreakKind, VerifyOptions};
use sha2::{Digest, Sha256};

const LINES: usize = 6;

/// Writes a fresh log of `LINES` records and returns its path (inside `root`) and lines.
fn fresh(root: &Path, name: &str) -> (std::path::PathBuf, Vec<String>) {
    let path = root.join(name);
    write_log(&path, LINES);
    let text = lines(&path);
    assert_eq!(text.len(), LINES);
    (path, text)
}

/// Replaces the first occurrence of `from` on the line with `to`, insisting it is there.
fn replace_once(line: &str, from: &str, to: &str) -> String {
    assert!(line.contains(from), "{from:?} not in {line}");
    line.replacen(from, to, 1)
}

/// Flips the hex digit just after `marker`.
fn flip_hex_after(line: &str, marker: &str) -> String {
    let at = line.find(marker).unwrap() + marker.len();
    let digit = line.as_bytes()[at];
    let flipped = if digit == b'0' { '1' } else { '0' };
    format!("{}{flipped}{}", &line[..at], &line[at + 1..])
}

/// The same edit with the record's hash recomputed, as a capable forger would.
fn rehash(line: &str) -> String {
    let cut = line.find(",\"hash\":\"").unwrap();
    let body = format!("{}}}", &line[..cut]);
    let hash = hex::encode(Sha256::digest(body.as_bytes()));
    format!("{},\"hash\":\"{hash}\"}}", &line[..cut])
}

#[test]
fn editing_any_field_of_any_line_is_found_on_that_line() {
    let root = tempfile::tempdir().unwrap();
    let (path, original) = fresh(root.path(), "edit.log");
    type Edit = fn(usize, &str) -> String;
    let edits: [(&str, Edit); 10] = [
        ("seq", |i, l| {
            replace_once(l, &format!("\"seq\":{i},"), &format!("\"seq\":{},", i + 7))
        }),
        ("time", |_, l| {
            let at = l.find("Z\",\"prev\"").unwrap() - 1;
            let digit = if l.as_bytes()[at] == b'5' { '6' } else { '5' };
            format!("{}{digit}{}", &l[..at], &l[at + 1..])
        }),
        ("prev", |_, l| flip_hex_after(l, "\"prev\":\"")),
        ("hash", |_, l| flip_hex_after(l, "\"hash\":\"")),
        ("container_id", |i, l| {
            replace_once(
                l,
                &format!("\"container_id\":\"c{i}\""),
                "\"container_id\":\"cX\"",
            )
        }),
        ("actor", |_, l| replace_once(l, "\"uid\":0", "\"uid\":1000")),
        ("kind", |_, l| {
            replace_once(l, "container_started", "container_deleted")
        }),
        ("pid", |i, l| {
            replace_once(l, &format!("\"pid\":{}", 1000 + i), "\"pid\":1")
        }),
        ("whitespace", |_, l| {
            replace_once(l, "{\"seq\"", "{ \"seq\"")
        }),
        ("escape", |i, l| {
            replace_once(l, &format!("\"c{i}\""), &format!("\"\\u0063{i}\""))
        }),
    ];
    for index in 0..LINES {
        for (field, edit) in &edits {
            let mut text = original.clone();
            text[index] = edit(index, &text[index]);
            assert_ne!(text[index], original[index]);
            rewrite(&path, &text);
            let report = verify(&[&path]).unwrap();
            assert_eq!(
                first_break(&report),
                (index as u64 + 1, BreakKind::Edited),
                "{field} on line {}: {report:#?}",
                index + 1
            );
            assert!(!report.intact && !report.complete);
            assert_eq!(report.records, index as u64);
        }
    }
}

#[test]
fn a_rehashed_edit_breaks_the_link_to_the_next_line_or_the_checkpoint() {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("rehash.log");
    let records = write_log(&path, LINES);
    let original = lines(&path);
    for index in 0..LINES {
        let mut text = original.clone();
        text[index] = rehash(&replace_once(&text[index], "\"uid\":0", "\"uid\":1"));
        rewrite(&path, &text);
        let report = verify(&[&path]).unwrap();
        if index + 1 < LINES {
            assert_eq!(first_break(&report), (index as u64 + 2, BreakKind::Edited));
        } else {
            assert!(
                report.intact,
                "the newest record alone can be rewritten unnoticed"
            );
            let head = Some(records[index].checkpoint());
            let report = verify_with(&[&path], &VerifyOptions { start: None, head }).unwrap();
            assert_eq!(first_break(&report), (LINES as u64, BreakKind::Edited));
        }
    }
}

#[test]
fn deleting_any_line_is_found_where_it_was() {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("delete.log");
    let records = write_log(&path, LINES);
    let original = lines(&path);
    for (index, record) in records.iter().enumerate() {
        let mut text = original.clone();
        text.remove(index);
        rewrite(&path, &text);
        let report = verify(&[&path]).unwrap();
        if index + 1 < LINES {
            assert_eq!(
                first_break(&report),
                (index as u64 + 1, BreakKind::Removed),
                "line {}: {report:#?}",
                index + 1
            );
        } else {
            assert!(report.intact, "a cut at the end needs a checkpoint");
            let head = Some(record.checkpoint());
            let report = verify_with(&[&path], &VerifyOptions { start: None, head }).unwrap();
            assert_eq!(first_break(&report), (LINES as u64, BreakKind::Removed));
        }
    }
    // Several lines at once.
    let mut text = original.clone();
    text.drain(1..4);
    rewrite(&path, &text);
    let report = verify(&[&path]).unwrap();
    assert_eq!(first_break(&report), (2, BreakKind::Removed));
    assert!(report
        .first_break
        .unwrap()
        .detail
        .contains("records 1 to 3"));
}

#[test]
fn swapping_lines_is_reordering_found_at_the_first_displaced_line() {
    let root = tempfile::tempdir().unwrap();
    let (path, original) = fresh(root.path(), "swap.log");
    for index in 0..LINES - 1 {
        for other in index + 1..LINES {
            let mut text = original.clone();
            text.swap(index, other);
            rewrite(&path, &text);
            let report = verify(&[&path]).unwrap();
            assert_eq!(
                first_break(&report),
                (index as u64 + 1, BreakKind::Reordered),
                "swap {} and {}: {report:#?}",
                index + 1,
                other + 1
            );
        }
    }
}

#[test]
fn inserting_a_line_is_found_where_it_was_inserted() {
    let root = tempfile::tempdir().unwrap();
    let (path, original) = fresh(root.path(), "insert.log");
    for position in 0..=LINES {
        for copied in 0..LINES {
            let mut text = original.clone();
            text.insert(position, original[copied].clone());
            rewrite(&path, &text);
            let report = verify(&[&path]).unwrap();
            // A copy inserted just before its original is indistinguishable from it; the
            // second of the two identical lines is the one reported.
            let expected = if copied == position {
                position + 2
            } else {
                position + 1
            };
            assert_eq!(
                first_break(&report),
                (expected as u64, BreakKind::Inserted),
                "copy of line {} at line {}: {report:#?}",
                copied + 1,
                position + 1
            );
        }
        let mut text = original.clone();
        text.insert(position, "{\"seq\":1,\"note\":\"not a record\"}".into());
        rewrite(&path, &text);
        let report = verify(&[&path]).unwrap();
        assert_eq!(
            first_break(&report),
            (position as u64 + 1, BreakKind::Malformed)
        );
        assert_eq!(report.records, LINES as u64, "the chain itself is whole");
    }
}

#[test]
fn a_forged_line_from_another_log_is_an_insertion() {
    let root = tempfile::tempdir().unwrap();
    let (path, original) = fresh(root.path(), "target.log");
    let (_, foreign) = fresh(root.path(), "foreign.log");
    for (position, forged) in foreign.iter().enumerate().skip(1) {
        let mut text = original.clone();
        // Same seq as the line it precedes, but another chain's prev and hash.
        text.insert(position, forged.clone());
        rewrite(&path, &text);
        let report = verify(&[&path]).unwrap();
        assert_eq!(
            first_break(&report),
            (position as u64 + 1, BreakKind::Inserted),
            "{report:#?}"
        );
    }
}

#[test]
fn truncating_the_file_mid_line_is_reported_at_that_line() {
    let root = tempfile::tempdir().unwrap();
    let (path, original) = fresh(root.path(), "truncate.log");
    let full = fs::read(&path).unwrap();
    let mut line_start = 0;
    for (index, line) in original.iter().enumerate() {
        for cut in [1, line.len() / 2, line.len() - 1] {
            fs::write(&path, &full[..line_start + cut]).unwrap();
            let report = verify(&[&path]).unwrap();
            assert_eq!(
                first_break(&report),
                (index as u64 + 1, BreakKind::Truncated),
                "cut line {} at {cut}",
                index + 1
            );
            assert!(report.complete);
            assert_eq!(report.records, index as u64);
        }
        // Losing only the newline loses nothing.
        fs::write(&path, &full[..line_start + line.len()]).unwrap();
        assert!(verify(&[&path]).unwrap().intact);
        line_start += line.len() + 1;
    }
}

#[test]
fn appends_after_a_torn_write_verify_around_the_torn_line() {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("torn.log");
    write_log(&path, 3);
    // A crash mid-write: half of what would have been the fourth line.
    let (_, foreign) = fresh(root.path(), "other.log");
    let torn = &foreign[3][..foreign[3].len() / 2];
    let mut bytes = fs::read(&path).unwrap();
    bytes.extend_from_slice(torn.as_bytes());
    fs::write(&path, &bytes).unwrap();

    let mut log = AuditLog::open(&path).unwrap();
    let fourth = log.append(started(3)).unwrap();
    let fifth = log.append(started(4)).unwrap();
    assert_eq!((fourth.seq, fifth.seq), (3, 4));

    let report = verify(&[&path]).unwrap();
    assert!(!report.intact && report.complete, "{report:#?}");
    assert_eq!(report.problems.len(), 1);
    assert_eq!(first_break(&report), (4, BreakKind::Truncated));
    assert_eq!(report.records, 5);
    assert_eq!(report.head, Some(fifth.hash));
    assert_eq!(lines(&path)[3], torn);

    // Tampering after the torn line is still caught, and reported after it.
    let mut text = lines(&path);
    text[5] = replace_once(&text[5], "\"uid\":0", "\"uid\":5");
    rewrite(&path, &text);
    let report = verify(&[&path]).unwrap();
    let kinds: Vec<_> = report.problems.iter().map(|p| (p.line, p.kind)).collect();
    assert_eq!(kinds, [(4, BreakKind::Truncated), (6, BreakKind::Edited)]);
}
