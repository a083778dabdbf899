//! Shared by the unpack tests: a tar writer that writes any header bytes (including the
//! `../` names and links the `tar` crate's safe API refuses), compressors, a sandbox with a
//! sentinel directory beside the target, and the privileged-test switch.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

pub(crate) use tar::EntryType;

/// One tar entry, with every field settable.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub(crate) name: Vec<u8>,
    pub(crate) kind: EntryType,
    pub(crate) mode: u32,
    pub(crate) uid: u64,
    pub(crate) gid: u64,
    pub(crate) mtime: u64,
    pub(crate) data: Vec<u8>,
    pub(crate) link: Vec<u8>,
    pub(crate) device: (u32, u32),
    /// PAX records written before the entry (`path`, `SCHILYXATTR.*`, ...).
    pub(crate) pax: Vec<(String, Vec<u8>)>,
    /// A size field that disagrees with the data written.
    pub(crate) size_field: Option<u64>,
    /// A raw type byte, for the ones `EntryType` normalises (`\0` for an old regular file).
    pub(crate) typeflag: Option<u8>,
}

impl Spec {
    pub(crate) fn new(name: impl AsRef<[u8]>, kind: EntryType) -> Self {
        let mode = if kind == EntryType::Directory {
            0o755
        } else {
            0o644
        };
        Spec {
            name: name.as_ref().to_vec(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            mtime: 1_600_000_000,
            data: Vec::new(),
            link: Vec::new(),
            device: (0, 0),
            pax: Vec::new(),
            size_field: None,
            typeflag: None,
        }
    }

    pub(crate) fn file(name: impl AsRef<[u8]>, data: impl AsRef<[u8]>) -> Self {
        Spec {
            data: data.as_ref().to_vec(),
            ..Spec::new(name, EntryType::Regular)
        }
    }

    pub(crate) fn dir(name: impl AsRef<[u8]>) -> Self {
        Spec::new(name, EntryType::Directory)
    }

    pub(crate) fn symlink(name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> Self {
        Spec {
            link: target.as_ref().to_vec(),
            mode: 0o777,
            ..Spec::new(name, EntryType::Symlink)
        }
    }

    pub(crate) fn hardlink(name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> Self {
        Spec {
            link: target.as_ref().to_vec(),
            ..Spec::new(name, EntryType::Link)
        }
    }

    pub(crate) fn device(name: impl AsRef<[u8]>, kind: EntryType, major: u32, minor: u32) -> Self {
        Spec {
            device: (major, minor),
            mode: 0o660,
            ..Spec::new(name, kind)
        }
    }

    pub(crate) fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    pub(crate) fn owner(mut self, uid: u64, gid: u64) -> Self {
        self.uid = uid;
        self.gid = gid;
        self
    }

    pub(crate) fn mtime(mut self, mtime: u64) -> Self {
        self.mtime = mtime;
        self
    }

    pub(crate) fn pax(mut self, key: &str, value: impl AsRef<[u8]>) -> Self {
        self.pax.push((key.to_owned(), value.as_ref().to_vec()));
        self
    }

    pub(crate) fn xattr(self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.pax(&format!("SCHILYXATTR.{name}"), value)
    }

    pub(crate) fn typeflag(mut self, byte: u8) -> Self {
        self.typeflag = Some(byte);
        self
    }

    pub(crate) fn size_field(mut self, size: u64) -> Self {
        self.size_field = Some(size);
        self
    }
}

/// A tar stream under construction.
#[derive(Debug, Default, Clone)]
pub(crate) struct Tar {
    out: Vec<u8>,
}

fn pad(out: &mut Vec<u8>) {
    let rem = out.len() % 512;
    if rem != 0 {
        out.resize(out.len() + 512 - rem, 0);
    }
}

/// One PAX record, `"<len> <key>=<value>\n"` with `len` counting itself.
fn pax_record(key: &[u8], value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3;
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    let mut record = format!("{len} ").into_bytes();
    record.extend_from_slice(key);
    record.push(b'=');
    record.extend_from_slice(value);
    record.push(b'\n');
    record
}

impl Tar {
    pub(crate) fn new() -> Self {
        Tar::default()
    }

    pub(crate) fn add(&mut self, spec: Spec) -> &mut Self {
        let mut pax = Vec::new();
        for (key, value) in &spec.pax {
            pax.extend(pax_record(key.as_bytes(), value));
        }
        if spec.name.len() > 100 {
            pax.extend(pax_record(b"path", &spec.name));
        }
        if spec.link.len() > 100 {
            pax.extend(pax_record(b"linkpath", &spec.link));
        }
        if !pax.is_empty() {
            self.header(
                b"././@PaxHeader",
                EntryType::XHeader,
                0o644,
                pax.len() as u64,
                |_| {},
            );
            self.out.extend_from_slice(&pax);
            pad(&mut self.out);
        }
        let size = spec.size_field.unwrap_or(spec.data.len() as u64);
        self.header(&spec.name, spec.kind, spec.mode, size, |header| {
            header.set_uid(spec.uid);
            header.set_gid(spec.gid);
            header.set_mtime(spec.mtime);
            let link = &spec.link[..spec.link.len().min(100)];
            header.as_old_mut().linkname[..link.len()].copy_from_slice(link);
            if let Some(byte) = spec.typeflag {
                header.as_old_mut().linkflag = [byte];
            }
            if matches!(spec.kind, EntryType::Char | EntryType::Block) {
                header.set_device_major(spec.device.0).unwrap();
                header.set_device_minor(spec.device.1).unwrap();
            }
        });
        self.out.extend_from_slice(&spec.data);
        pad(&mut self.out);
        self
    }

    fn header(
        &mut self,
        name: &[u8],
        kind: EntryType,
        mode: u32,
        size: u64,
        more: impl FnOnce(&mut tar::Header),
    ) {
        let mut header = tar::Header::new_ustar();
        let short = &name[..name.len().min(100)];
        header.as_old_mut().name[..short.len()].copy_from_slice(short);
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(size);
        more(&mut header);
        header.set_cksum();
        self.out.extend_from_slice(header.as_bytes());
    }

    pub(crate) fn file(&mut self, name: impl AsRef<[u8]>, data: impl AsRef<[u8]>) -> &mut Self {
        self.add(Spec::file(name, data))
    }

    pub(crate) fn dir(&mut self, name: impl AsRef<[u8]>) -> &mut Self {
        self.add(Spec::dir(name))
    }

    pub(crate) fn symlink(
        &mut self,
        name: impl AsRef<[u8]>,
        target: impl AsRef<[u8]>,
    ) -> &mut Self {
        self.add(Spec::symlink(name, target))
    }

    pub(crate) fn hardlink(
        &mut self,
        name: impl AsRef<[u8]>,
        target: impl AsRef<[u8]>,
    ) -> &mut Self {
        self.add(Spec::hardlink(name, target))
    }

    /// Appends raw bytes (garbage, or data a header does not announce).
    pub(crate) fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.out.extend_from_slice(bytes);
        self
    }

    /// The archive with its end-of-archive marker (two zero blocks).
    pub(crate) fn bytes(&self) -> Vec<u8> {
        let mut out = self.out.clone();
        out.resize(out.len() + 1024, 0);
        out
    }

    /// The archive without its end-of-archive marker.
    pub(crate) fn unterminated(&self) -> Vec<u8> {
        self.out.clone()
    }
}

pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

pub(crate) fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(data, 1).unwrap()
}

/// A gzip stream of `header` followed by `megabytes` MiB of zeros, cheaply: one gzip member of
/// 1 MiB of zeros repeated (gzip readers join members).
pub(crate) fn gzip_zeros_after(header: &[u8], megabytes: usize) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(&vec![0u8; 1 << 20]).unwrap();
    let zeros = encoder.finish().unwrap();
    let mut out = gzip(header);
    for _ in 0..megabytes {
        out.extend_from_slice(&zeros);
    }
    out
}

