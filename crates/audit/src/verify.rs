//! The offline verifier: checks one log file, or a rotated sequence of them, line by line.
//!
//! For every line it checks that the line is a record, that the record's `hash` is the SHA-256
//! of its canonical body, that the line is byte-for-byte the canonical encoding of its values,
//! that `seq` follows the previous record's, and that `prev` is the previous record's `hash`.
//!
//! Lines that are not records at all (a write torn by a crash, garbage) are reported and stepped
//! over; the chain must continue across them from the last real record, so hiding a record this
//! way still breaks the chain. The first chain break (a record edited, removed, reordered or
//! inserted) ends the check: after it nothing can be trusted. Its kind is a diagnosis from the
//! surrounding records; its line number is where the chain first fails.
//!
//! What a hash chain cannot show on its own: records cut from the end of the newest file, and a
//! whole chain rewritten by someone who recomputes every hash. [`VerifyOptions::head`] with a
//! [`Checkpoint`] kept off the host closes both gaps.

use std::collections::VecDeque;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::checkpoint::{checkpoint_message, CheckpointVerifier};
use crate::error::AuditError;
use crate::lines::LineReader;
use crate::record::{parse_line, Checkpoint, LineFault, ParsedLine, RecordHash, MAX_LINE_BYTES};

/// How many problems a report lists before it only counts them.
const MAX_LISTED_PROBLEMS: usize = 1000;
/// How many recent records are remembered to recognise a duplicated one.
const RECENT_RECORDS: usize = 4096;

/// What the verifier may assume beyond the files themselves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyOptions {
    /// The record just before the first file's first record, e.g. the head of an archived file
    /// that was shipped away. Without it the chain must start at genesis (`seq` 0, `prev` all
    /// zeros) or with a `log_rotated` record, and [`VerifyReport::from_genesis`] says which.
    pub start: Option<Checkpoint>,
    /// A record known to exist, e.g. a checkpoint shipped off the host. The files must contain
    /// it with this hash: this detects records cut from the end.
    pub head: Option<Checkpoint>,
}

/// What is wrong at a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakKind {
    /// The record's content, hash or encoding was changed, or its link to the previous record
    /// was rewritten.
    Edited,
    /// Records that belong here are missing (deleted lines, a missing file, a cut end).
    Removed,
    /// The record belongs elsewhere in the chain; the expected one appears later.
    Reordered,
    /// The record is not part of the chain (a duplicate or a forgery).
    Inserted,
    /// The line stops in the middle of a record: a crash mid-write, or the file was truncated.
    Truncated,
    /// The line is not a record at all.
    Malformed,
    /// A signed checkpoint does not verify with the given key (a forged or rewritten chain, or
    /// a checkpoint by another key), or does not cover the record before it.
    BadCheckpoint,
}

/// One problem found by the verifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainBreak {
    /// The file.
    pub path: PathBuf,
    /// 1-based line number in that file.
    pub line: u64,
    /// The `seq` the line claims, if it could be read.
    pub seq: Option<u64>,
    /// The diagnosis.
    pub kind: BreakKind,
    /// A sentence for a human.
    pub detail: String,
}

/// What the verifier found in one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileReport {
    /// The file.
    pub path: PathBuf,
    /// Lines read (all of them unless the check stopped in this file).
    pub lines: u64,
    /// Records that verified.
    pub records: u64,
    /// The first verified record's `seq`.
    pub first_seq: Option<u64>,
    /// The last verified record's `seq`.
    pub last_seq: Option<u64>,
    /// The last verified record's hash: the anchor the next file continues from.
    pub head: Option<RecordHash>,
}

