//! `create`: build the container up to the point where only `start` is missing.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use nix::sys::stat::Mode;
use nix::unistd::mkfifo;
use palisade_cgroups::CgroupManager;

use super::{Container, CGROUP_ROOT};
use crate::config::{self, CheckedConfig};
use crate::error::{Result, RuntimeError};
use crate::hooks::{self, HookState};
use crate::namespaces;
use crate::process::init::{ContainerProcess, Role};
use crate::process::launch::{self, LaunchRequest};
use crate::state::{self, PersistedState, StateRoot};

/// Options of `create` (and `run`).
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub preserve_fds: u32,
}

impl Container {
    /// Creates a container: checks the bundle, claims the id, creates the cgroup, launches the
    /// init and leaves it waiting for `start`. On failure nothing is left behind.
    pub fn create(root: &StateRoot, opts: &CreateOptions) -> Result<Container> {
        state::validate_id(&opts.id)?;
        if root.container_dir(&opts.id).exists() {
            return Err(RuntimeError::AlreadyExists(opts.id.clone()));
        }
        let checked = config::check_bundle(&opts.bundle)?;
        let dir = root.claim(&opts.id)?;
        let mut cgroup: Option<(CgroupManager, bool)> = None;
        match create_in(root, opts, &checked, &dir, &mut cgroup) {
            Ok(container) => Ok(container),
            Err(e) => {
                if let Some((manager, true)) = cgroup {
                    if let Err(cleanup) = manager.destroy() {
                        tracing::warn!(error = %cleanup, "failed to remove cgroup after a failed create");
                    }
                }
                if let Err(cleanup) = std::fs::remove_dir_all(&dir) {
                    tracing::warn!(error = %cleanup, path = ?dir, "failed to remove state after a failed create");
                }
                Err(e)
            }
        }
    }
}

fn default_cgroup_path(id: &str) -> PathBuf {
    PathBuf::from("/palisade").join(id)
}

fn create_in(
    root: &StateRoot,
    opts: &CreateOptions,
    checked: &CheckedConfig,
    dir: &Path,
    cgroup_slot: &mut Option<(CgroupManager, bool)>,
) -> Result<Container> {
    let spec = &checked.spec;
    let linux = spec.linux().as_ref();
    let rootless = !nix::unistd::geteuid().is_root();

    let fifo_path = dir.join(state::EXEC_FIFO);
    mkfifo(&fifo_path, Mode::from_bits_truncate(0o622))
        .map_err(|e| RuntimeError::io("create", &fifo_path, e.into()))?;
    // mkfifo applies the umask; the init (maybe another uid) must be able to write it.
    std::fs::set_permissions(
        &fifo_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o622),
    )
    .map_err(|e| RuntimeError::io("chmod", &fifo_path, e))?;
    let fifo = rustix::fs::open(
        &fifo_path,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| RuntimeError::io("open", &fifo_path, e.into()))?;

    let cgroup_path = linux
        .and_then(|l| l.cgroups_path().clone())
        .unwrap_or_else(|| default_cgroup_path(&opts.id));
    let resources = linux.and_then(|l| l.resources().as_ref());
    match CgroupManager::new(Path::new(CGROUP_ROOT), &cgroup_path)
        .and_then(|m| m.create().map(|()| m))
    {
        Ok(manager) => {
            // Recorded before applying limits, so a failed apply still removes the cgroup.
            let manager = &cgroup_slot.insert((manager, true)).0;
            if let Some(resources) = resources {
                manager.apply(&with_default_devices(resources, spec))?;
            }
        }
        // A rootless container without limits may run without a cgroup of its own.
        Err(e) if rootless && !resources.is_some_and(requests_limits) => {
            tracing::debug!(error = %e, "rootless: running without a cgroup");
        }
        Err(e) => return Err(e.into()),
    }
    let cgroup = cgroup_slot.as_ref().map(|(m, _)| m);
    let cgroup_dirs: Vec<(String, PathBuf)> = cgroup
        .map(|c| c.paths().into_iter().collect())
        .unwrap_or_default();
    let cgroup_unified = matches!(
        palisade_cgroups::detect_setup(Path::new(CGROUP_ROOT)),
        Ok(palisade_cgroups::CgroupSetup::Unified)
    );

    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| RuntimeError::InvalidConfig("process is missing".into()))?;
    let console_socket = match (process.terminal().unwrap_or(false), &opts.console_socket) {
        (true, Some(path)) => Some(connect(path, "--console-socket")?),
        (true, None) => {
            return Err(RuntimeError::InvalidConfig(
                "process.terminal is true: pass --console-socket".into(),
            ))
        }
        (false, _) => None,
    };
    let seccomp_listener = match checked.seccomp.as_ref().and_then(|f| f.listener_path()) {
        Some(path) => Some(connect(Path::new(path), "seccomp listenerPath")?),
        None => None,
    };
    let idmapped = crate::rootfs::idmap::prepare_all(spec)?;
    let plan = &checked.namespaces;
    let join = namespaces::open_all(&plan.join)?;
    let owner = if rootless {
        nix::unistd::geteuid().to_string()
    } else {
        String::new()
    };
    let cp = ContainerProcess {
        spec,
        process,
        role: Role::Init {
            rootfs: checked.rootfs.clone(),
            no_pivot: opts.no_pivot,
            fifo,
            new_mount_namespace: plan.has(nix::sched::CloneFlags::CLONE_NEWNS),
            new_uts_namespace: plan.has(nix::sched::CloneFlags::CLONE_NEWUTS),
            cgroup_namespace: plan.has(nix::sched::CloneFlags::CLONE_NEWCGROUP),
            cgroup_dirs: &cgroup_dirs,
            cgroup_unified,
            idmapped,
        },
        caps: checked.caps.clone(),
        seccomp: checked.seccomp.as_ref(),
        seccomp_listener,
        landlock: checked.landlock.as_ref(),
        console_socket,
        preserve_fds: opts.preserve_fds,
        in_user_namespace: plan.has_user_namespace(),
        setgroups_allowed: !rootless,
        id: &opts.id,
        bundle: &checked.bundle,
    };
    let request = LaunchRequest {
        spec,
        join,
        new: plan.new,
        new_user: plan.new_user,
        cgroup,
        process: cp,
    };
    let hook_spec = spec.hooks().clone();
    let annotations = spec.annotations().clone();
    let mut runtime_hooks = |pid: i32| -> Result<()> {
        let Some(h) = hook_spec.as_ref() else {
            return Ok(());
        };
        let state = HookState {
            oci_version: crate::OCI_VERSION,
            id: &opts.id,
            status: "created",
            pid: Some(pid),
            bundle: &checked.bundle,
            annotations: annotations.as_ref(),
        };
        #[allow(deprecated)]
        if let Some(prestart) = h.prestart().as_deref() {
            hooks::run_hooks("prestart", prestart, &state)?;
        }
        if let Some(create_runtime) = h.create_runtime().as_deref() {
            hooks::run_hooks("createRuntime", create_runtime, &state)?;
        }
        Ok(())
    };
    let launched = launch::launch(request, &mut runtime_hooks)?;
    let pid = launched.pid.as_raw();
    let start_time = state::process_stat(pid)
        .map(|s| s.start_time)
        .ok_or_else(|| RuntimeError::Init("the container's init exited during create".into()))?;
    let persisted = PersistedState {
        id: opts.id.clone(),
        init_pid: pid,
        init_start_time: start_time,
        bundle: checked.bundle.clone(),
        rootfs: checked.rootfs.clone(),
        created: crate::time::rfc3339(SystemTime::now()),
        owner,
        cgroup_path: if cgroup.is_some() {
            cgroup_path
        } else {
            PathBuf::new()
        },
        cgroup_created: cgroup.is_some(),
        config: spec.clone(),
    };
    let saved = root.save(&persisted).and_then(|()| match &opts.pid_file {
        Some(path) => write_pid_file(path, pid),
        None => Ok(()),
    });
    if let Err(e) = saved {
        let _ = nix::sys::signal::kill(launched.pid, nix::sys::signal::Signal::SIGKILL);
        return Err(e);
    }
    Ok(Container {
        root: root.clone(),
        state: persisted,
    })
}

