//! The seccomp agent: denied dangerous syscalls reach the audit log.
//!
//! The hardened profile refuses a set of dangerous syscalls outright (mount, kexec_load,
//! init_module, bpf, ptrace, keyctl, setns, ...: its unconditional `SCMP_ACT_ERRNO` rules).
//! For containers the engine runs, [`route_denials`] turns exactly those rules into
//! `SCMP_ACT_NOTIFY` with a `listenerPath`; the runtime then hands the filter's listener to the
//! container's monitor, whose [`Agent`] answers every notification with `EPERM` (what the
//! profile would have answered) and records a `seccomp_violation` per container and syscall,
//! aggregated per second with a count. Works without auditd or kernel logging.
//!
//! If the agent is gone, the kernel fails the notified syscalls with `ENOSYS`: still refused.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use oci_spec::runtime::{LinuxSeccompAction, Spec};
use palisade_audit::{Actor, Decision, Event};
use palisade_sys::seccomp::{receive_notification, respond, NotificationResponse};

/// Where agents listen (short: a socket path has at most 107 bytes).
pub const AGENT_DIR: &str = "/run/palisade-seccomp";
/// How often counts are written to the log.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// The socket the agent of container `id` listens on.
pub fn listener_path(id: &str) -> PathBuf {
    let short: String = id.chars().take(32).collect();
    Path::new(AGENT_DIR).join(format!("{short}.sock"))
}

/// Turns the profile's unconditional denials (`SCMP_ACT_ERRNO` rules without argument
/// conditions) into `SCMP_ACT_NOTIFY` for the agent at `path`. Returns the syscall names
/// routed; nothing changes when the config has no seccomp profile or no such rule.
pub fn route_denials(spec: &mut Spec, path: &Path) -> Vec<String> {
    let Some(seccomp) = spec
        .linux_mut()
        .as_mut()
        .and_then(|linux| linux.seccomp_mut().as_mut())
    else {
        return Vec::new();
    };
    let mut routed = Vec::new();
    let mut rules = seccomp.syscalls().clone().unwrap_or_default();
    {
        for rule in rules.iter_mut() {
            let unconditional = rule.args().as_ref().is_none_or(Vec::is_empty);
            let eperm = rule.errno_ret().is_none_or(|errno| errno == 1);
            if rule.action() == LinuxSeccompAction::ScmpActErrno && unconditional && eperm {
                rule.set_action(LinuxSeccompAction::ScmpActNotify);
                rule.set_errno_ret(None);
                routed.extend(rule.names().iter().cloned());
            }
        }
    }
    if !routed.is_empty() {
        seccomp.set_syscalls(Some(rules));
        seccomp.set_listener_path(Some(path.to_path_buf()));
    }
    routed
}

/// A running agent; [`Agent::stop`] flushes its counts and joins it.
#[derive(Debug)]
pub struct Agent {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    path: PathBuf,
}

impl Agent {
    /// Listens at `path` (replacing a stale socket) and records into the log at `audit_log`.
    pub fn start(path: &Path, audit_log: &Path, container_id: &str) -> io::Result<Agent> {
        if let Some(parent) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)?;
        }
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path)?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            listener,
            stop: Arc::clone(&stop),
            audit_log: audit_log.to_path_buf(),
            container_id: container_id.to_owned(),
        };
        // The thread must never take a signal meant for the monitor (which forwards them to
        // the container): it starts with every signal blocked, inherited from this mask.
        use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow};
        let mut previous = SigSet::empty();
        pthread_sigmask(
            SigmaskHow::SIG_BLOCK,
            Some(&SigSet::all()),
            Some(&mut previous),
        )
        .map_err(io::Error::from)?;
        let spawned = std::thread::Builder::new()
            .name("seccomp-agent".into())
            .spawn(move || worker.run());
        pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&previous), None).map_err(io::Error::from)?;
        let thread = spawned?;
        Ok(Agent {
            stop,
            thread: Some(thread),
            path: path.to_path_buf(),
        })
    }

    /// Stops listening, writes what was counted, and waits for the thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Denials of one syscall since the last flush.
#[derive(Debug, Default)]
struct Tally {
    count: u64,
    pid: u32,
}

struct Worker {
    listener: UnixListener,
    stop: Arc<AtomicBool>,
    audit_log: PathBuf,
    container_id: String,
}

impl Worker {
    fn run(self) {
        let mut listeners: Vec<OwnedFd> = Vec::new();
        let mut tallies: BTreeMap<i32, Tally> = BTreeMap::new();
        let mut last_flush = Instant::now();
        loop {
            let stopping = self.stop.load(Ordering::SeqCst);
            while let Ok((stream, _)) = self.listener.accept() {
                match receive_listener(&stream) {
                    Ok(fd) => listeners.push(fd),
                    Err(error) => tracing::warn!(%error, "seccomp agent: no listener received"),
                }
            }
            self.serve(&mut listeners, &mut tallies);
            if stopping || last_flush.elapsed() >= FLUSH_INTERVAL {
                self.flush(&mut tallies);
                last_flush = Instant::now();
            }
            if stopping {
                return;
            }
        }
    }

