#![forbid(unsafe_code)]
//! `palisade-check`: probes the isolation of the container it runs in.
//!
//! Run it as a container's process (`palisade-check battery`) and it tries the escapes of
//! THREATS.md rows 3-7 and 9 from the inside, printing one JSON line per attempt and exiting 1
//! if any attempt got through. `status` prints what the process looks like from the inside
//! (ids, capabilities, no_new_privs, seccomp, descriptors, namespaces). `attacks` is the
//! attack regression suite of THREATS.md rows 3-10 (see `attacks.rs`): one JSON line per
//! attack with its row, blocked or not, and the errno. The test-suite and the demo use it;
//! operators can too, to check a host's configuration.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use serde_json::json;

#[path = "palisade-check/attacks.rs"]
mod attacks;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.first().map(String::as_str) {
        Some("battery") => battery(&args[1..]),
        Some("attacks") => attacks::run(&args[1..]),
        Some("userns-child") => attacks::userns_child(),
        Some("idle") => attacks::idle(),
        Some("status") => status(),
        Some("alloc") => alloc(args.get(1).and_then(|a| a.parse().ok()).unwrap_or(64)),
        Some("fork") => fork_many(args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100)),
        Some("openat") => openat(&args[1..]),
        Some("write") => write_file(&args[1..]),
        _ => {
            eprintln!("usage: palisade-check battery [--host-pid N] [--shm-id N] [--abstract NAME] [--mq NAME] [--allow-fds N]\n       palisade-check attacks [--host-pid N] [--shm-id N] [--abstract NAME] [--mq NAME] [--no-hogs]\n       palisade-check status | alloc MIB | fork N | openat FD NAME | write PATH");
            2
        }
    };
    std::process::exit(code);
}

/// One attempted escape.
struct Attempt {
    name: &'static str,
    blocked: bool,
    detail: String,
}

