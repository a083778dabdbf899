//! Compiled filters installed in the running kernel.
//!
//! Each test installs its filter in a thread of its own: a seccomp filter (without TSYNC)
//! applies to the calling thread and the threads and processes it starts, so the rest of the
//! test binary stays unfiltered. The kill test runs in a child process, since it kills one.

// Helpers outside `#[test]` functions panic on purpose too: this is a test binary.
#![allow(clippy::unwrap_used)]

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;

use oci_spec::runtime::LinuxSeccomp;
use palisade_seccomp::{compile, default_profile, parse_profile, SeccompFilter};
use palisade_sys::seccomp::{
    notification_is_pending, probe, receive_notification, respond, NotificationResponse,
    SyscallProbe,
};
use serde_json::json;

/// The environment variable that tells a re-executed test binary which child role to play.
const CHILD_ROLE: &str = "PALISADE_SECCOMP_TEST_CHILD";

fn profile(value: serde_json::Value) -> LinuxSeccomp {
    parse_profile(&value.to_string()).unwrap()
}

/// Sets `no_new_privs` on the calling thread and installs `filter` there.
fn install(filter: &SeccompFilter) -> Option<OwnedFd> {
    nix::sys::prctl::set_no_new_privs().unwrap();
    filter.install().unwrap()
}

fn errno<T: std::fmt::Debug>(result: io::Result<T>) -> Option<i32> {
    result.err().and_then(|error| error.raw_os_error())
}

#[test]
fn errno_rules_and_argument_checks_hold_in_the_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let mut file = File::create(dir.path().join("file")).unwrap();
    file.write_all(b"contents").unwrap();
    let filter = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            // glibc's gethostname calls uname.
            { "names": ["uname"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ENOSYS },
            { "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO" },
            {
                "names": ["lseek"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EDOM,
                "args": [{ "index": 1, "value": 0x1_0000_0000u64, "op": "SCMP_CMP_GT" }]
            },
            {
                "names": ["fchmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EACCES,
                "args": [{
                    "index": 1, "value": 0o7777, "valueTwo": 0o777, "op": "SCMP_CMP_MASKED_EQ"
                }]
            }
        ]
    })))
    .unwrap();
    assert!(filter.warnings().is_empty(), "{:?}", filter.warnings());

    let path = dir.path().to_owned();
    std::thread::spawn(move || {
        assert!(install(&filter).is_none());
        assert_eq!(
            nix::unistd::gethostname().err(),
            Some(nix::errno::Errno::ENOSYS)
        );
        assert_eq!(
            errno(std::fs::create_dir(path.join("d"))),
            Some(libc::EPERM)
        );
        assert!(!path.join("d").exists());
        // 64-bit comparison: only offsets above 2^32 are refused.
        assert_eq!(
            errno(file.seek(SeekFrom::Start(0x1_0000_0001))),
            Some(libc::EDOM)
        );
        assert_eq!(
            file.seek(SeekFrom::Start(0xffff_ffff)).unwrap(),
            0xffff_ffff
        );
        assert_eq!(file.seek(SeekFrom::Start(2)).unwrap(), 2);
        // MASKED_EQ on the mode.
        let mode = |bits| std::fs::Permissions::from_mode(bits);
        assert_eq!(errno(file.set_permissions(mode(0o777))), Some(libc::EACCES));
        file.set_permissions(mode(0o640)).unwrap();
        // Everything else still works.
        let mut contents = String::new();
        File::open(path.join("file"))
            .unwrap()
            .read_to_string(&mut contents)
            .unwrap();
        assert_eq!(contents, "contents");
    })
    .join()
    .unwrap();
}

/// Plays the child of `kill_process_kills_the_whole_process` when asked to.
#[test]
fn child_that_calls_a_killed_syscall() {
    if std::env::var(CHILD_ROLE).as_deref() != Ok("kill") {
        return;
    }
    let filter = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{ "names": ["uname"], "action": "SCMP_ACT_KILL_PROCESS" }]
    })))
    .unwrap();
    install(&filter);
    let _ = nix::unistd::gethostname();
    // Still alive: the filter did not act.
    std::process::exit(3);
}

#[test]
fn kill_process_kills_the_whole_process() {
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_that_calls_a_killed_syscall",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(CHILD_ROLE, "kill")
        .output()
        .unwrap();
    assert_eq!(output.status.signal(), Some(libc::SIGSYS), "{output:?}");
}

