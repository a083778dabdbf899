//! `palisade run` and the container lifecycle, end to end: real containers from a busybox
//! image (imported from the host's static `/bin/busybox` with the image crate), each test
//! with a store and runtime state root of its own.
//!
//! Privileged: without root (or user namespaces, or busybox) each test prints `SKIP: reason`
//! and passes, unless `PALISADE_REQUIRE_PRIVILEGED=1`, where a skip is a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use palisade_image::import::{import, ImportOptions};
use palisade_image::{ImageReference, Store};
use serde_json::Value;

const PALISADE: &str = env!("CARGO_BIN_EXE_palisade");
const RUNTIME: &str = env!("CARGO_BIN_EXE_palisade-runtime");
const BUSYBOX: &str = "/bin/busybox";
const APPLETS: &[&str] = &[
    "sh", "id", "cat", "touch", "ls", "echo", "true", "false", "sleep", "ps", "wc", "head", "grep",
    "env", "pwd", "mkdir", "test", "tty", "hostname", "stat", "kill", "ip",
];
/// CAP_KILL | CAP_NET_BIND_SERVICE | CAP_AUDIT_WRITE.
const DEFAULT_CAPS: &str = "0000000020000420";

/// Whether privileged tests can run here; see the module documentation.
fn privileged() -> bool {
    let reason = if !nix::unistd::geteuid().is_root() {
        Some("not running as root")
    } else if !Path::new("/proc/self/ns/user").exists() {
        Some("the kernel has no user namespaces")
    } else if !Path::new(BUSYBOX).exists() {
        Some("busybox is not installed (apt-get install busybox-static)")
    } else {
        None
    };
    match reason {
        None => true,
        Some(reason) if std::env::var("PALISADE_REQUIRE_PRIVILEGED").as_deref() == Ok("1") => {
            panic!("privileged test cannot run ({reason}) and PALISADE_REQUIRE_PRIVILEGED=1")
        }
        Some(reason) => {
            eprintln!("SKIP: {reason}");
            false
        }
    }
}

/// A store and a runtime state root of our own, in a directory the container's root (host
/// uid 1000000) can traverse; every container left is removed on drop.
struct Palisade {
    dir: tempfile::TempDir,
}

impl Palisade {
    fn new() -> Palisade {
        let dir = tempfile::Builder::new()
            .prefix("palisade-run")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap();
        let mut path = dir.path().to_owned();
        loop {
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            if mode & 0o001 == 0 {
                fs::set_permissions(&path, fs::Permissions::from_mode(mode | 0o011)).unwrap();
            }
            if !path.pop() {
                break;
            }
        }
        let p = Palisade { dir };
        fs::create_dir_all(p.runtime_root()).unwrap();
        p.image("busybox:latest", &ImportOptions::default(), |_| {});
        p
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn runtime_root(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Imports a busybox image named `name`; `extra` may add files to its rootfs.
    fn image(&self, name: &str, options: &ImportOptions, extra: impl FnOnce(&Path)) {
        let rootfs = self.path(&format!("rootfs-{}", name.replace([':', '/'], "-")));
        for dir in ["bin", "etc", "tmp", "root", "var/www"] {
            fs::create_dir_all(rootfs.join(dir)).unwrap();
        }
        fs::copy(BUSYBOX, rootfs.join("bin/busybox")).unwrap();
        for applet in APPLETS {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
        }
        fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33:www:/var/www:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        )
        .unwrap();
        fs::write(
            rootfs.join("etc/group"),
            "root:x:0:\nwww:x:33:\nstaff:x:50:www\nnogroup:x:65534:\n",
        )
        .unwrap();
        extra(&rootfs);
        let store = Store::open(self.root()).unwrap();
        import(
            &store,
            &rootfs,
            &ImageReference::parse(name).unwrap(),
            options,
        )
        .unwrap();
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(PALISADE);
        command
            .arg("--root")
            .arg(self.root())
            .args(args)
            .env("PALISADE_RUNTIME", RUNTIME)
            .env("PALISADE_RUNTIME_ROOT", self.runtime_root())
            .stdin(Stdio::null());
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs and expects success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "palisade {args:?} failed ({:?}): {}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn inspect(&self, container: &str) -> Value {
        let text = self.ok(&["inspect", container]);
        let value: Value = serde_json::from_str(&text).unwrap();
        value[0].clone()
    }

    fn engine_audit(&self) -> String {
        fs::read_to_string(self.root().join("audit/engine.log")).unwrap_or_default()
    }
}

impl Drop for Palisade {
    fn drop(&mut self) {
        if let Ok(out) = self.command(&["ps", "-a", "-q", "--no-trunc"]).output() {
            for id in String::from_utf8_lossy(&out.stdout).lines() {
                let _ = self.command(&["rm", "-f", id]).output();
            }
        }
    }
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The value of `Key:` in a `/proc/<pid>/status` text.
fn status_field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
        .map(str::trim)
        .unwrap_or_else(|| panic!("{key} missing from {status}"))
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn root_inside_is_uid_1000000_outside() {
    if !privileged() {
        return;
    }
    let p = Palisade::new();
    assert_eq!(p.ok(&["run", "--rm", "busybox", "id", "-u"]).trim(), "0");
    let id = p
        .ok(&["run", "-d", "busybox", "sleep", "60"])
        .trim()
        .to_owned();
    let pid = p.inspect(&id)["init"]["pid"].as_i64().unwrap();
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uids: Vec<&str> = status_field(&status, "Uid").split_whitespace().collect();
    assert_eq!(uids, ["1000000"; 4], "{status}");
    p.ok(&["rm", "-f", &id]);
}

#[test]
fn the_secure_defaults_hold_inside() {
    if !privileged() {
        return;
    }
    let p = Palisade::new();
    let status = p.ok(&["run", "--rm", "busybox", "cat", "/proc/self/status"]);
    assert_eq!(status_field(&status, "NoNewPrivs"), "1");
    assert_eq!(status_field(&status, "Seccomp"), "2");
    assert_eq!(status_field(&status, "CapEff"), DEFAULT_CAPS);
    assert_eq!(status_field(&status, "CapBnd"), DEFAULT_CAPS);
    // Read-only root, writable /tmp.
    let out = p.run(&["run", "--rm", "busybox", "touch", "/evil"]);
    assert_ne!(code(&out), 0);
    assert!(
        stderr(&out).contains("Read-only file system"),
        "{}",
        stderr(&out)
    );
    p.ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo x > /tmp/ok && cat /tmp/ok",
    ]);
    // Masked and read-only /proc paths.
    let out = p.run(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "cat /proc/kcore | wc -c",
    ]);
    assert_eq!(stdout(&out).trim(), "0", "{}", stderr(&out));
    let out = p.run(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo h > /proc/sysrq-trigger",
    ]);
    assert_ne!(code(&out), 0);
    // The pids limit (default 1024, or --pids-limit) is in the container's cgroup.
    let read_pids = "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max";
    assert_eq!(
        p.ok(&["run", "--rm", "busybox", "sh", "-c", read_pids])
            .trim(),
        "1024"
    );
    assert_eq!(
        p.ok(&[
            "run",
            "--rm",
            "--pids-limit",
            "50",
            "busybox",
            "sh",
            "-c",
            read_pids
        ])
        .trim(),
        "50"
    );
    // Own network namespace with loopback only, and up.
    let links = p.ok(&["run", "--rm", "busybox", "ip", "-o", "link"]);
    assert_eq!(links.lines().count(), 1, "{links}");
    assert!(links.contains("lo:") && links.contains("UP"), "{links}");
    // Own hostname: the short id.
    let host = p.ok(&["run", "--rm", "busybox", "hostname"]);
    assert_eq!(host.trim().len(), 12, "{host}");
    // Nothing was relaxed, so nothing was audited as relaxed.
    assert!(!p.engine_audit().contains("policy_relaxed"));
}

