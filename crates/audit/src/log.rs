//! [`AuditLog`]: appending to one log file from many processes at once, and rotating it.
//!
//! Writers coordinate through an exclusive `flock(2)` on the log file. Under the lock a writer
//! checks that its descriptor still is the file at the log's path (a rotation may have replaced
//! it), reads the last record from the end of the file (another process may have appended since
//! this one last looked), and appends its line with one `write(2)` on an `O_APPEND` descriptor.
//! Readers and the verifier take no lock: they see whole lines or a final line still being
//! written, which they report as torn.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::checkpoint::{checkpoint_message, CheckpointSigner};
use crate::error::AuditError;
use crate::event::{Actor, Event};
use crate::record::{canonical_event, encode, Checkpoint, Record, RecordHash, MAX_LINE_BYTES};
use crate::tail::{read_tail, Tail};
use crate::timestamp::Timestamp;

/// How many times locking may find the path replaced before giving up.
const LOCK_ATTEMPTS: u32 = 64;

/// How far an appended record is pushed towards the disk before `append` returns (the fsync
/// policy). Whatever the policy, a failed write or sync is an error of `append`, never a
/// silently dropped record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// Never fsync: written to the kernel, so it survives the process crashing, not the
    /// machine losing power. (`never` in configuration.)
    #[default]
    Flush,
    /// Always: every append is `fdatasync`ed (and the directory synced once): survives power
    /// loss, costs a disk flush per record. (`always` in configuration.)
    Sync,
    /// An append fsyncs when the previous sync by this handle is at least this long ago: at
    /// most that much is lost on power loss. (`interval=5s` in configuration.)
    Interval(Duration),
}

impl std::str::FromStr for Durability {
    type Err = String;

    /// `always`, `never`, or `interval=N` with `N` in seconds, optionally suffixed `s` or `ms`.
    fn from_str(text: &str) -> Result<Durability, String> {
        let fail = || {
            format!(
                "fsync policy {text:?} is not always, never or interval=SECONDS (e.g. interval=5s)"
            )
        };
        match text {
            "always" | "sync" => return Ok(Durability::Sync),
            "never" | "flush" => return Ok(Durability::Flush),
            _ => {}
        }
        let amount = text.strip_prefix("interval=").ok_or_else(fail)?;
        let duration = if let Some(ms) = amount.strip_suffix("ms") {
            Duration::from_millis(ms.parse().map_err(|_| fail())?)
        } else {
            Duration::from_secs(amount.trim_end_matches('s').parse().map_err(|_| fail())?)
        };
        Ok(Durability::Interval(duration))
    }
}

/// Signed checkpoints: who signs, and how often.
#[derive(Debug, Clone)]
struct Sealing {
    signer: Arc<dyn CheckpointSigner>,
    every: u64,
}

/// A handle for appending to one audit log file.
///
/// Any number of handles, in any number of processes, may append to the same path at once;
/// see the module documentation for how. One handle is not shared between threads without a
/// mutex (`append` takes `&mut self`); threads may also open handles of their own.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: File,
    durability: Durability,
    directory_synced: bool,
    last_sync: Option<Instant>,
    sealing: Option<Sealing>,
}

