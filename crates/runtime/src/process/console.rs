//! The container's terminal: a pty from the container's own devpts, its master handed to
//! whoever listens on `--console-socket`, its slave made stdio and /dev/console.

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use oci_spec::runtime::Box as ConsoleSize;
use rustix::fs::{Mode, OFlags, ResolveFlags};

use crate::error::{Result, RuntimeError};
use crate::rootfs::resolve::{fd_path, RootDir, TargetKind};

/// Opens a new pty pair from `<rootfs>/dev/pts/ptmx` (or the host's /dev/ptmx when `root` is
/// `None`), makes the slave the controlling terminal and stdio of this process, binds it over
/// /dev/console, and sends the master to `socket`.
pub(crate) fn setup(
    root: Option<&RootDir>,
    socket: &OwnedFd,
    size: Option<ConsoleSize>,
) -> Result<()> {
    let master = match root {
        Some(root) => open_in(root, Path::new("/dev/pts/ptmx"))?,
        None => rustix::fs::open(
            "/dev/ptmx",
            OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| RuntimeError::io("open", "/dev/ptmx", e.into()))?,
    };
    rustix::pty::unlockpt(&master)
        .map_err(|e| RuntimeError::sys("unlockpt", std::io::Error::from(e)))?;
    let name = rustix::pty::ptsname(&master, Vec::new())
        .map_err(|e| RuntimeError::sys("ptsname", std::io::Error::from(e)))?;
    let name = PathBuf::from(std::ffi::OsStr::from_bytes(name.as_bytes()));
    let slave = match root {
        Some(root) => open_in(root, &name)?,
        None => rustix::fs::open(
            &name,
            OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| RuntimeError::io("open", &name, e.into()))?,
    };
    if let Some(size) = size {
        let winsize = rustix::termios::Winsize {
            ws_row: u16::try_from(size.height()).unwrap_or(u16::MAX),
            ws_col: u16::try_from(size.width()).unwrap_or(u16::MAX),
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        rustix::termios::tcsetwinsize(&slave, winsize)
            .map_err(|e| RuntimeError::sys("set console size", std::io::Error::from(e)))?;
    }
    if let Some(root) = root {
        let console = root.open_or_create(Path::new("/dev/console"), TargetKind::File)?;
        mount(
            Some(&fd_path(&slave)),
            &fd_path(&console),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| RuntimeError::sys("bind the pty over /dev/console", e))?;
    }
    // We are a session leader without a terminal: opening the slave again without NOCTTY
    // makes it our controlling terminal.
    let ctty = rustix::fs::open(
        fd_path(&slave),
        OFlags::RDWR | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        RuntimeError::sys(
            "open pty slave as controlling terminal",
            std::io::Error::from(e),
        )
    })?;
    for target in 0..=2 {
        dup_onto(&ctty, target)?;
    }
    send_fd(socket, &master, name.to_string_lossy().as_bytes())
}

fn open_in(root: &RootDir, inside: &Path) -> Result<OwnedFd> {
    rustix::fs::openat2(
        root_fd(root)?,
        crate::rootfs::resolve::relative(inside),
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT,
    )
    .map_err(|e| RuntimeError::io("open", root.display(inside), e.into()))
}

fn root_fd(root: &RootDir) -> Result<OwnedFd> {
    root.open_path(Path::new("/"))
        .map_err(|e| RuntimeError::io("open rootfs", root.path(), e))
}

fn dup_onto(fd: &OwnedFd, target: RawFd) -> Result<()> {
    nix::unistd::dup2(fd.as_raw_fd(), target)
        .map_err(|e| RuntimeError::sys(format!("dup2 onto {target}"), e))?;
    Ok(())
}

/// Sends `fd` over a connected unix socket with `name` as the payload (runc sends the pty name).
pub(crate) fn send_fd(socket: &OwnedFd, fd: &impl AsFd, name: &[u8]) -> Result<()> {
    let fds = [fd.as_fd().as_raw_fd()];
    let iov = [IoSlice::new(name)];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    sendmsg::<()>(socket.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)
        .map_err(|e| RuntimeError::sys("send the console to --console-socket", e))?;
    Ok(())
}
