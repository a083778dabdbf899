//! Typed messages between the runtime and the processes it forks while building a container.
//!
//! A `SOCK_SEQPACKET` socket pair keeps message boundaries, so each message is one JSON datagram.
//! If the other side dies, `recv` returns end-of-file instead of hanging.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType};
use serde::{Deserialize, Serialize};

use crate::error::{Result, RuntimeError};

/// Every message that crosses the channel.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) enum Message {
    /// Parent → child: the child is in its cgroup and may proceed.
    Proceed,
    /// Child → parent: a new user namespace exists; write the id maps of this pid.
    WriteIdMaps { pid: i32 },
    /// Parent → child: the id maps are written.
    IdMapsWritten,
    /// Intermediate → parent: the host pid of the container's process.
    ContainerPid { pid: i32 },
    /// Init → parent: namespaces and mounts exist, run prestart and createRuntime hooks.
    RunRuntimeHooks,
    /// Parent → init: those hooks succeeded; `pid` is the init's pid as the host sees it.
    RuntimeHooksDone { pid: i32 },
    /// Init → parent: the container is fully set up and waits for `start`.
    Ready,
    /// Any stage → parent: setup failed.
    Failed { message: String },
}

/// One end of the channel.
#[derive(Debug)]
pub(crate) struct Channel {
    fd: OwnedFd,
}

impl Channel {
    /// A connected pair; both ends are close-on-exec so they never reach the user process.
    pub(crate) fn pair() -> Result<(Channel, Channel)> {
        let (a, b) = socket::socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| RuntimeError::sys("socketpair", e))?;
        Ok((Channel { fd: a }, Channel { fd: b }))
    }

    pub(crate) fn send(&self, message: &Message) -> Result<()> {
        let bytes = serde_json::to_vec(message)
            .map_err(|e| RuntimeError::sys("encode message", std::io::Error::other(e)))?;
        socket::send(self.fd.as_raw_fd(), &bytes, MsgFlags::MSG_NOSIGNAL)
            .map_err(|e| RuntimeError::sys("send on setup channel", e))?;
        Ok(())
    }

    /// Receives one message; a closed peer is reported as `Failed`.
    pub(crate) fn recv(&self) -> Result<Message> {
        let mut buf = vec![0u8; 64 * 1024];
        let n = loop {
            match socket::recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Ok(n) => break n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(RuntimeError::sys("receive on setup channel", e)),
            }
        };
        if n == 0 {
            return Ok(Message::Failed {
                message: "the container process exited during setup".into(),
            });
        }
        serde_json::from_slice(&buf[..n])
            .map_err(|e| RuntimeError::sys("decode message", std::io::Error::other(e)))
    }

    /// Receives a message and fails unless it is `expected`.
    pub(crate) fn expect(&self, expected: &Message) -> Result<()> {
        match self.recv()? {
            ref got if got == expected => Ok(()),
            Message::Failed { message } => Err(RuntimeError::Init(message)),
            other => Err(RuntimeError::Init(format!(
                "protocol error: expected {expected:?}, got {other:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_eof_is_failure() {
        let (a, b) = Channel::pair().unwrap();
        a.send(&Message::ContainerPid { pid: 42 }).unwrap();
        assert_eq!(b.recv().unwrap(), Message::ContainerPid { pid: 42 });
        a.send(&Message::Failed {
            message: "boom".into(),
        })
        .unwrap();
        assert!(matches!(b.expect(&Message::Ready), Err(RuntimeError::Init(m)) if m == "boom"));
        drop(a);
        assert!(matches!(b.recv().unwrap(), Message::Failed { .. }));
    }
}
