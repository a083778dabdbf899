//! `palisade-check attacks`: the attack regression suite of THREATS.md rows 3–10.
//!
//! Run as a container's process. Each attack is really attempted (with arguments that change
//! nothing if it is refused) and reported as one JSON line
//! `{"row":N,"attack":"...","blocked":bool,"errno":"EPERM","detail":"..."}`, then a summary
//! line; the exit status is 1 if any attack got through. The host-side resources an attack
//! aims at (a host process, SysV segment, POSIX queue, abstract socket) are named by flags,
//! since a container cannot name what it must not see.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use serde_json::json;

/// How many processes the fork bomb tries to hold at once (above Palisade's default limit of
/// 1024, far below what a host runs out of).
const FORK_BOMB: usize = 1500;
/// How much the memory hog touches (above Palisade's default limit of 1 GiB).
const MEMORY_HOG_MIB: usize = 1280;

/// One attack's outcome.
struct Outcome {
    row: u8,
    attack: &'static str,
    blocked: bool,
    errno: Option<Errno>,
    detail: String,
}

fn outcome(row: u8, attack: &'static str, blocked: bool, detail: impl Into<String>) -> Outcome {
    Outcome {
        row,
        attack,
        blocked,
        errno: None,
        detail: detail.into(),
    }
}

/// Blocked when `result` failed; the errno is kept.
fn refused<T>(row: u8, attack: &'static str, result: Result<T, Errno>, success: &str) -> Outcome {
    match result {
        Ok(_) => outcome(row, attack, false, success),
        Err(errno) => Outcome {
            row,
            attack,
            blocked: true,
            errno: Some(errno),
            detail: errno.desc().to_owned(),
        },
    }
}

fn io_errno(error: &io::Error) -> Errno {
    Errno::from_raw(error.raw_os_error().unwrap_or(0))
}

fn io_refused<T>(row: u8, attack: &'static str, result: io::Result<T>, success: &str) -> Outcome {
    refused(row, attack, result.map_err(|e| io_errno(&e)), success)
}

/// Flags naming host resources.
#[derive(Debug, Default)]
struct Targets {
    host_pid: Option<i32>,
    shm_id: Option<i32>,
    mq: Option<String>,
    abstract_socket: Option<String>,
    skip_hogs: bool,
}

fn targets(args: &[String]) -> Targets {
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    Targets {
        host_pid: flag("--host-pid").and_then(|v| v.parse().ok()),
        shm_id: flag("--shm-id").and_then(|v| v.parse().ok()),
        mq: flag("--mq"),
        abstract_socket: flag("--abstract"),
        skip_hogs: args.iter().any(|a| a == "--no-hogs"),
    }
}

/// Runs every attack and prints the report; returns the exit status.
pub(crate) fn run(args: &[String]) -> i32 {
    let targets = targets(args);
    let mut outcomes = Vec::new();
    host_processes(&targets, &mut outcomes);
    if !targets.skip_hogs {
        outcomes.push(fork_bomb());
        outcomes.push(memory_hog());
    }
    ipc(&targets, &mut outcomes);
    files(&mut outcomes);
    devices(&mut outcomes);
    network(&mut outcomes);
    privilege(&mut outcomes);
    kernel_information(&mut outcomes);

    let exposed = outcomes.iter().filter(|o| !o.blocked).count();
    for o in &outcomes {
        println!(
            "{}",
            json!({
                "row": o.row,
                "attack": o.attack,
                "blocked": o.blocked,
                "errno": o.errno.map(|e| format!("{e:?}")),
                "detail": o.detail,
            })
        );
    }
    println!(
        "{}",
        json!({"summary": {"attacks": outcomes.len(), "exposed": exposed}})
    );
    i32::from(exposed > 0)
}

/// Row 3: a host process is neither visible, signalable nor traceable.
fn host_processes(targets: &Targets, out: &mut Vec<Outcome>) {
    let visible = fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
                .count()
        })
        .unwrap_or(0);
    out.push(outcome(
        3,
        "proc-shows-only-own-processes",
        visible < 20,
        format!("{visible} processes visible in /proc"),
    ));
    // pid 1 is the container's own init in a pid namespace; the host's init is named by the
    // host pid the test passes (its pid 1 cannot be named from inside).
    if let Some(pid) = targets.host_pid {
        let target = nix::unistd::Pid::from_raw(pid);
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).ok();
        out.push(outcome(
            3,
            "host-process-invisible",
            comm.is_none(),
            comm.map_or_else(
                || format!("/proc/{pid} absent"),
                |c| format!("/proc/{pid} is {}", c.trim()),
            ),
        ));
        out.push(refused(
            3,
            "kill-host-process",
            nix::sys::signal::kill(target, None),
            "kill(pid, 0) succeeded",
        ));
        out.push(io_refused(
            3,
            "ptrace-host-process",
            palisade_sys::process::ptrace_attach_detach(pid),
            "PTRACE_ATTACH succeeded",
        ));
    }
}