#[test]
fn exit_codes_follow_docker() {
    if !privileged() {
        return;
    }
    let p = Palisade::new();
    assert_eq!(code(&p.run(&["run", "--rm", "busybox", "true"])), 0);
    assert_eq!(
        code(&p.run(&["run", "--rm", "busybox", "sh", "-c", "exit 3"])),
        3
    );
    // Not executable: 126.
    let out = p.run(&["run", "--rm", "busybox", "/etc/passwd"]);
    assert_eq!(code(&out), 126, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("permission denied"),
        "{}",
        stderr(&out)
    );
    // Not found: 127.
    let out = p.run(&["run", "--rm", "busybox", "no-such-command"]);
    assert_eq!(code(&out), 127, "{}", stderr(&out));
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));
    let out = p.run(&["run", "--rm", "busybox", "/no/such/path"]);
    assert_eq!(code(&out), 127, "{}", stderr(&out));
    // Palisade's own failures: 125, one line.
    // (--pull never: an unknown name must not send the test to a public registry.)
    let out = p.run(&["run", "--rm", "--pull", "never", "no-such-image", "true"]);
    assert_eq!(code(&out), 125);
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    let out = p.run(&["run", "--no-such-flag", "busybox", "true"]);
    assert_eq!(code(&out), 125, "{}", stderr(&out));
    let out = p.run(&["run", "--security-opt", "apparmor=x", "busybox", "true"]);
    assert_eq!(code(&out), 125, "{}", stderr(&out));
    // None of these left a container behind.
    assert_eq!(p.ok(&["ps", "-a", "-q"]), "");
}

#[test]
fn detached_lifecycle_ps_logs_exec_stop_wait_rm() {
    if !privileged() {
        return;
    }
    let p = Palisade::new();
    let script =
        "trap 'echo bye; exit 0' TERM; echo hello; echo oops >&2; while true; do sleep 0.1; done";
    let id = p
        .ok(&["run", "-d", "--name", "web", "busybox", "sh", "-c", script])
        .trim()
        .to_owned();
    assert_eq!(id.len(), 64);
    let ps = p.ok(&["ps"]);
    assert!(
        ps.contains(&id[..12]) && ps.contains("web") && ps.contains("Up"),
        "{ps}"
    );
    let json: Value = serde_json::from_str(&p.ok(&["ps", "--format", "json"])).unwrap();
    assert_eq!(json[0]["id"], id.as_str());
    assert_eq!(json[0]["state"], "running");
    assert_eq!(json[0]["names"][0], "web");
    // Logs survive the CLI that started the container: the monitor writes them.
    wait_until("the first log lines", Duration::from_secs(10), || {
        let out = p.run(&["logs", "web"]);
        stdout(&out).contains("hello") && stderr(&out).contains("oops")
    });
    // exec: output, exit code, -e, -u, -w.
    assert_eq!(p.ok(&["exec", "web", "echo", "inside"]).trim(), "inside");
    assert_eq!(code(&p.run(&["exec", "web", "sh", "-c", "exit 5"])), 5);
    assert_eq!(code(&p.run(&["exec", "web", "no-such-command"])), 127);
    assert_eq!(
        p.ok(&[
            "exec",
            "-e",
            "GREETING=hi",
            "web",
            "sh",
            "-c",
            "echo $GREETING"
        ])
        .trim(),
        "hi"
    );
    assert_eq!(p.ok(&["exec", "-u", "www", "web", "id", "-u"]).trim(), "33");
    assert_eq!(p.ok(&["exec", "-w", "/tmp", "web", "pwd"]).trim(), "/tmp");
    let processes = p.ok(&["exec", "web", "ps"]);
    assert!(processes.contains("sh -c"), "{processes}");
    // stop: SIGTERM is trapped, the script exits 0 before the timeout.
    let started = Instant::now();
    assert_eq!(p.ok(&["stop", "-t", "20", "web"]).trim(), "web");
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(p.ok(&["wait", "web"]).trim(), "0");
    assert!(p.ok(&["logs", "web"]).contains("bye"));
    let ps = p.ok(&["ps", "-a"]);
    assert!(ps.contains("Exited (0)"), "{ps}");
    assert!(!p.ok(&["ps"]).contains("web"));
    // Restart it, then stop with a timeout that runs out: SIGKILL, 137.
    p.ok(&["start", "web"]);
    p.ok(&["exec", "web", "true"]);
    p.ok(&["kill", "-s", "TERM", "web"]);
    assert_eq!(p.ok(&["wait", "web"]).trim(), "0");
    p.ok(&["start", "web"]);
    let out = p.run(&["rm", "web"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("is running"), "{}", stderr(&out));
    let id2 = p
        .ok(&["run", "-d", "busybox", "sleep", "600"])
        .trim()
        .to_owned();
    p.ok(&["stop", "-t", "1", &id2[..12]]);
    assert_eq!(p.ok(&["wait", &id2]).trim(), "137");
    p.ok(&["rm", "-f", "web", &id2]);
    assert_eq!(p.ok(&["ps", "-a", "-q"]), "");
    assert_eq!(code(&p.run(&["logs", "web"])), 1);
}

#[test]
fn a_removed_container_leaves_nothing_behind() {
    if !privileged() {
        return;
    }
    let p = Palisade::new();
    let id = p
        .ok(&["run", "-d", "--rm", "busybox", "sleep", "600"])
        .trim()
        .to_owned();
    let dir = p.root().join("containers").join(&id);
    assert!(dir.is_dir());
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(mountinfo.contains(&id), "the overlay is not mounted");
    assert!(p.runtime_root().join(&id).exists());
    p.ok(&["stop", "-t", "1", &id]);
    wait_until(
        "--rm to remove the container",
        Duration::from_secs(10),
        || !dir.exists(),
    );
    assert!(!fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(&id));
    assert!(!p.runtime_root().join(&id).exists());
    for entry in fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let cgroup = entry.path().join("palisade").join(&id);
        assert!(!cgroup.exists(), "{cgroup:?} is left");
    }
    assert!(!fs::read_dir(p.root().join("containers"))
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().len() == 64));
    // A foreground --rm run leaves nothing either.
    p.ok(&["run", "--rm", "--name", "gone", "busybox", "true"]);
    assert_eq!(p.ok(&["ps", "-a", "-q"]), "");
    assert!(fs::read_dir(p.runtime_root()).unwrap().next().is_none());
}

