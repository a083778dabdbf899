//! A store never trusts a blob that is not complete and correct: interrupted writes (a reader
//! that fails, a process killed mid-write) leave nothing at a final path, and bytes altered or
//! truncated on disk fail on read and in `check`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use palisade_image::store::{Problem, Store, StoreError};
use palisade_image::{Digest, DigestAlgorithm};

/// Yields `good` bytes, then fails like a dropped connection or a dying disk.
struct FailingReader {
    good: usize,
    sent: usize,
}

impl Read for FailingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.sent >= self.good {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "source died",
            ));
        }
        let n = buf.len().min(self.good - self.sent);
        buf[..n].fill(0xab);
        self.sent += n;
        Ok(n)
    }
}

fn blob_dir_entries(store: &Store) -> Vec<String> {
    let dir = store.root().join("blobs/sha256");
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn reader_failing_halfway_leaves_no_blob() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let full = vec![0xabu8; 2 << 20];
    let expected = Digest::of(&full);
    let err = store
        .put_blob(
            FailingReader {
                good: 1 << 20,
                sent: 0,
            },
            Some(&expected),
            Some(full.len() as u64),
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::Source { .. }), "{err:?}");
    assert!(!store.has_blob(&expected));
    assert!(!store.has_blob(&Digest::of(&full[..1 << 20])));
    assert!(
        blob_dir_entries(&store).is_empty(),
        "{:?}",
        blob_dir_entries(&store)
    );
    // A retry with a good source succeeds.
    store
        .put_blob(&full[..], Some(&expected), Some(full.len() as u64))
        .unwrap();
    assert_eq!(store.verify_blob(&expected).unwrap(), full.len() as u64);
}

#[test]
fn lying_source_is_stopped_at_its_announced_size() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // A source that announces 1 KiB but never stops: the store gives up after the announced
    // size instead of filling the disk.
    let endless = io::repeat(0).take(u64::MAX);
    let err = store.put_blob(endless, None, Some(1024)).unwrap_err();
    assert!(
        matches!(err, StoreError::SizeMismatch { exceeded: true, .. }),
        "{err:?}"
    );
    assert!(blob_dir_entries(&store).is_empty());
}

/// Run as a child process by `killed_writer_leaves_only_a_stale_temp_file`: writes half a blob
/// and dies without cleaning up, as a process killed by a signal or a power cut would.
#[test]
fn child_dies_mid_write() {
    let Ok(root) = std::env::var("PALISADE_TEST_KILLED_WRITER_ROOT") else {
        return; // not the child
    };
    let store = Store::open(&root).unwrap();
    let mut writer = store.blob_writer(DigestAlgorithm::Sha256, None).unwrap();
    writer.write_all(&[7u8; 100_000]).unwrap();
    writer.flush().unwrap();
    // exit() runs no destructors: the writer gets no chance to clean up, as with SIGKILL.
    std::process::exit(3);
}

#[test]
fn killed_writer_leaves_only_a_stale_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_dies_mid_write",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("PALISADE_TEST_KILLED_WRITER_ROOT", dir.path())
        // The child's own "test result" lines would be counted as the parent's tests.
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the child should have aborted");
    let entries = blob_dir_entries(&store);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0].starts_with(".tmp-"), "{entries:?}");
    // Nothing at a final path: no digest names that content.
    assert!(!store.has_blob(&Digest::of(&[7u8; 100_000])));
    let report = store.check(false).unwrap();
    assert!(
        matches!(&report.problems[..], [Problem::StaleTempFile { .. }]),
        "{:?}",
        report.problems
    );
    let report = store.check(true).unwrap();
    assert!(report.is_clean());
    assert_eq!(report.repaired.len(), 1);
    assert!(blob_dir_entries(&store).is_empty());
}

fn make_writable(path: &std::path::Path) {
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
}

#[test]
fn truncated_blob_fails_on_read_and_in_check() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let data = vec![1u8; 300_000];
    let (digest, _) = store.put_blob(&data[..], None, None).unwrap();
    let path = store.blob_path(&digest);
    make_writable(&path);
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(1000)
        .unwrap();
    let mut out = Vec::new();
    let err = store
        .open_blob(&digest)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert!(matches!(
        store.verify_blob(&digest),
        Err(StoreError::CorruptBlob { .. })
    ));
    assert!(matches!(
        store.read_blob(&digest, 1 << 20),
        Err(StoreError::CorruptBlob { .. })
    ));
    let report = store.check(false).unwrap();
    assert!(
        matches!(&report.problems[..], [Problem::CorruptBlob { digest: d, .. }] if *d == digest),
        "{:?}",
        report.problems
    );
    // Storing the right content again repairs it.
    store.put_blob(&data[..], Some(&digest), None).unwrap();
    assert!(store.check(false).unwrap().is_clean());
}

#[test]
fn altered_blob_fails_on_read_and_repair_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (digest, size) = store.put_blob(&b"trusted content"[..], None, None).unwrap();
    let path = store.blob_path(&digest);
    make_writable(&path);
    let mut bytes = fs::read(&path).unwrap();
    bytes[0] ^= 1;
    fs::write(&path, &bytes).unwrap();
    assert_eq!(
        store.blob_size(&digest).unwrap(),
        size,
        "same size, different bytes"
    );
    let mut reader = store.open_blob(&digest).unwrap();
    let err = reader.read_to_end(&mut Vec::new()).unwrap_err();
    assert!(err.to_string().contains("corrupt"), "{err}");
    let report = store.check(true).unwrap();
    assert_eq!(report.repaired.len(), 1);
    assert!(!store.has_blob(&digest));
    assert!(store.check(false).unwrap().is_clean());
}

#[test]
fn blobs_are_read_only_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let digest = store.put_blob_bytes(b"x").unwrap();
    let mode = fs::metadata(store.blob_path(&digest))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o444);
}