/// Row 4: the pids limit stops a fork bomb.
fn fork_bomb() -> Outcome {
    let exe = std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into());
    let mut children: Vec<Child> = Vec::new();
    let mut failure = None;
    for _ in 0..FORK_BOMB {
        match Command::new(&exe)
            .arg("idle")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(child) => children.push(child),
            Err(error) => {
                failure = Some(error);
                break;
            }
        }
    }
    let started = children.len();
    for child in &mut children {
        let _ = child.kill();
    }
    for child in &mut children {
        let _ = child.wait();
    }
    match failure {
        Some(error) => Outcome {
            row: 4,
            attack: "fork-bomb",
            blocked: true,
            errno: Some(io_errno(&error)),
            detail: format!("stopped after {started} processes: {error}"),
        },
        None => outcome(
            4,
            "fork-bomb",
            false,
            format!("all {FORK_BOMB} processes started: no pids limit below that"),
        ),
    }
}

/// Row 4: the memory limit stops a memory hog (in a child, which the OOM killer may take).
fn memory_hog() -> Outcome {
    let exe = std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into());
    let status = Command::new(&exe)
        .args(["alloc", &MEMORY_HOG_MIB.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match status {
        Ok(status) if status.success() => outcome(
            4,
            "memory-hog",
            false,
            format!("touched {MEMORY_HOG_MIB} MiB: no memory limit below that"),
        ),
        Ok(status) => {
            use std::os::unix::process::ExitStatusExt;
            outcome(
                4,
                "memory-hog",
                true,
                match status.signal() {
                    Some(9) => format!("killed by SIGKILL (OOM) before {MEMORY_HOG_MIB} MiB"),
                    other => format!("stopped before {MEMORY_HOG_MIB} MiB: {status} {other:?}"),
                },
            )
        }
        Err(error) => io_refused(4, "memory-hog", Err::<(), _>(error), ""),
    }
}

/// Row 5: host SysV shared memory, POSIX queues and abstract sockets are unreachable.
fn ipc(targets: &Targets, out: &mut Vec<Outcome>) {
    let segments = fs::read_to_string("/proc/sysvipc/shm")
        .map(|text| text.lines().count().saturating_sub(1))
        .unwrap_or(0);
    out.push(outcome(
        5,
        "sysv-segments-invisible",
        segments == 0,
        format!("{segments} SysV segments listed in /proc/sysvipc/shm"),
    ));
    if let Some(id) = targets.shm_id {
        out.push(io_refused(
            5,
            "attach-host-sysv-shm",
            palisade_sys::ipc::shm_reachable(id),
            "shmat of the host segment succeeded",
        ));
    }
    if let Some(name) = &targets.mq {
        out.push(refused(
            5,
            "open-host-posix-mq",
            nix::mqueue::mq_open(
                name.as_str(),
                nix::mqueue::MQ_OFlag::O_RDONLY,
                nix::sys::stat::Mode::empty(),
                None,
            ),
            "mq_open of the host queue succeeded",
        ));
    }
    if let Some(name) = &targets.abstract_socket {
        out.push(refused(
            5,
            "connect-host-abstract-socket",
            abstract_connect(name),
            "connected to the host's abstract socket",
        ));
    }
}

fn abstract_connect(name: &str) -> nix::Result<()> {
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let addr = UnixAddr::new_abstract(name.as_bytes())?;
    connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr)
}

fn open_for_write(path: &str) -> io::Result<fs::File> {
    fs::OpenOptions::new().write(true).open(path)
}

