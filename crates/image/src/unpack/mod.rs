//! Safe extraction of OCI and Docker image layers (THREATS.md row 6).
//!
//! A layer is a tar stream, gzip- or zstd-compressed or plain (detected from its first bytes).
//! Two forms of extraction:
//!
//! - [`unpack_layer`] extracts one layer into an empty directory as an overlayfs lower
//!   directory: whiteouts (`.wh.<name>`) become `0:0` character devices and opaque markers
//!   (`.wh..wh..opq`) the `trusted.overlay.opaque=y` (or `user.overlay.opaque=y`, see
//!   [`OverlayXattrs`]) xattr. The engine unpacks every layer once, read-only, and stacks them.
//!   [`unpack_layer_atomic`] does the same into a fresh temporary directory next to the final
//!   one and renames it into place only on success.
//! - [`apply_layer`] and [`apply_layers`] flatten layers into one directory: whiteouts and
//!   opaque markers delete what lower layers put there.
//!
//! # What a layer cannot do
//!
//! Everything is created relative to the target's descriptor, one component at a time with
//! `O_NOFOLLOW` (see `extract.rs`), so nothing is ever written outside the target:
//!
//! - names that are absolute ([`UnpackError::AbsolutePath`]) or contain `..`
//!   ([`UnpackError::PathTraversal`]) are refused, as are NUL bytes and over-long names;
//! - an entry below a symlink is refused ([`UnpackError::ThroughSymlink`]), whoever created
//!   the symlink: it is never followed, not even to a place inside the target;
//! - a hard link must name a regular file (or FIFO) extracted earlier from the same layer
//!   ([`UnpackError::HardLink`]);
//! - a name may appear once per layer ([`UnpackError::DuplicateEntry`]); a non-directory may
//!   not replace a directory the same layer filled ([`UnpackError::ReplacesDirectory`]); across
//!   layers, the OCI rule applies (a directory merges into a directory, anything else replaces);
//! - device nodes are dropped or refused ([`DevicePolicy`]); setuid/setgid bits and file
//!   capabilities are dropped unless allowed; overlayfs's own xattrs are refused
//!   ([`UnpackError::ReservedXattr`]); everything dropped is listed in the [`UnpackReport`];
//! - the uncompressed size, the bytes written, the number of entries, the size of one entry's
//!   headers, the memory kept per layer and the compression ratio are all limited
//!   ([`UnpackOptions`]);
//! - a stream cut short anywhere (compressed data, entry data, missing end-of-archive marker)
//!   is [`UnpackError::Truncated`].
//!
//! Names need not be UTF-8: they are kept as bytes.
//!
//! # Failure leaves a partial directory
//!
//! When [`unpack_layer`] or [`apply_layer`] fails, the target holds whatever was extracted
//! before the failure (never anything outside it). Callers extract into a fresh temporary
//! directory and rename it into place on success, which is what [`unpack_layer_atomic`] does;
//! a failed flattening must be discarded as a whole.

mod error;
mod extract;
mod fs;
mod name;
mod options;
mod report;
mod stream;
mod xattr;

use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::fs::{Mode, RenameFlags};
use rustix::io::Errno;

pub use error::{HardLinkProblem, UnpackError};
pub use options::{DevicePolicy, IdShift, OverlayXattrs, Ownership, UnpackOptions};
pub use report::{Compression, DroppedXattr, UnpackReport};

use extract::Form;

/// Extracts one layer into `target`, an existing empty directory, as an overlayfs lower
/// directory.
///
/// On error `target` holds a partial extraction; see [`unpack_layer_atomic`].
pub fn unpack_layer<R: Read>(
    reader: R,
    target: &Path,
    opts: &UnpackOptions,
) -> Result<UnpackReport, UnpackError> {
    validate(opts)?;
    let root = open_target(target)?;
    let not_empty = !fs::list_dir(root.as_fd())
        .map_err(|errno| open_error(target, errno.into()))?
        .is_empty();
    if not_empty {
        return Err(UnpackError::TargetNotEmpty {
            path: target.to_owned(),
        });
    }
    extract::run(reader, root, opts, Form::Overlay)
}

/// Extracts one layer as [`unpack_layer`] does, into a new directory `final_dir` that appears
/// only when the whole layer is extracted and synced.
///
/// The layer goes into a temporary directory beside `final_dir` (same filesystem), which is
/// synced, then renamed to `final_dir` (failing with [`UnpackError::TargetExists`] if another
/// process got there first), or removed on failure. The new directory is mode 0755, owned by
/// container root (mapped by the [`Ownership`]) unless the layer has an entry for `./`.
pub fn unpack_layer_atomic<R: Read>(
    reader: R,
    final_dir: &Path,
    opts: &UnpackOptions,
) -> Result<UnpackReport, UnpackError> {
    validate(opts)?;
    let name = final_dir.file_name().ok_or_else(|| {
        open_error(
            final_dir,
            io::Error::new(io::ErrorKind::InvalidInput, "no final component"),
        )
    })?;
    let parent = match final_dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let parent_fd = open_target(parent)?;
    let name = name.as_bytes();
    let exists = fs::lstat_at(parent_fd.as_fd(), name)
        .map_err(|errno| open_error(final_dir, errno.into()))?
        .is_some();
    if exists {
        return Err(UnpackError::TargetExists {
            path: final_dir.to_owned(),
        });
    }
    let (temp_name, temp_fd) = create_temp_dir(parent_fd.as_fd(), name, parent, opts)?;
    let result = extract::run(reader, temp_fd, opts, Form::Overlay).and_then(|report| {
        publish(parent_fd.as_fd(), &temp_name, name, final_dir).map(|()| report)
    });
    result.map_err(
        |error| match fs::remove_all_at(parent_fd.as_fd(), &temp_name) {
            Ok(()) => error,
            Err(errno) => UnpackError::Cleanup {
                error: Box::new(error),
                path: parent.join(name::display(&temp_name)),
                cleanup: errno.into(),
            },
        },
    )
}