#[test]
fn containers_of_one_image_share_its_layers() {
    if !privileged() {
        return;
    }
    let p = Palisade::new();
    let a = p.ok(&["create", "busybox", "true"]).trim().to_owned();
    let b = p.ok(&["create", "busybox", "true"]).trim().to_owned();
    let layers_a = p.inspect(&a)["layers"].clone();
    let layers_b = p.inspect(&b)["layers"].clone();
    assert_eq!(layers_a, layers_b);
    let layer = PathBuf::from(layers_a[0].as_str().unwrap());
    let layer_dirs: Vec<_> = fs::read_dir(p.root().join("layers"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .collect();
    assert_eq!(layer_dirs.len(), 1, "one unpacked copy");
    assert_eq!(
        fs::metadata(&layer).unwrap().ino(),
        fs::metadata(layer_dirs[0].path()).unwrap().ino()
    );
    // The layer is shifted into the user namespace range.
    assert_eq!(
        fs::metadata(layer.join("bin/busybox")).unwrap().uid(),
        1_000_000
    );
    // Both containers see the layer's file through their overlay, and their upper
    // directories hold no copy of it.
    for id in [&a, &b] {
        let dir = p.root().join("containers").join(id);
        let busybox = dir.join("bundle/rootfs/bin/busybox");
        assert_eq!(
            fs::metadata(&busybox).unwrap().len(),
            fs::metadata(BUSYBOX).unwrap().len()
        );
        assert!(!dir.join("overlay/upper/bin").exists());
    }
    p.ok(&["rm", &a]);
    assert!(layer.is_dir(), "removing containers keeps the shared layer");
    // Once the image is gone, prune removes its unpacked layer, but only when no container
    // uses it any more.
    p.ok(&["image", "rm", "busybox"]);
    p.ok(&["image", "prune"]);
    assert!(layer.is_dir(), "a container still uses the layer");
    p.ok(&["rm", &b]);
    let out = p.ok(&["image", "prune"]);
    assert!(out.contains("Deleted unpacked layer"), "{out}");
    assert!(!layer.exists(), "prune removed the unused layer");
}

#[test]
fn bind_mounts_and_named_volumes() {
    if !privileged() {
        return;
    }
    let p = Palisade::new();
    let host = p.path("data");
    fs::create_dir(&host).unwrap();
    fs::set_permissions(&host, fs::Permissions::from_mode(0o777)).unwrap();
    fs::write(host.join("in"), "from the host\n").unwrap();
    let bind = format!("{}:/data", host.display());
    let out = p.ok(&[
        "run",
        "--rm",
        "-v",
        &bind,
        "busybox",
        "sh",
        "-c",
        "cat /data/in; echo out > /data/out",
    ]);
    assert_eq!(out, "from the host\n");
    assert_eq!(fs::read_to_string(host.join("out")).unwrap(), "out\n");
    assert_eq!(fs::metadata(host.join("out")).unwrap().uid(), 1_000_000);
    let ro = format!("{}:/data:ro", host.display());
    let out = p.run(&["run", "--rm", "-v", &ro, "busybox", "touch", "/data/x"]);
    assert_ne!(code(&out), 0);
    assert!(!host.join("x").exists());
    // Refused sources: a clear one-line message and 125.
    let store_bind = format!("{}:/store", p.root().display());
    let parent_bind = format!("{}:/store", p.dir.path().display());
    for refused in [
        "/:/host",
        "/proc:/p",
        "/sys/kernel:/k",
        "/dev:/d",
        &store_bind,
        &parent_bind,
    ] {
        let out = p.run(&["run", "--rm", "-v", refused, "busybox", "true"]);
        assert_eq!(code(&out), 125, "{refused}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("refusing to bind"),
            "{refused}: {}",
            stderr(&out)
        );
        assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    }
    let out = p.run(&["run", "--rm", "-v", "/no/such/dir:/x", "busybox", "true"]);
    assert_eq!(code(&out), 125);
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    let out = p.run(&["run", "--rm", "-v", "relative/dir:/x", "busybox", "true"]);
    assert_eq!(code(&out), 125, "{}", stderr(&out));
    let out = p.run(&[
        "run",
        "--rm",
        "-v",
        &format!("{}:/proc", host.display()),
        "busybox",
        "true",
    ]);
    assert_eq!(code(&out), 125, "{}", stderr(&out));
    // A named volume persists across containers.
    p.ok(&[
        "run",
        "--rm",
        "-v",
        "keep:/vol",
        "busybox",
        "sh",
        "-c",
        "echo kept > /vol/f",
    ]);
    assert_eq!(
        p.ok(&[
            "run",
            "--rm",
            "-v",
            "keep:/vol:ro",
            "busybox",
            "cat",
            "/vol/f"
        ]),
        "kept\n"
    );
    let volume = p.root().join("volumes/keep");
    assert_eq!(fs::metadata(&volume).unwrap().uid(), 1_000_000);
}

#[test]
fn every_relaxation_is_warned_about_and_audited() {
    if !privileged() {
        return;
    }
    let p = Palisade::new();
    let cases: &[(&[&str], &str, &str)] = &[
        (&["--privileged"], "seccomp_disabled", "--privileged"),
        (
            &["--security-opt", "seccomp=unconfined"],
            "seccomp_disabled",
            "seccomp=unconfined",
        ),
        (
            &["--security-opt", "no-new-privileges=false"],
            "no_new_privileges_disabled",
            "no-new-privileges=false",
        ),
        (
            &["--security-opt", "landlock=off"],
            "landlock_disabled",
            "landlock=off",
        ),
        (
            &["--security-opt", "userns=host"],
            "host_user_namespace",
            "userns=host",
        ),
        (
            &["--network", "host"],
            "host_network_namespace",
            "--network host",
        ),
        (
            &["--read-only=false"],
            "writable_rootfs",
            "--read-only=false",
        ),
        (
            &["--cap-add", "NET_ADMIN"],
            "capability:CAP_NET_ADMIN",
            "--cap-add NET_ADMIN",
        ),
        (&["--memory", "-1"], "memory_limit_removed", "--memory -1"),
        (
            &["--pids-limit", "-1"],
            "pids_limit_removed",
            "--pids-limit -1",
        ),
    ];
    for (flags, relaxation, flag) in cases {
        let before = p.engine_audit().matches("policy_relaxed").count();
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["busybox", "cat", "/proc/self/status"]);
        let out = p.run(&args);
        assert_eq!(code(&out), 0, "{flags:?}: {}", stderr(&out));
        let warning = stderr(&out);
        assert!(
            warning.contains("warning") && warning.contains(relaxation),
            "{flags:?}: {warning}"
        );
        let audit = p.engine_audit();
        assert!(
            audit.matches("policy_relaxed").count() > before,
            "{flags:?}"
        );
        let new = audit
            .lines()
            .filter(|l| l.contains(relaxation) && l.contains(flag))
            .count();
        assert!(
            new > 0,
            "{flags:?}: no audit line with {relaxation} and {flag}"
        );
        // The relaxation is real.
        let status = stdout(&out);
        match *relaxation {
            "seccomp_disabled" => assert_eq!(status_field(&status, "Seccomp"), "0"),
            "no_new_privileges_disabled" => assert_eq!(status_field(&status, "NoNewPrivs"), "0"),
            "capability:CAP_NET_ADMIN" => assert_ne!(status_field(&status, "CapEff"), DEFAULT_CAPS),
            _ => {}
        }
    }
    let chain = palisade_audit::verify(&[p.root().join("audit/engine.log")]).unwrap();
    assert!(chain.intact);
    // With a writable root, / takes writes; with userns=host, root is host root.
    p.ok(&[
        "run",
        "--rm",
        "--read-only=false",
        "busybox",
        "touch",
        "/now-writable",
    ]);
    let map = p.ok(&[
        "run",
        "--rm",
        "--security-opt",
        "userns=host",
        "busybox",
        "cat",
        "/proc/self/uid_map",
    ]);
    assert_eq!(
        map.split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "4294967295"]
    );
}

