//! `ctr.log`: a container's stdout and stderr as JSON lines, Docker's json-file shape:
//!
//! ```text
//! {"log":"hello\n","stream":"stdout","time":"2024-05-01T12:00:00.123456789Z"}
//! ```
//!
//! Output is split at newlines; a piece without one (the end of a read, or a prompt) is its
//! own entry and readers concatenate, so the bytes come back as they were written (invalid
//! UTF-8 is replaced). When the file would pass its size limit it is renamed to `ctr.log.1`
//! (replacing the previous one) and a new file is started.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Default size at which the log is rotated.
pub const DEFAULT_MAX_SIZE: u64 = 10 << 20;
/// Longest line a reader accepts (a writer never produces longer ones).
const MAX_LINE: u64 = 1 << 20;
/// Largest piece of output per entry.
const MAX_PIECE: usize = 16 << 10;

/// Failure to write or read a container log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A file operation failed.
    #[error("failed to {operation} container log {path:?}")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// Which of the container's outputs a piece came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// The output, with its newline if it had one.
    pub log: String,
    /// Where it came from.
    pub stream: Stream,
    /// When it was read, RFC 3339.
    pub time: String,
}

/// The rotated file beside `path`.
pub fn rotated_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// Appends entries to a container log, rotating it by size.
#[derive(Debug)]
pub struct LogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: u64,
}

fn open_append(path: &Path) -> Result<File, LogError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| LogError::Io {
            operation: "open",
            path: path.to_owned(),
            source,
        })
}

