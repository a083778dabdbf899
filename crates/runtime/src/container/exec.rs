//! `exec`: run another process inside a running container, in all of its namespaces and its
//! cgroup, under the same seccomp and Landlock policy as its init.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use nix::sched::CloneFlags;
use oci_spec::runtime::Process;

use super::Container;
use crate::error::{Result, RuntimeError};
use crate::namespaces::{self, NamespacePlan};
use crate::process::identity::CapabilityPlan;
use crate::process::init::{ContainerProcess, Role};
use crate::process::launch::{self, LaunchRequest};
use crate::state::Status;

/// Options of `exec`.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    pub process: Process,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub preserve_fds: u32,
}

/// The started process.
#[derive(Debug, Clone, Copy)]
pub struct ExecOutcome {
    /// Host pid of the new process.
    pub pid: i32,
}

impl Container {
    /// Starts `opts.process` inside the container and returns its pid; the caller waits for
    /// it (it is our grandchild: callers set themselves as child subreaper).
    pub fn exec(&self, opts: &ExecOptions) -> Result<ExecOutcome> {
        let status = self.status();
        if !matches!(status, Status::Running | Status::Created) {
            return Err(self.wrong_status(status, "exec", "running"));
        }
        let spec = &self.state.config;
        let plan = NamespacePlan::from_linux(spec.linux().as_ref())?;
        let init = self.state.init_pid;
        let mut join = Vec::new();
        for flag in [
            CloneFlags::CLONE_NEWUSER,
            CloneFlags::CLONE_NEWIPC,
            CloneFlags::CLONE_NEWUTS,
            CloneFlags::CLONE_NEWNET,
            CloneFlags::CLONE_NEWPID,
            CloneFlags::CLONE_NEWCGROUP,
            CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
            CloneFlags::CLONE_NEWNS,
        ] {
            let wanted = if flag == CloneFlags::CLONE_NEWUSER {
                plan.has_user_namespace()
            } else {
                plan.has(flag)
            };
            if !wanted {
                continue;
            }
            let name = namespaces::proc_name(flag);
            let path = PathBuf::from(format!("/proc/{init}/ns/{name}"));
            let fd = rustix::fs::open(
                &path,
                rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(|e| RuntimeError::io("open namespace", &path, e.into()))?;
            join.push((flag, fd));
        }
        let caps = CapabilityPlan::from_spec(opts.process.capabilities().as_ref())?;
        let (seccomp, landlock) = crate::config::confinement_policies(spec)?;
        let console_socket = match (
            opts.process.terminal().unwrap_or(false),
            &opts.console_socket,
        ) {
            (true, Some(path)) => {
                Some(OwnedFd::from(UnixStream::connect(path).map_err(|e| {
                    RuntimeError::io("connect to console socket", path, e)
                })?))
            }
            (true, None) => {
                return Err(RuntimeError::InvalidConfig(
                    "--tty needs --console-socket".into(),
                ))
            }
            (false, _) => None,
        };
        let seccomp_listener = match seccomp.as_ref().and_then(|f| f.listener_path()) {
            Some(path) => {
                Some(OwnedFd::from(UnixStream::connect(path).map_err(|e| {
                    RuntimeError::io("connect to seccomp listener", path, e)
                })?))
            }
            None => None,
        };
        let setgroups_allowed = std::fs::read_to_string(format!("/proc/{init}/setgroups"))
            .map(|s| s.trim() == "allow")
            .unwrap_or(true);
        let cgroup = self.cgroup()?;
        let request = LaunchRequest {
            spec,
            join,
            new: CloneFlags::empty(),
            new_user: false,
            cgroup: cgroup.as_ref(),
            process: ContainerProcess {
                spec,
                process: &opts.process,
                role: Role::Exec,
                caps,
                seccomp: seccomp.as_ref(),
                seccomp_listener,
                landlock: landlock.as_ref(),
                console_socket,
                preserve_fds: opts.preserve_fds,
                in_user_namespace: plan.has_user_namespace(),
                setgroups_allowed,
                id: &self.state.id,
                bundle: &self.state.bundle,
            },
        };
        let launched = launch::launch(request, &mut |_| Ok(()))?;
        if let Some(path) = &opts.pid_file {
            super::create::write_pid_file(path, launched.pid.as_raw())?;
        }
        Ok(ExecOutcome {
            pid: launched.pid.as_raw(),
        })
    }
}