/// The verifier's findings, serializable for `--format json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// No problem at all: every line is a record and the chain is unbroken to the end.
    pub intact: bool,
    /// Every file was read to its end (no chain break stopped the check).
    pub complete: bool,
    /// Records that verified, over all files.
    pub records: u64,
    /// The first verified record's `seq`.
    pub first_seq: Option<u64>,
    /// The last verified record's `seq`.
    pub last_seq: Option<u64>,
    /// The first verified record's `prev`: all zeros at genesis, or the hash this chain
    /// continues from.
    pub anchor: Option<RecordHash>,
    /// The chain starts at genesis (`seq` 0, zero `prev`) rather than continuing a rotated or
    /// given start.
    pub from_genesis: bool,
    /// The last verified record's hash: the checkpoint to keep for next time.
    pub head: Option<RecordHash>,
    /// The earliest problem, if any (also the first entry of `problems`).
    pub first_break: Option<ChainBreak>,
    /// Every problem in file order: skipped lines, then at most one chain break, which is last
    /// and ended the check.
    pub problems: Vec<ChainBreak>,
    /// Problems found beyond the first 1000, counted but not listed.
    pub problems_not_listed: u64,
    /// Per file, in the order given.
    pub files: Vec<FileReport>,
    /// Checkpoint records in the verified chain.
    #[serde(default)]
    pub checkpoints: u64,
    /// Checkpoints whose signature was checked and is good (0 when no key was given).
    #[serde(default)]
    pub checkpoints_verified: u64,
    /// The id of the key checkpoints were checked with; `None` when no key was given, in which
    /// case checkpoints were counted but their signatures not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_key: Option<String>,
    /// The `seq` of the last record a verified checkpoint covers: the chain is proven up to
    /// there even against someone who rewrites the whole file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_through: Option<u64>,
    /// Verified records after the last verified checkpoint (all of them without one).
    #[serde(default)]
    pub unsealed_records: u64,
}

/// Verifies a log file or a rotated sequence of files, oldest first. See the module docs.
///
/// Errors are for files that cannot be read; damage is reported in the [`VerifyReport`].
pub fn verify<P: AsRef<Path>>(paths: &[P]) -> Result<VerifyReport, AuditError> {
    verify_with(paths, &VerifyOptions::default())
}

/// [`verify`] with a known start and/or head.
pub fn verify_with<P: AsRef<Path>>(
    paths: &[P],
    options: &VerifyOptions,
) -> Result<VerifyReport, AuditError> {
    verify_signed(paths, options, None)
}

/// [`verify_with`], also checking every [`crate::Event::Checkpoint`]'s signature with `key`.
/// A checkpoint by another key, or whose signature fails, is a [`BreakKind::BadCheckpoint`].
/// Without a key, checkpoints are counted but not checked.
pub fn verify_signed<P: AsRef<Path>>(
    paths: &[P],
    options: &VerifyOptions,
    key: Option<&dyn CheckpointVerifier>,
) -> Result<VerifyReport, AuditError> {
    let mut verifier = Verifier::new(options);
    verifier.key = key;
    for path in paths {
        if !verifier.verify_file(path.as_ref())? {
            return Ok(verifier.finish(false));
        }
    }
    verifier.check_head();
    Ok(verifier.finish(true))
}

/// A record the chain accepted.
#[derive(Debug, Clone)]
struct Accepted {
    seq: u64,
    hash: RecordHash,
    prev: RecordHash,
    path: PathBuf,
    line: u64,
}

/// A parsed record and its line number.
type NumberedRecord = (u64, ParsedLine);

#[derive(Debug)]
struct Verifier<'a> {
    options: &'a VerifyOptions,
    key: Option<&'a dyn CheckpointVerifier>,
    checkpoints: u64,
    checkpoints_verified: u64,
    /// The covered seq and the record count at the last verified checkpoint.
    sealed: Option<(u64, u64)>,
    /// The next record's `seq` and `prev`; `None` before the first record without a start.
    /// A `seq` of `None` means the previous record used the last possible number.
    expected: Option<(Option<u64>, RecordHash)>,
    recent: VecDeque<Accepted>,
    records: u64,
    first: Option<(u64, RecordHash)>,
    problems: Vec<ChainBreak>,
    problems_not_listed: u64,
    files: Vec<FileReport>,
}