fn attempt(name: &'static str, blocked: bool, detail: impl Into<String>) -> Attempt {
    Attempt {
        name,
        blocked,
        detail: detail.into(),
    }
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn battery(args: &[String]) -> i32 {
    let mut attempts = Vec::new();
    let allow_fds: i32 = flag(args, "--allow-fds")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);

    // Row 6: host files through /proc and /sys.
    attempts.push(
        match fs::OpenOptions::new()
            .write(true)
            .open("/proc/sysrq-trigger")
        {
            Ok(_) => attempt("proc-sysrq-trigger-write", false, "opened for writing"),
            Err(e) => attempt("proc-sysrq-trigger-write", true, e.to_string()),
        },
    );
    attempts.push(match fs::File::open("/proc/kcore") {
        Ok(mut f) => {
            let mut buf = [0u8; 16];
            let n = f.read(&mut buf).unwrap_or(0);
            attempt("proc-kcore-read", n == 0, format!("read {n} bytes"))
        }
        Err(e) => attempt("proc-kcore-read", true, e.to_string()),
    });
    attempts.push(
        match fs::OpenOptions::new()
            .write(true)
            .open("/sys/kernel/uevent_helper")
        {
            Ok(_) => attempt("sys-uevent-helper-write", false, "opened for writing"),
            Err(e) => attempt("sys-uevent-helper-write", true, e.to_string()),
        },
    );
    attempts.push(match fs::File::create("/sys/palisade-probe") {
        Ok(_) => attempt("sys-create-file", false, "created /sys/palisade-probe"),
        Err(e) => attempt("sys-create-file", true, e.to_string()),
    });
    let agents = find_named(Path::new("/sys/fs/cgroup"), "release_agent", 4);
    let writable: Vec<_> = agents
        .iter()
        .filter(|p| fs::OpenOptions::new().write(true).open(p).is_ok())
        .collect();
    attempts.push(attempt(
        "cgroup-release-agent-write",
        writable.is_empty(),
        format!(
            "{} release_agent files visible, {} writable",
            agents.len(),
            writable.len()
        ),
    ));
    let leaked: Vec<i32> = open_fds()
        .into_iter()
        .filter(|fd| *fd > 2 + allow_fds)
        .collect();
    attempts.push(attempt(
        "leaked-host-fds",
        leaked.is_empty(),
        format!("extra descriptors: {leaked:?}"),
    ));
    attempts.push(match nix::unistd::getcwd() {
        Ok(cwd) if cwd.is_absolute() && !cwd.starts_with("(unreachable)") => {
            attempt("host-cwd", true, cwd.display().to_string())
        }
        Ok(cwd) => attempt("host-cwd", false, cwd.display().to_string()),
        Err(e) => attempt("host-cwd", false, e.to_string()),
    });
    attempts.push(match fs::read_link("/proc/self/root") {
        Ok(root) => attempt(
            "proc-self-root",
            root == Path::new("/"),
            root.display().to_string(),
        ),
        Err(e) => attempt("proc-self-root", true, e.to_string()),
    });

    // Row 7: devices.
    let node = Path::new("/tmp/palisade-sda");
    attempts.push(
        match nix::sys::stat::mknod(
            node,
            nix::sys::stat::SFlag::S_IFBLK,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            nix::sys::stat::makedev(8, 0),
        ) {
            Ok(()) => {
                let opened = fs::File::open(node);
                let _ = fs::remove_file(node);
                match opened {
                    Ok(_) => attempt("mknod-disk", false, "created and opened block device 8:0"),
                    Err(e) => attempt(
                        "mknod-disk",
                        true,
                        format!("node created but open failed: {e}"),
                    ),
                }
            }
            Err(e) => attempt("mknod-disk", true, e.to_string()),
        },
    );
    for dev in [
        "/dev/mem",
        "/dev/kmsg",
        "/dev/kvm",
        "/dev/port",
        "/dev/sda",
        "/dev/vda",
    ] {
        let name: &'static str = match dev {
            "/dev/mem" => "dev-mem-absent",
            "/dev/kmsg" => "dev-kmsg-absent",
            "/dev/kvm" => "dev-kvm-absent",
            "/dev/port" => "dev-port-absent",
            "/dev/sda" => "dev-sda-absent",
            _ => "dev-vda-absent",
        };
        attempts.push(attempt(
            name,
            !Path::new(dev).exists(),
            if Path::new(dev).exists() {
                "present"
            } else {
                "absent"
            },
        ));
    }

    // Row 9: privilege escalation.
    let _ = fs::create_dir_all("/tmp/palisade-mnt");
    attempts.push(
        match nix::mount::mount(
            Some("tmpfs"),
            "/tmp/palisade-mnt",
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        ) {
            Ok(()) => {
                let _ = nix::mount::umount("/tmp/palisade-mnt");
                attempt("mount-tmpfs", false, "mounted")
            }
            Err(e) => attempt("mount-tmpfs", true, e.to_string()),
        },
    );
    attempts.push(
        match nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER) {
            Ok(()) => attempt(
                "nested-user-namespace",
                false,
                "unshare(CLONE_NEWUSER) succeeded",
            ),
            Err(e) => attempt("nested-user-namespace", true, e.to_string()),
        },
    );
    for probe in palisade_sys::seccomp::SyscallProbe::ALL {
        let result = palisade_sys::seccomp::probe(probe);
        let (blocked, detail) = match &result {
            Ok(v) => (false, format!("returned {v}")),
            Err(e) => {
                let errno = e.raw_os_error().unwrap_or(0);
                (
                    matches!(
                        Errno::from_raw(errno),
                        Errno::EPERM | Errno::ENOSYS | Errno::EACCES
                    ),
                    e.to_string(),
                )
            }
        };
        attempts.push(Attempt {
            name: probe.name(),
            blocked,
            detail,
        });
    }
    let status = proc_status();
    let uid_map = fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    let root_is_host_root = uid_map.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() == 3 && f[1] == "0"
    });
    attempts.push(attempt(
        "uid0-is-host-root",
        !root_is_host_root,
        uid_map.trim().replace('\n', "; "),
    ));
    let cap_eff = status
        .get("CapEff")
        .and_then(|v| u64::from_str_radix(v, 16).ok())
        .unwrap_or(u64::MAX);
    let dangerous = [
        (2, "DAC_READ_SEARCH"),
        (12, "NET_ADMIN"),
        (16, "SYS_MODULE"),
        (17, "SYS_RAWIO"),
        (19, "SYS_PTRACE"),
        (21, "SYS_ADMIN"),
        (25, "SYS_TIME"),
        (27, "MKNOD"),
        (38, "PERFMON"),
        (39, "BPF"),
    ];
    let held: Vec<&str> = dangerous
        .iter()
        .filter(|(bit, _)| cap_eff & (1 << bit) != 0)
        .map(|(_, n)| *n)
        .collect();
    attempts.push(attempt(
        "dangerous-capabilities",
        held.is_empty(),
        format!("CapEff={:x} dangerous held: {held:?}", cap_eff),
    ));
    attempts.push(attempt(
        "no-new-privs",
        status.get("NoNewPrivs").map(String::as_str) == Some("1"),
        format!("NoNewPrivs={:?}", status.get("NoNewPrivs")),
    ));
    attempts.push(attempt(
        "seccomp-filter",
        status.get("Seccomp").map(String::as_str) == Some("2"),
        format!("Seccomp={:?}", status.get("Seccomp")),
    ));

    // Row 3: other processes.
    if let Some(pid) = flag(args, "--host-pid").and_then(|p| p.parse::<i32>().ok()) {
        let signal = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None);
        attempts.push(attempt(
            "signal-host-process",
            signal.is_err(),
            format!("kill({pid}, 0): {signal:?}"),
        ));
    }
    let visible = fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
                .count()
        })
        .unwrap_or(0);
    attempts.push(attempt(
        "host-processes-invisible",
        visible < 20,
        format!("{visible} processes visible"),
    ));

    // Row 5: IPC.
    if let Some(id) = flag(args, "--shm-id").and_then(|p| p.parse::<i32>().ok()) {
        let r = palisade_sys::ipc::shm_reachable(id);
        attempts.push(attempt("host-sysv-shm", r.is_err(), format!("{r:?}")));
    }
    if let Some(name) = flag(args, "--abstract") {
        let r = abstract_connect(&name);
        attempts.push(attempt(
            "host-abstract-socket",
            r.is_err(),
            format!("{r:?}"),
        ));
    }
    if let Some(name) = flag(args, "--mq") {
        let r = nix::mqueue::mq_open(
            name.as_str(),
            nix::mqueue::MQ_OFlag::O_RDONLY,
            nix::sys::stat::Mode::empty(),
            None,
        );
        attempts.push(attempt(
            "host-posix-mq",
            r.is_err(),
            format!("{:?}", r.map(|_| "opened")),
        ));
    }

    let mut failures = 0;
    for a in &attempts {
        if !a.blocked {
            failures += 1;
        }
        println!(
            "{}",
            json!({ "check": a.name, "blocked": a.blocked, "detail": a.detail })
        );
    }
    println!(
        "{}",
        json!({ "summary": { "attempts": attempts.len(), "got_through": failures } })
    );
    i32::from(failures > 0)
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

