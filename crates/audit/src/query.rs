//! Streaming forensic queries: records of one or more log files, filtered, one line at a time.
//!
//! The reader does not check the chain ([`crate::verify`] does that); it decodes what is there,
//! so it can also read a damaged log. Each line is read and filtered on its own, so memory stays
//! bounded by the longest line whatever the file's size.

use std::collections::VecDeque;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use crate::error::AuditError;
use crate::event::Decision;
use crate::lines::LineReader;
use crate::record::{parse_line, LineFault, ParsedLine, Record, MAX_LINE_BYTES};
use crate::timestamp::Timestamp;

/// Which records a query keeps. Every condition set must hold; an empty filter keeps all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordFilter {
    kinds: Vec<String>,
    container_id: Option<String>,
    image: Option<String>,
    decision: Option<Decision>,
    since: Option<Timestamp>,
    until: Option<Timestamp>,
}

impl RecordFilter {
    /// A filter that keeps every record.
    pub fn new() -> RecordFilter {
        RecordFilter::default()
    }

    /// Keeps records of this kind (e.g. `"container_created"`); repeat to allow several.
    pub fn kind(mut self, kind: impl Into<String>) -> RecordFilter {
        self.kinds.push(kind.into());
        self
    }

    /// Keeps records about this container ([`crate::Event::container_id`]).
    pub fn container(mut self, container_id: impl Into<String>) -> RecordFilter {
        self.container_id = Some(container_id.into());
        self
    }

    /// Keeps records about this image: its reference or digest ([`crate::Event::image`],
    /// [`crate::Event::digest`]) equals `image`, or the reference's repository does (`busybox`
    /// matches `busybox:latest`).
    pub fn image(mut self, image: impl Into<String>) -> RecordFilter {
        self.image = Some(image.into());
        self
    }

    /// Keeps records with this decision ([`crate::Event::decision`]).
    pub fn decision(mut self, decision: Decision) -> RecordFilter {
        self.decision = Some(decision);
        self
    }

    /// Keeps records written at or after `time`.
    pub fn since(mut self, time: Timestamp) -> RecordFilter {
        self.since = Some(time);
        self
    }

    /// Keeps records written before `time`.
    pub fn until(mut self, time: Timestamp) -> RecordFilter {
        self.until = Some(time);
        self
    }

    /// Whether `record` passes.
    pub fn matches(&self, record: &Record) -> bool {
        self.matches_envelope(record.event.kind(), record.time)
            && self
                .container_id
                .as_deref()
                .is_none_or(|id| record.event.container_id() == Some(id))
            && self
                .decision
                .is_none_or(|decision| record.event.decision() == decision)
            && self.image.as_deref().is_none_or(|wanted| {
                record.event.digest() == Some(wanted)
                    || record.event.image().is_some_and(|reference| {
                        reference == wanted
                            || reference
                                .strip_prefix(wanted)
                                .is_some_and(|rest| rest.starts_with([':', '@']))
                    })
            })
    }

    /// The conditions that can be checked before decoding the event.
    fn matches_envelope(&self, kind: &str, time: Timestamp) -> bool {
        (self.kinds.is_empty() || self.kinds.iter().any(|wanted| wanted == kind))
            && self.since.is_none_or(|since| time >= since)
            && self.until.is_none_or(|until| time < until)
    }

    fn prefilter(&self, line: &ParsedLine) -> bool {
        self.matches_envelope(&line.kind, line.time)
    }
}

/// An iterator over the records of log files, oldest file first, optionally filtered.
///
/// Yields `Err` for a line that is not a readable record (torn, garbage, an unknown event kind)
/// or a file that cannot be read, and carries on with the next line or file.
#[derive(Debug)]
pub struct Records {
    pending: VecDeque<PathBuf>,
    current: Option<(PathBuf, LineReader<BufReader<File>>)>,
    filter: RecordFilter,
}

impl Records {
    /// Reads `paths` in order. Files are opened as the iteration reaches them.
    pub fn open<P: AsRef<Path>>(paths: &[P]) -> Records {
        Records {
            pending: paths
                .iter()
                .map(|path| path.as_ref().to_path_buf())
                .collect(),
            current: None,
            filter: RecordFilter::new(),
        }
    }

    /// Keeps only records `filter` matches (unreadable lines are still reported).
    pub fn matching(mut self, filter: RecordFilter) -> Records {
        self.filter = filter;
        self
    }