#[test]
fn the_default_profile_refuses_dangerous_calls_and_runs_ordinary_programs() {
    // What each probe returns without a filter: its arguments are invalid on purpose.
    let baseline: Vec<(SyscallProbe, Option<i32>)> = SyscallProbe::ALL
        .iter()
        .map(|&p| (p, errno(probe(p))))
        .collect();
    for (p, errno) in &baseline {
        assert!(errno.is_some(), "{} succeeded without a filter", p.name());
        if *errno == Some(libc::EPERM) {
            eprintln!(
                "note: {} fails with EPERM even without a filter here; its check below proves \
                 less",
                p.name()
            );
        }
    }

    let filter = compile(&default_profile()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    std::thread::spawn(move || {
        assert!(install(&filter).is_none());

        for p in SyscallProbe::ALL {
            let expected = if p == SyscallProbe::Clone3 {
                // So that libc falls back to clone, whose flags the filter can see.
                libc::ENOSYS
            } else {
                libc::EPERM
            };
            assert_eq!(errno(probe(p)), Some(expected), "{}", p.name());
        }
        assert_eq!(
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER).err(),
            Some(nix::errno::Errno::EPERM)
        );
        assert_eq!(
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).err(),
            Some(nix::errno::Errno::EPERM)
        );
        nix::sched::unshare(nix::sched::CloneFlags::empty()).unwrap();
        let alg = nix::sys::socket::socket(
            nix::sys::socket::AddressFamily::Alg,
            nix::sys::socket::SockType::SeqPacket,
            nix::sys::socket::SockFlag::empty(),
            None,
        );
        assert_eq!(alg.err(), Some(nix::errno::Errno::EPERM));

        // Ordinary file I/O.
        let file_path = path.join("a");
        std::fs::write(&file_path, "hello").unwrap();
        OpenOptions::new()
            .append(true)
            .open(&file_path)
            .unwrap()
            .write_all(b" world")
            .unwrap();
        std::fs::create_dir(path.join("dir")).unwrap();
        std::fs::rename(&file_path, path.join("dir/b")).unwrap();
        assert_eq!(
            std::fs::read_to_string(path.join("dir/b")).unwrap(),
            "hello world"
        );
        assert_eq!(std::fs::read_dir(path.join("dir")).unwrap().count(), 1);
        std::fs::remove_file(path.join("dir/b")).unwrap();

        // Threads and processes: clone without namespace flags (after clone3's ENOSYS).
        assert_eq!(std::thread::spawn(|| 6 * 7).join().unwrap(), 42);
        let output = Command::new("/bin/sh")
            .args([
                "-c",
                "echo started; cat /proc/self/status | grep -c Seccomp",
            ])
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        assert!(String::from_utf8_lossy(&output.stdout).starts_with("started"));

        // Sockets of the allowed families.
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(udp.local_addr().unwrap().port() > 0);
        std::os::unix::net::UnixDatagram::unbound().unwrap();
    })
    .join()
    .unwrap();
}

#[test]
fn a_notify_rule_lets_an_agent_answer_for_the_kernel() {
    let filter = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": "/run/palisade-test-agent.sock",
        "listenerMetadata": "test",
        "syscalls": [{ "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY" }]
    })))
    .unwrap();
    assert!(filter.needs_listener());
    assert_eq!(
        filter.listener_path(),
        Some(Path::new("/run/palisade-test-agent.sock"))
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let (to_agent, from_worker) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let tid = nix::unistd::gettid();
        let listener = install(&filter).expect("a listener");
        to_agent.send((tid, listener)).unwrap();
        [
            std::fs::create_dir(path.join("refused")).map_err(|e| e.raw_os_error()),
            std::fs::create_dir(path.join("continued")).map_err(|e| e.raw_os_error()),
            std::fs::create_dir(path.join("faked")).map_err(|e| e.raw_os_error()),
        ]
    });

    let (tid, listener) = from_worker.recv().unwrap();
    let mkdir_numbers = [
        #[cfg(target_arch = "x86_64")]
        libc::SYS_mkdir,
        libc::SYS_mkdirat,
    ];
    let answer = |response| {
        let mut fds = [nix::poll::PollFd::new(
            listener.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let ready = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(10_000u16)).unwrap();
        assert_eq!(ready, 1, "no notification within 10 s");
        let notification = receive_notification(listener.as_fd()).unwrap();
        assert_eq!(i64::from(notification.pid), i64::from(tid.as_raw()));
        assert!(
            mkdir_numbers.contains(&libc::c_long::from(notification.nr)),
            "notified of syscall {}",
            notification.nr
        );
        assert!(notification_is_pending(listener.as_fd(), notification.id).unwrap());
        respond(listener.as_fd(), notification.id, response).unwrap();
        assert!(!notification_is_pending(listener.as_fd(), notification.id).unwrap());
    };
    answer(NotificationResponse::Fail(libc::EACCES));
    answer(NotificationResponse::Continue);
    answer(NotificationResponse::Return(0));

    let [refused, continued, faked] = worker.join().unwrap();
    assert_eq!(refused, Err(Some(libc::EACCES)));
    assert!(!dir.path().join("refused").exists());
    assert_eq!(continued, Ok(()));
    assert!(dir.path().join("continued").is_dir());
    // The agent said "done" without doing it.
    assert_eq!(faked, Ok(()));
    assert!(!dir.path().join("faked").exists());
}