/// Row 6: host files through /proc, /sys, cgroups and leaked descriptors.
fn files(out: &mut Vec<Outcome>) {
    for (attack, path) in [
        ("write-proc-sysrq-trigger", "/proc/sysrq-trigger"),
        ("write-proc-core-pattern", "/proc/sys/kernel/core_pattern"),
        (
            "write-sys-kernel-uevent-helper",
            "/sys/kernel/uevent_helper",
        ),
        (
            "write-sys-kernel-mm",
            "/sys/kernel/mm/transparent_hugepage/enabled",
        ),
    ] {
        out.push(io_refused(
            6,
            attack,
            open_for_write(path),
            "opened for writing",
        ));
    }
    out.push(match fs::File::open("/proc/kcore") {
        Ok(mut file) => {
            let mut buffer = [0u8; 16];
            match file.read(&mut buffer) {
                Ok(0) => outcome(6, "read-proc-kcore", true, "opened but empty (masked)"),
                Ok(n) => outcome(
                    6,
                    "read-proc-kcore",
                    false,
                    format!("read {n} bytes of kernel memory"),
                ),
                Err(error) => io_refused(6, "read-proc-kcore", Err::<(), _>(error), ""),
            }
        }
        Err(error) => io_refused(6, "read-proc-kcore", Err::<(), _>(error), ""),
    });
    let agents = find_named(Path::new("/sys/fs/cgroup"), "release_agent", 4);
    let writable: Vec<String> = agents
        .iter()
        .filter(|p| fs::OpenOptions::new().write(true).open(p).is_ok())
        .map(|p| p.display().to_string())
        .collect();
    // CVE-2022-0492: mount a cgroup v1 hierarchy of one's own and set its release_agent.
    // Over /dev/shm, which exists in every runtime, so a missing mount point does not answer
    // for the policy; unmounted at once if it worked.
    let mount_cgroup = nix::mount::mount(
        Some("cgroup"),
        "/dev/shm",
        Some("cgroup"),
        nix::mount::MsFlags::empty(),
        Some("rdma"),
    );
    let mounted_agent_writable = mount_cgroup.is_ok()
        && fs::OpenOptions::new()
            .write(true)
            .open("/dev/shm/release_agent")
            .is_ok();
    if mount_cgroup.is_ok() {
        let _ = nix::mount::umount("/dev/shm");
    }
    out.push(Outcome {
        errno: mount_cgroup.err(),
        ..outcome(
            6,
            "cgroup-release-agent",
            writable.is_empty() && mount_cgroup.is_err(),
            format!(
                "{} release_agent files visible, writable: {writable:?}; mounting a v1 hierarchy: {}",
                agents.len(),
                match mount_cgroup {
                    Err(errno) => format!("{errno:?}"),
                    Ok(()) if mounted_agent_writable => "succeeded, release_agent writable".to_owned(),
                    Ok(()) => "succeeded".to_owned(),
                }
            ),
        )
    });
    // Leaked descriptors: anything beyond stdio that points outside (a directory above the
    // root, a host file).
    let leaked: Vec<String> = fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| {
                    let fd: i32 = e.file_name().to_string_lossy().parse().ok()?;
                    let target = fs::read_link(e.path()).ok()?;
                    (fd > 2 && !target.starts_with("/proc/"))
                        .then(|| format!("{fd} -> {}", target.display()))
                })
                .collect()
        })
        .unwrap_or_default();
    out.push(outcome(
        6,
        "leaked-host-descriptors",
        leaked.is_empty(),
        format!("descriptors beyond stdio: {leaked:?}"),
    ));
    out.push(match fs::read_link("/proc/self/cwd") {
        Ok(cwd) if cwd.starts_with("/") && !cwd.to_string_lossy().contains("(unreachable)") => {
            outcome(6, "host-working-directory", true, cwd.display().to_string())
        }
        Ok(cwd) => outcome(
            6,
            "host-working-directory",
            false,
            cwd.display().to_string(),
        ),
        Err(error) => io_refused(6, "host-working-directory", Err::<(), _>(error), ""),
    });
}

fn find_named(dir: &Path, name: &str, depth: usize) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if entry.file_name() == name {
            found.push(path.clone());
        }
        if depth > 0 && entry.file_type().is_ok_and(|t| t.is_dir()) {
            found.extend(find_named(&path, name, depth - 1));
        }
    }
    found
}