impl LogWriter {
    /// Opens (creating) the log at `path`, rotating at `max_size` bytes.
    pub fn open(path: &Path, max_size: u64) -> Result<Self, LogError> {
        let file = open_append(path)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Self {
            path: path.to_owned(),
            file,
            size,
            max_size: max_size.max(1024),
        })
    }

    /// Writes `bytes` from `stream`, one entry per line.
    pub fn write(&mut self, stream: Stream, bytes: &[u8]) -> Result<(), LogError> {
        let time = palisade_runtime::time::rfc3339(std::time::SystemTime::now());
        for line in bytes.split_inclusive(|b| *b == b'\n') {
            for piece in line.chunks(MAX_PIECE) {
                let entry = LogEntry {
                    log: String::from_utf8_lossy(piece).into_owned(),
                    stream,
                    time: time.clone(),
                };
                let mut text = serde_json::to_vec(&entry).map_err(|e| LogError::Io {
                    operation: "encode an entry for",
                    path: self.path.clone(),
                    source: io::Error::other(e),
                })?;
                text.push(b'\n');
                self.rotate_if_needed(text.len() as u64)?;
                self.file.write_all(&text).map_err(|source| LogError::Io {
                    operation: "write",
                    path: self.path.clone(),
                    source,
                })?;
                self.size += text.len() as u64;
            }
        }
        Ok(())
    }

    fn rotate_if_needed(&mut self, next: u64) -> Result<(), LogError> {
        if self.size == 0 || self.size + next <= self.max_size {
            return Ok(());
        }
        let rotated = rotated_path(&self.path);
        fs::rename(&self.path, &rotated).map_err(|source| LogError::Io {
            operation: "rotate",
            path: self.path.clone(),
            source,
        })?;
        self.file = open_append(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// Reads complete entries from `reader`; a final line without a newline is left for later
/// (the writer may be in the middle of it) and its length is not counted.
fn read_entries(reader: &mut impl BufRead, out: &mut Vec<LogEntry>) -> io::Result<u64> {
    let mut consumed = 0;
    loop {
        let mut line = Vec::new();
        let n = reader
            .by_ref()
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)?;
        if n == 0 || line.last() != Some(&b'\n') {
            return Ok(consumed);
        }
        consumed += n as u64;
        match serde_json::from_slice::<LogEntry>(&line) {
            Ok(entry) => out.push(entry),
            Err(e) => tracing::debug!(error = %e, "skipping a damaged log line"),
        }
    }
}

/// Every entry in the log at `path` (its rotated part first).
pub fn read_all(path: &Path) -> Result<Vec<LogEntry>, LogError> {
    let mut entries = Vec::new();
    for file in [rotated_path(path), path.to_owned()] {
        match File::open(&file) {
            Ok(f) => {
                read_entries(&mut BufReader::new(f), &mut entries).map_err(|source| {
                    LogError::Io {
                        operation: "read",
                        path: file.clone(),
                        source,
                    }
                })?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(LogError::Io {
                    operation: "open",
                    path: file,
                    source,
                })
            }
        }
    }
    Ok(entries)
}

/// Prints entries: stdout entries to `out`, stderr entries to `err`.
pub fn print(entries: &[LogEntry], out: &mut dyn Write, err: &mut dyn Write) -> io::Result<()> {
    for entry in entries {
        match entry.stream {
            Stream::Stdout => out.write_all(entry.log.as_bytes())?,
            Stream::Stderr => err.write_all(entry.log.as_bytes())?,
        }
    }
    out.flush()?;
    err.flush()
}

/// Prints the whole log, then new entries as they are written, until `finished()` says the
/// container is gone and nothing more is in the file. Follows rotations.
pub fn follow(
    path: &Path,
    out: &mut dyn Write,
    err: &mut dyn Write,
    mut finished: impl FnMut() -> bool,
) -> Result<(), LogError> {
    let io_error = |operation, path: &Path| {
        let path = path.to_owned();
        move |source| LogError::Io {
            operation,
            path,
            source,
        }
    };
    let print_error = |source| LogError::Io {
        operation: "print",
        path: path.to_owned(),
        source,
    };
    // What was written before we started, then the live file from its current end.
    let mut entries = Vec::new();
    if let Ok(f) = File::open(rotated_path(path)) {
        read_entries(&mut BufReader::new(f), &mut entries)
            .map_err(io_error("read", &rotated_path(path)))?;
    }
    print(&entries, out, err).map_err(print_error)?;
    let mut current: Option<(File, u64, u64)> = None; // (file, inode, offset)
    loop {
        let done = finished();
        if current.is_none() {
            if let Ok(f) = File::open(path) {
                let inode = f.metadata().map(|m| m.ino()).unwrap_or(0);
                current = Some((f, inode, 0));
            }
        }
        let mut progressed = false;
        if let Some((file, inode, offset)) = current.as_mut() {
            file.seek(SeekFrom::Start(*offset))
                .map_err(io_error("read", path))?;
            let mut entries = Vec::new();
            let consumed = read_entries(&mut BufReader::new(&mut *file), &mut entries)
                .map_err(io_error("read", path))?;
            *offset += consumed;
            progressed = consumed > 0;
            print(&entries, out, err).map_err(print_error)?;
            // Rotated: the name now points at a new file; the old one is fully read.
            let renamed = fs::metadata(path).map(|m| m.ino()).ok() != Some(*inode);
            if renamed && consumed == 0 {
                current = None;
                continue;
            }
        }
        if done && !progressed {
            return Ok(());
        }
        if !progressed {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_round_trips_through_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ctr.log");
        let mut writer = LogWriter::open(&path, DEFAULT_MAX_SIZE).unwrap();
        writer.write(Stream::Stdout, b"one\ntwo\npart").unwrap();
        writer.write(Stream::Stderr, b"oops\n").unwrap();
        writer.write(Stream::Stdout, b"ial\n").unwrap();
        let entries = read_all(&path).unwrap();
        assert_eq!(entries.len(), 5);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        print(&entries, &mut out, &mut err).unwrap();
        assert_eq!(out, b"one\ntwo\npartial\n");
        assert_eq!(err, b"oops\n");
        let raw = fs::read_to_string(&path).unwrap();
        assert!(raw
            .lines()
            .all(|l| l.contains("\"stream\"") && l.contains("\"time\"")));
    }

    #[test]
    fn the_log_rotates_by_size_and_keeps_one_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ctr.log");
        let mut writer = LogWriter::open(&path, 2048).unwrap();
        for i in 0..200 {
            writer
                .write(Stream::Stdout, format!("line {i}\n").as_bytes())
                .unwrap();
        }
        assert!(fs::metadata(&path).unwrap().len() <= 2048);
        assert!(fs::metadata(rotated_path(&path)).unwrap().len() <= 2048);
        assert!(!dir.path().join("ctr.log.2").exists());
        let entries = read_all(&path).unwrap();
        assert_eq!(entries.last().unwrap().log, "line 199\n");
        // Older lines are gone, the kept ones are in order.
        let numbers: Vec<u32> = entries
            .iter()
            .map(|e| e.log.trim().trim_start_matches("line ").parse().unwrap())
            .collect();
        assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1));
    }

    #[test]
    fn follow_prints_until_finished() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ctr.log");
        let mut writer = LogWriter::open(&path, 4096).unwrap();
        writer.write(Stream::Stdout, b"before\n").unwrap();
        let writer_path = path.clone();
        let handle = std::thread::spawn(move || {
            let mut writer = LogWriter::open(&writer_path, 4096).unwrap();
            for i in 0..100 {
                writer
                    .write(Stream::Stdout, format!("{i}\n").as_bytes())
                    .unwrap();
            }
        });
        let mut polls = 0;
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut joined = Some(handle);
        follow(&path, &mut out, &mut err, || {
            polls += 1;
            if polls > 3 {
                if let Some(h) = joined.take() {
                    h.join().unwrap();
                }
                true
            } else {
                false
            }
        })
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("before\n0\n"), "{text}");
        assert!(text.ends_with("98\n99\n"), "{text}");
    }
}
