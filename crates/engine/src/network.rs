//! `--network none`: the container gets a network namespace of its own whose only interface
//! is loopback, and loopback is up (as with Docker), so local servers and clients inside work
//! while nothing reaches the host or the neighbours (THREATS.md row 8).
//!
//! The runtime creates the namespace with loopback down. A `createRuntime` hook, run by the
//! runtime after the namespaces exist and before the user's program starts, calls
//! [`bring_up_loopback`] with the init's pid: a thread joins the container's network
//! namespace (only that thread: network namespaces are per thread) and sends one netlink
//! `RTM_NEWLINK` request setting `IFF_UP` on interface 1, which is loopback in every network
//! namespace. No `ip` binary, no `unsafe`.

use std::fs::File;
use std::io;

use nix::sched::CloneFlags;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketType};

/// Loopback's interface index in every network namespace.
const LOOPBACK_INDEX: i32 = 1;
const RTM_NEWLINK: u16 = 16;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const IFF_UP: u32 = 0x1;

/// Failure to bring up a container's loopback interface.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// The namespace could not be joined or the request not sent.
    #[error("failed to {operation} for the loopback interface of process {pid}")]
    Setup {
        /// What was being done.
        operation: &'static str,
        /// The container's init.
        pid: i32,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The kernel refused the request.
    #[error("the kernel refused to bring up loopback in process {pid}'s network namespace")]
    Refused {
        /// The container's init.
        pid: i32,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },
}

/// The `RTM_NEWLINK` request: a netlink header and an `ifinfomsg`, native endian.
fn loopback_up_request(sequence: u32) -> Vec<u8> {
    let mut message = Vec::with_capacity(32);
    message.extend_from_slice(&32u32.to_ne_bytes()); // nlmsg_len
    message.extend_from_slice(&RTM_NEWLINK.to_ne_bytes()); // nlmsg_type
    message.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes()); // nlmsg_flags
    message.extend_from_slice(&sequence.to_ne_bytes()); // nlmsg_seq
    message.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: the kernel
    message.push(0); // ifi_family: AF_UNSPEC
    message.push(0); // padding
    message.extend_from_slice(&0u16.to_ne_bytes()); // ifi_type
    message.extend_from_slice(&LOOPBACK_INDEX.to_ne_bytes()); // ifi_index
    message.extend_from_slice(&IFF_UP.to_ne_bytes()); // ifi_flags
    message.extend_from_slice(&IFF_UP.to_ne_bytes()); // ifi_change: only IFF_UP
    message
}

