//! Streaming, length-bounded line reading shared by the verifier and the record reader.

use std::io::{self, BufRead};

use crate::record::MAX_LINE_BYTES;

/// One line of a log file.
#[derive(Debug)]
pub(crate) struct Line {
    /// 1-based line number.
    pub(crate) number: u64,
    /// The line without its newline; empty when `too_long`.
    pub(crate) bytes: Vec<u8>,
    /// Whether a newline ended it (false only for the file's last line).
    pub(crate) terminated: bool,
    /// The line was longer than [`MAX_LINE_BYTES`] and was skipped, not stored.
    pub(crate) too_long: bool,
}

/// Reads lines of at most [`MAX_LINE_BYTES`] without ever buffering more than that.
#[derive(Debug)]
pub(crate) struct LineReader<R> {
    inner: R,
    number: u64,
}

impl<R: BufRead> LineReader<R> {
    pub(crate) fn new(inner: R) -> LineReader<R> {
        LineReader { inner, number: 0 }
    }

    /// The next line, or `None` at the end of the input.
    pub(crate) fn next_line(&mut self) -> io::Result<Option<Line>> {
        let mut bytes = Vec::new();
        let mut too_long = false;
        let mut seen_any = false;
        loop {
            let available = match self.inner.fill_buf() {
                Ok(available) => available,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            };
            if available.is_empty() {
                if !seen_any {
                    return Ok(None);
                }
                self.number += 1;
                return Ok(Some(Line {
                    number: self.number,
                    bytes,
                    terminated: false,
                    too_long,
                }));
            }
            seen_any = true;
            let (chunk, found_newline) = match available.iter().position(|&b| b == b'\n') {
                Some(end) => (&available[..end], true),
                None => (available, false),
            };
            if !too_long {
                if bytes.len() + chunk.len() < MAX_LINE_BYTES {
                    bytes.extend_from_slice(chunk);
                } else {
                    too_long = true;
                    bytes = Vec::new();
                }
            }
            let consumed = chunk.len() + usize::from(found_newline);
            self.inner.consume(consumed);
            if found_newline {
                self.number += 1;
                return Ok(Some(Line {
                    number: self.number,
                    bytes,
                    terminated: true,
                    too_long,
                }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    fn read_all(input: &[u8], capacity: usize) -> Vec<(u64, Vec<u8>, bool, bool)> {
        let mut reader = LineReader::new(BufReader::with_capacity(capacity, input));
        let mut lines = Vec::new();
        while let Some(line) = reader.next_line().unwrap() {
            lines.push((line.number, line.bytes, line.terminated, line.too_long));
        }
        lines
    }

    #[test]
    fn splits_lines_across_buffer_boundaries() {
        for capacity in [1, 2, 3, 64] {
            assert_eq!(
                read_all(b"ab\n\ncde\nf", capacity),
                vec![
                    (1, b"ab".to_vec(), true, false),
                    (2, b"".to_vec(), true, false),
                    (3, b"cde".to_vec(), true, false),
                    (4, b"f".to_vec(), false, false),
                ]
            );
        }
        assert!(read_all(b"", 8).is_empty());
        assert_eq!(read_all(b"x\n", 8), vec![(1, b"x".to_vec(), true, false)]);
    }

    #[test]
    fn skips_overlong_lines_without_storing_them() {
        let mut input = vec![b'a'; MAX_LINE_BYTES + 10];
        input.extend_from_slice(b"\nok\n");
        assert_eq!(
            read_all(&input, 8192),
            vec![
                (1, Vec::new(), true, true),
                (2, b"ok".to_vec(), true, false)
            ]
        );
    }
}