/// What is at one path: enough to notice any write, link, chmod or replacement.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    kind: String,
    mode: u32,
    nlink: u64,
    uid: u32,
    mtime: (i64, i64),
    content: Vec<u8>,
}

fn snapshot(root: &Path, skip: &Path, out: &mut BTreeMap<PathBuf, Node>) {
    let mut entries: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path == skip {
            continue;
        }
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let file_type = meta.file_type();
        let (kind, content) = if file_type.is_symlink() {
            (
                "symlink",
                std::fs::read_link(&path)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes(),
            )
        } else if file_type.is_file() {
            ("file", std::fs::read(&path).unwrap())
        } else if file_type.is_dir() {
            ("dir", Vec::new())
        } else if file_type.is_char_device() || file_type.is_block_device() {
            ("device", meta.rdev().to_le_bytes().to_vec())
        } else {
            ("other", Vec::new())
        };
        out.insert(
            path.clone(),
            Node {
                kind: kind.to_owned(),
                mode: meta.mode(),
                nlink: meta.nlink(),
                uid: meta.uid(),
                mtime: (meta.mtime(), meta.mtime_nsec()),
                content,
            },
        );
        if file_type.is_dir() {
            snapshot(&path, skip, out);
        }
    }
}

/// A temporary directory holding `target/` (where layers go) and `outside/` (sentinels that
/// must never change), plus a way to check that nothing but `target/` changed.
#[derive(Debug)]
pub(crate) struct Sandbox {
    dir: tempfile::TempDir,
    pub(crate) target: PathBuf,
    pub(crate) outside: PathBuf,
    before: BTreeMap<PathBuf, Node>,
}

impl Sandbox {
    pub(crate) fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("unpack-test-")
            .tempdir()
            .unwrap();
        let target = dir.path().join("target");
        let outside = dir.path().join("outside");
        std::fs::create_dir(&target).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        std::fs::write(outside.join("shadow"), "root:secret\n").unwrap();
        std::fs::create_dir(outside.join("dir")).unwrap();
        std::fs::write(outside.join("dir/keep"), "keep").unwrap();
        let mut before = BTreeMap::new();
        snapshot(dir.path(), &target, &mut before);
        Sandbox {
            dir,
            target,
            outside,
            before,
        }
    }

    pub(crate) fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The sentinel directory as an absolute path, as bytes (for names and link targets).
    pub(crate) fn outside_abs(&self) -> Vec<u8> {
        self.outside.as_os_str().as_encoded_bytes().to_vec()
    }

    /// Panics if anything beside `target/` was created, removed, written, linked or chmodded.
    pub(crate) fn assert_outside_unchanged(&self) {
        let mut after = BTreeMap::new();
        snapshot(self.dir.path(), &self.target, &mut after);
        assert_eq!(self.before, after, "something outside the target changed");
    }

    /// A fresh, empty directory inside `target/` (for tests with several layers).
    pub(crate) fn layer_dir(&self, name: &str) -> PathBuf {
        let path = self.target.join(name);
        std::fs::create_dir(&path).unwrap();
        path
    }
}

/// Whether privileged tests can run. Prints `SKIP: <reason>` and returns false when they
/// cannot, unless `PALISADE_REQUIRE_PRIVILEGED=1`, where a skip is a failure.
pub(crate) fn privileged(what: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    let reason = format!("{what}: not running as root");
    if std::env::var("PALISADE_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
        panic!("privileged test cannot run ({reason}) and PALISADE_REQUIRE_PRIVILEGED=1");
    }
    eprintln!("SKIP: {reason}");
    false
}