    /// Waits up to 100 ms for notifications and answers them.
    fn serve(&self, listeners: &mut Vec<OwnedFd>, tallies: &mut BTreeMap<i32, Tally>) {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        if listeners.is_empty() {
            std::thread::sleep(Duration::from_millis(100));
            return;
        }
        let ready: Vec<(bool, bool)> = {
            let mut fds: Vec<PollFd<'_>> = listeners
                .iter()
                .map(|fd| PollFd::new(fd.as_fd(), PollFlags::POLLIN))
                .collect();
            if poll(&mut fds, PollTimeout::from(100u16)).is_err() {
                return;
            }
            fds.iter()
                .map(|fd| {
                    let events = fd.revents().unwrap_or(PollFlags::empty());
                    (
                        events.contains(PollFlags::POLLIN),
                        events.intersects(PollFlags::POLLHUP | PollFlags::POLLERR),
                    )
                })
                .collect()
        };
        let mut gone = Vec::new();
        for (index, (readable, hung_up)) in ready.into_iter().enumerate() {
            if readable {
                let fd = listeners[index].as_fd();
                match receive_notification(fd) {
                    Ok(note) => {
                        // The profile's answer: EPERM.
                        let _ = respond(fd, note.id, NotificationResponse::Fail(libc_eperm()));
                        let tally = tallies.entry(note.nr).or_default();
                        tally.count += 1;
                        tally.pid = note.pid;
                    }
                    Err(error) if error.raw_os_error() == Some(2) => {}
                    Err(_) => gone.push(index),
                }
            } else if hung_up {
                gone.push(index);
            }
        }
        for index in gone.into_iter().rev() {
            listeners.remove(index);
        }
    }

    fn flush(&self, tallies: &mut BTreeMap<i32, Tally>) {
        if tallies.is_empty() {
            return;
        }
        let mut log = match crate::audit::open_log(&self.audit_log) {
            Ok(log) => log,
            Err(error) => {
                tracing::warn!(%error, "seccomp agent: cannot open the audit log");
                return;
            }
        };
        for (nr, tally) in std::mem::take(tallies) {
            let name = u32::try_from(nr)
                .ok()
                .and_then(|nr| syscalls::Sysno::new(nr as usize))
                .map(|sysno| sysno.name().to_owned());
            let comm = std::fs::read_to_string(format!("/proc/{}/comm", tally.pid))
                .map(|comm| comm.trim().to_owned())
                .unwrap_or_default();
            let event = Event::SeccompViolation {
                actor: Actor::process(tally.pid, comm),
                container_id: Some(self.container_id.clone()),
                syscall_number: u32::try_from(nr).unwrap_or(u32::MAX),
                syscall: name,
                arch: std::env::consts::ARCH.to_owned(),
                action: "notify_errno".to_owned(),
                decision: Decision::Deny,
                count: Some(tally.count),
            };
            if let Err(error) = log.append(event) {
                tracing::warn!(%error, "seccomp agent: failed to record a denial");
            }
        }
    }
}

const fn libc_eperm() -> i32 {
    1
}

/// Reads the runtime's message on `stream`: the container state as JSON and the filter's
/// listener as SCM_RIGHTS.
fn receive_listener(stream: &UnixStream) -> io::Result<OwnedFd> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buffer = vec![0u8; 16 * 1024];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    rustix::net::recvmsg(
        stream,
        &mut [io::IoSliceMut::new(&mut buffer)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    let mut received = None;
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = message {
            received = received.or_else(|| fds.next());
        }
    }
    received.ok_or_else(|| io::Error::other("the runtime sent no seccomp listener"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unconditional_denials_are_routed_to_the_agent() {
        let mut spec = palisade_runtime::spec::hardened(false).unwrap();
        let path = listener_path(&"ab".repeat(32));
        assert!(path.as_os_str().len() < 100);
        let routed = route_denials(&mut spec, &path);
        for name in [
            "mount",
            "kexec_load",
            "init_module",
            "bpf",
            "ptrace",
            "keyctl",
            "setns",
        ] {
            assert!(
                routed.iter().any(|n| n == name),
                "{name} not routed: {routed:?}"
            );
        }
        assert!(!routed.iter().any(|n| n == "unshare" || n == "read"));
        let seccomp = spec.linux().as_ref().unwrap().seccomp().as_ref().unwrap();
        assert_eq!(seccomp.listener_path().as_deref(), Some(path.as_path()));
        assert_eq!(seccomp.default_action(), LinuxSeccompAction::ScmpActErrno);
        // The runtime's compiler accepts the result.
        palisade_seccomp::compile(seccomp).unwrap();
        // No profile, nothing routed.
        let mut bare = Spec::default();
        assert!(route_denials(&mut bare, &path).is_empty());
    }
}