fn find_named(dir: &Path, name: &str, depth: usize) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let path = entry.path();
        if entry.file_name() == name {
            out.push(path.clone());
        }
        if depth > 0 && entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            out.extend(find_named(&path, name, depth - 1));
        }
    }
    out
}

fn open_fds() -> Vec<i32> {
    // Collect first, then drop the directory handle, so its own descriptor is not reported.
    let names: Vec<String> = match fs::read_dir("/proc/self/fd") {
        Ok(d) => d
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => return Vec::new(),
    };
    names
        .iter()
        .filter_map(|n| n.parse::<i32>().ok())
        .filter(|fd| nix::fcntl::fcntl(*fd, nix::fcntl::FcntlArg::F_GETFD).is_ok())
        .collect()
}

fn proc_status() -> BTreeMap<String, String> {
    fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
}

fn status() -> i32 {
    let s = proc_status();
    let ns: BTreeMap<String, String> =
        ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"]
            .iter()
            .filter_map(|n| {
                fs::read_link(format!("/proc/self/ns/{n}"))
                    .ok()
                    .map(|l| (n.to_string(), l.display().to_string()))
            })
            .collect();
    let limits = fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let nofile = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .map(|l| {
            l.split_whitespace()
                .skip(3)
                .take(2)
                .collect::<Vec<_>>()
                .join(":")
        });
    let out = json!({
        "uid": nix::unistd::getuid().as_raw(),
        "gid": nix::unistd::getgid().as_raw(),
        "groups": nix::unistd::getgroups().map(|g| g.iter().map(|g| g.as_raw()).collect::<Vec<_>>()).unwrap_or_default(),
        "pid": std::process::id(),
        "cap_eff": s.get("CapEff"), "cap_prm": s.get("CapPrm"), "cap_bnd": s.get("CapBnd"), "cap_inh": s.get("CapInh"), "cap_amb": s.get("CapAmb"),
        "no_new_privs": s.get("NoNewPrivs"),
        "seccomp": s.get("Seccomp"),
        "hostname": nix::unistd::gethostname().ok().map(|h| h.to_string_lossy().into_owned()),
        "cwd": nix::unistd::getcwd().ok(),
        "fds": open_fds(),
        "uid_map": fs::read_to_string("/proc/self/uid_map").ok(),
        "gid_map": fs::read_to_string("/proc/self/gid_map").ok(),
        "nofile": nofile,
        "umask": s.get("Umask"),
        "oom_score_adj": fs::read_to_string("/proc/self/oom_score_adj").ok().map(|v| v.trim().to_owned()),
        "namespaces": ns,
        "env": std::env::vars().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
        "mounts": fs::read_to_string("/proc/self/mountinfo").unwrap_or_default().lines().map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            format!("{} {}", f.get(4).unwrap_or(&""), f.get(5).unwrap_or(&""))
        }).collect::<Vec<_>>(),
    });
    println!("{out}");
    0
}