/// Whether `resources` asks for any limit (a rootless container without one may run without a
/// cgroup of its own; device rules alone do not count, the user namespace already denies mknod).
fn requests_limits(resources: &oci_spec::runtime::LinuxResources) -> bool {
    resources
        .memory()
        .is_some_and(|m| m.limit().is_some() || m.swap().is_some() || m.reservation().is_some())
        || resources.pids().is_some()
        || resources.cpu().as_ref().is_some_and(|c| {
            c.shares().is_some() || c.quota().is_some() || c.cpus().is_some() || c.mems().is_some()
        })
        || resources.block_io().as_ref().is_some_and(|b| {
            b.weight().is_some()
                || b.throttle_read_bps_device().is_some()
                || b.throttle_write_bps_device().is_some()
        })
        || resources
            .hugepage_limits()
            .as_ref()
            .is_some_and(|h| !h.is_empty())
        || resources.unified().as_ref().is_some_and(|u| !u.is_empty())
}

/// The device rules of the config plus the devices every container gets (the default /dev
/// set, the pty devices and the config's own `linux.devices`), as runc adds them: a rule list
/// that starts with "deny all" must still let the container use its own /dev/null.
fn with_default_devices(
    resources: &oci_spec::runtime::LinuxResources,
    spec: &oci_spec::runtime::Spec,
) -> oci_spec::runtime::LinuxResources {
    use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};
    let Some(rules) = resources.devices().clone() else {
        return resources.clone();
    };
    let rule = |typ: LinuxDeviceType, major: Option<i64>, minor: Option<i64>| {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(true);
        r.set_typ(Some(typ));
        r.set_major(major);
        r.set_minor(minor);
        r.set_access(Some("rwm".to_owned()));
        r
    };
    let mut out = rules;
    for (major, minor) in [
        (1, 3),
        (1, 5),
        (1, 7),
        (1, 8),
        (1, 9),
        (5, 0),
        (5, 1),
        (5, 2),
    ] {
        out.push(rule(LinuxDeviceType::C, Some(major), Some(minor)));
    }
    // Pseudo-terminal slaves.
    out.push(rule(LinuxDeviceType::C, Some(136), None));
    for device in spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().as_deref())
        .unwrap_or_default()
    {
        out.push(rule(
            device.typ(),
            Some(device.major()),
            Some(device.minor()),
        ));
    }
    let mut resources = resources.clone();
    resources.set_devices(Some(out));
    resources
}

fn connect(path: &Path, what: &str) -> Result<OwnedFd> {
    let stream = UnixStream::connect(path).map_err(|e| {
        RuntimeError::io(
            "connect to",
            path,
            std::io::Error::new(e.kind(), format!("{what}: {e}")),
        )
    })?;
    Ok(OwnedFd::from(stream))
}

/// Writes a pid file atomically (containerd reads it as soon as `create` returns).
pub(crate) fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let path =
        std::path::absolute(path).map_err(|e| RuntimeError::io("resolve pid file", path, e))?;
    state::write_atomic(&path, pid.to_string().as_bytes())
}
