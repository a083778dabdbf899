//! The runtime side of starting a process in a container: fork, namespaces, id maps, cgroup,
//! hooks, and the handshake with the container's process until it is ready.
//!
//! ```text
//!  runtime ──fork──▶ intermediate: join namespaces by path, unshare user ns (runtime writes
//!     │                 the id maps), unshare the rest, fork ──▶ container process (pid 1 of
//!     │                 its pid ns for `create`), then exit
//!     ◀──── ContainerPid, RunRuntimeHooks, Ready | Failed ────────────┘
//! ```
//! The intermediate exists because a new pid namespace only applies to children.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxIdMapping, Spec};
use palisade_sys::process::{fork, Forked};

use super::channel::{Channel, Message};
use super::init::{self, ContainerProcess};
use crate::error::{Result, RuntimeError};
use crate::namespaces;

/// Called between "namespaces exist" and "pivot_root" (prestart and createRuntime hooks).
pub(crate) type RuntimeHooks<'a> = &'a mut dyn FnMut(i32) -> Result<()>;

/// Everything the runtime decides before forking.
#[derive(Debug)]
pub(crate) struct LaunchRequest<'a> {
    pub(crate) spec: &'a Spec,
    /// Namespaces to join by path, already opened.
    pub(crate) join: Vec<(CloneFlags, OwnedFd)>,
    /// Namespaces to create.
    pub(crate) new: CloneFlags,
    /// Create a user namespace with the config's mappings.
    pub(crate) new_user: bool,
    /// Host cgroup.procs files... the manager adds the intermediate to the cgroup.
    pub(crate) cgroup: Option<&'a palisade_cgroups::CgroupManager>,
    /// What the container process does.
    pub(crate) process: ContainerProcess<'a>,
}

/// What a successful launch yields.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Launched {
    pub(crate) pid: Pid,
}

