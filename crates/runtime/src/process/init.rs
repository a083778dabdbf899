//! The container side: what the forked process does inside the new namespaces until it
//! executes the user's program. Nothing here returns on success.

use std::convert::Infallible;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Process, Spec};

use super::channel::{Channel, Message};
use super::identity::{self, CapabilityPlan};
use crate::error::{Result, RuntimeError};
use crate::hooks::{self, HookState};
use crate::rootfs::{self, RootfsPlan};

/// What the container's process must become.
#[derive(Debug)]
pub(crate) struct ContainerProcess<'a> {
    pub(crate) spec: &'a Spec,
    pub(crate) process: &'a Process,
    pub(crate) role: Role<'a>,
    pub(crate) caps: CapabilityPlan,
    pub(crate) seccomp: Option<&'a palisade_seccomp::SeccompFilter>,
    /// Connected to the seccomp agent's `listenerPath`, when the profile uses NOTIFY.
    pub(crate) seccomp_listener: Option<OwnedFd>,
    pub(crate) landlock: Option<&'a palisade_seccomp::landlock::LandlockPolicy>,
    /// Connected to `--console-socket`, when the process has a terminal.
    pub(crate) console_socket: Option<OwnedFd>,
    pub(crate) preserve_fds: u32,
    pub(crate) in_user_namespace: bool,
    pub(crate) setgroups_allowed: bool,
    pub(crate) id: &'a str,
    pub(crate) bundle: &'a Path,
}

/// The container's first process, or a process entering a running container.
#[derive(Debug)]
pub(crate) enum Role<'a> {
    Init {
        rootfs: PathBuf,
        no_pivot: bool,
        /// `O_PATH` descriptor of `exec.fifo`, reopened for writing to wait for `start`.
        fifo: OwnedFd,
        new_mount_namespace: bool,
        new_uts_namespace: bool,
        cgroup_namespace: bool,
        cgroup_dirs: &'a [(String, PathBuf)],
        cgroup_unified: bool,
        idmapped: Vec<crate::rootfs::idmap::IdmappedMount>,
    },
    Exec,
}