#[test]
fn names_are_unique() {
    if !privileged() {
        return;
    }
    let p = Palisade::new();
    p.ok(&["create", "--name", "twin", "busybox", "true"]);
    let out = p.run(&["run", "--name", "twin", "busybox", "true"]);
    assert_eq!(code(&out), 125);
    assert!(
        stderr(&out).contains("already in use") && stderr(&out).contains("twin"),
        "{}",
        stderr(&out)
    );
    assert_eq!(p.ok(&["ps", "-a", "-q"]).lines().count(), 1);
    let out = p.run(&["run", "--name", "bad/name", "busybox", "true"]);
    assert_eq!(code(&out), 125);
}

#[test]
fn image_config_and_flags_set_the_process() {
    if !privileged() {
        return;
    }
    let p = Palisade::new();
    let options = ImportOptions {
        cmd: Some(vec![
            "sh".into(),
            "-c".into(),
            "echo $MODE; id -u; pwd".into(),
        ]),
        env: vec!["MODE=image".into()],
        working_dir: Some("/srv/app".into()),
        user: Some("www".into()),
        ..ImportOptions::default()
    };
    p.image("app:1", &options, |_| {});
    // The image's Cmd, Env, WorkingDir (created, as it is not in the image) and User.
    assert_eq!(p.ok(&["run", "--rm", "app:1"]), "image\n33\n/srv/app\n");
    // Flags win.
    assert_eq!(
        p.ok(&[
            "run",
            "--rm",
            "-e",
            "MODE=flag",
            "-u",
            "0:50",
            "-w",
            "/tmp",
            "app:1"
        ]),
        "flag\n0\n/tmp\n"
    );
    assert_eq!(
        p.ok(&["run", "--rm", "-u", "www", "app:1", "id", "-G"])
            .trim(),
        "33 50"
    );
    let out = p.run(&["run", "--rm", "-u", "ghost", "app:1"]);
    assert_eq!(code(&out), 125);
    assert!(
        stderr(&out).contains("unable to find user ghost"),
        "{}",
        stderr(&out)
    );
    // Output of a foreground run is logged too, and stdin reaches the container with -i.
    let out = p.ok(&["run", "--name", "logged", "busybox", "echo", "to the log"]);
    assert_eq!(out, "to the log\n");
    assert_eq!(p.ok(&["logs", "logged"]), "to the log\n");
    let mut child = p
        .command(&["run", "--rm", "-i", "busybox", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"piped in\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(stdout(&out), "piped in\n");
}

#[test]
fn image_files_are_read_without_leaving_the_rootfs() {
    if !privileged() {
        return;
    }
    let p = Palisade::new();
    let secret = p.path("host-passwd");
    fs::write(&secret, "evil:x:4242:4242::/:/bin/sh\n").unwrap();
    let target = secret.clone();
    p.image("hostile:1", &ImportOptions::default(), move |rootfs| {
        fs::remove_file(rootfs.join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink(&target, rootfs.join("etc/passwd")).unwrap();
    });
    // The symlink is resolved inside the rootfs, where it leads nowhere.
    let out = p.run(&["run", "--rm", "-u", "evil", "hostile:1", "id", "-u"]);
    assert_eq!(code(&out), 125, "{}", stdout(&out));
    assert!(
        stderr(&out).contains("unable to find user evil"),
        "{}",
        stderr(&out)
    );
    // Numeric users need no passwd file.
    assert_eq!(
        p.ok(&["run", "--rm", "-u", "4242", "hostile:1", "id", "-u"])
            .trim(),
        "4242"
    );
}

#[test]
fn a_terminal_with_it() {
    if !privileged() {
        return;
    }
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("SKIP: script(1) is missing (bsdutils)");
        return;
    }
    let p = Palisade::new();
    let command = format!(
        "{PALISADE} --root {} run --name fg -it busybox sh -c 'tty; echo fg-out; exit 4'",
        p.root().display()
    );
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("PALISADE_RUNTIME", RUNTIME)
        .env("PALISADE_RUNTIME_ROOT", p.runtime_root())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        stdout(&out).contains("/dev/pts/"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    // What a terminal session printed is in its log too.
    let logs = p.ok(&["logs", "fg"]);
    assert!(logs.contains("fg-out"), "{logs}");
    // Detached with a terminal: the output is logged, and -i keeps a shell waiting.
    p.ok(&[
        "run",
        "-d",
        "-t",
        "--name",
        "dt",
        "busybox",
        "sh",
        "-c",
        "tty; echo dt-out",
    ]);
    assert_eq!(p.ok(&["wait", "dt"]).trim(), "0");
    let logs = p.ok(&["logs", "dt"]);
    assert!(
        logs.contains("/dev/pts/0") && logs.contains("dt-out"),
        "{logs}"
    );
    p.ok(&["run", "-dit", "--name", "shell", "busybox", "sh"]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(p.inspect("shell")["state"], "running");
    assert_eq!(
        p.ok(&["exec", "shell", "echo", "still-there"]).trim(),
        "still-there"
    );
    p.ok(&["rm", "-f", "shell"]);
}

#[test]
fn signals_reach_a_foreground_container() {
    if !privileged() {
        return;
    }
    let p = Palisade::new();
    let script = "trap 'echo got TERM; exit 5' TERM; echo ready; while true; do sleep 0.1; done";
    let mut child = p
        .command(&["run", "--rm", "busybox", "sh", "-c", script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
    assert_eq!(line, "ready\n");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut reader, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(rest, "got TERM\n");
    assert_eq!(status.code(), Some(5));
    assert_eq!(p.ok(&["ps", "-a", "-q"]), "");
}

#[test]
fn concurrent_runs_of_a_new_image_unpack_it_once() {
    if !privileged() {
        return;
    }
    let p = Palisade::new();
    p.image("fresh:1", &ImportOptions::default(), |rootfs| {
        fs::write(rootfs.join("etc/fresh"), "new layer\n").unwrap();
    });
    let children: Vec<_> = (0..3)
        .map(|i| {
            p.command(&[
                "run",
                "--rm",
                "--name",
                &format!("racer{i}"),
                "fresh:1",
                "cat",
                "/etc/fresh",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert_eq!(stdout(&out), "new layer\n");
    }
    let layers = fs::read_dir(p.root().join("layers"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .count();
    assert_eq!(
        layers, 1,
        "busybox:latest was never run; fresh:1 has one layer"
    );
}

#[test]
fn a_container_whose_cli_was_killed_can_still_be_stopped_and_removed() {
    if !privileged() {
        return;
    }
    let p = Palisade::new();
    let mut child = p
        .command(&[
            "run",
            "--name",
            "orphan",
            "busybox",
            "sh",
            "-c",
            "echo ready; sleep 600",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
    assert_eq!(line, "ready\n");
    // The foreground CLI is the container's monitor; kill it outright.
    child.kill().unwrap();
    child.wait().unwrap();
    let ps = p.ok(&["ps"]);
    assert!(ps.contains("orphan") && ps.contains("Up"), "{ps}");
    // Its seccomp agent died with the monitor: exec still works (and is still confined).
    assert_eq!(
        p.ok(&["exec", "orphan", "echo", "still-here"]).trim(),
        "still-here"
    );
    p.ok(&["stop", "-t", "1", "orphan"]);
    let ps = p.ok(&["ps", "-a"]);
    assert!(ps.contains("Exited"), "{ps}");
    let id = p.inspect("orphan")["id"].as_str().unwrap().to_owned();
    assert!(!p.runtime_root().join(&id).exists());
    assert!(!fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(&id));
    p.ok(&["rm", "orphan"]);
    assert_eq!(p.ok(&["ps", "-a", "-q"]), "");
    assert!(
        !palisade_engine::seccomp_agent::listener_path(&id).exists(),
        "the seccomp agent's socket is removed with the container"
    );
}

#[test]
fn follow_logs_keep_stdin_open_and_limits() {
    if !privileged() {
        return;
    }
    let p = Palisade::new();
    // logs -f prints as the container writes and returns when it stops.
    let id = p
        .ok(&[
            "run",
            "-d",
            "busybox",
            "sh",
            "-c",
            "for i in 1 2 3; do echo $i; sleep 0.3; done",
        ])
        .trim()
        .to_owned();
    let started = Instant::now();
    assert_eq!(p.ok(&["logs", "-f", &id]), "1\n2\n3\n");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(p.ok(&["wait", &id]).trim(), "0");
    // -d -i: stdin stays open (and silent), so cat keeps running until stopped.
    let cat = p
        .ok(&["run", "-d", "-i", "busybox", "cat"])
        .trim()
        .to_owned();
    std::thread::sleep(Duration::from_millis(500));
    assert!(p.ok(&["ps", "-q", "--no-trunc"]).contains(&cat));
    p.ok(&["kill", &cat]);
    assert_eq!(p.ok(&["wait", &cat]).trim(), "137");
    // --memory and --cpus reach the container's cgroup (v1 or v2 files).
    let memory = p.ok(&[
        "run", "--rm", "--memory", "64m", "busybox", "sh", "-c",
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max",
    ]);
    assert_eq!(memory.trim(), (64u64 << 20).to_string());
    let cpu = p.ok(&[
        "run",
        "--rm",
        "--cpus",
        "0.5",
        "busybox",
        "sh",
        "-c",
        "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cat /sys/fs/cgroup/cpu.max",
    ]);
    assert!(cpu.starts_with("50000"), "{cpu}");
    let out = p.run(&["run", "--rm", "--memory", "lots", "busybox", "true"]);
    assert_eq!(code(&out), 125);
    assert!(stderr(&out).contains("invalid size"), "{}", stderr(&out));
}

/// Debian's docker-registry on a free 127.0.0.1 port, stopped on drop.
struct LocalRegistry {
    child: std::process::Child,
    port: u16,
}

impl LocalRegistry {
    fn start(dir: &Path) -> Option<LocalRegistry> {
        if !Path::new("/usr/bin/docker-registry").exists() {
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let config = dir.join("registry.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.join("registry").display()
            ),
        )
        .ok()?;
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let registry = LocalRegistry { child, port };
        wait_until("the registry to listen", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Some(registry)
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn run_pulls_an_image_the_store_lacks() {
    if !privileged() {
        return;
    }
    let source = Palisade::new();
    let Some(registry) = LocalRegistry::start(source.dir.path()) else {
        assert!(
            std::env::var("PALISADE_REQUIRE_PRIVILEGED").as_deref() != Ok("1"),
            "docker-registry is not installed (apt-get install docker-registry)"
        );
        eprintln!("SKIP: docker-registry is not installed");
        return;
    };
    let host = format!("127.0.0.1:{}", registry.port);
    let remote = format!("{host}/test/busybox:1");
    source.ok(&[
        "push",
        "--insecure-registry",
        &host,
        "busybox:latest",
        &remote,
    ]);
    // A store that has never seen the image: run pulls it, verified, then runs it.
    let fresh = Palisade::new();
    let out = fresh.run(&[
        "run",
        "--rm",
        "--insecure-registry",
        &host,
        &remote,
        "echo",
        "pulled-and-ran",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "pulled-and-ran");
    assert!(stderr(&out).contains("pulling"), "{}", stderr(&out));
    // The pull and the push are in the audit log, with the manifest digest.
    let pulled = fresh.engine_audit();
    assert!(
        pulled.contains("\"kind\":\"image_pulled\"") && pulled.contains(&remote),
        "{pulled}"
    );
    assert!(source.engine_audit().contains("\"kind\":\"image_pushed\""));
    // An image the registry does not have is a 125 with the registry's answer.
    let missing = fresh.run(&[
        "run",
        "--rm",
        "--insecure-registry",
        &host,
        &format!("{host}/test/nothing:1"),
        "true",
    ]);
    assert_eq!(code(&missing), 125);
    assert!(
        stderr(&missing).contains("unknown image"),
        "{}",
        stderr(&missing)
    );
}

/// `skopeo` or `podman` with arguments, its output checked.
fn tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({:?}): {}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn images_move_between_palisade_skopeo_and_podman() {
    if !privileged() {
        return;
    }
    let missing: Vec<&str> = ["/usr/bin/skopeo", "/usr/bin/podman", "/usr/sbin/runc"]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    let source = Palisade::new();
    let registry = LocalRegistry::start(source.dir.path());
    if !missing.is_empty() || registry.is_none() {
        let reason = format!("needs skopeo, podman, runc and docker-registry; missing {missing:?}");
        assert!(
            std::env::var("PALISADE_REQUIRE_PRIVILEGED").as_deref() != Ok("1"),
            "{reason}"
        );
        eprintln!("SKIP: {reason}");
        return;
    }
    let registry = registry.unwrap();
    let host = format!("127.0.0.1:{}", registry.port);

    // palisade pushes; skopeo sees the same manifest digest, podman pulls and runs it.
    let pushed = format!("{host}/interop/from-palisade:1");
    source.ok(&[
        "push",
        "--insecure-registry",
        &host,
        "busybox:latest",
        &pushed,
    ]);
    let local: Value =
        serde_json::from_str(&source.ok(&["image", "inspect", "busybox:latest"])).unwrap();
    let local_digest = local[0]["digest"].as_str().unwrap_or_default().to_owned();
    let remote: Value = serde_json::from_str(&tool(
        "skopeo",
        &[
            "inspect",
            "--tls-verify=false",
            &format!("docker://{pushed}"),
        ],
    ))
    .unwrap();
    assert_eq!(remote["Digest"].as_str().unwrap(), local_digest);

    // Podman's runroot must be short (under 50 characters): a private one under /tmp.
    let podman_tmp = tempfile::Builder::new()
        .prefix("pal-podman")
        .tempdir_in("/tmp")
        .unwrap();
    let podman_dir = podman_tmp.path().to_path_buf();
    let podman_args = move |args: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = vec![
            "--root".into(),
            podman_dir.join("root").display().to_string(),
            "--runroot".into(),
            podman_dir.join("runroot").display().to_string(),
            "--tmpdir".into(),
            podman_dir.join("tmp").display().to_string(),
            "--cgroup-manager".into(),
            "cgroupfs".into(),
            "--runtime".into(),
            "/usr/sbin/runc".into(),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        all
    };
    /// Resets the private Podman (containers, images, mounts) however the test ends.
    struct PodmanReset<F: Fn(&[&str]) -> Vec<String>>(F);
    impl<F: Fn(&[&str]) -> Vec<String>> Drop for PodmanReset<F> {
        fn drop(&mut self) {
            let _ = Command::new("podman")
                .args((self.0)(&["system", "reset", "--force"]))
                .output();
        }
    }
    let podman_args = PodmanReset(podman_args);
    let podman = |args: &[&str]| {
        let all = (podman_args.0)(args);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        tool("podman", &all)
    };
    podman(&["pull", "--quiet", "--tls-verify=false", &pushed]);
    let out = podman(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=4096:4096",
        &pushed,
        "echo",
        "podman-ran-it",
    ]);
    assert_eq!(out.trim(), "podman-ran-it");
    drop(podman_args);

    // skopeo pushes (from palisade's OCI archive); a fresh palisade pulls and runs it.
    let archive = source.path("busybox.tar");
    source.ok(&["save", "-o", archive.to_str().unwrap(), "busybox:latest"]);
    let by_skopeo = format!("{host}/interop/from-skopeo:1");
    tool(
        "skopeo",
        &[
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            &format!("oci-archive:{}", archive.display()),
            &format!("docker://{by_skopeo}"),
        ],
    );
    let fresh = Palisade::new();
    let out = fresh.run(&[
        "run",
        "--rm",
        "--insecure-registry",
        &host,
        &by_skopeo,
        "echo",
        "palisade-ran-skopeos",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "palisade-ran-skopeos");
}

#[test]
fn an_image_volume_gets_a_writable_anonymous_volume() {
    if !privileged() {
        return;
    }
    let p = Palisade::new();
    let options = ImportOptions {
        volumes: vec!["/data/".into()],
        ..ImportOptions::default()
    };
    p.image("withvolume:1", &options, |_| {});
    let out = p.ok(&[
        "run",
        "--name",
        "vol",
        "withvolume:1",
        "sh",
        "-c",
        "echo kept > /data/f && cat /data/f && ! touch /etc/x 2>/dev/null && echo rootfs-ro",
    ]);
    assert_eq!(out, "kept\nrootfs-ro\n");
    let mounts = p.inspect("vol")["mounts"].clone();
    let anonymous = mounts
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["kind"] == "anonymous")
        .unwrap_or_else(|| panic!("no anonymous volume in {mounts}"));
    assert_eq!(anonymous["destination"], "/data");
    let source = PathBuf::from(anonymous["source"].as_str().unwrap());
    assert_eq!(fs::read_to_string(source.join("f")).unwrap(), "kept\n");
    // A -v for the same path replaces it; the anonymous volume goes with its container.
    let out = p.ok(&[
        "run",
        "--rm",
        "-v",
        "named:/data",
        "withvolume:1",
        "ls",
        "/data",
    ]);
    assert_eq!(out, "");
    p.ok(&["rm", "vol"]);
    assert!(!source.exists(), "anonymous volume left behind");
}

#[test]
fn a_full_disk_fails_clearly_and_leaves_the_store_consistent() {
    if !privileged() {
        return;
    }
    let p = Palisade::new();
    // A store on a 2 MiB tmpfs, and an image with 4 MiB of incompressible data.
    let small = p.path("small");
    fs::create_dir_all(&small).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m,mode=755", "tmpfs"])
        .arg(&small)
        .status()
        .unwrap();
    assert!(mounted.success());
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(small.clone());
    let rootfs = p.path("big-rootfs");
    fs::create_dir_all(rootfs.join("bin")).unwrap();
    fs::copy(BUSYBOX, rootfs.join("bin/busybox")).unwrap();
    // xorshift64: incompressible enough that gzip cannot fit it on the tmpfs.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let noise: Vec<u8> = (0..4 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    fs::write(rootfs.join("noise"), noise).unwrap();
    let store = small.join("store");
    let palisade = |args: &[&str]| {
        Command::new(PALISADE)
            .arg("--root")
            .arg(&store)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };

    let out = palisade(&["image", "import", rootfs.to_str().unwrap(), "big:1"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let message = stderr(&out);
    assert!(
        message.contains("No space left") || message.contains("disk"),
        "{message}"
    );
    assert_eq!(
        message.trim().lines().count(),
        1,
        "one clear line: {message}"
    );
    // Nothing half-written is trusted: the store checks clean and lists no image.
    let check = palisade(&["system", "check"]);
    assert_eq!(code(&check), 0, "{}{}", stdout(&check), stderr(&check));
    assert_eq!(stdout(&palisade(&["image", "ls", "-q"])).trim(), "");

    // With room again, the same import succeeds.
    let grown = Command::new("mount")
        .args(["-o", "remount,size=64m"])
        .arg(&small)
        .status()
        .unwrap();
    assert!(grown.success());
    let out = palisade(&["image", "import", rootfs.to_str().unwrap(), "big:1"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(code(&palisade(&["system", "check"])), 0);
}

#[test]
fn a_relaxation_the_audit_log_cannot_record_is_refused() {
    if !privileged() {
        return;
    }
    let p = Palisade::new();
    // A directory where the engine's log should be: every append fails.
    fs::create_dir_all(p.root().join("audit/engine.log")).unwrap();
    let out = p.run(&["create", "--privileged", "busybox", "true"]);
    assert_eq!(code(&out), 125, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot record a relaxed default in the audit log"),
        "{}",
        stderr(&out)
    );
    assert_eq!(p.ok(&["ps", "-a", "-q"]), "", "nothing was created");
    // With nothing relaxed there is nothing to record: the defaults still run.
    let out = p.run(&["create", "busybox", "true"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

/// The kernel's audit switch (`auditctl -e`), turned on for a test and restored on drop:
/// Landlock logs its denials only while audit is enabled.
struct KernelAudit {
    socket: std::os::fd::OwnedFd,
    was_enabled: u32,
}

impl KernelAudit {
    const AUDIT_GET: u16 = 1000;
    const AUDIT_SET: u16 = 1001;
    const STATUS_ENABLED: u32 = 1;

    /// Enables audit; `None` when the kernel has no audit netlink socket.
    fn enable() -> Option<KernelAudit> {
        use nix::sys::socket::{socket, AddressFamily, SockFlag, SockProtocol, SockType};
        let socket = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkAudit,
        )
        .ok()?;
        let mut audit = KernelAudit {
            socket,
            was_enabled: 0,
        };
        let reply = audit.request(Self::AUDIT_GET, &[])?;
        // struct audit_status { mask, enabled, ... } after the 16-byte nlmsghdr.
        audit.was_enabled = u32::from_ne_bytes(reply.get(20..24)?.try_into().ok()?);
        audit.set(1)?;
        Some(audit)
    }

    fn set(&self, enabled: u32) -> Option<()> {
        let mut status = Self::STATUS_ENABLED.to_ne_bytes().to_vec();
        status.extend_from_slice(&enabled.to_ne_bytes());
        let reply = self.request(Self::AUDIT_SET, &status)?;
        // The acknowledgement: NLMSG_ERROR with error 0.
        (reply.get(16..20)? == [0, 0, 0, 0]).then_some(())
    }

    fn request(&self, kind: u16, payload: &[u8]) -> Option<Vec<u8>> {
        use nix::sys::socket::{recv, sendto, MsgFlags, NetlinkAddr};
        use std::os::fd::AsRawFd;
        let mut message = Vec::new();
        let length = u32::try_from(16 + payload.len()).ok()?;
        message.extend_from_slice(&length.to_ne_bytes());
        message.extend_from_slice(&kind.to_ne_bytes());
        // NLM_F_REQUEST | NLM_F_ACK.
        message.extend_from_slice(&5u16.to_ne_bytes());
        message.extend_from_slice(&1u32.to_ne_bytes());
        message.extend_from_slice(&0u32.to_ne_bytes());
        message.extend_from_slice(payload);
        let fd = self.socket.as_raw_fd();
        sendto(fd, &message, &NetlinkAddr::new(0, 0), MsgFlags::empty()).ok()?;
        let mut reply = vec![0u8; 8192];
        loop {
            let n = recv(fd, &mut reply, MsgFlags::empty()).ok()?;
            let kind_of_reply = u16::from_ne_bytes(reply.get(4..6)?.try_into().ok()?);
            // AUDIT_GET answers with its status, then an acknowledgement; keep the status.
            if kind == Self::AUDIT_GET && kind_of_reply == 2 {
                continue;
            }
            reply.truncate(n);
            return Some(reply);
        }
    }
}

impl Drop for KernelAudit {
    fn drop(&mut self) {
        let _ = self.set(self.was_enabled);
    }
}

/// Records of `kind` in an audit log's text.
fn audit_records<'a>(text: &'a str, kind: &'a str) -> impl Iterator<Item = Value> + 'a {
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(move |record| record["event"]["kind"] == kind)
}

#[test]
fn landlock_denials_reach_the_audit_log() {
    if !privileged() {
        return;
    }
    // Landlock writes audit records since Linux 6.15 (ABI 7).
    if palisade_sys::landlock::abi_version().is_none_or(|abi| abi < 7) {
        if std::env::var("PALISADE_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
            panic!("the kernel's Landlock does not log denials (ABI 7, Linux 6.15, needed)");
        }
        eprintln!("SKIP: the kernel's Landlock does not log denials (needs ABI 7)");
        return;
    }
    let Some(_audit) = KernelAudit::enable() else {
        panic!("cannot enable kernel audit through netlink");
    };
    let p = Palisade::new();
    // A host directory, readable by everyone, handed to the container as its stdin: only
    // Landlock stands between the container and the file beneath it (reached through the
    // /proc/self/fd/0 magic link, outside the container's rootfs).
    let host = p.path("host-dir");
    fs::create_dir(&host).unwrap();
    fs::set_permissions(&host, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(host.join("secret"), "host data\n").unwrap();
    fs::set_permissions(host.join("secret"), fs::Permissions::from_mode(0o644)).unwrap();
    let run = |name: &str, extra: &[&str]| {
        let mut args = vec!["run", "-i", "--name", name];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["busybox", "cat", "/proc/self/fd/0/secret"]);
        let out = p
            .command(&args)
            .stdin(fs::File::open(&host).unwrap())
            .output()
            .unwrap();
        let id = p.inspect(name)["id"].as_str().unwrap().to_owned();
        (out, id)
    };

    let (out, id) = run("confined", &[]);
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
    assert!(
        stderr(&out).contains("Permission denied"),
        "{}",
        stderr(&out)
    );
    let audit = p.engine_audit();
    let denied: Vec<Value> = audit_records(&audit, "landlock_denied")
        .filter(|record| record["event"]["container_id"] == id.as_str())
        .collect();
    let secret = host.join("secret");
    let record = denied
        .iter()
        .find(|r| r["event"]["path"] == secret.to_str().unwrap())
        .unwrap_or_else(|| panic!("no landlock_denied for {secret:?}: {denied:#?}\n{audit}"));
    assert!(
        record["event"]["access"]
            .as_str()
            .unwrap()
            .contains("fs.read_file"),
        "{record}"
    );
    assert!(record["event"]["count"].as_u64().unwrap() >= 1, "{record}");

    // The control: without Landlock the same read works, and nothing is recorded.
    let (out, free_id) = run("unconfined", &["--security-opt", "landlock=off"]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert_eq!(stdout(&out), "host data\n");
    assert_eq!(
        audit_records(&p.engine_audit(), "landlock_denied")
            .filter(|record| record["event"]["container_id"] == free_id.as_str())
            .count(),
        0
    );

    let verified = p.run(&["audit", "verify"]);
    assert!(
        verified.status.success() && stdout(&verified).contains("intact"),
        "{}{}",
        stdout(&verified),
        stderr(&verified)
    );
}