/// Row 7: device nodes can be neither made nor opened.
fn devices(out: &mut Vec<Outcome>) {
    // In /dev, a tmpfs in every runtime, so a read-only rootfs does not answer for the policy.
    let node = Path::new("/dev/.palisade-sda");
    let made = nix::sys::stat::mknod(
        node,
        nix::sys::stat::SFlag::S_IFBLK,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
        nix::sys::stat::makedev(8, 0),
    );
    out.push(match made {
        Ok(()) => {
            let opened = fs::File::open(node);
            let _ = fs::remove_file(node);
            match opened {
                Ok(_) => outcome(
                    7,
                    "mknod-and-open-disk",
                    false,
                    "created and opened block device 8:0",
                ),
                Err(error) => Outcome {
                    errno: Some(io_errno(&error)),
                    ..outcome(
                        7,
                        "mknod-and-open-disk",
                        true,
                        format!("node made, open refused: {error}"),
                    )
                },
            }
        }
        Err(errno) => refused(7, "mknod-and-open-disk", Err::<(), _>(errno), ""),
    });
    // Any block device or kernel-memory node that is present must not open.
    let mut present = Vec::new();
    for entry in fs::read_dir("/dev")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
    {
        let path = entry.path();
        let is_block = entry.file_type().is_ok_and(|t| t.is_block_device());
        let sensitive = ["mem", "kmem", "port", "kmsg", "kvm"]
            .iter()
            .any(|name| entry.file_name() == *name);
        if (is_block || sensitive) && fs::File::open(&path).is_ok() {
            present.push(path.display().to_string());
        }
    }
    out.push(outcome(
        7,
        "open-host-devices",
        present.is_empty(),
        if present.is_empty() {
            "no block device, /dev/mem, /dev/kmsg or /dev/kvm opens".to_owned()
        } else {
            format!("opened: {present:?}")
        },
    ));
}

/// Row 8: no raw or packet sockets to forge or sniff frames; only loopback.
fn network(out: &mut Vec<Outcome>) {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockProtocol, SockType};
    out.push(refused(
        8,
        "raw-socket",
        socket(
            AddressFamily::Inet,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::Icmp,
        ),
        "opened an AF_INET raw socket",
    ));
    out.push(refused(
        8,
        "packet-socket",
        socket(
            AddressFamily::Packet,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::EthAll,
        ),
        "opened an AF_PACKET socket",
    ));
    let interfaces: Vec<String> = fs::read_to_string("/proc/net/dev")
        .unwrap_or_default()
        .lines()
        .skip(2)
        .filter_map(|line| line.split(':').next().map(|name| name.trim().to_owned()))
        .filter(|name| name != "lo")
        .collect();
    out.push(outcome(
        8,
        "host-interfaces-invisible",
        interfaces.is_empty(),
        format!("interfaces besides lo: {interfaces:?}"),
    ));
}

/// Row 9: privileged syscalls, nested user namespaces, capabilities.
fn privilege(out: &mut Vec<Outcome>) {
    use palisade_sys::seccomp::{probe, SyscallProbe};
    for (attack, which) in [
        ("mount", SyscallProbe::Mount),
        ("init_module", SyscallProbe::InitModule),
        ("finit_module", SyscallProbe::FinitModule),
        ("kexec_load", SyscallProbe::KexecLoad),
        ("kexec_file_load", SyscallProbe::KexecFileLoad),
        ("bpf", SyscallProbe::Bpf),
        ("keyctl", SyscallProbe::Keyctl),
        ("add_key", SyscallProbe::AddKey),
        ("perf_event_open", SyscallProbe::PerfEventOpen),
        ("io_uring_setup", SyscallProbe::IoUringSetup),
        ("userfaultfd", SyscallProbe::Userfaultfd),
        ("open_by_handle_at", SyscallProbe::OpenByHandleAt),
        ("ptrace", SyscallProbe::Ptrace),
        ("setns", SyscallProbe::Setns),
    ] {
        // The probes' arguments are invalid: EPERM, EACCES or ENOSYS mean policy refused the
        // call; EINVAL, EFAULT or EBADF mean the kernel looked at the arguments, so the call
        // was allowed through.
        out.push(match probe(which) {
            Ok(value) => outcome(9, attack, false, format!("returned {value}")),
            Err(error) => {
                let errno = io_errno(&error);
                Outcome {
                    row: 9,
                    attack,
                    blocked: matches!(errno, Errno::EPERM | Errno::EACCES | Errno::ENOSYS),
                    errno: Some(errno),
                    detail: format!("{error}"),
                }
            }
        });
    }
    // Over /tmp, which exists everywhere, so a missing mount point does not answer for the
    // policy.
    out.push(refused(
        9,
        "mount-tmpfs",
        nix::mount::mount(
            Some("tmpfs"),
            "/tmp",
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .inspect(|()| {
            let _ = nix::mount::umount("/tmp");
        }),
        "mounted a tmpfs over /tmp",
    ));
    out.push(nested_user_namespace());
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
            .unwrap_or_default()
    };
    let uid_map = fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    let root_is_host_root = uid_map.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() == 3 && f[0] == "0" && f[1] == "0"
    });
    out.push(outcome(
        9,
        "uid0-is-host-root",
        !root_is_host_root,
        format!(
            "uid_map: {}",
            uid_map.split_whitespace().collect::<Vec<_>>().join(" ")
        ),
    ));
    let cap_eff = u64::from_str_radix(&field("CapEff:"), 16).unwrap_or(u64::MAX);
    let dangerous: Vec<&str> = [
        (2, "DAC_READ_SEARCH"),
        (12, "NET_ADMIN"),
        (13, "NET_RAW"),
        (16, "SYS_MODULE"),
        (17, "SYS_RAWIO"),
        (19, "SYS_PTRACE"),
        (21, "SYS_ADMIN"),
        (22, "SYS_BOOT"),
        (27, "MKNOD"),
        (34, "SYSLOG"),
        (38, "PERFMON"),
        (39, "BPF"),
    ]
    .iter()
    .filter(|(bit, _)| cap_eff & (1u64 << bit) != 0)
    .map(|(_, name)| *name)
    .collect();
    out.push(outcome(
        9,
        "dangerous-capabilities",
        dangerous.is_empty(),
        format!("CapEff={cap_eff:x}, dangerous: {dangerous:?}"),
    ));
    out.push(outcome(
        9,
        "gain-privileges-through-exec",
        field("NoNewPrivs:") == "1",
        format!("NoNewPrivs={}", field("NoNewPrivs:")),
    ));
}