pub(crate) fn container_main(cp: &ContainerProcess<'_>, chan: &Channel) -> Result<Infallible> {
    nix::unistd::setsid().map_err(|e| RuntimeError::sys("setsid", e))?;
    let terminal = cp.process.terminal().unwrap_or(false);
    if let Role::Init {
        rootfs: rootfs_path,
        no_pivot,
        new_mount_namespace,
        new_uts_namespace,
        cgroup_namespace,
        cgroup_dirs,
        cgroup_unified,
        idmapped,
        ..
    } = &cp.role
    {
        if !new_mount_namespace {
            return Err(RuntimeError::InvalidConfig(
                "a container needs its own mount namespace".into(),
            ));
        }
        let plan = RootfsPlan {
            spec: cp.spec,
            rootfs: rootfs_path,
            in_user_namespace: cp.in_user_namespace,
            cgroup_namespace: *cgroup_namespace,
            cgroup_dirs,
            cgroup_unified: *cgroup_unified,
            idmapped,
        };
        rootfs::prepare(&plan)?;
        if terminal {
            let socket = cp.console_socket.as_ref().ok_or_else(|| {
                RuntimeError::InvalidConfig("process.terminal is set: pass --console-socket".into())
            })?;
            let root = rootfs::resolve::RootDir::open(rootfs_path)?;
            super::console::setup(Some(&root), socket, cp.process.console_size())?;
        }
        chan.send(&Message::RunRuntimeHooks)?;
        let host_pid = match chan.recv()? {
            Message::RuntimeHooksDone { pid } => pid,
            Message::Failed { message } => return Err(RuntimeError::Init(message)),
            other => {
                return Err(RuntimeError::Init(format!(
                    "protocol error: unexpected {other:?}"
                )))
            }
        };
        if let Some(h) = cp
            .spec
            .hooks()
            .as_ref()
            .and_then(|h| h.create_container().as_deref())
        {
            hooks::run_hooks("createContainer", h, &hook_state(cp, "created", host_pid))?;
        }
        rootfs::enter(rootfs_path, *no_pivot)?;
        if let Some(hostname) = cp.spec.hostname() {
            if !new_uts_namespace {
                return Err(RuntimeError::InvalidConfig(
                    "hostname needs a new uts namespace".into(),
                ));
            }
            nix::unistd::sethostname(hostname).map_err(|e| RuntimeError::sys("sethostname", e))?;
        }
        if let Some(domain) = cp.spec.domainname() {
            if !new_uts_namespace {
                return Err(RuntimeError::InvalidConfig(
                    "domainname needs a new uts namespace".into(),
                ));
            }
            std::fs::write("/proc/sys/kernel/domainname", domain).map_err(|e| {
                RuntimeError::io("set domainname via", "/proc/sys/kernel/domainname", e)
            })?;
        }
        for (key, value) in cp
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.sysctl().as_ref())
            .into_iter()
            .flatten()
        {
            let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
            std::fs::write(&path, value).map_err(|e| RuntimeError::io("write sysctl", path, e))?;
        }
        // Last: masked and read-only paths (/proc/sys among them) and the read-only rootfs.
        rootfs::finish(cp.spec)?;
    } else if terminal {
        let socket = cp.console_socket.as_ref().ok_or_else(|| {
            RuntimeError::InvalidConfig("process.terminal is set: pass --console-socket".into())
        })?;
        super::console::setup(None, socket, cp.process.console_size())?;
    }

    let cwd = cp.process.cwd();
    nix::unistd::chdir(cwd)
        .map_err(|e| RuntimeError::sys(format!("chdir to {cwd:?} (process.cwd)"), e))?;
    check_cwd_inside()?;
    super::limits::apply(cp.spec, cp.process)?;

    // Seccomp and Landlock need no_new_privs or CAP_SYS_ADMIN. With no_new_privs the
    // identity is final before `Ready`; without it, the filters go in while we still hold
    // CAP_SYS_ADMIN, after `start`, and the identity changes last (Landlock would otherwise
    // refuse the exec fifo, which lives outside the rootfs).
    let nnp = cp.process.no_new_privileges().unwrap_or(false);
    if nnp {
        become_user(cp)?;
        nix::sys::prctl::set_no_new_privs()
            .map_err(|e| RuntimeError::sys("PR_SET_NO_NEW_PRIVS", e))?;
    }
    let env: Vec<CString> = cp
        .process
        .env()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter_map(|e| CString::new(e.as_bytes()).ok())
        .collect();
    let args: Vec<CString> = cp
        .process
        .args()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| RuntimeError::InvalidConfig("process.args contains a NUL byte".into()))?;
    let program = args
        .first()
        .ok_or_else(|| RuntimeError::InvalidConfig("process.args must not be empty".into()))?;
    let exe = find_executable(
        program.to_str().unwrap_or_default(),
        cp.process.env().as_deref().unwrap_or_default(),
    )?;

    // The exec fifo's write end stays open (close-on-exec) until the execve below: `start`
    // waits for its EOF, so poststart hooks run only once the user's program has been
    // executed (OCI spec).
    let _start_signal = if let Role::Init { fifo, .. } = &cp.role {
        chan.send(&Message::Ready)?;
        let writer = wait_for_start(fifo)?;
        if let Some(h) = cp
            .spec
            .hooks()
            .as_ref()
            .and_then(|h| h.start_container().as_deref())
        {
            hooks::run_hooks("startContainer", h, &hook_state(cp, "running", 0))?;
        }
        Some(writer)
    } else {
        chan.send(&Message::Ready)?;
        None
    };
    // Nothing the runtime opened may reach the user's program (CVE-2024-21626).
    palisade_sys::process::cloexec_from(3 + cp.preserve_fds as i32)
        .map_err(|e| RuntimeError::sys("close_range", e))?;
    if let Some(profile) = cp
        .process
        .apparmor_profile()
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        // The profile takes effect at execve, like aa_change_onexec.
        let attr = if std::path::Path::new("/proc/self/attr/apparmor/exec").exists() {
            "/proc/self/attr/apparmor/exec"
        } else {
            "/proc/self/attr/exec"
        };
        std::fs::write(attr, format!("exec {profile}"))
            .map_err(|e| RuntimeError::io("set AppArmor profile via", attr, e))?;
    }
    install_landlock(cp)?;
    install_seccomp(cp)?;
    if !nnp {
        become_user(cp)?;
    }
    // The program starts with default signal dispositions and nothing blocked, whatever the
    // runtime (which ignores SIGPIPE) or its caller had.
    palisade_sys::process::reset_signals()
        .map_err(|e| RuntimeError::sys("reset signal dispositions", e))?;
    let exe_c = CString::new(exe.as_os_str().as_encoded_bytes())
        .map_err(|_| RuntimeError::InvalidConfig("executable path contains a NUL byte".into()))?;
    let err = match nix::unistd::execve(&exe_c, &args, &env) {
        Err(e) => e,
        Ok(never) => match never {},
    };
    Err(RuntimeError::sys(format!("exec {exe:?}"), err))
}

