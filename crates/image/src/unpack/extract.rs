//! The extraction loop: one tar entry at a time into a target directory held open by
//! descriptor.
//!
//! Every entry is created relative to its parent directory's descriptor, and that descriptor is
//! reached from the target's by opening one component at a time with `O_NOFOLLOW`. A name never
//! contains `..` (refused in [`name::normalize`](super::name::normalize)), so no path can climb
//! out, and a symlink (which the layer may have just created) is never traversed: the entry is
//! refused instead. Final components are created with `O_EXCL`/`mkdirat`/`symlinkat`/`mknodat`,
//! which never follow a symlink either, and metadata is set through the new inode's descriptor or
//! with `AT_SYMLINK_NOFOLLOW`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid, XattrFlags};
use rustix::io::Errno;

use super::fs::{file_type, list_dir, lstat_at, open_dir_at, remove_all_at};
use super::name::{self, Meaning, NameProblem, WhiteoutProblem};
use super::stream::{self, Counters};
use super::xattr::{self, Decision, Holder};
use super::{HardLinkProblem, Ownership, UnpackError, UnpackOptions, UnpackReport};

/// What the target becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Form {
    /// One layer as an overlayfs lower directory: whiteouts become `0:0` character devices,
    /// opaque markers an `overlay.opaque` xattr.
    Overlay,
    /// Layers applied on top of each other in one directory: whiteouts delete.
    Flatten,
}

/// What this layer put at a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Directory,
    /// Created because an entry below it needed it.
    ImplicitDirectory,
    File,
    Fifo,
    Symlink,
    /// A device node left out by policy.
    Dropped,
    /// An overlayfs whiteout device (per-layer form).
    Whiteout,
    /// A `.wh.` entry's own name, kept to find duplicates.
    Marker,
}

impl Kind {
    fn is_directory(self) -> bool {
        matches!(self, Kind::Directory | Kind::ImplicitDirectory)
    }
}

/// Bytes charged to `max_metadata_bytes` per remembered name, beyond the name itself.
const ENTRY_OVERHEAD: u64 = 64;

/// Longest symlink target Linux stores (`PATH_MAX - 1`).
const SYMLINK_MAX: usize = 4095;

/// The attributes of one entry, read and checked before anything is created.
#[derive(Debug)]
struct Meta {
    path: PathBuf,
    mode: u32,
    owner: Option<(Uid, Gid)>,
    mtime: Option<Timespec>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    unreadable_xattrs: Vec<Vec<u8>>,
}

/// A directory's mode and mtime, set after all its children exist.
#[derive(Debug)]
struct Deferred {
    key: Vec<u8>,
    mode: u32,
    mtime: Option<Timespec>,
}

/// Whether a name is free for a new entry or holds a directory the entry merges into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Fresh,
    ExistingDirectory,
}

/// Extracts one layer from `reader` into the directory `root`.
pub(super) fn run<R: Read>(
    reader: R,
    root: OwnedFd,
    opts: &UnpackOptions,
    form: Form,
) -> Result<UnpackReport, UnpackError> {
    let counters = Counters::default();
    let (compression, decoded) = stream::open(reader, &counters, opts)?;
    let mut archive = tar::Archive::new(decoded);
    let mut extractor = Extractor::new(root, opts, form);
    extractor.report.compression = compression;
    let mut entries = archive
        .entries()
        .map_err(|error| counters.classify(error, opts))?;
    loop {
        counters.start_header();
        let next = entries.next();
        counters.end_header();
        let Some(entry) = next else { break };
        let mut entry = entry.map_err(|error| counters.classify(error, opts))?;
        extractor.entry(&mut entry, &counters)?;
    }
    // The tar reader stops at the first zero block without reading on; if instead it saw the
    // stream end, the end-of-archive marker is missing and the layer was cut at an entry
    // boundary.
    if counters.ended() {
        return Err(UnpackError::Truncated {
            detail: "the end-of-archive marker is missing",
        });
    }
    // Read to the end so the decoder checks the compressed stream's trailer (gzip CRC and
    // length, zstd checksum); the padding after the marker still counts against the limits.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|error| counters.classify(error, opts))?;
    extractor.finish()?;
    let mut report = extractor.report;
    report.compressed_bytes = counters.compressed();
    report.uncompressed_bytes = counters.uncompressed();
    Ok(report)
}

/// The owner of the layer root and of directories created for entries below them: container
/// root, mapped.
pub(super) fn root_owner(ownership: &Ownership) -> Option<(Uid, Gid)> {
    match ownership {
        Ownership::Preserve => Some((Uid::ROOT, Gid::ROOT)),
        Ownership::Shift(shift) => {
            Some((Uid::from_raw(shift.uid(0)?), Gid::from_raw(shift.gid(0)?)))
        }
        Ownership::Ignore => None,
    }
}