/// A nested user namespace gives its creator every capability over namespaces it then
/// creates: the gateway to most kernel privilege-escalation bugs. It is tried in a child (the
/// attempt changes the caller's namespace when it works), which then tries to use those
/// capabilities on something the host sees: its own hostname's namespace and a mount.
fn nested_user_namespace() -> Outcome {
    let exe = std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into());
    let output = Command::new(exe).arg("userns-child").output();
    let text = output
        .as_ref()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    match text.strip_prefix("refused ") {
        Some(errno) => Outcome {
            row: 9,
            attack: "nested-user-namespace",
            blocked: true,
            errno: errno.parse::<i32>().ok().map(Errno::from_raw),
            detail: "unshare(CLONE_NEWUSER) refused".to_owned(),
        },
        None => outcome(9, "nested-user-namespace", false, text),
    }
}

/// The child of [`nested_user_namespace`]: prints `refused ERRNO` or what it managed.
pub(crate) fn userns_child() -> i32 {
    match nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER) {
        Err(errno) => {
            println!("refused {}", errno as i32);
            0
        }
        Ok(()) => {
            // Full capabilities now, but only over namespaces this one owns: try the host-
            // visible ones inherited from the parent.
            let hostname = nix::unistd::sethostname("escaped");
            let mounted = nix::mount::mount(
                Some("tmpfs"),
                "/tmp",
                Some("tmpfs"),
                nix::mount::MsFlags::empty(),
                None::<&str>,
            );
            println!(
                "unshare(CLONE_NEWUSER) succeeded; then sethostname: {hostname:?}, mount on the parent's /tmp: {mounted:?}"
            );
            0
        }
    }
}

/// Row 10 (reconnaissance for an attack on the kernel): the kernel log and kernel addresses.
fn kernel_information(out: &mut Vec<Outcome>) {
    let mut buffer = vec![0u8; 4096];
    out.push(match palisade_sys::seccomp::read_kernel_log(&mut buffer) {
        Ok(n) => outcome(
            10,
            "read-kernel-log",
            false,
            format!("dmesg returned {n} bytes"),
        ),
        Err(error) => io_refused(10, "read-kernel-log", Err::<(), _>(error), ""),
    });
    out.push(match fs::File::open("/proc/kallsyms") {
        Ok(file) => {
            let mut text = String::new();
            let _ = file.take(64 * 1024).read_to_string(&mut text);
            let addresses: Vec<&str> = text
                .lines()
                .filter_map(|l| l.split_whitespace().next())
                .collect();
            let leaked = addresses
                .iter()
                .filter(|a| a.chars().any(|c| c != '0'))
                .count();
            outcome(
                10,
                "kallsyms-addresses",
                leaked == 0,
                format!(
                    "{} symbols read, {leaked} with real addresses",
                    addresses.len()
                ),
            )
        }
        Err(error) => io_refused(10, "kallsyms-addresses", Err::<(), _>(error), ""),
    });
}

/// `palisade-check idle`: waits to be killed (the fork bomb's children).
pub(crate) fn idle() -> i32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(1));
    }
    0
}
