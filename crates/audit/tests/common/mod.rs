//! Helpers shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::fs;
use std::path::Path;

use palisade_audit::{Actor, AuditLog, BreakKind, Event, Record, VerifyReport};

/// A small event that names the container `c{index}`.
pub(crate) fn started(index: usize) -> Event {
    Event::ContainerStarted {
        actor: Actor::user("root").with_uid(0),
        container_id: format!("c{index}"),
        pid: Some(1000 + index as u32),
    }
}

/// Appends `count` events to the log at `path` and returns the records.
pub(crate) fn write_log(path: &Path, count: usize) -> Vec<Record> {
    let mut log = AuditLog::open(path).unwrap();
    (0..count)
        .map(|index| log.append(started(index)).unwrap())
        .collect()
}

/// The file's lines, without newlines.
pub(crate) fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Replaces the file's content with `lines`, each ending in a newline.
pub(crate) fn rewrite(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    fs::write(path, text).unwrap();
}

/// The first break's line and kind, or a panic with the report.
pub(crate) fn first_break(report: &VerifyReport) -> (u64, BreakKind) {
    let chain_break = report
        .first_break
        .as_ref()
        .unwrap_or_else(|| panic!("expected a break: {report:#?}"));
    (chain_break.line, chain_break.kind)
}