/// The error code of the kernel's acknowledgement (0 for success), or `None` if `reply` is
/// not an acknowledgement of `sequence`.
fn ack_error(reply: &[u8], sequence: u32) -> Option<i32> {
    let u16_at = |at: usize| Some(u16::from_ne_bytes(reply.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_ne_bytes(reply.get(at..at + 4)?.try_into().ok()?));
    let i32_at = |at: usize| Some(i32::from_ne_bytes(reply.get(at..at + 4)?.try_into().ok()?));
    if u16_at(4)? != NLMSG_ERROR || u32_at(8)? != sequence {
        return None;
    }
    i32_at(16)
}

/// Brings up loopback in the network namespace of process `pid`.
pub fn bring_up_loopback(pid: i32) -> Result<(), NetworkError> {
    let setup = move |operation| {
        move |source: io::Error| NetworkError::Setup {
            operation,
            pid,
            source,
        }
    };
    let namespace =
        File::open(format!("/proc/{pid}/ns/net")).map_err(setup("open the network namespace"))?;
    // A thread of its own: setns(CLONE_NEWNET) changes only the calling thread, and this one
    // ends right after.
    let worker = std::thread::Builder::new()
        .name("loopback".into())
        .spawn(move || -> Result<(), NetworkError> {
            nix::sched::setns(&namespace, CloneFlags::CLONE_NEWNET)
                .map_err(|e| setup("join the network namespace")(e.into()))?;
            let socket = rustix::net::socket(
                AddressFamily::NETLINK,
                SocketType::RAW,
                // Protocol 0 is NETLINK_ROUTE.
                None,
            )
            .map_err(|e| setup("open a netlink socket")(e.into()))?;
            let sequence = 1;
            rustix::net::send(&socket, &loopback_up_request(sequence), SendFlags::empty())
                .map_err(|e| setup("send the netlink request")(e.into()))?;
            let mut reply = [0u8; 4096];
            loop {
                let (n, _) = rustix::net::recv(&socket, &mut reply, RecvFlags::empty())
                    .map_err(|e| setup("read the netlink reply")(e.into()))?;
                match ack_error(&reply[..n], sequence) {
                    None => continue,
                    Some(0) => return Ok(()),
                    Some(code) => {
                        return Err(NetworkError::Refused {
                            pid,
                            source: io::Error::from_raw_os_error(code.saturating_neg()),
                        })
                    }
                }
            }
        })
        .map_err(setup("start a thread"))?;
    worker.join().unwrap_or_else(|_| {
        Err(NetworkError::Setup {
            operation: "finish",
            pid,
            source: io::Error::other("the loopback thread panicked"),
        })
    })
}

/// The `pid` in the OCI state a hook reads on its stdin.
pub fn pid_from_hook_state(state: &[u8]) -> Option<i32> {
    let value: serde_json::Value = serde_json::from_slice(state).ok()?;
    i32::try_from(value.get("pid")?.as_i64()?)
        .ok()
        .filter(|p| *p > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_a_32_byte_newlink_for_interface_one() {
        let message = loopback_up_request(7);
        assert_eq!(message.len(), 32);
        assert_eq!(u32::from_ne_bytes(message[0..4].try_into().unwrap()), 32);
        assert_eq!(
            u16::from_ne_bytes(message[4..6].try_into().unwrap()),
            RTM_NEWLINK
        );
        assert_eq!(i32::from_ne_bytes(message[20..24].try_into().unwrap()), 1);
        let mut ack = vec![0u8; 36];
        ack[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        ack[8..12].copy_from_slice(&7u32.to_ne_bytes());
        assert_eq!(ack_error(&ack, 7), Some(0));
        assert_eq!(ack_error(&ack, 8), None);
        ack[16..20].copy_from_slice(&(-1i32).to_ne_bytes());
        assert_eq!(ack_error(&ack, 7), Some(-1));
        assert_eq!(ack_error(&ack[..10], 7), None);
    }

    #[test]
    fn hook_state_gives_the_pid() {
        assert_eq!(
            pid_from_hook_state(br#"{"ociVersion":"1.2.0","id":"x","pid":42}"#),
            Some(42)
        );
        assert_eq!(pid_from_hook_state(br#"{"pid":0}"#), None);
        assert_eq!(pid_from_hook_state(b"junk"), None);
    }

    #[test]
    fn loopback_comes_up_in_a_new_network_namespace() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIP: needs root to create a network namespace");
            return;
        }
        // A child in a new network namespace, waiting on a pipe.
        let mut child = std::process::Command::new("unshare")
            .args(["--net", "sleep", "5"])
            .spawn()
            .unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        // Wait until unshare has exec'd sleep in the new namespace.
        let own = std::fs::read_link("/proc/self/ns/net").unwrap();
        for _ in 0..100 {
            let theirs = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok();
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if theirs.is_some_and(|t| t != own) && comm.trim() == "sleep" {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        bring_up_loopback(pid).unwrap();
        let shown = std::process::Command::new("nsenter")
            .args([
                "-t",
                &pid.to_string(),
                "-n",
                "ip",
                "-o",
                "link",
                "show",
                "lo",
            ])
            .output();
        let _ = child.kill();
        let _ = child.wait();
        match shown {
            Ok(out) if out.status.success() => {
                let text = String::from_utf8_lossy(&out.stdout);
                assert!(text.contains(",UP") || text.contains("<UP"), "{text}");
            }
            _ => eprintln!("SKIP: nsenter or ip is missing; cannot look at the result"),
        }
    }
}
