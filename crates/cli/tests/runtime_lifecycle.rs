//! The OCI lifecycle driven through `palisade-runtime`'s runc-compatible command line, with
//! real containers. Skips (or fails, under PALISADE_REQUIRE_PRIVILEGED=1) without root.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use support::*;

#[test]
fn run_true_exits_zero_and_leaves_nothing() {
    if !privileged() {
        return;
    }
    let rt = Runtime::new();
    let bundle = Bundle::new(&["true"]);
    let id = unique_id("run-true");
    let out = rt.run(&["run", "--bundle", bundle.path().to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!rt.container_dir(&id).exists(), "state left behind");
    assert!(!cgroup_dir(&id).exists(), "cgroup left behind");
}

#[test]
fn exit_code_and_signal_death_propagate() {
    if !privileged() {
        return;
    }
    let rt = Runtime::new();
    let bundle = Bundle::new(&["sh", "-c", "exit 7"]);
    let out = rt.run(&[
        "run",
        "-b",
        bundle.path().to_str().unwrap(),
        &unique_id("exit7"),
    ]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    // Killed from outside while `run` waits for it: 128 + SIGKILL, as runc reports.
    let bundle = Bundle::new(&["sleep", "300"]);
    let id = unique_id("sig9");
    let mut child = rt
        .command()
        .args(["run", "-b", bundle.path().to_str().unwrap(), &id])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    rt.wait_status(&id, "running");
    rt.ok(&["kill", &id, "KILL"]);
    assert_eq!(child.wait().unwrap().code(), Some(137));
    assert!(!rt.container_dir(&id).exists());
}

#[test]
fn full_lifecycle_create_start_pause_exec_update_kill_delete() {
    if !privileged() {
        return;
    }
    let rt = Runtime::new();
    let bundle = Bundle::new(&["sleep", "300"]);
    let id = unique_id("lifecycle");
    let pid_file = bundle.path().join("init.pid");
    rt.detached(&[
        "create",
        "--bundle",
        bundle.path().to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
    ]);
    let state = rt.state(&id);
    assert_eq!(state["status"], "created");
    assert_eq!(state["ociVersion"], "1.2.0");
    assert_eq!(state["bundle"], bundle.path().to_str().unwrap());
    let pid = state["pid"].as_i64().unwrap();
    assert!(pid > 0);
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap().trim(),
        pid.to_string()
    );
    assert_eq!(state["annotations"]["org.palisade.landlock"], "rootfs");

    // A duplicate id is refused and does not disturb the first container.
    let dup = rt.run(&["create", "--bundle", bundle.path().to_str().unwrap(), &id]);
    assert!(!dup.status.success());
    assert!(stderr(&dup).contains("already exists"), "{}", stderr(&dup));
    assert_eq!(rt.state(&id)["status"], "created");

    // Deleting a running container needs --force; start runs it.
    rt.ok(&["start", &id]);
    assert_eq!(rt.state(&id)["status"], "running");
    let again = rt.run(&["start", &id]);
    assert!(!again.status.success(), "start twice must fail");
    let del = rt.run(&["delete", &id]);
    assert!(
        !del.status.success() && stderr(&del).contains("running"),
        "{}",
        stderr(&del)
    );

    let list: Value = serde_json::from_str(&rt.ok(&["list", "--format", "json"])).unwrap();
    assert_eq!(list[0]["id"], id.as_str());
    assert!(rt.ok(&["list", "-q"]).contains(&id));
    let pids: Vec<i64> = serde_json::from_str(&rt.ok(&["ps", "--format", "json", &id])).unwrap();
    assert!(pids.contains(&pid), "{pids:?} lacks {pid}");
    let table = rt.ok(&["ps", &id]);
    assert!(table.contains("sleep 300"), "{table}");

    rt.ok(&["pause", &id]);
    assert_eq!(rt.state(&id)["status"], "paused");
    assert!(
        !rt.run(&["pause", &id]).status.success(),
        "pausing twice must fail"
    );
    rt.ok(&["resume", &id]);
    assert_eq!(rt.state(&id)["status"], "running");

    // exec joins every namespace of the init.
    let out = rt.ok(&["exec", &id, "palisade-check", "status"]);
    let inside: Value = serde_json::from_str(out.trim()).unwrap();
    for ns in ["mnt", "pid", "net", "ipc", "uts", "user", "cgroup"] {
        let host_view = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
        assert_eq!(
            inside["namespaces"][ns],
            host_view.display().to_string(),
            "exec is not in the init's {ns} namespace"
        );
    }
    assert_eq!(inside["hostname"], "palisade");
    assert_eq!(inside["seccomp"], "2");
    let out = rt.run(&[
        "exec",
        "--env",
        "GREETING=hi",
        "--cwd",
        "/tmp",
        "--user",
        "1000:1000",
        &id,
        "sh",
        "-c",
        "echo $GREETING $(pwd) $(id -u):$(id -g); exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "hi /tmp 1000:1000");

    // update changes the live limits.
    rt.ok(&["update", "--pids-limit", "77", &id]);
    let pids_max = cgroup_dir(&id).join("pids.max");
    if pids_max.exists() {
        assert_eq!(std::fs::read_to_string(pids_max).unwrap().trim(), "77");
    }
    let stats: Value = serde_json::from_str(rt.ok(&["events", "--stats", &id]).trim()).unwrap();
    assert_eq!(stats["type"], "stats");
    assert_eq!(stats["id"], id.as_str());

    rt.ok(&["kill", &id, "KILL"]);
    rt.wait_status(&id, "stopped");
    assert!(
        !rt.run(&["kill", &id, "TERM"]).status.success(),
        "kill of a stopped container must fail"
    );
    rt.ok(&["delete", &id]);
    assert!(!rt.container_dir(&id).exists());
    assert!(!cgroup_dir(&id).exists());
    let gone = rt.run(&["state", &id]);
    assert!(
        !gone.status.success() && stderr(&gone).contains("does not exist"),
        "{}",
        stderr(&gone)
    );
    rt.ok(&["delete", "--force", &id]);
}

#[test]
fn delete_force_kills_a_running_container() {
    if !privileged() {
        return;
    }
    let rt = Runtime::new();
    let bundle = Bundle::new(&["sleep", "300"]);
    let id = unique_id("force");
    rt.detached(&[
        "run",
        "--detach",
        "-b",
        bundle.path().to_str().unwrap(),
        &id,
    ]);
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    rt.ok(&["delete", "--force", &id]);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z")
    );
    assert!(!cgroup_dir(&id).exists());
}

#[test]
fn process_settings_take_effect() {
    if !privileged() {
        return;
    }
    let rt = Runtime::new();
    let bundle = Bundle::new(&["palisade-check", "status"]);
    bundle.edit(|c| {
        c["process"]["env"]
            .as_array_mut()
            .unwrap()
            .push(json!("PALISADE_TEST=1"));
        c["process"]["cwd"] = json!("/tmp");
        c["process"]["user"] =
            json!({ "uid": 1234, "gid": 4321, "additionalGids": [5, 6], "umask": 63 });
        c["process"]["rlimits"] = json!([{ "type": "RLIMIT_NOFILE", "hard": 512, "soft": 256 }]);
        c["process"]["oomScoreAdj"] = json!(500);
        c["hostname"] = json!("box");
        c["linux"]["sysctl"] = json!({ "net.ipv4.ip_forward": "1", "kernel.shmmni": "1000" });
    });
    let out = rt.run(&[
        "run",
        "-b",
        bundle.path().to_str().unwrap(),
        &unique_id("settings"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let s: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(
        (s["uid"].as_u64(), s["gid"].as_u64()),
        (Some(1234), Some(4321))
    );
    assert_eq!(s["groups"], json!([5, 6]));
    assert_eq!(s["umask"], "0077");
    assert_eq!(s["nofile"], "256:512");
    assert_eq!(s["oom_score_adj"], "500");
    assert_eq!(s["cwd"], "/tmp");
    assert_eq!(s["hostname"], "box");
    assert!(s["env"]
        .as_array()
        .unwrap()
        .contains(&json!("PALISADE_TEST=1")));
    // Non-root keeps no capabilities at all; no_new_privs is on.
    assert_eq!(s["cap_eff"], "0000000000000000");
    assert_eq!(s["no_new_privs"], "1");

    let bundle = Bundle::new(&[
        "sh",
        "-c",
        "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni",
    ]);
    bundle.edit(|c| {
        c["linux"]["sysctl"] = json!({ "net.ipv4.ip_forward": "1", "kernel.shmmni": "1000" })
    });
    let out = rt.run(&[
        "run",
        "-b",
        bundle.path().to_str().unwrap(),
        &unique_id("sysctl"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).split_whitespace().collect::<Vec<_>>(),
        ["1", "1000"]
    );
}

#[test]
fn capabilities_match_the_config_exactly() {
    if !privileged() {
        return;
    }
    let rt = Runtime::new();
    let bundle = Bundle::new(&["palisade-check", "status"]);
    let out = rt.run(&[
        "run",
        "-b",
        bundle.path().to_str().unwrap(),
        &unique_id("caps"),
    ]);
    let s: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    // CAP_KILL (5), CAP_NET_BIND_SERVICE (10), CAP_AUDIT_WRITE (29).
    let expected = format!("{:016x}", (1u64 << 5) | (1 << 10) | (1 << 29));
    for set in ["cap_eff", "cap_prm", "cap_bnd"] {
        assert_eq!(s[set], expected.as_str(), "{set}");
    }
    assert_eq!(s["cap_inh"], "0000000000000000");
    assert_eq!(s["cap_amb"], "0000000000000000");

    // noNewPrivileges=false is honoured, and seccomp is still installed.
    bundle.edit(|c| c["process"]["noNewPrivileges"] = json!(false));
    let out = rt.run(&[
        "run",
        "-b",
        bundle.path().to_str().unwrap(),
        &unique_id("nnp"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let s: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(s["no_new_privs"], "0");
    assert_eq!(s["seccomp"], "2");
}

#[test]
fn hooks_run_in_order_with_the_state_on_stdin() {
    if !privileged() {
        return;
    }
    let rt = Runtime::new();
    let out_dir = host_dir("hooks");
    let log = out_dir.join("log");
    // Hooks in the container's user namespace append to it too.
    std::fs::write(&log, "").unwrap();
    std::fs::set_permissions(&log, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let bundle = Bundle::new(&["true"]);
    bundle.bind_host_dir(&out_dir, "/hostout");
    let host_hook = |name: &str| json!({ "path": "/bin/sh", "args": ["sh", "-c", format!("read -r state; echo {name} >> {}; echo \"$state\" > {}/{name}.json; chmod 666 {}/{name}.json", log.display(), out_dir.display(), out_dir.display())] });
    let inside_hook =
        json!({ "path": "/bin/sh", "args": ["sh", "-c", "echo startContainer >> /hostout/log"] });
    bundle.edit(|c| {
        c["hooks"] = json!({
            "prestart": [host_hook("prestart")],
            "createRuntime": [host_hook("createRuntime")],
            "createContainer": [host_hook("createContainer")],
            "startContainer": [inside_hook],
            "poststart": [host_hook("poststart")],
            "poststop": [host_hook("poststop")],
        });
    });
    let id = unique_id("hooks");
    let out = rt.run(&["run", "-b", bundle.path().to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let order: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        order,
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ]
    );
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("createRuntime.json")).unwrap())
            .unwrap();
    assert_eq!(state["id"], id.as_str());
    assert!(state["pid"].as_i64().unwrap() > 0);
    assert_eq!(state["bundle"], bundle.path().to_str().unwrap());
}

#[test]
fn poststart_hooks_run_after_the_user_program_is_executed() {
    if !privileged() {
        return;
    }
    let rt = Runtime::new();
    let out_dir = host_dir("poststart-exec");
    let exe = out_dir.join("exe");
    let _ = std::fs::remove_file(&exe);
    let bundle = Bundle::new(&["sleep", "300"]);
    // A slow startContainer hook keeps the init from exec'ing for a while: poststart must
    // still see the user's program, not the runtime's init. A failing poststart hook before
    // it must not stop it from running (both per the OCI spec).
    let record = format!(
        "pid=$(sed -n 's/.*\"pid\":\\([0-9]*\\).*/\\1/p'); readlink /proc/$pid/exe > {}",
        exe.display()
    );
    bundle.edit(|c| {
        c["hooks"] = json!({
            "startContainer": [{ "path": "/bin/sh", "args": ["sh", "-c", "sleep 1"] }],
            "poststart": [
                { "path": "/bin/false" },
                { "path": "/bin/sh", "args": ["sh", "-c", record] },
            ],
        });
    });
    let id = unique_id("poststart-exec");
    rt.detached(&["create", "-b", bundle.path().to_str().unwrap(), &id]);
    rt.ok(&["start", &id]);
    let target = std::fs::read_to_string(&exe).unwrap();
    assert!(
        target.trim_end().ends_with("busybox"),
        "poststart saw {target:?}, not the user's program"
    );
    rt.ok(&["delete", "--force", &id]);
}

#[test]
fn console_socket_receives_a_working_pty() {
    if !privileged() {
        return;
    }
    use std::io::Read;
    use std::os::unix::net::UnixListener;
    let rt = Runtime::new();
    let bundle = Bundle::new(&[
        "sh",
        "-c",
        "test -t 0 && test -t 1 && echo tty-ok; readlink /proc/self/fd/0",
    ]);
    bundle.edit(|c| {
        c["process"]["terminal"] = json!(true);
        c["process"]["consoleSize"] = json!({ "height": 30, "width": 100 });
    });
    let sock = bundle.path().join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let id = unique_id("tty");
    let handle = std::thread::spawn(move || {
        use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
        let (stream, _) = listener.accept().unwrap();
        let mut buf = [0u8; 256];
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        rustix::net::recvmsg(
            &stream,
            &mut [std::io::IoSliceMut::new(&mut buf)],
            &mut control,
            RecvFlags::empty(),
        )
        .unwrap();
        let mut received = None;
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(mut fds) = message {
                received = fds.next();
            }
        }
        received.expect("no descriptor received")
    });
    rt.detached(&[
        "create",
        "-b",
        bundle.path().to_str().unwrap(),
        "--console-socket",
        sock.to_str().unwrap(),
        &id,
    ]);
    let master = std::fs::File::from(handle.join().unwrap());
    rt.ok(&["start", &id]);
    let mut output = String::new();
    let mut reader = master;
    let mut chunk = [0u8; 512];
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        match reader.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => output.push_str(&String::from_utf8_lossy(&chunk[..n])),
        }
        if output.contains("/dev/pts/") {
            break;
        }
    }
    assert!(output.contains("tty-ok"), "{output:?}");
    assert!(output.contains("/dev/pts/0"), "{output:?}");
}

#[test]
fn rootless_runtime_runs_as_an_unprivileged_user() {
    if !privileged() {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let rt = Runtime::new();
    let state_root = host_dir("rootless-state");
    let bundle = Bundle::new(&["sh", "-c", "id -u; cat /proc/self/uid_map"]);
    std::fs::remove_file(bundle.path().join("config.json")).unwrap();
    std::fs::set_permissions(bundle.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let as_nobody = |args: &str| {
        std::process::Command::new("su")
            .args(["nobody", "-s", "/bin/sh", "-c"])
            .arg(format!(
                "cd {} && {RUNTIME} --audit-log none --root {} {args}",
                bundle.path().display(),
                state_root.display()
            ))
            .output()
            .unwrap()
    };
    let out = as_nobody("spec --rootless");
    assert!(out.status.success(), "{}", stderr(&out));
    let rootfs = rootfs().display().to_string();
    bundle.edit(|c| {
        c["root"]["path"] = json!(rootfs);
        c["process"]["args"] = json!(["sh", "-c", "id -u; cat /proc/self/uid_map"]);
    });
    let out = as_nobody(&format!("run {}", unique_id("rootless")));
    assert!(
        out.status.success(),
        "rootless run failed: {}",
        stderr(&out)
    );
    let text = stdout(&out);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("0"), "{text}");
    let map: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        map,
        ["0", "65534", "1"],
        "container root must be the unprivileged caller: {text}"
    );
    drop(rt);
}

#[test]
fn run_and_exec_with_a_terminal_but_no_console_socket_proxy_a_pty() {
    // `runc run` with process.terminal and no --console-socket gives the caller the pty;
    // `script` supplies a terminal for us.
    if !privileged() {
        return;
    }
    let rt = Runtime::new();
    let bundle = Bundle::new(&[
        "sh",
        "-c",
        "test -t 0 && echo TTY-$(tty); read line; echo got:$line; exit 4",
    ]);
    bundle.edit(|c| c["process"]["terminal"] = json!(true));
    let id = unique_id("localtty");
    let cmd = format!(
        "{RUNTIME} --root {} run -b {} {id}",
        rt.root.path().display(),
        bundle.path().display()
    );
    let mut child = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(4), "{text}");
    assert!(text.contains("TTY-/dev/pts/0"), "{text}");
    assert!(text.contains("got:hello"), "{text}");
    assert!(!rt.container_dir(&id).exists());
}

#[test]
fn idmapped_bind_mounts_show_host_files_as_the_containers_own() {
    if !privileged() {
        return;
    }
    let rt = Runtime::new();
    let host = host_dir("idmap");
    std::fs::write(host.join("file"), "x").unwrap();
    std::fs::set_permissions(&host, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let script =
        "stat -c %u /hostout/file; touch /hostout/new 2>/dev/null && echo wrote || echo refused";
    let run = |options: serde_json::Value| {
        let bundle = Bundle::new(&["sh", "-c", script]);
        let source = host.display().to_string();
        bundle.edit(|c| c["mounts"].as_array_mut().unwrap().push(json!({ "destination": "/hostout", "type": "bind", "source": source, "options": options })));
        let out = rt.run(&[
            "run",
            "-b",
            bundle.path().to_str().unwrap(),
            &unique_id("idmap"),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    // Plain bind: host root's files belong to nobody inside, and are not writable.
    assert_eq!(run(json!(["rbind", "rw"])), ["65534", "refused"]);
    // Id-mapped through the container's own maps: they are root's inside, and what the
    // container writes belongs to host root outside.
    assert_eq!(run(json!(["rbind", "rw", "idmap"])), ["0", "wrote"]);
    let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(host.join("new")).unwrap());
    assert_eq!(owner, 0);
}

#[test]
fn the_program_starts_with_default_signal_dispositions() {
    // The runtime itself ignores SIGPIPE (Rust does) and its caller may block signals; none of
    // that may leak into the container's program.
    if !privileged() {
        return;
    }
    let rt = Runtime::new();
    let bundle = Bundle::new(&["grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"]);
    let out = rt.run(&[
        "run",
        "-b",
        bundle.path().to_str().unwrap(),
        &unique_id("signals"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    for line in stdout(&out).lines() {
        assert!(line.ends_with("0000000000000000"), "{line}");
    }
    assert_eq!(stdout(&out).lines().count(), 2);
}
