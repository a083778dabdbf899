//! The receiving end of `--console-socket`: whoever wants a container's terminal (the
//! engine's monitor for `palisade run -t`, or `palisade-runtime run`/`exec` in the foreground
//! without a socket of its own) listens here, and the container's process sends its pty
//! master (as runc does for conmon). [`RawTerminal`] puts our own terminal in raw mode while
//! its bytes are copied.
//!
//! The socket lives in a fresh private directory under the temporary directory (a unix
//! socket path must fit in 108 bytes, which container directories under a store may not);
//! the directory goes when the console does.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};

/// A listening console socket.
#[derive(Debug)]
pub struct ConsoleSocket {
    dir: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    /// Listens on a new socket in a private directory (mode 0700).
    pub fn new(name: &str) -> io::Result<Self> {
        let short: String = name.chars().take(12).collect();
        let dir =
            std::env::temp_dir().join(format!("palisade-console-{short}-{}", std::process::id()));
        // A leftover of a monitor that died with the same pid: it is ours to replace.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        match UnixListener::bind(dir.join("console.sock")) {
            Ok(listener) => Ok(Self { dir, listener }),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    /// The path to hand the runtime as `--console-socket`.
    pub fn path(&self) -> PathBuf {
        self.dir.join("console.sock")
    }

    /// Receives the pty master the container's process sent, waiting up to `timeout` for it
    /// to connect (after a successful `create` it already has).
    pub fn receive(&self, timeout: Duration) -> io::Result<OwnedFd> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let millis = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        let ready = loop {
            let mut fds = [PollFd::new(self.listener.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(millis)) {
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
                Ok(n) => break n > 0,
            }
        };
        if !ready {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the container's process did not connect to the console socket",
            ));
        }
        let (stream, _) = self.listener.accept()?;
        let mut buf = [0u8; 4096];
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        rustix::net::recvmsg(
            &stream,
            &mut [io::IoSliceMut::new(&mut buf)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        )?;
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(mut fds) = message {
                if let Some(fd) = fds.next() {
                    return Ok(fd);
                }
            }
        }
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the runtime sent no terminal on the console socket",
        ))
    }

    /// The socket's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Our standard input's terminal in raw mode until dropped (nothing when it is not a
/// terminal), so keys and output pass through the container's pty untranslated. The engine's
/// `run -t` holds it until the last output is copied, after the runtime restored the mode it
/// found, so that output is not translated again either.
#[derive(Debug)]
pub struct RawTerminal {
    original: Option<nix::sys::termios::Termios>,
}

impl RawTerminal {
    /// Puts standard input's terminal in raw mode.
    pub fn enter() -> Self {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        let stdin = io::stdin();
        let Ok(original) = tcgetattr(&stdin) else {
            return Self { original: None };
        };
        let mut raw = original.clone();
        cfmakeraw(&mut raw);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &raw);
        Self {
            original: Some(original),
        }
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        if let Some(original) = &self.original {
            let _ = nix::sys::termios::tcsetattr(
                io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                original,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};

    #[test]
    fn a_sent_descriptor_is_received_and_the_directory_removed() {
        let console = ConsoleSocket::new("test").unwrap();
        let client = std::os::unix::net::UnixStream::connect(console.path()).unwrap();
        let file = std::fs::File::open("/dev/null").unwrap();
        let fds = [file.as_fd()];
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        assert!(control.push(SendAncillaryMessage::ScmRights(&fds)));
        rustix::net::sendmsg(
            &client,
            &[io::IoSlice::new(b"/dev/pts/0")],
            &mut control,
            SendFlags::empty(),
        )
        .unwrap();
        let received = console.receive(Duration::from_secs(5)).unwrap();
        let meta = std::fs::metadata(format!("/proc/self/fd/{}", {
            use std::os::fd::AsRawFd;
            received.as_raw_fd()
        }))
        .unwrap();
        assert!(std::os::unix::fs::FileTypeExt::is_char_device(
            &meta.file_type()
        ));
        let dir = console.dir().to_path_buf();
        drop(console);
        assert!(!dir.exists());
    }

    #[test]
    fn nothing_sent_is_an_error_not_a_hang() {
        let console = ConsoleSocket::new("empty").unwrap();
        assert!(console.receive(Duration::from_millis(100)).is_err());
    }
}
