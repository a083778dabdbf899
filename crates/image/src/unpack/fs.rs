//! Filesystem steps relative to a directory descriptor, none of which follows a symlink.
//!
//! Every name passed here is a single component (no `/`, never `..`), so an operation on
//! `(dirfd, name)` can only touch `name` inside `dirfd`.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

/// Opens the directory `name` in `dirfd`; fails with `ELOOP` or `ENOTDIR` if it is a symlink
/// or not a directory.
pub(super) fn open_dir_at(dirfd: BorrowedFd<'_>, name: &[u8]) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        dirfd,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Opens a directory the caller names (its own path; symlinks in it are the caller's).
pub(super) fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        rustix::fs::CWD,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// `lstat` of `name` in `dirfd`, `None` if it does not exist.
pub(super) fn lstat_at(dirfd: BorrowedFd<'_>, name: &[u8]) -> Result<Option<Stat>, Errno> {
    match rustix::fs::statat(dirfd, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => Ok(Some(stat)),
        Err(Errno::NOENT) => Ok(None),
        Err(errno) => Err(errno),
    }
}

/// The type of the inode `stat` describes.
pub(super) fn file_type(stat: &Stat) -> FileType {
    FileType::from_raw_mode(stat.st_mode)
}

/// The names in a directory, without `.` and `..`.
pub(super) fn list_dir(fd: BorrowedFd<'_>) -> Result<Vec<Vec<u8>>, Errno> {
    let mut names = Vec::new();
    for entry in Dir::read_from(fd)? {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(name);
        }
    }
    Ok(names)
}

/// Removes `name` from `dirfd`, and everything under it if it is a directory. Symlinks are
/// removed, never followed.
pub(super) fn remove_all_at(dirfd: BorrowedFd<'_>, name: &[u8]) -> Result<(), Errno> {
    let Some(stat) = lstat_at(dirfd, name)? else {
        return Ok(());
    };
    if file_type(&stat) != FileType::Directory {
        return rustix::fs::unlinkat(dirfd, name, AtFlags::empty());
    }
    let dir = open_dir_at(dirfd, name)?;
    for child in list_dir(dir.as_fd())? {
        remove_all_at(dir.as_fd(), &child)?;
    }
    drop(dir);
    rustix::fs::unlinkat(dirfd, name, AtFlags::REMOVEDIR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn remove_all_never_follows_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), "x").unwrap();
        let tree = tmp.path().join("tree");
        std::fs::create_dir_all(tree.join("a/b")).unwrap();
        std::fs::write(tree.join("a/b/file"), "x").unwrap();
        symlink(&outside, tree.join("a/link")).unwrap();
        symlink(&outside, tree.join("a/b/link")).unwrap();

        let root = open_dir(tmp.path()).unwrap();
        remove_all_at(root.as_fd(), b"tree").unwrap();
        assert!(!tree.exists());
        assert!(outside.join("keep").exists());
        remove_all_at(root.as_fd(), b"missing").unwrap();
    }

    #[test]
    fn open_dir_at_refuses_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("dir")).unwrap();
        symlink("dir", tmp.path().join("link")).unwrap();
        let root = open_dir(tmp.path()).unwrap();
        assert!(open_dir_at(root.as_fd(), b"dir").is_ok());
        let err = open_dir_at(root.as_fd(), b"link").unwrap_err();
        assert!(err == Errno::LOOP || err == Errno::NOTDIR, "{err:?}");
        assert_eq!(list_dir(root.as_fd()).unwrap().len(), 2);
    }
}