/// Reduces the bounding set, switches uid/gid/groups and sets the capability sets.
fn become_user(cp: &ContainerProcess<'_>) -> Result<()> {
    cp.caps.apply_bounding()?;
    identity::switch_user(cp.process.user(), cp.setgroups_allowed)?;
    cp.caps.apply_sets()
}

fn hook_state<'a>(cp: &'a ContainerProcess<'a>, status: &'a str, pid: i32) -> HookState<'a> {
    HookState {
        oci_version: crate::OCI_VERSION,
        id: cp.id,
        status,
        pid: (pid > 0).then_some(pid),
        bundle: cp.bundle,
        annotations: cp.spec.annotations().as_ref(),
    }
}

/// Fails if the working directory is not inside our root, which happens when a descriptor of
/// a host directory leaked into the process and became its cwd (CVE-2024-21626).
fn check_cwd_inside() -> Result<()> {
    let cwd = nix::unistd::getcwd().map_err(|e| RuntimeError::sys("getcwd", e))?;
    if !cwd.is_absolute() || cwd.to_string_lossy().starts_with("(unreachable)") {
        return Err(RuntimeError::InvalidConfig(format!(
            "working directory {cwd:?} is outside the container"
        )));
    }
    Ok(())
}

/// Blocks until `start` opens the FIFO for reading, then tells it we are going. Returns the
/// close-on-exec write end: `start` sees EOF when the execve (or our death) closes it.
fn wait_for_start(fifo: &OwnedFd) -> Result<OwnedFd> {
    let path = format!("/proc/self/fd/{}", fifo.as_raw_fd());
    let writer = rustix::fs::open(
        path.as_str(),
        rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| RuntimeError::sys("open exec fifo", std::io::Error::from(e)))?;
    nix::unistd::write(&writer, b"0").map_err(|e| RuntimeError::sys("write exec fifo", e))?;
    Ok(writer)
}

fn install_landlock(cp: &ContainerProcess<'_>) -> Result<()> {
    if let Some(policy) = cp.landlock {
        // Either no_new_privs is already set (as the config asked) or we still hold
        // CAP_SYS_ADMIN: Landlock must not turn no_new_privs on behind the config's back.
        palisade_seccomp::landlock::restrict_to_root_with(policy, false).map_err(|e| {
            RuntimeError::Init(format!("landlock: {}", super::launch::error_chain(&e)))
        })?;
    }
    Ok(())
}

fn install_seccomp(cp: &ContainerProcess<'_>) -> Result<()> {
    let Some(filter) = cp.seccomp else {
        return Ok(());
    };
    let listener = filter.install()?;
    if let (Some(fd), Some(socket)) = (listener, cp.seccomp_listener.as_ref()) {
        let state = serde_json::json!({
            "ociVersion": crate::OCI_VERSION,
            "fds": ["seccompFd"],
            "pid": nix::unistd::getpid().as_raw(),
            "metadata": filter.listener_metadata().unwrap_or_default(),
            "state": {
                "ociVersion": crate::OCI_VERSION,
                "id": cp.id,
                "status": "creating",
                "bundle": cp.bundle,
                "annotations": cp.spec.annotations(),
            }
        });
        super::console::send_fd(socket, &fd, state.to_string().as_bytes())?;
    }
    Ok(())
}

/// Finds `program` the way execvp would, using the container's PATH.
pub(crate) fn find_executable(program: &str, env: &[String]) -> Result<PathBuf> {
    if program.contains('/') {
        // Say which of the two it is, in runc's words: podman turns "no such file or
        // directory" into exit code 127 and "permission denied" into 126.
        let path = Path::new(program);
        return match nix::unistd::access(path, nix::unistd::AccessFlags::X_OK) {
            Ok(()) if path.is_file() => Ok(PathBuf::from(program)),
            Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTDIR) => Err(RuntimeError::Init(
                format!("exec: {program:?}: no such file or directory"),
            )),
            _ => Err(RuntimeError::Init(format!(
                "exec: {program:?}: permission denied"
            ))),
        };
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(program);
        if is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    Err(RuntimeError::Init(format!(
        "exec: {program:?}: executable file not found in $PATH"
    )))
}

fn is_executable(path: &Path) -> bool {
    nix::unistd::access(path, nix::unistd::AccessFlags::X_OK).is_ok() && path.is_file()
}