impl AuditLog {
    /// Opens the log at `path`, creating its parent directories (mode 0700) and the file (mode
    /// 0600) if missing. Existing directories and files keep their modes. A symlink at `path`
    /// is refused.
    pub fn open(path: impl AsRef<Path>) -> Result<AuditLog, AuditError> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|source| AuditError::CreateDirectory {
                    path: parent.to_path_buf(),
                    source,
                })?;
        }
        let file = open_log_file(&path)?;
        let mut log = AuditLog {
            path,
            file,
            durability: Durability::default(),
            directory_synced: false,
            last_sync: None,
            sealing: None,
        };
        // Recover the chain's end now, so a damaged or unreadable file fails here, early.
        log.checkpoint()?;
        Ok(log)
    }

    /// Sets how far each append is pushed towards the disk.
    pub fn with_durability(mut self, durability: Durability) -> AuditLog {
        self.durability = durability;
        self
    }

    /// Seals the chain with a signed [`Event::Checkpoint`] after every `every` records (by
    /// `seq`: checkpoints take the seqs `k * (every + 1) - 1`), on
    /// [`AuditLog::rotate`], and on [`AuditLog::seal`]. The checkpoint goes out in the same
    /// `write` as the record it follows. `every` of 0 means only on rotation and `seal`.
    pub fn with_checkpoints(mut self, signer: Arc<dyn CheckpointSigner>, every: u64) -> AuditLog {
        self.sealing = Some(Sealing { signer, every });
        self
    }

    /// The log file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The durability appends use.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// The log's last record as it is now (whoever wrote it), or `None` for an empty log.
    /// Ship it off the host to make truncation of the log's end detectable.
    pub fn checkpoint(&mut self) -> Result<Option<Checkpoint>, AuditError> {
        let locked = self.lock(FlockArg::LockShared)?;
        let tail = read_tail(&locked).map_err(|source| self.read_error(source))?;
        Ok(tail.last)
    }

    /// Appends `event` as the next record of the chain and returns the record written.
    ///
    /// If the file ends in a torn line (a writer crashed mid-write), the record starts on a new
    /// line and chains from the last complete record; the verifier reports the torn line.
    pub fn append(&mut self, event: Event) -> Result<Record, AuditError> {
        let event_json = canonical_event(&event).map_err(|source| AuditError::Serialize {
            kind: event.kind(),
            source,
        })?;
        let locked = self.lock(FlockArg::LockExclusive)?;
        let tail = read_tail(&locked).map_err(|source| self.read_error(source))?;
        let (seq, prev) = self.next_link(&tail)?;
        let time = Timestamp::now();
        let encoded = encode(seq, time, prev, &event_json);
        if encoded.line.len() > MAX_LINE_BYTES {
            return Err(AuditError::RecordTooLarge {
                kind: event.kind(),
                size: encoded.line.len(),
                limit: MAX_LINE_BYTES,
            });
        }
        let mut bytes = Vec::with_capacity(encoded.line.len() + 1);
        if tail.needs_newline {
            bytes.push(b'\n');
        }
        bytes.extend_from_slice(&encoded.line);
        let due = self.sealing.as_ref().is_some_and(|sealing| {
            sealing.every > 0
                && !matches!(event, Event::Checkpoint { .. })
                && (seq + 2) % (sealing.every + 1) == 0
        });
        if due {
            let checkpoint = self.checkpoint_line(seq, encoded.hash)?;
            bytes.extend_from_slice(&checkpoint.line);
        }
        // One write on an O_APPEND descriptor; `write_all` loops only if the kernel writes
        // short (a full disk), and the lock keeps other writers out meanwhile.
        self.write_locked(&locked, &bytes)?;
        drop(locked);
        Ok(Record {
            seq,
            time,
            prev,
            event,
            hash: encoded.hash,
        })
    }

    /// Appends a signed checkpoint over the log's last record now. Returns `None` (writing
    /// nothing) for an empty log. Fails if no signer was configured.
    pub fn seal(&mut self) -> Result<Option<Record>, AuditError> {
        if self.sealing.is_none() {
            return Err(AuditError::NoSigner {
                path: self.path.clone(),
            });
        }
        let locked = self.lock(FlockArg::LockExclusive)?;
        let tail = read_tail(&locked).map_err(|source| self.read_error(source))?;
        let Some(last) = tail.last else {
            return Ok(None);
        };
        let checkpoint = self.checkpoint_line(last.seq, last.hash)?;
        let mut bytes = Vec::new();
        if tail.needs_newline {
            bytes.push(b'\n');
        }
        bytes.extend_from_slice(&checkpoint.line);
        self.write_locked(&locked, &bytes)?;
        Ok(Some(checkpoint.record))
    }

    /// The encoded checkpoint record that follows the record (`seq`, `hash`).
    fn checkpoint_line(&self, seq: u64, hash: RecordHash) -> Result<Sealed, AuditError> {
        let sealing = self.sealing.as_ref().ok_or_else(|| AuditError::NoSigner {
            path: self.path.clone(),
        })?;
        let signature = sealing
            .signer
            .sign(&checkpoint_message(seq, &hash))
            .map_err(|source| AuditError::Sign {
                path: self.path.clone(),
                source,
            })?;
        let event = Event::Checkpoint {
            actor: Actor::current_process(),
            covers_seq: seq,
            key_id: sealing.signer.key_id().to_owned(),
            algorithm: sealing.signer.algorithm().to_owned(),
            signature: hex::encode(signature),
        };
        let event_json = canonical_event(&event).map_err(|source| AuditError::Serialize {
            kind: event.kind(),
            source,
        })?;
        let next = seq
            .checked_add(1)
            .ok_or_else(|| AuditError::SequenceExhausted {
                path: self.path.clone(),
            })?;
        let time = Timestamp::now();
        let encoded = encode(next, time, hash, &event_json);
        Ok(Sealed {
            record: Record {
                seq: next,
                time,
                prev: hash,
                event,
                hash: encoded.hash,
            },
            line: encoded.line,
        })
    }

    /// Writes `bytes` to the locked file in one `write` and syncs per the [`Durability`].
    fn write_locked(&mut self, locked: &Flock<File>, bytes: &[u8]) -> Result<(), AuditError> {
        (&**locked)
            .write_all(bytes)
            .map_err(|source| self.write_error(source))?;
        let sync = match self.durability {
            Durability::Flush => false,
            Durability::Sync => true,
            Durability::Interval(interval) => {
                self.last_sync.is_none_or(|last| last.elapsed() >= interval)
            }
        };
        if sync {
            locked
                .sync_data()
                .map_err(|source| self.write_error(source))?;
            self.sync_directory_once()?;
            self.last_sync = Some(Instant::now());
        }
        Ok(())
    }

    /// Moves the current file to `archive` and continues the chain in a fresh file at the
    /// log's path, whose first record is a [`Event::LogRotated`] whose `prev` is the archived
    /// file's last hash and whose `seq` follows on. Returns that record.
    ///
    /// `archive` must not exist and must be on the same filesystem (it is created with
    /// `link(2)`, so the log's path names a complete file at every instant). Other handles,
    /// here or in other processes, notice the replacement on their next append and follow it.
    /// The new file and the directory are synced whatever the [`Durability`].
    pub fn rotate(
        &mut self,
        archive: impl AsRef<Path>,
        actor: Actor,
    ) -> Result<Record, AuditError> {
        let archive = archive.as_ref().to_path_buf();
        let locked = self.lock(FlockArg::LockExclusive)?;
        let mut tail = read_tail(&locked).map_err(|source| self.read_error(source))?;
        if let (Some(_), Some(last)) = (&self.sealing, tail.last) {
            // Seal the file being archived, so its end is signed.
            let checkpoint = self.checkpoint_line(last.seq, last.hash)?;
            let mut bytes = Vec::new();
            if tail.needs_newline {
                bytes.push(b'\n');
            }
            bytes.extend_from_slice(&checkpoint.line);
            self.write_locked(&locked, &bytes)?;
            tail.last = Some(checkpoint.record.checkpoint());
            tail.needs_newline = false;
        }
        let (seq, prev) = self.next_link(&tail)?;
        let event = Event::LogRotated {
            actor,
            archive: archive.clone(),
        };
        let event_json = canonical_event(&event).map_err(|source| AuditError::Serialize {
            kind: event.kind(),
            source,
        })?;
        let time = Timestamp::now();
        let encoded = encode(seq, time, prev, &event_json);

        let rotate_error = |source, cleanup| AuditError::Rotate {
            path: self.path.clone(),
            archive: archive.clone(),
            source,
            cleanup,
        };
        let temp_path = self.sibling_temp_path();
        let mut fresh = OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&temp_path)
            .map_err(|source| rotate_error(source, None))?;
        let prepared = fresh
            .write_all(&encoded.line)
            .and_then(|()| fresh.sync_all())
            .and_then(|()| fs::hard_link(&self.path, &archive));
        if let Err(source) = prepared {
            let cleanup = fs::remove_file(&temp_path).err();
            return Err(rotate_error(source, cleanup));
        }
        if let Err(source) = fs::rename(&temp_path, &self.path) {
            let cleanup = fs::remove_file(&temp_path)
                .and_then(|()| fs::remove_file(&archive))
                .err();
            return Err(rotate_error(source, cleanup));
        }
        sync_directory(&self.path).map_err(|source| rotate_error(source, None))?;
        drop(locked);
        self.file = fresh;
        Ok(Record {
            seq,
            time,
            prev,
            event,
            hash: encoded.hash,
        })
    }

    /// The `seq` and `prev` of the record that follows `tail`.
    fn next_link(&self, tail: &Tail) -> Result<(u64, RecordHash), AuditError> {
        match tail.last {
            None => Ok((0, RecordHash::GENESIS)),
            Some(last) => {
                let seq = last
                    .seq
                    .checked_add(1)
                    .ok_or_else(|| AuditError::SequenceExhausted {
                        path: self.path.clone(),
                    })?;
                Ok((seq, last.hash))
            }
        }
    }

    /// Locks the file at the log's path, following replacements by rotation: after locking, the
    /// descriptor must still be the file the path names, or the lock is dropped and the path
    /// reopened.
    fn lock(&mut self, mode: FlockArg) -> Result<Flock<File>, AuditError> {
        for _ in 0..LOCK_ATTEMPTS {
            // flock(2) locks the open file description, which the duplicate shares; dropping the
            // guard unlocks it and closes only the duplicate.
            let mut duplicate = self.file.try_clone().map_err(|source| AuditError::Open {
                path: self.path.clone(),
                source,
            })?;
            let locked = loop {
                match Flock::lock(duplicate, mode) {
                    Ok(locked) => break locked,
                    Err((file, Errno::EINTR)) => duplicate = file,
                    Err((_, source)) => {
                        return Err(AuditError::Lock {
                            path: self.path.clone(),
                            source,
                        })
                    }
                }
            };
            if self.names_this_file(&locked)? {
                return Ok(locked);
            }
            drop(locked);
            self.file = open_log_file(&self.path)?;
        }
        Err(AuditError::Unstable {
            path: self.path.clone(),
            attempts: LOCK_ATTEMPTS,
        })
    }

    /// Whether the log's path still names the file `file` refers to.
    fn names_this_file(&self, file: &File) -> Result<bool, AuditError> {
        let open = file.metadata().map_err(|source| self.read_error(source))?;
        match fs::symlink_metadata(&self.path) {
            Ok(named) => Ok(named.dev() == open.dev() && named.ino() == open.ino()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(self.read_error(source)),
        }
    }

    fn sync_directory_once(&mut self) -> Result<(), AuditError> {
        if !self.directory_synced {
            sync_directory(&self.path).map_err(|source| self.write_error(source))?;
            self.directory_synced = true;
        }
        Ok(())
    }

    fn sibling_temp_path(&self) -> PathBuf {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = self
            .path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let unique = format!(
            ".{name}.rotating.{}.{}.{}",
            std::process::id(),
            Timestamp::now().subsec_nanos(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        self.path.with_file_name(unique)
    }

    fn read_error(&self, source: io::Error) -> AuditError {
        AuditError::Read {
            path: self.path.clone(),
            source,
        }
    }

    fn write_error(&self, source: io::Error) -> AuditError {
        AuditError::Write {
            path: self.path.clone(),
            source,
        }
    }
}

/// A checkpoint record and its line.
struct Sealed {
    record: Record,
    line: Vec<u8>,
}

/// Opens (creating if missing) the log file for reading and appending, refusing symlinks and
/// anything but a regular file.
fn open_log_file(path: &Path) -> Result<File, AuditError> {
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(|source| AuditError::Open {
            path: path.to_path_buf(),
            source,
        })?;
    let metadata = file.metadata().map_err(|source| AuditError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    if !metadata.is_file() {
        return Err(AuditError::NotRegularFile {
            path: path.to_path_buf(),
        });
    }
    Ok(file)
}

/// fsyncs the directory holding `path`, so a created or renamed entry survives power loss.
fn sync_directory(path: &Path) -> io::Result<()> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    File::open(directory)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::examples;
    use std::os::unix::fs::PermissionsExt;

    fn started(id: &str) -> Event {
        Event::ContainerStarted {
            actor: Actor::user("root"),
            container_id: id.into(),
            pid: Some(1),
        }
    }

    #[test]
    fn open_creates_private_directories_and_file() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("a/b/runtime.log");
        let mut log = AuditLog::open(&path).unwrap();
        assert_eq!(log.path(), path);
        assert_eq!(log.checkpoint().unwrap(), None);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&root.path().join("a/b")), 0o700);
        assert_eq!(mode(&root.path().join("a")), 0o700);
    }

    #[test]
    fn appends_chain_and_continue_after_reopening() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("runtime.log");
        let mut log = AuditLog::open(&path).unwrap();
        let first = log.append(started("a")).unwrap();
        let second = log.append(started("b")).unwrap();
        assert_eq!((first.seq, first.prev), (0, RecordHash::GENESIS));
        assert_eq!((second.seq, second.prev), (1, first.hash));
        assert!(second.time >= first.time);

        let mut reopened = AuditLog::open(&path).unwrap();
        assert_eq!(reopened.checkpoint().unwrap(), Some(second.checkpoint()));
        let third = reopened.append(started("c")).unwrap();
        assert_eq!((third.seq, third.prev), (2, second.hash));
        // The first handle sees the second's append.
        let fourth = log.append(started("d")).unwrap();
        assert_eq!((fourth.seq, fourth.prev), (3, third.hash));
        assert_eq!(fs::read_to_string(&path).unwrap().lines().count(), 4);
    }

    #[test]
    fn every_kind_appends_with_sync_durability() {
        let root = tempfile::tempdir().unwrap();
        let mut log = AuditLog::open(root.path().join("all.log"))
            .unwrap()
            .with_durability(Durability::Sync);
        assert_eq!(log.durability(), Durability::Sync);
        for (seq, event) in examples().into_iter().enumerate() {
            let record = log.append(event.clone()).unwrap();
            assert_eq!(record.seq, seq as u64);
            assert_eq!(record.event, event);
        }
    }

    #[test]
    fn a_torn_tail_is_followed_on_a_new_line() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("torn.log");
        let mut log = AuditLog::open(&path).unwrap();
        let first = log.append(started("a")).unwrap();
        fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(br#"{"seq":1,"time":"2024"#)
            .unwrap();
        let mut reopened = AuditLog::open(&path).unwrap();
        let next = reopened.append(started("b")).unwrap();
        assert_eq!((next.seq, next.prev), (1, first.hash));
        let text = fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[1], r#"{"seq":1,"time":"2024"#);
        assert!(lines[2].starts_with(r#"{"seq":1,"#));
    }

    #[test]
    fn oversized_and_unserializable_events_are_refused_without_writing() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("big.log");
        let mut log = AuditLog::open(&path).unwrap();
        let error = log
            .append(Event::Other {
                actor: Actor::default(),
                name: "x".repeat(MAX_LINE_BYTES),
                fields: serde_json::Map::new(),
            })
            .unwrap_err();
        assert!(
            matches!(error, AuditError::RecordTooLarge { .. }),
            "{error}"
        );
        assert_eq!(fs::metadata(&path).unwrap().len(), 0);
        assert_eq!(log.append(started("a")).unwrap().seq, 0);
    }

    #[test]
    fn symlinks_and_directories_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("target.log");
        fs::write(&target, b"").unwrap();
        let link = root.path().join("link.log");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(
            AuditLog::open(&link).unwrap_err(),
            AuditError::Open { .. }
        ));
        assert!(AuditLog::open(root.path()).is_err());
    }

    #[test]
    fn rotation_continues_the_chain_and_other_handles_follow() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("runtime.log");
        let archive = root.path().join("runtime.0.log");
        let mut writer = AuditLog::open(&path).unwrap();
        let mut other = AuditLog::open(&path).unwrap();
        let last_old = writer.append(started("a")).unwrap();
        let rotated = writer.rotate(&archive, Actor::user("root")).unwrap();
        assert_eq!((rotated.seq, rotated.prev), (1, last_old.hash));
        assert_eq!(rotated.event.kind(), "log_rotated");

        let next = other.append(started("b")).unwrap();
        assert_eq!((next.seq, next.prev), (2, rotated.hash));
        assert_eq!(fs::read_to_string(&archive).unwrap().lines().count(), 1);
        assert_eq!(fs::read_to_string(&path).unwrap().lines().count(), 2);

        // The archive name is never overwritten.
        let error = writer.rotate(&archive, Actor::user("root")).unwrap_err();
        assert!(matches!(error, AuditError::Rotate { .. }), "{error}");
        assert_eq!(fs::read_to_string(&path).unwrap().lines().count(), 2);
        let leftovers: Vec<_> = fs::read_dir(root.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 2, "{leftovers:?}");
    }
}