    fn next_in_current(&mut self) -> Option<Result<Record, AuditError>> {
        let (path, reader) = self.current.as_mut()?;
        loop {
            let line = match reader.next_line() {
                Ok(Some(line)) => line,
                Ok(None) => {
                    self.current = None;
                    return None;
                }
                Err(source) => {
                    let path = path.clone();
                    self.current = None;
                    return Some(Err(AuditError::Read { path, source }));
                }
            };
            let unreadable = |reason: String| {
                Some(Err(AuditError::UnreadableRecord {
                    path: path.clone(),
                    line: line.number,
                    reason,
                }))
            };
            if line.too_long {
                return unreadable(format!("longer than {MAX_LINE_BYTES} bytes"));
            }
            let parsed = match parse_line(&line.bytes) {
                Ok(parsed) => parsed,
                Err(LineFault::Torn) => return unreadable("the record is cut short".to_owned()),
                Err(LineFault::Malformed(reason)) => return unreadable(reason),
            };
            if !self.filter.prefilter(&parsed) {
                continue;
            }
            match parsed.into_record() {
                Ok(record) if self.filter.matches(&record) => return Some(Ok(record)),
                Ok(_) => continue,
                Err(error) => return unreadable(format!("unknown or invalid event: {error}")),
            }
        }
    }
}

impl Iterator for Records {
    type Item = Result<Record, AuditError>;

    fn next(&mut self) -> Option<Result<Record, AuditError>> {
        loop {
            if self.current.is_none() {
                let path = self.pending.pop_front()?;
                match File::open(&path) {
                    Ok(file) => {
                        self.current = Some((path, LineReader::new(BufReader::new(file))));
                    }
                    Err(source) => return Some(Err(AuditError::Open { path, source })),
                }
            }
            if let Some(item) = self.next_in_current() {
                return Some(item);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{examples, Actor, Event};
    use crate::log::AuditLog;
    use std::io::Write;

    #[test]
    fn filters_by_kind_container_decision_and_time() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("q.log");
        let mut log = AuditLog::open(&path).unwrap();
        let mut written = Vec::new();
        for event in examples() {
            written.push(log.append(event).unwrap());
        }
        let all: Vec<Record> = Records::open(&[&path]).map(Result::unwrap).collect();
        assert_eq!(all, written);

        let kinds = |filter: RecordFilter| -> Vec<&'static str> {
            Records::open(&[&path])
                .matching(filter)
                .map(|record| record.unwrap().event.kind())
                .collect()
        };
        assert_eq!(
            kinds(RecordFilter::new().kind("oom_killed").kind("image_pulled")),
            vec!["image_pulled", "oom_killed"]
        );
        assert_eq!(
            kinds(
                RecordFilter::new()
                    .container("web-1")
                    .decision(Decision::Deny)
            ),
            vec![
                "seccomp_violation",
                "spoofing_blocked",
                "pids_limit_hit",
                "landlock_denied"
            ]
        );
        assert_eq!(
            kinds(RecordFilter::new().image("registry.example/app:1.3")),
            vec!["image_pushed"]
        );
        assert_eq!(
            kinds(RecordFilter::new().image(format!("sha256:{}", "ab".repeat(32)))).len(),
            4
        );
        assert_eq!(kinds(RecordFilter::new().container("web-2")), vec!["other"]);
        let middle = written[5].time;
        let before = kinds(RecordFilter::new().until(middle));
        let after = kinds(RecordFilter::new().since(middle));
        assert_eq!(before.len() + after.len(), written.len());
        assert!(after.contains(&"policy_relaxed"));
        assert!(kinds(RecordFilter::new().since(Timestamp::now())).is_empty());
    }

    #[test]
    fn reports_unreadable_lines_and_files_and_carries_on() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("q.log");
        let mut log = AuditLog::open(&path).unwrap();
        let event = |id: &str| Event::ContainerStarted {
            actor: Actor::default(),
            container_id: id.into(),
            pid: None,
        };
        log.append(event("a")).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"garbage\n{\"seq\":9,\"ti")
            .unwrap();
        log.append(event("b")).unwrap();
        let missing = root.path().join("missing.log");
        let items: Vec<_> = Records::open(&[&path, &missing, &path]).collect();
        let summary: Vec<String> = items
            .iter()
            .map(|item| match item {
                Ok(record) => record.event.container_id().unwrap_or_default().to_owned(),
                Err(AuditError::UnreadableRecord { line, .. }) => format!("bad {line}"),
                Err(AuditError::Open { .. }) => "missing".to_owned(),
                Err(other) => panic!("{other}"),
            })
            .collect();
        assert_eq!(
            summary,
            ["a", "bad 2", "bad 3", "b", "missing", "a", "bad 2", "bad 3", "b"]
        );
    }
}