struct Extractor<'o> {
    opts: &'o UnpackOptions,
    form: Form,
    root: Rc<OwnedFd>,
    root_owner: Option<(Uid, Gid)>,
    /// The last directory walked to, by key.
    cache: Option<(Vec<u8>, Rc<OwnedFd>)>,
    /// Everything this layer created or claimed, by key.
    layer: HashMap<Vec<u8>, Kind>,
    deferred: Vec<Deferred>,
    metadata_bytes: u64,
    written_bytes: u64,
    buffer: Vec<u8>,
    report: UnpackReport,
}

impl std::fmt::Debug for Extractor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extractor")
            .field("form", &self.form)
            .field("entries", &self.layer.len())
            .finish_non_exhaustive()
    }
}

fn write_error(operation: &'static str, key: &[u8]) -> impl FnOnce(Errno) -> UnpackError {
    let path = name::display(key);
    move |errno| UnpackError::Write {
        operation,
        path,
        source: io::Error::from(errno),
    }
}

fn malformed(source: io::Error) -> UnpackError {
    UnpackError::MalformedArchive { source }
}

fn times(mtime: Timespec) -> Timestamps {
    Timestamps {
        last_access: mtime,
        last_modification: mtime,
    }
}

/// Reads what is left of an entry's data, checking it is all there.
fn drain<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    counters: &Counters,
    opts: &UnpackOptions,
) -> Result<(), UnpackError> {
    let expected = entry.size();
    let read = io::copy(entry, &mut io::sink()).map_err(|error| counters.classify(error, opts))?;
    if read < expected {
        return Err(UnpackError::Truncated {
            detail: "an entry's data ends early",
        });
    }
    Ok(())
}

