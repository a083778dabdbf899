//! Finds a log's last record by reading backwards from the end of the file.
//!
//! Appending needs only the last record's `seq` and `hash`, so this reads a few kilobytes from
//! the end, whatever the file's size. Lines that are not records (a write torn by a crash, or
//! garbage) are stepped over: the next record chains from the last real one, and the verifier
//! reports the skipped line.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::record::{parse_line, Checkpoint, MAX_LINE_BYTES};

const CHUNK_BYTES: u64 = 8 * 1024;

/// What an appender needs to know about the end of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tail {
    /// The last line that parses as a record, if any.
    pub(crate) last: Option<Checkpoint>,
    /// The file is non-empty and its last byte is not a newline (a torn final line): the next
    /// record must start with one.
    pub(crate) needs_newline: bool,
}

/// Reads the tail of `file`. Callers hold a lock that keeps writers out.
pub(crate) fn read_tail(file: &File) -> io::Result<Tail> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(Tail {
            last: None,
            needs_newline: false,
        });
    }
    let mut last_byte = [0u8; 1];
    file.read_exact_at(&mut last_byte, len - 1)?;
    let needs_newline = last_byte[0] != b'\n';

    // A final fragment without a newline is a candidate too: a record whose newline alone was
    // lost is still a complete record.
    let mut line_end = if needs_newline { len } else { len - 1 };
    let mut cursor = line_end;
    let mut chunk = vec![0u8; CHUNK_BYTES as usize];
    loop {
        let newline = loop {
            if cursor == 0 {
                break None;
            }
            let start = cursor.saturating_sub(CHUNK_BYTES);
            let window = &mut chunk[..(cursor - start) as usize];
            file.read_exact_at(window, start)?;
            if let Some(index) = window.iter().rposition(|&b| b == b'\n') {
                break Some(start + index as u64);
            }
            cursor = start;
        };
        let line_start = newline.map_or(0, |index| index + 1);
        let line_len = line_end - line_start;
        if line_len > 0 && line_len < MAX_LINE_BYTES as u64 {
            let mut line = vec![0u8; line_len as usize];
            file.read_exact_at(&mut line, line_start)?;
            if let Ok(parsed) = parse_line(&line) {
                return Ok(Tail {
                    last: Some(Checkpoint {
                        seq: parsed.seq,
                        hash: parsed.hash,
                    }),
                    needs_newline,
                });
            }
        }
        match newline {
            Some(index) => {
                line_end = index;
                cursor = index;
            }
            None => {
                return Ok(Tail {
                    last: None,
                    needs_newline,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Actor, Event};
    use crate::record::{canonical_event, encode, RecordHash};
    use crate::timestamp::Timestamp;
    use std::io::Write;

    fn line(seq: u64, padding: usize) -> (Vec<u8>, RecordHash) {
        let event = Event::Other {
            actor: Actor::default(),
            name: "x".repeat(padding.max(1)),
            fields: serde_json::Map::new(),
        };
        let encoded = encode(
            seq,
            Timestamp::now(),
            RecordHash::GENESIS,
            &canonical_event(&event).unwrap(),
        );
        (encoded.line, encoded.hash)
    }

    fn tail_of(content: &[u8]) -> Tail {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(content).unwrap();
        read_tail(&file).unwrap()
    }

    #[test]
    fn empty_file_has_no_last_record() {
        assert_eq!(
            tail_of(b""),
            Tail {
                last: None,
                needs_newline: false
            }
        );
    }

    #[test]
    fn finds_the_last_record_even_across_chunk_boundaries() {
        for padding in [1, 5000, 9000, 20_000] {
            let mut content = Vec::new();
            let mut expected = None;
            for seq in 0..3 {
                let (bytes, hash) = line(seq, padding);
                content.extend_from_slice(&bytes);
                expected = Some(Checkpoint { seq, hash });
            }
            assert_eq!(
                tail_of(&content),
                Tail {
                    last: expected,
                    needs_newline: false
                },
                "padding {padding}"
            );
        }
    }

    #[test]
    fn steps_over_torn_and_garbage_lines() {
        let (first, first_hash) = line(0, 10);
        let (second, _) = line(1, 10);
        let mut content = first.clone();
        content.extend_from_slice(b"not a record\n\n");
        content.extend_from_slice(&second[..second.len() / 2]);
        assert_eq!(
            tail_of(&content),
            Tail {
                last: Some(Checkpoint {
                    seq: 0,
                    hash: first_hash
                }),
                needs_newline: true
            }
        );
        assert_eq!(
            tail_of(b"garbage"),
            Tail {
                last: None,
                needs_newline: true
            }
        );
    }

    #[test]
    fn a_record_missing_only_its_newline_still_counts() {
        let (first, hash) = line(7, 10);
        let tail = tail_of(&first[..first.len() - 1]);
        assert_eq!(tail.last, Some(Checkpoint { seq: 7, hash }));
        assert!(tail.needs_newline);
    }
}