impl<'a> Verifier<'a> {
    fn new(options: &'a VerifyOptions) -> Verifier<'a> {
        Verifier {
            options,
            key: None,
            checkpoints: 0,
            checkpoints_verified: 0,
            sealed: None,
            expected: options
                .start
                .map(|start| (start.seq.checked_add(1), start.hash)),
            recent: VecDeque::new(),
            records: 0,
            first: None,
            problems: Vec::new(),
            problems_not_listed: 0,
            files: Vec::new(),
        }
    }

    /// Checks one file; returns false if a chain break ended the check.
    fn verify_file(&mut self, path: &Path) -> Result<bool, AuditError> {
        let file = File::open(path).map_err(|source| AuditError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let mut reader = LineReader::new(BufReader::with_capacity(64 * 1024, file));
        self.files.push(FileReport {
            path: path.to_path_buf(),
            lines: 0,
            records: 0,
            first_seq: None,
            last_seq: None,
            head: None,
        });
        let read_error = |source| AuditError::Read {
            path: path.to_path_buf(),
            source,
        };
        while let Some(line) = reader.next_line().map_err(read_error)? {
            self.current_file().lines = line.number;
            if line.too_long {
                self.skip(
                    path,
                    line.number,
                    BreakKind::Malformed,
                    format!("line is longer than {MAX_LINE_BYTES} bytes, longer than any record"),
                );
                continue;
            }
            let record = match parse_line(&line.bytes) {
                Ok(record) => record,
                Err(LineFault::Torn) => {
                    let detail = if line.terminated {
                        "the record stops part-way (a write cut short); later records continue the chain"
                    } else {
                        "the file ends part-way through a record: it was truncated or a write was cut short"
                    };
                    self.skip(path, line.number, BreakKind::Truncated, detail.to_owned());
                    continue;
                }
                Err(LineFault::Malformed(reason)) => {
                    self.skip(path, line.number, BreakKind::Malformed, reason);
                    continue;
                }
            };
            if let Some(chain_break) = self
                .check(path, line.number, &record, &mut reader)
                .map_err(read_error)?
            {
                self.push_problem(chain_break);
                return Ok(false);
            }
            if record.kind == "checkpoint" {
                if let Some(chain_break) = self.check_checkpoint(path, line.number, &record) {
                    self.push_problem(chain_break);
                    return Ok(false);
                }
            }
            self.accept(path, line.number, &record);
        }
        Ok(true)
    }

    /// Returns the chain break `record` causes, if any.
    fn check(
        &self,
        path: &Path,
        line: u64,
        record: &ParsedLine,
        reader: &mut LineReader<BufReader<File>>,
    ) -> std::io::Result<Option<ChainBreak>> {
        let at = |line: u64, kind: BreakKind, detail: String| ChainBreak {
            path: path.to_path_buf(),
            line,
            seq: Some(record.seq),
            kind,
            detail,
        };
        let sound = record.hash_matches && record.canonical;
        let damage = if !record.hash_matches {
            "the hash does not match the record's content: the record was edited"
        } else {
            "the line is not the canonical encoding of its values: the record was re-encoded or edited"
        };

        let (expected_seq, expected_prev) = match self.expected {
            Some((Some(seq), prev)) => (seq, prev),
            Some((None, _)) => {
                return Ok(Some(at(
                    line,
                    BreakKind::Inserted,
                    "a record follows the one with the last possible seq".to_owned(),
                )))
            }
            None => {
                // The first record, with no start given: genesis, or a rotated file's start.
                if sound && record.kind == "log_rotated" {
                    return Ok(self.check_head_hash(path, line, record));
                }
                (0, RecordHash::GENESIS)
            }
        };
        if sound && record.seq == expected_seq && record.prev == expected_prev {
            return Ok(self.check_head_hash(path, line, record));
        }
        let previous = self.recent.back();
        let previous_line = match (previous, self.expected) {
            (Some(previous), _) => location(path, previous),
            (None, Some(_)) => "the start checkpoint".to_owned(),
            (None, None) => "genesis".to_owned(),
        };
        // A line the next record skips over, chaining from the record before it, was inserted.
        let continues_past = |next: &Option<NumberedRecord>| {
            next.as_ref().is_some_and(|(_, next)| {
                next.seq == expected_seq && next.prev == expected_prev && next.hash_matches
            })
        };

        if !sound || record.seq == expected_seq {
            let next = next_record(reader)?;
            if continues_past(&next) {
                return Ok(Some(at(
                    line,
                    BreakKind::Inserted,
                    format!("this line is not part of the chain: the next record continues from {previous_line}"),
                )));
            }
            let detail = if sound {
                format!(
                    "prev does not match the hash of the previous record ({previous_line}): that record or this one was rewritten"
                )
            } else {
                damage.to_owned()
            };
            return Ok(Some(at(line, BreakKind::Edited, detail)));
        }

        if record.seq > expected_seq {
            // Its twin later on means this line is a copy; the expected record later on means
            // the records are out of order; neither means records are missing.
            let mut expected_at = None;
            while let Some((later_line, later)) = next_record(reader)? {
                if later.hash == record.hash && later.seq == record.seq {
                    return Ok(Some(at(
                        line,
                        BreakKind::Inserted,
                        format!("a copy of the record at line {later_line}, placed ahead of it"),
                    )));
                }
                if later.seq == expected_seq && expected_at.is_none() {
                    expected_at = Some(later_line);
                }
            }
            if let Some(later_line) = expected_at {
                return Ok(Some(at(
                    line,
                    BreakKind::Reordered,
                    format!(
                        "seq {} where {expected_seq} was expected; seq {expected_seq} comes later, at line {later_line}",
                        record.seq
                    ),
                )));
            }
            if self.expected.is_none() {
                return Ok(Some(at(
                    line,
                    BreakKind::Removed,
                    format!(
                        "the chain starts at seq {} neither at genesis nor with a log_rotated record: earlier records are missing",
                        record.seq
                    ),
                )));
            }
            let missing = if record.seq - expected_seq == 1 {
                format!("record {expected_seq} is missing")
            } else {
                format!("records {expected_seq} to {} are missing", record.seq - 1)
            };
            let first_in_file = self.files.last().is_some_and(|file| file.records == 0);
            let hint = if first_in_file && self.files.len() > 1 {
                " (a file of the rotated sequence may be missing)"
            } else {
                ""
            };
            return Ok(Some(at(
                line,
                BreakKind::Removed,
                format!("{missing}{hint}"),
            )));
        }

        // record.seq < expected_seq: that number is taken already.
        let earlier = self
            .recent
            .iter()
            .rev()
            .find(|accepted| accepted.seq == record.seq);
        if let Some(earlier) = earlier {
            if earlier.hash == record.hash {
                return Ok(Some(at(
                    line,
                    BreakKind::Inserted,
                    format!("a copy of the record at {}", location(path, earlier)),
                )));
            }
            if earlier.seq + 1 == expected_seq && earlier.prev == record.prev {
                // Two records claim the same place; the one the next record chains from belongs.
                let next = next_record(reader)?;
                if next
                    .as_ref()
                    .is_some_and(|(_, next)| next.prev == record.hash)
                {
                    return Ok(Some(ChainBreak {
                        path: earlier.path.clone(),
                        line: earlier.line,
                        seq: Some(earlier.seq),
                        kind: BreakKind::Inserted,
                        detail: format!(
                            "this record is not part of the chain: line {line} of {} claims the same seq and the chain continues from it",
                            path.display()
                        ),
                    }));
                }
            }
        }
        if self
            .first
            .is_some_and(|(first_seq, _)| record.seq < first_seq)
        {
            return Ok(Some(at(
                line,
                BreakKind::Reordered,
                format!(
                    "seq {} precedes the start of this chain: records or files are out of order",
                    record.seq
                ),
            )));
        }
        Ok(Some(at(
            line,
            BreakKind::Inserted,
            format!(
                "seq {} was already used before {previous_line}, which has seq {}",
                record.seq,
                expected_seq - 1
            ),
        )))
    }

    /// Checks a checkpoint record that chains correctly: it covers the record before it and,
    /// given a key, carries that key's good signature.
    fn check_checkpoint(
        &mut self,
        path: &Path,
        line: u64,
        record: &ParsedLine,
    ) -> Option<ChainBreak> {
        let fail = |detail: String| {
            Some(ChainBreak {
                path: path.to_path_buf(),
                line,
                seq: Some(record.seq),
                kind: BreakKind::BadCheckpoint,
                detail,
            })
        };
        let field = |name: &str| record.event.get(name).and_then(serde_json::Value::as_str);
        let (Some(covers), Some(key_id), Some(algorithm), Some(signature)) = (
            record
                .event
                .get("covers_seq")
                .and_then(serde_json::Value::as_u64),
            field("key_id"),
            field("algorithm"),
            field("signature"),
        ) else {
            return fail(
                "the checkpoint lacks covers_seq, key_id, algorithm or signature".to_owned(),
            );
        };
        if record.seq.checked_sub(1) != Some(covers) {
            return fail(format!(
                "the checkpoint claims to cover seq {covers} but follows seq {}",
                record.seq.saturating_sub(1)
            ));
        }
        self.checkpoints += 1;
        let key = self.key?;
        if key_id != key.key_id() || algorithm != key.algorithm() {
            return fail(format!(
                "the checkpoint is signed by key {key_id} ({algorithm}), not by the given key {} ({})",
                key.key_id(),
                key.algorithm()
            ));
        }
        let good = hex::decode(signature).is_ok_and(|signature| {
            key.verify(&checkpoint_message(covers, &record.prev), &signature)
        });
        if !good {
            return fail(format!(
                "the checkpoint's signature over seq {covers} does not verify: the chain up to here was rewritten, or the checkpoint forged"
            ));
        }
        self.checkpoints_verified += 1;
        // The checkpoint itself, accepted next, counts as sealed: it is what holds the seal.
        self.sealed = Some((covers, self.records + 1));
        None
    }

    /// A break if `record` is the checkpointed head but has another hash.
    fn check_head_hash(&self, path: &Path, line: u64, record: &ParsedLine) -> Option<ChainBreak> {
        let head = self.options.head?;
        (head.seq == record.seq && head.hash != record.hash).then(|| ChainBreak {
            path: path.to_path_buf(),
            line,
            seq: Some(record.seq),
            kind: BreakKind::Edited,
            detail: format!(
                "the record's hash differs from the checkpoint's ({}): the chain was rewritten",
                head.hash
            ),
        })
    }

    fn accept(&mut self, path: &Path, line: u64, record: &ParsedLine) {
        if self.first.is_none() {
            self.first = Some((record.seq, record.prev));
        }
        self.records += 1;
        self.expected = Some((record.seq.checked_add(1), record.hash));
        if self.recent.len() == RECENT_RECORDS {
            self.recent.pop_front();
        }
        self.recent.push_back(Accepted {
            seq: record.seq,
            hash: record.hash,
            prev: record.prev,
            path: path.to_path_buf(),
            line,
        });
        let file = self.current_file();
        file.records += 1;
        file.first_seq.get_or_insert(record.seq);
        file.last_seq = Some(record.seq);
        file.head = Some(record.hash);
    }

    /// After the last file: the checkpointed head must have been reached.
    fn check_head(&mut self) {
        let Some(head) = self.options.head else {
            return;
        };
        let last_seq = self.recent.back().map(|accepted| accepted.seq);
        if last_seq.is_some_and(|last| last >= head.seq) {
            return;
        }
        let (path, line) = self.files.last().map_or((PathBuf::new(), 1), |file| {
            (file.path.clone(), file.lines + 1)
        });
        let from = last_seq.map_or(0, |last| last + 1);
        self.push_problem(ChainBreak {
            path,
            line,
            seq: None,
            kind: BreakKind::Removed,
            detail: format!(
                "the log ends before the checkpoint's seq {}: records {from} to {} were cut from the end",
                head.seq, head.seq
            ),
        });
    }

    fn skip(&mut self, path: &Path, line: u64, kind: BreakKind, detail: String) {
        self.push_problem(ChainBreak {
            path: path.to_path_buf(),
            line,
            seq: None,
            kind,
            detail,
        });
    }

    fn push_problem(&mut self, problem: ChainBreak) {
        if self.problems.len() < MAX_LISTED_PROBLEMS {
            self.problems.push(problem);
        } else {
            self.problems_not_listed += 1;
        }
    }

    fn current_file(&mut self) -> &mut FileReport {
        let index = self.files.len() - 1;
        &mut self.files[index]
    }

    fn finish(self, reached_end: bool) -> VerifyReport {
        let first_break = self.problems.first().cloned();
        let last = self.recent.back();
        VerifyReport {
            intact: first_break.is_none() && self.problems_not_listed == 0,
            complete: reached_end,
            records: self.records,
            first_seq: self.first.map(|(seq, _)| seq),
            last_seq: last.map(|accepted| accepted.seq),
            anchor: self.first.map(|(_, prev)| prev),
            from_genesis: self.first == Some((0, RecordHash::GENESIS)),
            head: last.map(|accepted| accepted.hash),
            first_break,
            problems: self.problems,
            problems_not_listed: self.problems_not_listed,
            files: self.files,
            checkpoints: self.checkpoints,
            checkpoints_verified: self.checkpoints_verified,
            checkpoint_key: self.key.map(|key| key.key_id().to_owned()),
            sealed_through: self.sealed.map(|(seq, _)| seq),
            unsealed_records: self.records - self.sealed.map_or(0, |(_, records)| records),
        }
    }
}

/// `line N` within the file being checked, `path:N` in another.
fn location(current: &Path, accepted: &Accepted) -> String {
    if accepted.path == current {
        format!("line {}", accepted.line)
    } else {
        format!("{}:{}", accepted.path.display(), accepted.line)
    }
}

/// The next line of `reader` that is a record, skipping anything else.
fn next_record(
    reader: &mut LineReader<BufReader<File>>,
) -> std::io::Result<Option<NumberedRecord>> {
    while let Some(line) = reader.next_line()? {
        if line.too_long {
            continue;
        }
        if let Ok(record) = parse_line(&line.bytes) {
            return Ok(Some((line.number, record)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Actor, Event};
    use crate::log::AuditLog;
    use std::fs;

    fn write_log(path: &Path, count: usize) -> Vec<crate::Record> {
        let mut log = AuditLog::open(path).unwrap();
        (0..count)
            .map(|index| {
                log.append(Event::ContainerStarted {
                    actor: Actor::user("root"),
                    container_id: format!("c{index}"),
                    pid: Some(index as u32),
                })
                .unwrap()
            })
            .collect()
    }

    fn lines(path: &Path) -> Vec<String> {
        fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn rewrite(path: &Path, lines: &[String]) {
        fs::write(path, lines.join("\n") + "\n").unwrap();
    }

    #[test]
    fn an_untouched_log_is_intact() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("a.log");
        let records = write_log(&path, 5);
        let report = verify(&[&path]).unwrap();
        assert!(report.intact && report.complete, "{report:#?}");
        assert_eq!(report.records, 5);
        assert_eq!((report.first_seq, report.last_seq), (Some(0), Some(4)));
        assert_eq!(report.anchor, Some(RecordHash::GENESIS));
        assert!(report.from_genesis);
        assert_eq!(report.head, Some(records[4].hash));
        assert_eq!(report.files[0].lines, 5);
    }

    #[test]
    fn an_empty_log_is_intact_but_has_no_head() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("empty.log");
        fs::write(&path, b"").unwrap();
        let report = verify(&[&path]).unwrap();
        assert!(report.intact);
        assert_eq!(
            (report.records, report.head, report.from_genesis),
            (0, None, false)
        );
    }

    #[test]
    fn a_missing_file_is_an_error_not_a_report() {
        let root = tempfile::tempdir().unwrap();
        let error = verify(&[root.path().join("nope.log")]).unwrap_err();
        assert!(matches!(error, AuditError::Open { .. }), "{error}");
    }

    #[test]
    fn a_forged_record_that_chains_correctly_is_found_by_its_twin() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("forged.log");
        write_log(&path, 4);
        // Forge a record for seq 2 that chains from seq 1 and hashes correctly, and insert it
        // before the real seq 2.
        let forger = root.path().join("forger.log");
        let mut text = lines(&path);
        fs::write(&forger, format!("{}\n{}\n", text[0], text[1])).unwrap();
        let forged = AuditLog::open(&forger)
            .unwrap()
            .append(Event::ContainerDeleted {
                actor: Actor::user("mallory"),
                container_id: "c1".into(),
                force: true,
            })
            .unwrap();
        assert_eq!(forged.seq, 2);
        text.insert(2, lines(&forger)[2].clone());
        rewrite(&path, &text);
        let report = verify(&[&path]).unwrap();
        let chain_break = report.first_break.unwrap();
        assert_eq!(
            (chain_break.line, chain_break.kind),
            (3, BreakKind::Inserted),
            "{chain_break:?}"
        );
    }

    #[test]
    fn a_checkpoint_pins_the_end_and_the_start() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("cut.log");
        let records = write_log(&path, 4);
        let mut text = lines(&path);
        text.pop();
        rewrite(&path, &text);
        assert!(
            verify(&[&path]).unwrap().intact,
            "a cut at a line boundary is invisible alone"
        );

        let head = Some(records[3].checkpoint());
        let report = verify_with(&[&path], &VerifyOptions { start: None, head }).unwrap();
        let chain_break = report.first_break.unwrap();
        assert_eq!(
            (chain_break.line, chain_break.kind),
            (4, BreakKind::Removed)
        );

        // Starting from a checkpoint: the first line may be left out.
        text.remove(0);
        rewrite(&path, &text);
        let start = Some(records[0].checkpoint());
        let report = verify_with(&[&path], &VerifyOptions { start, head: None }).unwrap();
        assert!(report.intact, "{report:#?}");
        assert_eq!(report.anchor, Some(records[0].hash));
        assert!(!report.from_genesis);
        let report = verify(&[&path]).unwrap();
        let chain_break = report.first_break.unwrap();
        assert_eq!(
            (chain_break.line, chain_break.kind),
            (1, BreakKind::Removed)
        );
    }

    #[test]
    fn a_rewritten_head_contradicts_its_checkpoint() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("rewritten.log");
        let records = write_log(&path, 2);
        fs::remove_file(&path).unwrap();
        write_log(&path, 3);
        let head = Some(records[1].checkpoint());
        let report = verify_with(&[&path], &VerifyOptions { start: None, head }).unwrap();
        let chain_break = report.first_break.unwrap();
        assert_eq!((chain_break.line, chain_break.kind), (2, BreakKind::Edited));
    }

    #[test]
    fn garbage_lines_are_reported_and_skipped() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("garbage.log");
        write_log(&path, 3);
        let mut text = lines(&path);
        text.insert(1, "hello".into());
        text.insert(3, "x".repeat(MAX_LINE_BYTES + 1));
        rewrite(&path, &text);
        let report = verify(&[&path]).unwrap();
        assert!(!report.intact && report.complete);
        assert_eq!(report.records, 3);
        let found: Vec<_> = report.problems.iter().map(|p| (p.line, p.kind)).collect();
        assert_eq!(
            found,
            vec![(2, BreakKind::Malformed), (4, BreakKind::Malformed)]
        );
    }

    #[test]
    fn the_report_serializes_for_the_cli() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("a.log");
        write_log(&path, 2);
        let report = verify(&[&path]).unwrap();
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["intact"], true);
        assert_eq!(json["records"], 2);
        assert_eq!(json["first_break"], serde_json::Value::Null);
        assert_eq!(
            serde_json::from_value::<VerifyReport>(json).unwrap(),
            report
        );
    }
}