fn alloc(mib: usize) -> i32 {
    let mut blocks = Vec::new();
    for i in 0..mib {
        let block = vec![i as u8 | 1; 1 << 20];
        blocks.push(block);
    }
    println!("allocated {} MiB", blocks.len());
    0
}

fn fork_many(n: usize) -> i32 {
    let mut ok = 0;
    let mut children = Vec::new();
    for _ in 0..n {
        match std::process::Command::new("/bin/sleep").arg("3").spawn() {
            Ok(child) => {
                ok += 1;
                children.push(child);
            }
            Err(_) => break,
        }
    }
    println!("{}", json!({ "requested": n, "started": ok }));
    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
    0
}

fn openat(args: &[String]) -> i32 {
    let (Some(fd), Some(name)) = (
        args.first().and_then(|f| f.parse::<i32>().ok()),
        args.get(1),
    ) else {
        return 2;
    };
    let path = format!("/proc/self/fd/{fd}/{name}");
    match fs::File::open(&path) {
        Ok(_) => {
            println!("opened {path}");
            0
        }
        Err(e) => {
            println!("denied {path}: {e}");
            1
        }
    }
}

fn write_file(args: &[String]) -> i32 {
    let Some(path) = args.first() else { return 2 };
    match fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(path)
    {
        Ok(_) => {
            println!("wrote {path}");
            0
        }
        Err(e) => {
            println!("denied {path}: {e}");
            1
        }
    }
}