/// A PAX `mtime` record: decimal seconds, optionally negative, with an optional fraction.
fn parse_pax_time(value: &[u8]) -> Option<Timespec> {
    let text = std::str::from_utf8(value).ok()?;
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (seconds, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.bytes().all(|byte| byte.is_ascii_digit());
    if seconds.is_empty() || !all_digits(seconds) || !all_digits(fraction) {
        return None;
    }
    let seconds: i64 = seconds.parse().ok()?;
    let mut nanos: i64 = 0;
    for (place, digit) in (0..9u32).rev().zip(fraction.bytes()) {
        nanos += i64::from(digit - b'0') * 10i64.pow(place);
    }
    let (tv_sec, nanos) = match (negative, nanos) {
        (false, nanos) => (seconds, nanos),
        (true, 0) => (-seconds, 0),
        (true, nanos) => (-seconds - 1, 1_000_000_000 - nanos),
    };
    Some(Timespec {
        tv_sec,
        tv_nsec: nanos as _,
    })
}

/// A uid or gid as it is, if it is one chown(2) accepts.
fn plain_id(id: u64) -> Option<u32> {
    u32::try_from(id).ok().filter(|id| *id != u32::MAX)
}

fn name_error(problem: NameProblem, path: PathBuf, max_path_len: usize) -> UnpackError {
    match problem {
        NameProblem::Empty => UnpackError::EmptyName,
        NameProblem::Nul => UnpackError::NulInName { path },
        NameProblem::TooLong => UnpackError::NameTooLong {
            path,
            limit: max_path_len,
        },
        NameProblem::Absolute => UnpackError::AbsolutePath { path },
        NameProblem::Traversal => UnpackError::PathTraversal { path },
    }
}

impl<'o> Extractor<'o> {
    fn new(root: OwnedFd, opts: &'o UnpackOptions, form: Form) -> Self {
        Extractor {
            opts,
            form,
            root: Rc::new(root),
            root_owner: root_owner(&opts.ownership),
            cache: None,
            layer: HashMap::new(),
            deferred: Vec::new(),
            metadata_bytes: 0,
            written_bytes: 0,
            buffer: vec![0; 64 * 1024],
            report: UnpackReport::default(),
        }
    }

    fn entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        counters: &Counters,
    ) -> Result<(), UnpackError> {
        self.report.entries += 1;
        if self.report.entries > self.opts.max_entries {
            return Err(UnpackError::TooManyEntries {
                limit: self.opts.max_entries,
            });
        }
        let raw = entry.path_bytes().into_owned();
        let path = name::display(&raw);
        let entry_type = entry.header().entry_type();
        if entry_type.is_pax_global_extensions() {
            self.skip(path)?;
            return drain(entry, counters, self.opts);
        }
        let key = name::normalize(&raw, self.opts.max_path_len)
            .map_err(|problem| name_error(problem, path.clone(), self.opts.max_path_len))?;
        let meaning = name::meaning(&key).map_err(|problem| match problem {
            WhiteoutProblem::Invalid => UnpackError::InvalidWhiteout { path: path.clone() },
            WhiteoutProblem::Traversal => UnpackError::PathTraversal { path: path.clone() },
        })?;
        if meaning == Meaning::AufsMetadata {
            self.skip(path)?;
            return drain(entry, counters, self.opts);
        }
        let meta = self.meta(entry, path)?;
        match meaning {
            Meaning::Whiteout { parent, name } => {
                self.claim_marker(&key, &meta.path)?;
                self.whiteout(parent, name, &meta)?;
            }
            Meaning::Opaque { dir } => {
                self.claim_marker(&key, &meta.path)?;
                self.opaque(dir, &meta.path)?;
            }
            Meaning::Plain | Meaning::AufsMetadata => {
                return self.plain(entry, &raw, &key, &meta, counters);
            }
        }
        drain(entry, counters, self.opts)
    }

    /// An ordinary entry, by type.
    fn plain<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        raw: &[u8],
        key: &[u8],
        meta: &Meta,
        counters: &Counters,
    ) -> Result<(), UnpackError> {
        let entry_type = entry.header().entry_type();
        // Before POSIX, a directory was a regular entry whose name ends with '/'.
        let old_style_directory = entry.header().as_old().linkflag[0] == 0 && raw.ends_with(b"/");
        if entry_type.is_dir() || old_style_directory {
            self.directory(key, meta)?;
        } else if entry_type.is_file() || entry_type.is_contiguous() || entry_type.is_gnu_sparse() {
            return self.file(entry, key, meta, counters);
        } else if entry_type.is_symlink() {
            let target = entry
                .link_name_bytes()
                .map(Cow::into_owned)
                .unwrap_or_default();
            self.symlink(key, meta, &target)?;
        } else if entry_type.is_hard_link() {
            let target = entry
                .link_name_bytes()
                .map(Cow::into_owned)
                .unwrap_or_default();
            self.hard_link(key, meta, &target)?;
        } else if entry_type.is_fifo() {
            self.fifo(key, meta)?;
        } else if entry_type.is_character_special() || entry_type.is_block_special() {
            let header = entry.header();
            let major = header.device_major().map_err(malformed)?.unwrap_or(0);
            let minor = header.device_minor().map_err(malformed)?.unwrap_or(0);
            self.device(key, meta, major, minor)?;
        } else {
            return Err(UnpackError::UnsupportedEntry {
                path: meta.path.clone(),
                kind: format!("tar type {:?}", char::from(entry_type.as_byte())),
            });
        }
        drain(entry, counters, self.opts)
    }

    /// Reads and checks an entry's attributes.
    fn meta<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        path: PathBuf,
    ) -> Result<Meta, UnpackError> {
        let header = entry.header();
        let mode = header.mode().map_err(malformed)? & 0o7777;
        let uid = header.uid().map_err(malformed)?;
        let gid = header.gid().map_err(malformed)?;
        let mut mtime = i64::try_from(header.mtime().map_err(malformed)?)
            .ok()
            .map(|tv_sec| Timespec { tv_sec, tv_nsec: 0 });
        let mut xattrs = Vec::new();
        let mut unreadable_xattrs = Vec::new();
        if let Some(extensions) = entry.pax_extensions().map_err(malformed)? {
            for extension in extensions {
                let extension = extension.map_err(malformed)?;
                let (key, value) = (extension.key_bytes(), extension.value_bytes());
                if let Some(name) = key.strip_prefix(b"SCHILYXATTR.") {
                    if xattr::is_reserved(name) {
                        return Err(UnpackError::ReservedXattr {
                            path,
                            name: String::from_utf8_lossy(name).into_owned(),
                        });
                    }
                    xattrs.push((name.to_vec(), value.to_vec()));
                } else if let Some(name) = key.strip_prefix(b"LIBARCHIVE.xattr.") {
                    unreadable_xattrs.push(name.to_vec());
                } else if key == b"mtime" {
                    mtime = parse_pax_time(value).or(mtime);
                } else if key.starts_with(b"GNU.sparse.") {
                    return Err(UnpackError::UnsupportedEntry {
                        path,
                        kind: "PAX-format sparse file".to_owned(),
                    });
                }
            }
        }
        let owner = self.owner(uid, gid, &path)?;
        Ok(Meta {
            path,
            mode,
            owner,
            mtime,
            xattrs,
            unreadable_xattrs,
        })
    }

    fn owner(&self, uid: u64, gid: u64, path: &Path) -> Result<Option<(Uid, Gid)>, UnpackError> {
        let (host_uid, host_gid) = match &self.opts.ownership {
            Ownership::Ignore => return Ok(None),
            Ownership::Preserve => (plain_id(uid), plain_id(gid)),
            Ownership::Shift(shift) => (shift.uid(uid), shift.gid(gid)),
        };
        let out_of_range = |kind, id| UnpackError::IdOutOfRange {
            path: path.to_owned(),
            kind,
            id,
        };
        let host_uid = host_uid.ok_or_else(|| out_of_range("uid", uid))?;
        let host_gid = host_gid.ok_or_else(|| out_of_range("gid", gid))?;
        Ok(Some((Uid::from_raw(host_uid), Gid::from_raw(host_gid))))
    }

    /// Charges `bytes` of remembered names against `max_metadata_bytes`.
    fn charge(&mut self, bytes: usize) -> Result<(), UnpackError> {
        self.metadata_bytes += bytes as u64 + ENTRY_OVERHEAD;
        if self.metadata_bytes > self.opts.max_metadata_bytes {
            return Err(UnpackError::TooMuchMetadata {
                limit: self.opts.max_metadata_bytes,
            });
        }
        Ok(())
    }

    fn record(&mut self, key: &[u8], kind: Kind) -> Result<(), UnpackError> {
        if let Some(existing) = self.layer.get_mut(key) {
            *existing = kind;
            return Ok(());
        }
        self.charge(key.len())?;
        self.layer.insert(key.to_vec(), kind);
        Ok(())
    }

    fn skip(&mut self, path: PathBuf) -> Result<(), UnpackError> {
        self.charge(path.as_os_str().len())?;
        self.report.skipped.push(path);
        Ok(())
    }

    fn claim_marker(&mut self, key: &[u8], path: &Path) -> Result<(), UnpackError> {
        if self.layer.contains_key(key) {
            return Err(UnpackError::DuplicateEntry {
                path: path.to_owned(),
            });
        }
        self.record(key, Kind::Marker)
    }

    /// Opens the directory `key`, one component at a time, never following a symlink. A
    /// missing component is created (as a directory of this layer owned by container root)
    /// when `create`; otherwise a missing component gives `Ok(None)`. `path` names the entry
    /// being extracted, for errors.
    fn walk(
        &mut self,
        key: &[u8],
        path: &Path,
        create: bool,
    ) -> Result<Option<Rc<OwnedFd>>, UnpackError> {
        if key.is_empty() {
            return Ok(Some(Rc::clone(&self.root)));
        }
        if let Some((cached, fd)) = &self.cache {
            if cached.as_slice() == key {
                return Ok(Some(Rc::clone(fd)));
            }
        }
        let mut current = Rc::clone(&self.root);
        let mut end = 0;
        for component in key.split(|byte| *byte == b'/') {
            end = if end == 0 {
                component.len()
            } else {
                end + 1 + component.len()
            };
            let prefix = &key[..end];
            let next = match open_dir_at(current.as_fd(), component) {
                Ok(fd) => fd,
                Err(Errno::NOENT) if create => {
                    self.implicit_directory(current.as_fd(), component, prefix)?
                }
                Err(Errno::NOENT) => return Ok(None),
                Err(Errno::LOOP | Errno::NOTDIR) => {
                    let stat = lstat_at(current.as_fd(), component)
                        .map_err(write_error("inspect", prefix))?;
                    let found = stat.as_ref().map(file_type);
                    if found == Some(FileType::Symlink) {
                        return Err(UnpackError::ThroughSymlink {
                            path: path.to_owned(),
                            symlink: name::display(prefix),
                        });
                    }
                    if !(create && self.layer.get(prefix) == Some(&Kind::Whiteout)) {
                        return Err(UnpackError::ParentNotDirectory {
                            path: path.to_owned(),
                            parent: name::display(prefix),
                        });
                    }
                    // This layer whited the name out and now puts entries below it: it becomes
                    // a directory of this layer, opaque so the lower one stays hidden.
                    rustix::fs::unlinkat(current.as_fd(), component, AtFlags::empty())
                        .map_err(write_error("replace whiteout", prefix))?;
                    let fd = self.implicit_directory(current.as_fd(), component, prefix)?;
                    self.set_opaque(fd.as_fd(), prefix)?;
                    fd
                }
                Err(errno) => return Err(write_error("open directory", prefix)(errno)),
            };
            current = Rc::new(next);
        }
        self.cache = Some((key.to_vec(), Rc::clone(&current)));
        Ok(Some(current))
    }

    fn walk_create(&mut self, key: &[u8], path: &Path) -> Result<Rc<OwnedFd>, UnpackError> {
        self.walk(key, path, true)?
            .ok_or_else(|| write_error("create directory", key)(Errno::NOENT))
    }

    fn implicit_directory(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        key: &[u8],
    ) -> Result<OwnedFd, UnpackError> {
        rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o755))
            .map_err(write_error("create directory", key))?;
        let fd = open_dir_at(parent, name).map_err(write_error("open directory", key))?;
        if let Some((uid, gid)) = self.root_owner {
            rustix::fs::fchown(&fd, Some(uid), Some(gid)).map_err(write_error("chown", key))?;
        }
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o755)).map_err(write_error("chmod", key))?;
        self.record(key, Kind::ImplicitDirectory)?;
        Ok(fd)
    }

    /// Makes `name` in `parent` ready for a new entry of `kind` at `key`: refuses a second
    /// entry for a name this layer already used, and replaces what earlier layers (or this
    /// layer's own whiteout) left there, as the OCI image spec says: an existing directory is
    /// kept for a directory entry, anything else is removed first. The flag says whether a new
    /// directory must be opaque (it replaces this layer's whiteout).
    fn slot(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        key: &[u8],
        path: &Path,
        kind: Kind,
    ) -> Result<(Slot, bool), UnpackError> {
        match self.layer.get(key).copied() {
            None => {}
            Some(Kind::ImplicitDirectory) if kind == Kind::Directory => {
                return Ok((Slot::ExistingDirectory, false));
            }
            Some(Kind::ImplicitDirectory) => {
                return Err(UnpackError::ReplacesDirectory {
                    path: path.to_owned(),
                });
            }
            Some(Kind::Whiteout) => {
                rustix::fs::unlinkat(parent, name, AtFlags::empty())
                    .map_err(write_error("replace whiteout", key))?;
                return Ok((Slot::Fresh, kind == Kind::Directory));
            }
            Some(_) => {
                return Err(UnpackError::DuplicateEntry {
                    path: path.to_owned(),
                })
            }
        }
        match lstat_at(parent, name).map_err(write_error("inspect", key))? {
            None => Ok((Slot::Fresh, false)),
            Some(stat) if kind == Kind::Directory && file_type(&stat) == FileType::Directory => {
                Ok((Slot::ExistingDirectory, false))
            }
            Some(_) => {
                self.cache = None;
                remove_all_at(parent, name).map_err(write_error("replace", key))?;
                Ok((Slot::Fresh, false))
            }
        }
    }

    /// The parent directory and last component of a non-directory entry, its slot prepared.
    fn prepare<'k>(
        &mut self,
        key: &'k [u8],
        path: &Path,
        kind: Kind,
    ) -> Result<(Rc<OwnedFd>, &'k [u8]), UnpackError> {
        if key.is_empty() {
            return Err(UnpackError::ReplacesDirectory {
                path: path.to_owned(),
            });
        }
        let (parent_key, name) = name::split_last(key);
        let parent = self.walk_create(parent_key, path)?;
        self.slot(parent.as_fd(), name, key, path, kind)?;
        Ok((parent, name))
    }

    fn directory(&mut self, key: &[u8], meta: &Meta) -> Result<(), UnpackError> {
        let fd = if key.is_empty() {
            if self.layer.contains_key(key) {
                return Err(UnpackError::DuplicateEntry {
                    path: meta.path.clone(),
                });
            }
            self.record(key, Kind::Directory)?;
            Rc::clone(&self.root)
        } else {
            let (parent_key, name) = name::split_last(key);
            let parent = self.walk_create(parent_key, &meta.path)?;
            let (slot, opaque) =
                self.slot(parent.as_fd(), name, key, &meta.path, Kind::Directory)?;
            if slot == Slot::Fresh {
                rustix::fs::mkdirat(parent.as_fd(), name, Mode::from_raw_mode(0o700))
                    .map_err(write_error("create directory", key))?;
            }
            let fd =
                open_dir_at(parent.as_fd(), name).map_err(write_error("open directory", key))?;
            self.record(key, Kind::Directory)?;
            if opaque {
                self.set_opaque(fd.as_fd(), key)?;
            }
            Rc::new(fd)
        };
        if let Some((uid, gid)) = meta.owner {
            rustix::fs::fchown(&*fd, Some(uid), Some(gid)).map_err(write_error("chown", key))?;
        }
        self.write_xattrs(Some(fd.as_fd()), Holder::Directory, meta)?;
        // The mode and mtime wait until the children exist: creating them would change the
        // mtime, and a read-only mode would stop an unprivileged unpack from creating them.
        self.charge(key.len())?;
        self.deferred.push(Deferred {
            key: key.to_vec(),
            mode: meta.mode,
            mtime: meta.mtime,
        });
        Ok(())
    }

    fn file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        key: &[u8],
        meta: &Meta,
        counters: &Counters,
    ) -> Result<(), UnpackError> {
        let (parent, name) = self.prepare(key, &meta.path, Kind::File)?;
        let fd = rustix::fs::openat(
            parent.as_fd(),
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(write_error("create file", key))?;
        self.record(key, Kind::File)?;
        let mut file = File::from(fd);
        let expected = entry.size();
        let mut copied = 0u64;
        loop {
            let read = match entry.read(&mut self.buffer) {
                Ok(0) => break,
                Ok(read) => read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(counters.classify(error, self.opts)),
            };
            copied += read as u64;
            self.written_bytes += read as u64;
            if self.written_bytes > self.opts.max_total_bytes {
                return Err(UnpackError::TooLarge {
                    limit: self.opts.max_total_bytes,
                });
            }
            file.write_all(&self.buffer[..read])
                .map_err(|source| UnpackError::Write {
                    operation: "write",
                    path: meta.path.clone(),
                    source,
                })?;
        }
        if copied < expected {
            return Err(UnpackError::Truncated {
                detail: "an entry's data ends early",
            });
        }
        // chown(2) clears setuid bits and file capabilities, so it goes first.
        if let Some((uid, gid)) = meta.owner {
            rustix::fs::fchown(&file, Some(uid), Some(gid)).map_err(write_error("chown", key))?;
        }
        let mode = self.permitted_mode(meta)?;
        rustix::fs::fchmod(&file, mode).map_err(write_error("chmod", key))?;
        self.write_xattrs(Some(file.as_fd()), Holder::File, meta)?;
        if let Some(mtime) = meta.mtime {
            rustix::fs::futimens(&file, &times(mtime)).map_err(write_error("set times of", key))?;
        }
        Ok(())
    }

    fn symlink(&mut self, key: &[u8], meta: &Meta, target: &[u8]) -> Result<(), UnpackError> {
        if target.is_empty() {
            return Err(UnpackError::UnsupportedEntry {
                path: meta.path.clone(),
                kind: "symlink without a target".to_owned(),
            });
        }
        if target.contains(&0) {
            return Err(UnpackError::NulInName {
                path: meta.path.clone(),
            });
        }
        let limit = self.opts.max_path_len.min(SYMLINK_MAX);
        if target.len() > limit {
            return Err(UnpackError::NameTooLong {
                path: meta.path.clone(),
                limit,
            });
        }
        // The target is stored as it is and never followed here: inside the container it
        // resolves against the container's root.
        let (parent, name) = self.prepare(key, &meta.path, Kind::Symlink)?;
        rustix::fs::symlinkat(target, parent.as_fd(), name)
            .map_err(write_error("create symlink", key))?;
        self.record(key, Kind::Symlink)?;
        self.settle_at(parent.as_fd(), name, key, meta, None)
    }

    fn fifo(&mut self, key: &[u8], meta: &Meta) -> Result<(), UnpackError> {
        let (parent, name) = self.prepare(key, &meta.path, Kind::Fifo)?;
        let mode = self.permitted_mode(meta)?;
        rustix::fs::mknodat(parent.as_fd(), name, FileType::Fifo, mode, 0)
            .map_err(write_error("create fifo", key))?;
        self.record(key, Kind::Fifo)?;
        self.settle_at(parent.as_fd(), name, key, meta, Some(mode))
    }

    /// Owner, mode (without the umask), xattrs and mtime of a symlink or FIFO just created.
    fn settle_at(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        key: &[u8],
        meta: &Meta,
        mode: Option<Mode>,
    ) -> Result<(), UnpackError> {
        if let Some((uid, gid)) = meta.owner {
            rustix::fs::chownat(
                parent,
                name,
                Some(uid),
                Some(gid),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(write_error("chown", key))?;
        }
        if let Some(mode) = mode {
            // fchmodat has no working AT_SYMLINK_NOFOLLOW; the name is the FIFO this call
            // just created in a directory only this extraction writes to.
            rustix::fs::chmodat(parent, name, mode, AtFlags::empty())
                .map_err(write_error("chmod", key))?;
        }
        self.write_xattrs(None, Holder::Other, meta)?;
        if let Some(mtime) = meta.mtime {
            rustix::fs::utimensat(parent, name, &times(mtime), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(write_error("set times of", key))?;
        }
        Ok(())
    }

    fn hard_link(&mut self, key: &[u8], meta: &Meta, target: &[u8]) -> Result<(), UnpackError> {
        let refuse = |problem| UnpackError::HardLink {
            path: meta.path.clone(),
            target: name::display(target),
            problem,
        };
        let target_key = match name::normalize(target, self.opts.max_path_len) {
            Ok(target_key) => target_key,
            Err(NameProblem::Absolute) => return Err(refuse(HardLinkProblem::Absolute)),
            Err(NameProblem::Traversal) => return Err(refuse(HardLinkProblem::Traversal)),
            Err(NameProblem::Empty) => return Err(refuse(HardLinkProblem::NotInLayer)),
            Err(problem) => {
                return Err(name_error(
                    problem,
                    meta.path.clone(),
                    self.opts.max_path_len,
                ))
            }
        };
        let kind = match self.layer.get(&target_key).copied() {
            Some(kind @ (Kind::File | Kind::Fifo)) => kind,
            Some(Kind::Directory | Kind::ImplicitDirectory | Kind::Symlink) => {
                return Err(refuse(HardLinkProblem::NotAFile));
            }
            _ => return Err(refuse(HardLinkProblem::NotInLayer)),
        };
        let (source_parent_key, source_name) = name::split_last(&target_key);
        let source_parent = self
            .walk(source_parent_key, &meta.path, false)?
            .ok_or_else(|| refuse(HardLinkProblem::NotInLayer))?;
        let (parent, name) = self.prepare(key, &meta.path, kind)?;
        // Without AT_SYMLINK_FOLLOW: links the inode at the name itself, which is a regular
        // file or FIFO of this layer.
        rustix::fs::linkat(
            source_parent.as_fd(),
            source_name,
            parent.as_fd(),
            name,
            AtFlags::empty(),
        )
        .map_err(write_error("hard link", key))?;
        self.record(key, kind)
    }

    fn device(
        &mut self,
        key: &[u8],
        meta: &Meta,
        major: u32,
        minor: u32,
    ) -> Result<(), UnpackError> {
        if self.opts.devices == super::DevicePolicy::Refuse {
            return Err(UnpackError::DeviceNode {
                path: meta.path.clone(),
                major,
                minor,
            });
        }
        match self.layer.get(key) {
            None => {}
            Some(kind) if kind.is_directory() => {
                return Err(UnpackError::ReplacesDirectory {
                    path: meta.path.clone(),
                });
            }
            Some(_) => {
                return Err(UnpackError::DuplicateEntry {
                    path: meta.path.clone(),
                })
            }
        }
        self.record(key, Kind::Dropped)?;
        self.charge(meta.path.as_os_str().len())?;
        tracing::debug!(path = ?meta.path, major, minor, "device node dropped from layer");
        self.report.dropped_devices.push(meta.path.clone());
        Ok(())
    }

    /// `parent/.wh.name`: hides `name` of the lower layers.
    fn whiteout(&mut self, parent_key: &[u8], name: &[u8], meta: &Meta) -> Result<(), UnpackError> {
        let target = name::join(parent_key, name);
        self.report.whiteouts += 1;
        // A whiteout only hides lower layers, never an entry of its own layer (OCI image spec).
        // If this layer brings its own directory there, the lower one must not show through.
        match self.layer.get(&target).copied() {
            Some(kind) if kind.is_directory() => {
                let dir = self.walk_create(&target, &meta.path)?;
                return self.set_opaque(dir.as_fd(), &target);
            }
            Some(_) => return Ok(()),
            None => {}
        }
        match self.form {
            Form::Overlay => {
                let parent = self.walk_create(parent_key, &meta.path)?;
                rustix::fs::mknodat(
                    parent.as_fd(),
                    name,
                    FileType::CharacterDevice,
                    Mode::empty(),
                    rustix::fs::makedev(0, 0),
                )
                .map_err(write_error("create whiteout", &target))?;
                self.record(&target, Kind::Whiteout)?;
                if let Some((uid, gid)) = meta.owner {
                    rustix::fs::chownat(
                        parent.as_fd(),
                        name,
                        Some(uid),
                        Some(gid),
                        AtFlags::SYMLINK_NOFOLLOW,
                    )
                    .map_err(write_error("chown", &target))?;
                }
                Ok(())
            }
            Form::Flatten => {
                let Some(parent) = self.walk(parent_key, &meta.path, false)? else {
                    return Ok(());
                };
                self.cache = None;
                remove_all_at(parent.as_fd(), name).map_err(write_error("remove", &target))
            }
        }
    }

    /// `dir/.wh..wh..opq`: hides everything lower layers have in `dir`.
    fn opaque(&mut self, dir: &[u8], path: &Path) -> Result<(), UnpackError> {
        let fd = self.walk_create(dir, path)?;
        self.report.opaque_directories += 1;
        self.set_opaque(fd.as_fd(), dir)
    }

    fn set_opaque(&mut self, dir: BorrowedFd<'_>, key: &[u8]) -> Result<(), UnpackError> {
        match self.form {
            Form::Overlay => rustix::fs::fsetxattr(
                dir,
                self.opts.overlay_xattrs.opaque(),
                b"y",
                XattrFlags::empty(),
            )
            .map_err(write_error("mark opaque", key)),
            Form::Flatten => self.prune(dir, key),
        }
    }

    /// Removes everything under `dir` that this layer did not create.
    fn prune(&mut self, dir: BorrowedFd<'_>, key: &[u8]) -> Result<(), UnpackError> {
        self.cache = None;
        for child in list_dir(dir).map_err(write_error("list", key))? {
            let child_key = name::join(key, &child);
            match self.layer.get(&child_key).copied() {
                Some(kind) if kind.is_directory() => {
                    let sub = open_dir_at(dir, &child)
                        .map_err(write_error("open directory", &child_key))?;
                    self.prune(sub.as_fd(), &child_key)?;
                }
                Some(Kind::File | Kind::Fifo | Kind::Symlink) => {}
                _ => remove_all_at(dir, &child).map_err(write_error("remove", &child_key))?,
            }
        }
        Ok(())
    }

    /// The entry's mode with setuid and setgid cleared unless allowed (and reported).
    fn permitted_mode(&mut self, meta: &Meta) -> Result<Mode, UnpackError> {
        let mut mode = meta.mode;
        if mode & 0o6000 != 0 && !self.opts.allow_setuid {
            mode &= !0o6000;
            self.charge(meta.path.as_os_str().len())?;
            tracing::debug!(path = ?meta.path, "setuid/setgid bits cleared");
            self.report.dropped_setuid.push(meta.path.clone());
        }
        Ok(Mode::from_raw_mode(mode))
    }

    /// Writes the xattrs policy keeps (to `fd`, if the inode can hold them) and reports the
    /// others.
    fn write_xattrs(
        &mut self,
        fd: Option<BorrowedFd<'_>>,
        holder: Holder,
        meta: &Meta,
    ) -> Result<(), UnpackError> {
        for name in &meta.unreadable_xattrs {
            self.drop_xattr(meta, name, "libarchive-encoded xattrs are not read")?;
        }
        for (name, value) in &meta.xattrs {
            let reason = match (xattr::decide(name, value, holder, self.opts), fd) {
                (Decision::Write(value), Some(fd)) => {
                    match rustix::fs::fsetxattr(fd, name.as_slice(), &value, XattrFlags::empty()) {
                        Ok(()) => continue,
                        Err(_) => "the filesystem refused it",
                    }
                }
                (Decision::Write(_), None) => "this entry type cannot hold it",
                (Decision::Drop(reason), _) => reason,
            };
            self.drop_xattr(meta, name, reason)?;
        }
        Ok(())
    }

    fn drop_xattr(
        &mut self,
        meta: &Meta,
        name: &[u8],
        reason: &'static str,
    ) -> Result<(), UnpackError> {
        self.charge(meta.path.as_os_str().len() + name.len())?;
        let name = String::from_utf8_lossy(name).into_owned();
        tracing::debug!(path = ?meta.path, name, reason, "xattr dropped");
        self.report.dropped_xattrs.push(super::DroppedXattr {
            path: meta.path.clone(),
            name,
            reason,
        });
        Ok(())
    }

    /// Sets the directories' modes and mtimes, deepest last-created first.
    fn finish(&mut self) -> Result<(), UnpackError> {
        let deferred = std::mem::take(&mut self.deferred);
        for dir in deferred.iter().rev() {
            let path = name::display(&dir.key);
            let Some(fd) = self.walk(&dir.key, &path, false)? else {
                continue;
            };
            rustix::fs::fchmod(&*fd, Mode::from_raw_mode(dir.mode))
                .map_err(write_error("chmod", &dir.key))?;
            if let Some(mtime) = dir.mtime {
                rustix::fs::futimens(&*fd, &times(mtime))
                    .map_err(write_error("set times of", &dir.key))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times_parse_with_fractions_and_signs() {
        let parse = |text: &str| parse_pax_time(text.as_bytes());
        let at = |tv_sec, tv_nsec| Some(Timespec { tv_sec, tv_nsec });
        assert_eq!(parse("1700000000"), at(1_700_000_000, 0));
        assert_eq!(parse("1700000000.5"), at(1_700_000_000, 500_000_000));
        assert_eq!(parse("1.123456789999"), at(1, 123_456_789));
        assert_eq!(parse("-1.5"), at(-2, 500_000_000));
        assert_eq!(parse("-3"), at(-3, 0));
        assert_eq!(parse(""), None);
        assert_eq!(parse("1e9"), None);
        assert_eq!(parse(".5"), None);
    }

    #[test]
    fn plain_ids_exclude_the_unchanged_marker() {
        assert_eq!(plain_id(0), Some(0));
        assert_eq!(plain_id(u64::from(u32::MAX)), None);
        assert_eq!(plain_id(1 << 40), None);
    }
}