/// Forks the container's process and drives it until it reports `Ready`. On failure every
/// process it started is killed and reaped before the error is returned.
pub(crate) fn launch(req: LaunchRequest<'_>, hooks: RuntimeHooks<'_>) -> Result<Launched> {
    let (ours, theirs) = Channel::pair()?;
    // The forked processes carry host descriptors and the host binary until they exec: keep
    // the container from ptracing them or opening their /proc/<pid>/{exe,fd} (CVE-2019-5736).
    // A rootless runtime stays dumpable until the id maps are written: a non-dumpable child's
    // /proc files belong to root, so we could not write its uid_map; the child turns itself
    // non-dumpable right after.
    if nix::unistd::geteuid().is_root() {
        palisade_sys::process::set_dumpable(false)
            .map_err(|e| RuntimeError::sys("PR_SET_DUMPABLE", e))?;
    }
    let intermediate = match fork().map_err(|e| RuntimeError::sys("fork", e))? {
        Forked::Child => {
            drop(ours);
            let code = match intermediate_main(&req, &theirs) {
                Ok(()) => 0,
                Err(e) => {
                    let _ = theirs.send(&Message::Failed {
                        message: error_chain(&e),
                    });
                    1
                }
            };
            palisade_sys::process::exit_immediately(code)
        }
        Forked::Parent(pid) => pid,
    };
    drop(theirs);
    let mut container: Option<Pid> = None;
    let result = drive(&req, &ours, intermediate, &mut container, hooks);
    if result.is_err() {
        if let Some(pid) = container {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
        let _ = kill(intermediate, Signal::SIGKILL);
    }
    let _ = waitpid(intermediate, None);
    result
}

fn drive(
    req: &LaunchRequest<'_>,
    chan: &Channel,
    intermediate: Pid,
    container: &mut Option<Pid>,
    hooks: RuntimeHooks<'_>,
) -> Result<Launched> {
    if let Some(cgroup) = req.cgroup {
        cgroup.add_process(intermediate.as_raw())?;
    }
    chan.send(&Message::Proceed)?;
    // The intermediate and the container process share the channel, so the container's
    // first message may overtake the intermediate's `ContainerPid`: park it until the pid
    // is known.
    let mut parked: Option<Message> = None;
    loop {
        let message = match (&container, parked.take()) {
            (Some(_), Some(message)) => message,
            (_, parked_message) => {
                parked = parked_message;
                chan.recv()?
            }
        };
        match message {
            Message::WriteIdMaps { pid } => {
                write_id_maps(req.spec, pid)?;
                chan.send(&Message::IdMapsWritten)?;
            }
            Message::ContainerPid { pid } => {
                let pid = Pid::from_raw(pid);
                *container = Some(pid);
                if let Some(adj) = req.process.process.oom_score_adj() {
                    std::fs::write(format!("/proc/{pid}/oom_score_adj"), adj.to_string()).map_err(
                        |e| RuntimeError::io("set oom_score_adj of", format!("/proc/{pid}"), e),
                    )?;
                }
            }
            message @ (Message::RunRuntimeHooks | Message::Ready) if container.is_none() => {
                if parked.replace(message).is_some() {
                    return Err(RuntimeError::Init(
                        "protocol error: two messages before the pid".into(),
                    ));
                }
            }
            Message::RunRuntimeHooks => {
                let pid = container.ok_or_else(|| {
                    RuntimeError::Init("hooks requested before the pid was known".into())
                })?;
                hooks(pid.as_raw())?;
                chan.send(&Message::RuntimeHooksDone { pid: pid.as_raw() })?;
            }
            Message::Ready => {
                let pid = container
                    .ok_or_else(|| RuntimeError::Init("ready before the pid was known".into()))?;
                return Ok(Launched { pid });
            }
            Message::Failed { message } => return Err(RuntimeError::Init(message)),
            other => {
                return Err(RuntimeError::Init(format!(
                    "protocol error: unexpected {other:?}"
                )))
            }
        }
    }
}

fn intermediate_main(req: &LaunchRequest<'_>, chan: &Channel) -> Result<()> {
    chan.expect(&Message::Proceed)?;
    namespaces::join_all(&req.join)?;
    if req.new_user {
        unshare(CloneFlags::CLONE_NEWUSER)
            .map_err(|e| RuntimeError::sys("create user namespace", e))?;
        chan.send(&Message::WriteIdMaps {
            pid: nix::unistd::getpid().as_raw(),
        })?;
        chan.expect(&Message::IdMapsWritten)?;
        become_root_if_mapped()?;
    }
    palisade_sys::process::set_dumpable(false)
        .map_err(|e| RuntimeError::sys("PR_SET_DUMPABLE", e))?;
    if !req.new.is_empty() {
        unshare(req.new)
            .map_err(|e| RuntimeError::sys(format!("create namespaces {:?}", req.new), e))?;
    }
    if req
        .new
        .contains(CloneFlags::from_bits_retain(libc::CLONE_NEWTIME))
    {
        write_time_offsets(req.spec)?;
    }
    match fork().map_err(|e| RuntimeError::sys("fork container process", e))? {
        Forked::Child => {
            let code = match init::container_main(&req.process, chan) {
                Ok(never) => match never {},
                Err(e) => {
                    // The parent wraps what it receives in `RuntimeError::Init`: send an
                    // `Init` error's bare message so it is not said twice.
                    let message = match &e {
                        RuntimeError::Init(message) => message.clone(),
                        other => error_chain(other),
                    };
                    // After `Ready` nobody listens any more: the container's stderr is the
                    // only place left to say why it never ran.
                    if chan
                        .send(&Message::Failed {
                            message: message.clone(),
                        })
                        .is_err()
                    {
                        eprintln!("palisade-runtime: container init failed: {message}");
                    }
                    1
                }
            };
            palisade_sys::process::exit_immediately(code)
        }
        Forked::Parent(pid) => chan.send(&Message::ContainerPid { pid: pid.as_raw() }),
    }
}

/// In a fresh user namespace we are "nobody" until we take an id the map defines; root of the
/// namespace if mapped, else the config's user is taken later.
fn become_root_if_mapped() -> Result<()> {
    let root = nix::unistd::Uid::from_raw(0);
    let group = nix::unistd::Gid::from_raw(0);
    let _ = nix::unistd::setresgid(group, group, group);
    nix::unistd::setresuid(root, root, root)
        .or_else(|e| {
            if e == nix::errno::Errno::EINVAL {
                Ok(())
            } else {
                Err(e)
            }
        })
        .map_err(|e| RuntimeError::sys("become root of the user namespace", e))
}

fn format_map(mappings: &[LinuxIdMapping]) -> String {
    mappings
        .iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

fn write_id_maps(spec: &Spec, pid: i32) -> Result<()> {
    let linux = spec.linux().as_ref();
    let uids = linux
        .and_then(|l| l.uid_mappings().clone())
        .unwrap_or_default();
    let gids = linux
        .and_then(|l| l.gid_mappings().clone())
        .unwrap_or_default();
    let base = PathBuf::from(format!("/proc/{pid}"));
    let rootless = !nix::unistd::geteuid().is_root();
    if rootless {
        let own_uid = nix::unistd::geteuid().as_raw();
        let own_gid = nix::unistd::getegid().as_raw();
        let simple = |maps: &[LinuxIdMapping], own: u32| {
            maps.len() == 1 && maps[0].host_id() == own && maps[0].size() == 1
        };
        if !(simple(&uids, own_uid) && simple(&gids, own_gid)) {
            // Ranges beyond our own id need the setuid helpers and /etc/sub{u,g}id.
            map_with_helper("newuidmap", pid, &uids)?;
            return map_with_helper("newgidmap", pid, &gids);
        }
        // An unprivileged process may only map its own gid after giving up setgroups.
        std::fs::write(base.join("setgroups"), "deny")
            .map_err(|e| RuntimeError::io("write", base.join("setgroups"), e))?;
    }
    std::fs::write(base.join("uid_map"), format_map(&uids))
        .map_err(|e| RuntimeError::io("write", base.join("uid_map"), e))?;
    std::fs::write(base.join("gid_map"), format_map(&gids))
        .map_err(|e| RuntimeError::io("write", base.join("gid_map"), e))
}

fn map_with_helper(helper: &str, pid: i32, maps: &[LinuxIdMapping]) -> Result<()> {
    let mut cmd = std::process::Command::new(helper);
    cmd.arg(pid.to_string());
    for m in maps {
        cmd.args([
            m.container_id().to_string(),
            m.host_id().to_string(),
            m.size().to_string(),
        ]);
    }
    let status = cmd
        .status()
        .map_err(|e| RuntimeError::sys(format!("run {helper} (install the uidmap package)"), e))?;
    if !status.success() {
        return Err(RuntimeError::Init(format!(
            "{helper} failed with {status}: check /etc/subuid and /etc/subgid"
        )));
    }
    Ok(())
}

fn write_time_offsets(spec: &Spec) -> Result<()> {
    let Some(offsets) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().as_ref())
    else {
        return Ok(());
    };
    let mut text = String::new();
    for (clock, offset) in offsets {
        let name = match clock.as_str() {
            "monotonic" | "boottime" => clock.as_str(),
            other => {
                return Err(RuntimeError::InvalidConfig(format!(
                    "unknown time offset clock {other:?}"
                )))
            }
        };
        text.push_str(&format!(
            "{name} {} {}\n",
            offset.secs().unwrap_or(0),
            offset.nanosecs().unwrap_or(0)
        ));
    }
    std::fs::write("/proc/self/timens_offsets", text)
        .map_err(|e| RuntimeError::io("write", "/proc/self/timens_offsets", e))
}

/// The message of an error and all its causes, on one line.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