/// Applies one layer on top of the tree in `target` (flattened form): entries replace or merge
/// per the OCI image spec, whiteouts and opaque markers delete.
///
/// On error `target` is left partly changed and must be discarded.
pub fn apply_layer<R: Read>(
    reader: R,
    target: &Path,
    opts: &UnpackOptions,
) -> Result<UnpackReport, UnpackError> {
    validate(opts)?;
    let root = open_target(target)?;
    extract::run(reader, root, opts, Form::Flatten)
}

/// Applies layers in order, lowest first, into `target` (see [`apply_layer`]). A failure is
/// [`UnpackError::Layer`] with the failing layer's index.
pub fn apply_layers<I, R>(
    layers: I,
    target: &Path,
    opts: &UnpackOptions,
) -> Result<Vec<UnpackReport>, UnpackError>
where
    I: IntoIterator<Item = R>,
    R: Read,
{
    layers
        .into_iter()
        .enumerate()
        .map(|(index, layer)| {
            apply_layer(layer, target, opts).map_err(|error| UnpackError::Layer {
                index,
                source: Box::new(error),
            })
        })
        .collect()
}

fn validate(opts: &UnpackOptions) -> Result<(), UnpackError> {
    let reason = if opts.max_path_len == 0 {
        "max_path_len is 0"
    } else if opts.max_compression_ratio == Some(0) {
        "max_compression_ratio is 0"
    } else if matches!(opts.ownership, Ownership::Shift(_))
        && extract::root_owner(&opts.ownership).is_none()
    {
        "the id shift does not map container root"
    } else {
        return Ok(());
    };
    Err(UnpackError::InvalidOptions { reason })
}

fn open_error(path: &Path, source: io::Error) -> UnpackError {
    UnpackError::OpenTarget {
        path: path.to_owned(),
        source,
    }
}

fn open_target(path: &Path) -> Result<OwnedFd, UnpackError> {
    fs::open_dir(path).map_err(|source| open_error(path, source))
}

/// Creates `.<name>.unpack-<pid>-<nanos>-<n>` in `parent`, mode 0755, owned by container root.
fn create_temp_dir(
    parent: BorrowedFd<'_>,
    name: &[u8],
    parent_path: &Path,
    opts: &UnpackOptions,
) -> Result<(Vec<u8>, OwnedFd), UnpackError> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |now| now.subsec_nanos());
    let short_name = &name[..name.len().min(name::NAME_MAX - 64)];
    let mut attempt = 0u32;
    loop {
        let mut temp = b".".to_vec();
        temp.extend_from_slice(short_name);
        temp.extend_from_slice(
            format!(".unpack-{}-{nanos}-{attempt}", std::process::id()).as_bytes(),
        );
        let temp_path = parent_path.join(name::display(&temp));
        match rustix::fs::mkdirat(parent, temp.as_slice(), Mode::from_raw_mode(0o700)) {
            Ok(()) => {}
            Err(Errno::EXIST) if attempt < 100 => {
                attempt += 1;
                continue;
            }
            Err(errno) => return Err(open_error(&temp_path, errno.into())),
        }
        let setup = || -> Result<OwnedFd, Errno> {
            let fd = fs::open_dir_at(parent, &temp)?;
            if let Some((uid, gid)) = extract::root_owner(&opts.ownership) {
                rustix::fs::fchown(&fd, Some(uid), Some(gid))?;
            }
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o755))?;
            Ok(fd)
        };
        return match setup() {
            Ok(fd) => Ok((temp, fd)),
            Err(errno) => {
                let error = open_error(&temp_path, errno.into());
                match fs::remove_all_at(parent, &temp) {
                    Ok(()) => Err(error),
                    Err(cleanup) => Err(UnpackError::Cleanup {
                        error: Box::new(error),
                        path: temp_path,
                        cleanup: cleanup.into(),
                    }),
                }
            }
        };
    }
}

/// Syncs the extracted tree and renames it to its final name, refusing to replace anything.
fn publish(
    parent: BorrowedFd<'_>,
    temp: &[u8],
    name: &[u8],
    final_dir: &Path,
) -> Result<(), UnpackError> {
    let failed = |operation| {
        move |errno: Errno| UnpackError::Write {
            operation,
            path: final_dir.to_owned(),
            source: errno.into(),
        }
    };
    rustix::fs::syncfs(parent).map_err(failed("sync"))?;
    match rustix::fs::renameat_with(parent, temp, parent, name, RenameFlags::NOREPLACE) {
        Ok(()) => {}
        Err(Errno::EXIST | Errno::NOTEMPTY) => {
            return Err(UnpackError::TargetExists {
                path: final_dir.to_owned(),
            });
        }
        Err(errno) => return Err(failed("rename into place")(errno)),
    }
    rustix::fs::fsync(parent).map_err(failed("sync the parent of"))
}
