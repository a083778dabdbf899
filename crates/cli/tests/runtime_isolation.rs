//! THREATS.md rows 3-7 and 9, attempted from inside real containers started by
//! `palisade-runtime`. Each test fails if the attack succeeds, and where a defence is
//! optional, also shows that the attack works without it (so the test can fail).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::os::fd::AsRawFd;

use serde_json::{json, Value};
use support::*;

/// Parses `palisade-check battery` output into (check, blocked, detail).
fn attempts(out: &str) -> Vec<(String, bool, String)> {
    out.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("check").is_some())
        .map(|v| {
            (
                v["check"].as_str().unwrap_or_default().to_owned(),
                v["blocked"].as_bool().unwrap_or(false),
                v["detail"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[test]
fn escape_battery_from_a_hardened_container_is_refused() {
    if !privileged() {
        return;
    }
    // Things on the host the container must not reach: a process, a SysV segment, an abstract
    // socket and a POSIX queue.
    let mut host_process = std::process::Command::new("/bin/sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let shm = palisade_sys::ipc::shm_create().unwrap();
    let abstract_name = format!("palisade-test-{}", std::process::id());
    let listener = std::os::unix::net::UnixListener::bind_addr(
        &<std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(abstract_name.as_bytes()).unwrap(),
    )
    .unwrap();
    let mq_name = format!("/palisade-test-{}", std::process::id());
    let mq = nix::mqueue::mq_open(
        mq_name.as_str(),
        nix::mqueue::MQ_OFlag::O_CREAT | nix::mqueue::MQ_OFlag::O_RDWR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        Some(&nix::mqueue::MqAttr::new(0, 4, 64, 0)),
    )
    .unwrap();
    // A host descriptor left open without CLOEXEC: the runtime must not pass it on.
    let leak = std::fs::File::open("/etc/hostname").unwrap();
    nix::fcntl::fcntl(
        leak.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .unwrap();

    let rt = Runtime::new();
    let host_pid = host_process.id().to_string();
    let shm_id = shm.to_string();
    let bundle = Bundle::new(&[
        "palisade-check",
        "battery",
        "--host-pid",
        &host_pid,
        "--shm-id",
        &shm_id,
        "--abstract",
        &abstract_name,
        "--mq",
        &mq_name,
    ]);
    let out = rt.run(&[
        "run",
        "-b",
        bundle.path().to_str().unwrap(),
        &unique_id("battery"),
    ]);

    let _ = host_process.kill();
    let _ = host_process.wait();
    palisade_sys::ipc::shm_remove(shm).unwrap();
    drop(listener);
    let _ = nix::mqueue::mq_close(mq);
    let _ = nix::mqueue::mq_unlink(mq_name.as_str());
    drop(leak);

    let text = stdout(&out);
    let results = attempts(&text);
    assert!(
        results.len() > 40,
        "battery did not run: {text}\n{}",
        stderr(&out)
    );
    let through: Vec<_> = results.iter().filter(|(_, blocked, _)| !blocked).collect();
    assert!(through.is_empty(), "attacks got through: {through:#?}");
    for expected in [
        "signal-host-process",
        "host-sysv-shm",
        "host-abstract-socket",
        "host-posix-mq",
        "leaked-host-fds",
        "io_uring_setup",
        "bpf",
        "keyctl",
        "perf_event_open",
        "userfaultfd",
        "nested-user-namespace",
        "mount-tmpfs",
        "mknod-disk",
        "init_module",
    ] {
        assert!(
            results.iter().any(|(n, ..)| n == expected),
            "{expected} was not attempted"
        );
    }
    assert!(out.status.success(), "battery reported failures: {text}");
}

#[test]
fn the_same_ipc_and_process_attacks_work_without_namespaces() {
    // Proves the battery can fail: with the host's pid and ipc namespaces, it sees the host.
    if !privileged() {
        return;
    }
    let mut host_process = std::process::Command::new("/bin/sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let shm = palisade_sys::ipc::shm_create().unwrap();
    let rt = Runtime::new();
    let host_pid = host_process.id().to_string();
    let shm_id = shm.to_string();
    let bundle = Bundle::new(&[
        "palisade-check",
        "battery",
        "--host-pid",
        &host_pid,
        "--shm-id",
        &shm_id,
    ]);
    bundle.edit(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| !matches!(n["type"].as_str(), Some("pid") | Some("ipc") | Some("user")));
        c["linux"].as_object_mut().unwrap().remove("uidMappings");
        c["linux"].as_object_mut().unwrap().remove("gidMappings");
        c["process"]["capabilities"]["bounding"]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_IPC_OWNER"));
        c["process"]["capabilities"]["effective"]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_IPC_OWNER"));
        c["process"]["capabilities"]["permitted"]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_IPC_OWNER"));
    });
    let out = rt.run(&[
        "run",
        "-b",
        bundle.path().to_str().unwrap(),
        &unique_id("no-ns"),
    ]);
    let _ = host_process.kill();
    let _ = host_process.wait();
    palisade_sys::ipc::shm_remove(shm).unwrap();
    let results = attempts(&stdout(&out));
    let got = |name: &str| {
        results
            .iter()
            .find(|(n, ..)| n == name)
            .map(|(_, blocked, _)| !blocked)
    };
    assert_eq!(got("signal-host-process"), Some(true), "{}", stdout(&out));
    assert_eq!(got("host-sysv-shm"), Some(true), "{}", stdout(&out));
    assert_eq!(got("uid0-is-host-root"), Some(true));
    assert!(!out.status.success());
}

#[test]
fn container_root_is_an_unprivileged_host_uid() {
    if !privileged() {
        return;
    }
    let rt = Runtime::new();
    let bundle = Bundle::new(&["sleep", "60"]);
    let id = unique_id("uidmap");
    rt.detached(&["run", "-d", "-b", bundle.path().to_str().unwrap(), &id]);
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid_line.split_whitespace().skip(1).all(|u| u == "1000000"),
        "{uid_line}"
    );
    let cap_eff = status.lines().find(|l| l.starts_with("CapEff:")).unwrap();
    assert!(cap_eff.ends_with("0000000020000420"), "{cap_eff}");
    rt.ok(&["delete", "--force", &id]);
}

#[test]
fn fork_bomb_and_memory_hog_are_contained() {
    if !privileged() {
        return;
    }
    let rt = Runtime::new();
    let bundle = Bundle::new(&["palisade-check", "fork", "200"]);
    bundle.edit(|c| c["linux"]["resources"]["pids"] = json!({ "limit": 20 }));
    let out = rt.run(&[
        "run",
        "-b",
        bundle.path().to_str().unwrap(),
        &unique_id("forkbomb"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    let started = report["started"].as_u64().unwrap();
    assert!(started < 20, "pids limit not enforced: {report}");

    let bundle = Bundle::new(&["palisade-check", "alloc", "256"]);
    bundle.edit(|c| {
        c["linux"]["resources"]["memory"] = json!({ "limit": 32 << 20, "swap": 32 << 20 })
    });
    let id = unique_id("memhog");
    let out = rt.run(&["run", "-b", bundle.path().to_str().unwrap(), &id]);
    assert_eq!(
        out.status.code(),
        Some(137),
        "memory hog was not OOM-killed: {} {}",
        stdout(&out),
        stderr(&out)
    );

    // And the host is still fine: a normal container runs right after.
    let bundle = Bundle::new(&["true"]);
    let out = rt.run(&[
        "run",
        "-b",
        bundle.path().to_str().unwrap(),
        &unique_id("after"),
    ]);
    assert!(out.status.success());
}

#[test]
fn landlock_refuses_a_leaked_host_directory_and_only_landlock_does() {
    if !privileged() {
        return;
    }
    let secret_dir = host_dir("landlock");
    std::fs::write(secret_dir.join("secret"), "host data").unwrap();
    std::fs::set_permissions(
        secret_dir.join("secret"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    // The directory reaches the container as fd 3 (--preserve-fds 1), the way a buggy caller
    // or a CVE-2024-21626-style leak would hand it over; the shell opens it as fd 3.
    let run_with = |landlock: bool| {
        let rt = Runtime::new();
        let bundle = Bundle::new(&["palisade-check", "openat", "3", "secret"]);
        if !landlock {
            bundle.edit(|c| {
                c["annotations"]
                    .as_object_mut()
                    .unwrap()
                    .remove("org.palisade.landlock");
            });
        }
        let id = unique_id(if landlock {
            "landlock-on"
        } else {
            "landlock-off"
        });
        let out = std::process::Command::new("/bin/sh")
            .args([
                "-c",
                "exec 3< \"$0\"; exec \"$@\"",
                secret_dir.to_str().unwrap(),
                RUNTIME,
                "--root",
                rt.root.path().to_str().unwrap(),
            ])
            .args([
                "run",
                "--preserve-fds",
                "1",
                "-b",
                bundle.path().to_str().unwrap(),
                &id,
            ])
            .output()
            .unwrap();
        (out.status.code(), stdout(&out) + &stderr(&out))
    };
    let (code, text) = run_with(true);
    assert_eq!(
        code,
        Some(1),
        "Landlock let the container read through a host descriptor: {text}"
    );
    assert!(text.contains("denied"), "{text}");
    let (code, text) = run_with(false);
    assert_eq!(code, Some(0), "without Landlock the leaked descriptor should work (else this test proves nothing): {text}");
}

#[test]
fn runtime_enters_containers_from_a_sealed_copy_of_itself() {
    // CVE-2019-5736: the runtime's /proc/<pid>/exe, reachable while it sets a container up,
    // must not be the host binary. A createRuntime hook runs as the runtime's child and
    // looks at its parent.
    if !privileged() {
        return;
    }
    let rt = Runtime::new();
    let out_dir = host_dir("selfexe");
    let report = out_dir.join("exe");
    let bundle = Bundle::new(&["true"]);
    let script = format!(
        "readlink /proc/$PPID/exe > {r}; if echo x >> /proc/$PPID/exe 2>/dev/null; then echo writable >> {r}; else echo sealed >> {r}; fi",
        r = report.display()
    );
    // Without a user namespace, container root could write a host-root-owned binary: this is
    // the configuration the sealed copy protects.
    bundle.edit(|c| {
        c["hooks"] =
            json!({ "createRuntime": [{ "path": "/bin/sh", "args": ["sh", "-c", script] }] });
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "user");
        c["linux"].as_object_mut().unwrap().remove("uidMappings");
        c["linux"].as_object_mut().unwrap().remove("gidMappings");
    });
    let out = rt.run(&[
        "run",
        "-b",
        bundle.path().to_str().unwrap(),
        &unique_id("selfexe"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&report).unwrap();
    assert!(
        text.starts_with("/memfd:palisade-runtime"),
        "runtime runs from {text}"
    );
    assert!(text.contains("sealed"), "{text}");
    // The host binary is untouched.
    assert!(std::fs::metadata(RUNTIME).unwrap().len() > 0);
}

#[test]
fn with_a_user_namespace_container_root_cannot_write_the_runtime_binary() {
    // The runtime skips the sealed copy when the container's user namespace maps no id owning
    // the binary: the kernel refuses the write itself. Prove it on a copy of the binary, bound
    // writable into the container.
    if !privileged() {
        return;
    }
    let rt = Runtime::new();
    let dir = host_dir("victim");
    let victim = dir.join("palisade-runtime");
    std::fs::copy(RUNTIME, &victim).unwrap();
    let before = std::fs::read(&victim).unwrap();
    let bundle = Bundle::new(&[
        "sh",
        "-c",
        "if echo x >> /hostout/palisade-runtime 2>/dev/null; then echo written; else echo refused; fi",
    ]);
    bundle.bind_host_dir(&dir, "/hostout");
    let out = rt.run(&[
        "run",
        "-b",
        bundle.path().to_str().unwrap(),
        &unique_id("victim"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "refused");
    assert_eq!(
        std::fs::read(&victim).unwrap(),
        before,
        "the binary changed"
    );
}

#[test]
fn device_cgroup_refuses_devices_outside_the_allow_list() {
    // Without a user namespace and with CAP_MKNOD, mknod works: only the device cgroup stands
    // between the container and the host's memory.
    if !privileged() {
        return;
    }
    let rt = Runtime::new();
    let bundle = Bundle::new(&["sh", "-c", "mknod /dev/zero2 c 1 5 && head -c 1 /dev/zero2 >/dev/null && echo zero-ok; if mknod /dev/mem2 c 1 1 2>/dev/null; then head -c 1 /dev/mem2 >/dev/null 2>&1 && echo mem-open || echo mem-denied; else echo mem-denied; fi"]);
    bundle.edit(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "user");
        c["linux"].as_object_mut().unwrap().remove("uidMappings");
        c["linux"].as_object_mut().unwrap().remove("gidMappings");
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push(json!("CAP_MKNOD"));
        }
    });
    let out = rt.run(&[
        "run",
        "-b",
        bundle.path().to_str().unwrap(),
        &unique_id("devices"),
    ]);
    let text = stdout(&out);
    assert!(text.contains("mem-denied"), "{text} {}", stderr(&out));
    assert!(text.contains("zero-ok"), "{text}");
}

#[test]
fn cgroup_mount_shows_only_the_container_and_no_release_agent() {
    if !privileged() {
        return;
    }
    let rt = Runtime::new();
    let bundle = Bundle::new(&[
        "sh",
        "-c",
        "ls /sys/fs/cgroup; ls /sys/fs/cgroup/pids 2>/dev/null | head -50; cat /proc/self/cgroup",
    ]);
    let out = rt.run(&[
        "run",
        "-b",
        bundle.path().to_str().unwrap(),
        &unique_id("cgmount"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(!text.contains("release_agent"), "{text}");
}

#[test]
fn lifecycle_relaxations_and_oom_kills_reach_the_audit_log() {
    if !privileged() {
        return;
    }
    let rt = Runtime::new();
    let log = rt.root.path().join("audit.log");
    let log_arg = log.to_str().unwrap();
    let bundle = Bundle::new(&["palisade-check", "alloc", "256"]);
    bundle.edit(|c| {
        c["linux"]["resources"]["memory"] = json!({ "limit": 32 << 20, "swap": 32 << 20 });
        c["process"]["noNewPrivileges"] = json!(false);
    });
    let id = unique_id("audited");
    let out = rt.run(&[
        "--audit-log",
        log_arg,
        "run",
        "-b",
        bundle.path().to_str().unwrap(),
        &id,
    ]);
    assert_eq!(out.status.code(), Some(137), "{}", stderr(&out));
    let report = palisade_audit::verify(&[&log]).unwrap();
    assert!(report.intact, "{report:?}");
    let events: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"]["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        kinds,
        [
            "container_created",
            "policy_relaxed",
            "container_started",
            "oom_killed",
            "container_deleted"
        ],
        "{events:#?}"
    );
    assert_eq!(
        events[1]["event"]["relaxation"],
        "no_new_privileges_disabled"
    );
    assert_eq!(events[0]["event"]["container_id"], id.as_str());
    assert_eq!(events[3]["event"]["memory_limit"], 32 << 20);
}

#[test]
fn seccomp_notify_hands_the_listener_to_the_agent() {
    // SCMP_ACT_NOTIFY with listenerPath: the agent gets the listener descriptor and the
    // container state, and its answers decide the container's system calls.
    if !privileged() {
        return;
    }
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    use std::os::fd::AsFd;
    let rt = Runtime::new();
    let bundle = Bundle::new(&[
        "sh",
        "-c",
        "mkdir /tmp/agent-says-no && echo made || echo refused",
    ]);
    let socket = bundle.path().join("agent.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let socket_path = socket.display().to_string();
    bundle.edit(|c| {
        let seccomp = &mut c["linux"]["seccomp"];
        seccomp["listenerPath"] = json!(socket_path);
        seccomp["listenerMetadata"] = json!("palisade-test");
        seccomp["syscalls"].as_array_mut().unwrap().insert(
            0,
            json!({ "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY" }),
        );
    });
    let agent = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 8192];
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let msg = rustix::net::recvmsg(
            &stream,
            &mut [std::io::IoSliceMut::new(&mut buf)],
            &mut control,
            RecvFlags::empty(),
        )
        .unwrap();
        let state: Value = serde_json::from_slice(&buf[..msg.bytes]).unwrap();
        let mut fd = None;
        for m in control.drain() {
            if let RecvAncillaryMessage::ScmRights(mut fds) = m {
                fd = fds.next();
            }
        }
        let fd = fd.expect("no listener descriptor");
        let note = palisade_sys::seccomp::receive_notification(fd.as_fd()).unwrap();
        palisade_sys::seccomp::respond(
            fd.as_fd(),
            note.id,
            palisade_sys::seccomp::NotificationResponse::Fail(libc_eacces()),
        )
        .unwrap();
        state
    });
    let out = rt.run(&[
        "run",
        "-b",
        bundle.path().to_str().unwrap(),
        &unique_id("notify"),
    ]);
    let state = agent.join().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        "refused",
        "the agent's answer was not applied"
    );
    assert_eq!(state["fds"], json!(["seccompFd"]));
    assert_eq!(state["metadata"], "palisade-test");
    assert!(state["state"]["id"]
        .as_str()
        .unwrap()
        .starts_with("notify-"));
}

fn libc_eacces() -> i32 {
    nix::errno::Errno::EACCES as i32
}
