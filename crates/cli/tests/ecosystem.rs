//! containerd and Podman drive `palisade-runtime` in place of runc, as ARCHITECTURE.md promises.
//!
//! Each test brings up what it needs and takes it down again, also when it fails: a private
//! containerd (its own config, root, state and sockets in a temp dir, no CRI plugin) started as
//! a child process, or Podman with its own --root, --runroot, --tmpdir, file locks and runtime
//! state root. The image
//! is built here from /bin/busybox (no registry needed). Every test checks that palisade-runtime
//! did the work: its state directory knows the container, with the pid the engine reports.
//!
//! Skips without root or without the tools; under PALISADE_REQUIRE_PRIVILEGED=1 (CI) a skip fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const RUNTIME: &str = env!("CARGO_BIN_EXE_palisade-runtime");
/// The longest any one command of these tests may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
const CONTAINERD_IMAGE: &str = "docker.io/library/palisade-busybox:latest";
const PODMAN_IMAGE: &str = "localhost/palisade-busybox:latest";
/// What the containerd tests need on PATH.
const CONTAINERD_TOOLS: &[&str] = &[
    "containerd",
    "ctr",
    "containerd-shim-runc-v2",
    "tar",
    "script",
];
/// What the Podman tests need on PATH.
const PODMAN_TOOLS: &[&str] = &["podman", "conmon", "tar"];
/// An init that exits 0 on SIGTERM: a graceful stop shows up as exit code 0, a SIGKILL as 137.
const GRACEFUL_INIT: &[&str] = &["sh", "-c", "trap 'exit 0' TERM; sleep 300 & wait"];

// ---------------------------------------------------------------------------------------------
// The gate

/// Whether this host can run the test, which needs `tools` on PATH. When it cannot, prints why
/// and returns false, unless `PALISADE_REQUIRE_PRIVILEGED=1` (CI), where a skip is a failure.
fn host_can_run(tools: &[&str]) -> bool {
    let reason = if !nix::unistd::geteuid().is_root() {
        Some("not running as root".to_owned())
    } else if !Path::new("/bin/busybox").is_file() {
        Some("/bin/busybox is missing (apt-get install busybox-static)".to_owned())
    } else {
        tools
            .iter()
            .find(|tool| find_in_path(tool).is_none())
            .map(|tool| format!("{tool} is not installed (scripts/setup.sh installs it)"))
    };
    match reason {
        None => true,
        Some(reason) if std::env::var("PALISADE_REQUIRE_PRIVILEGED").as_deref() == Ok("1") => {
            panic!("ecosystem test cannot run ({reason}) and PALISADE_REQUIRE_PRIVILEGED=1")
        }
        Some(reason) => {
            eprintln!("SKIP: ecosystem test: {reason}");
            false
        }
    }
}

fn find_in_path(tool: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(tool))
        .find(|path| path.is_file())
}

// ---------------------------------------------------------------------------------------------
// Commands with a bound on their run time

/// How a command ended and what it printed.
#[derive(Debug)]
struct Finished {
    what: String,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Finished {
    /// Asserts exit code 0 and returns the output.
    fn ok(self) -> Finished {
        assert_eq!(self.code, Some(0), "{self}");
        self
    }

    /// Asserts the exit code.
    fn exits_with(self, expected: i32) -> Finished {
        assert_eq!(self.code, Some(expected), "{self}");
        self
    }
}

impl std::fmt::Display for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} exited with {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.what, self.code, self.stdout, self.stderr
        )
    }
}

/// Collects a pipe in a thread; a daemon that inherits the pipe cannot make us wait forever.
fn drain(
    mut pipe: impl Read + Send + 'static,
) -> (Arc<Mutex<Vec<u8>>>, std::sync::mpsc::Receiver<()>) {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let (done, finished) = std::sync::mpsc::channel();
    let sink = Arc::clone(&buffer);
    std::thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut chunk) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
        let _ = done.send(());
    });
    (buffer, finished)
}

/// Runs `cmd` with stdin from /dev/null, killing it after `timeout`.
fn try_run(cmd: &mut Command, timeout: Duration) -> Result<Finished, String> {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {what}: {e}"))?;
    let (stdout, stdout_done) = drain(child.stdout.take().unwrap());
    let (stderr, stderr_done) = drain(child.stderr.take().unwrap());
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    for done in [stdout_done, stderr_done] {
        let _ = done.recv_timeout(Duration::from_secs(2));
    }
    let text = |b: &Arc<Mutex<Vec<u8>>>| String::from_utf8_lossy(&b.lock().unwrap()).into_owned();
    let finished = Finished {
        what,
        code: status.and_then(|s| s.code()),
        stdout: text(&stdout),
        stderr: text(&stderr),
    };
    match status {
        Some(_) => Ok(finished),
        None => Err(format!("timed out after {timeout:?}: {finished}")),
    }
}

/// Runs `cmd`, panicking if it does not finish within COMMAND_TIMEOUT.
fn run(cmd: &mut Command) -> Finished {
    try_run(cmd, COMMAND_TIMEOUT).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `cmd` on a pseudo-terminal (`script`), as a user at a terminal would.
fn run_in_terminal(cmd: &Command) -> Finished {
    let line = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|word| shell_quote(&word.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ");
    let mut script = Command::new("script");
    script.args(["--quiet", "--return", "--command", &line, "/dev/null"]);
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => script.env(key, value),
            None => script.env_remove(key),
        };
    }
    run(&mut script)
}

fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Polls `probe` until it returns Some, for at most `limit`.
fn wait_for<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "gave up waiting for {what} after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `palisade-runtime --root <root> state <id>`, or None when the runtime does not know `id`.
fn palisade_state(root: &Path, id: &str) -> Option<Value> {
    let out = run(Command::new(RUNTIME)
        .arg("--root")
        .arg(root)
        .args(["state", id]));
    (out.code == Some(0)).then(|| serde_json::from_str(&out.stdout).unwrap())
}

// ---------------------------------------------------------------------------------------------
// Host resources: temp dirs, names, mounts, cgroups

/// A temp dir the engines' unprivileged container users can traverse (user-namespace tests).
fn private_dir(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    dir
}

/// A name no other test (of this run or a concurrent one) uses.
fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Lazily unmounts everything mounted under `dir`, deepest first.
fn unmount_under(dir: &Path) {
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|point| point.starts_with(dir))
        .collect();
    points.sort_by_key(|point| std::cmp::Reverse(point.components().count()));
    for point in points {
        let _ = nix::mount::umount2(&point, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Removes the cgroup `relative` (and cgroups below it) from every hierarchy.
fn remove_cgroup_tree(relative: &str) {
    let relative = relative.trim_start_matches('/');
    let root = Path::new("/sys/fs/cgroup");
    let mut candidates = vec![root.join(relative)];
    if let Ok(hierarchies) = std::fs::read_dir(root) {
        candidates.extend(hierarchies.flatten().map(|h| h.path().join(relative)));
    }
    for path in candidates.into_iter().filter(|p| p.is_dir()) {
        remove_cgroup_dir(&path);
    }
}

fn remove_cgroup_dir(path: &Path) {
    if let Ok(entries) = std::fs::read_dir(path) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_dir(&entry.path());
            }
        }
    }
    // A cgroup whose last process has just exited can stay busy for a moment.
    for _ in 0..100 {
        if std::fs::remove_dir(path).is_ok() || !path.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether the unified hierarchy or any v1 hierarchy still has the cgroup `relative`.
fn cgroup_exists(relative: &str) -> bool {
    let relative = relative.trim_start_matches('/');
    let root = Path::new("/sys/fs/cgroup");
    root.join(relative).is_dir()
        || std::fs::read_dir(root).is_ok_and(|hierarchies| {
            hierarchies
                .flatten()
                .any(|h| h.path().join(relative).is_dir())
        })
}

// ---------------------------------------------------------------------------------------------
// A busybox image, built locally

/// A busybox root filesystem as a layer tarball (for `podman import`) and as an OCI image
/// layout archive (for `ctr image import`).
struct BusyboxImage {
    dir: tempfile::TempDir,
}

impl BusyboxImage {
    fn build() -> BusyboxImage {
        let image = BusyboxImage {
            dir: private_dir("palisade-eco-image"),
        };
        let rootfs = image.dir.path().join("rootfs");
        for dir in ["bin", "dev", "etc", "proc", "sys", "tmp", "run", "root"] {
            std::fs::create_dir_all(rootfs.join(dir)).unwrap();
        }
        std::fs::set_permissions(rootfs.join("tmp"), std::fs::Permissions::from_mode(0o1777))
            .unwrap();
        copy_with_libraries(Path::new("/bin/busybox"), &rootfs);
        let applets = run(Command::new("/bin/busybox").arg("--list")).ok().stdout;
        for applet in applets.lines().filter(|a| !a.is_empty() && *a != "busybox") {
            symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
        }
        std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        std::fs::write(rootfs.join("etc/group"), "root:x:0:\n").unwrap();
        run(Command::new("tar")
            .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
            .arg(&rootfs)
            .arg("-cf")
            .arg(image.layer())
            .arg("."))
        .ok();
        image.write_oci_archive();
        image
    }

    /// The root filesystem as one uncompressed tar.
    fn layer(&self) -> PathBuf {
        self.dir.path().join("layer.tar")
    }

    /// An OCI image layout, tarred, naming the image CONTAINERD_IMAGE.
    fn oci_archive(&self) -> PathBuf {
        self.dir.path().join("oci.tar")
    }

    fn write_oci_archive(&self) {
        let layout = self.dir.path().join("layout");
        std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
        let blob = |bytes: &[u8]| -> Value {
            let digest = format!("{:x}", Sha256::digest(bytes));
            std::fs::write(layout.join("blobs/sha256").join(&digest), bytes).unwrap();
            json!({ "digest": format!("sha256:{digest}"), "size": bytes.len() })
        };
        let layer = blob(&std::fs::read(self.layer()).unwrap());
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        let config = blob(
            json!({
                "architecture": architecture,
                "os": "linux",
                "config": { "Env": ["PATH=/bin"], "Cmd": ["sh"] },
                "rootfs": { "type": "layers", "diff_ids": [layer["digest"]] },
            })
            .to_string()
            .as_bytes(),
        );
        let manifest = blob(
            json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": config["digest"], "size": config["size"],
                },
                "layers": [{
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer["digest"], "size": layer["size"],
                }],
            })
            .to_string()
            .as_bytes(),
        );
        let index = json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest["digest"], "size": manifest["size"],
                "annotations": {
                    "io.containerd.image.name": CONTAINERD_IMAGE,
                    "org.opencontainers.image.ref.name": "latest",
                },
            }],
        });
        std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
        std::fs::write(
            layout.join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .unwrap();
        run(Command::new("tar")
            .arg("-C")
            .arg(&layout)
            .arg("-cf")
            .arg(self.oci_archive())
            .arg("."))
        .ok();
    }
}

/// Copies `binary` to `rootfs/bin/` and the shared libraries it loads (if any) beside the host's.
fn copy_with_libraries(binary: &Path, rootfs: &Path) {
    std::fs::copy(binary, rootfs.join("bin").join(binary.file_name().unwrap())).unwrap();
    let Ok(ldd) = try_run(Command::new("ldd").arg(binary), COMMAND_TIMEOUT) else {
        return;
    };
    for library in ldd.stdout.split_whitespace().filter(|w| w.starts_with('/')) {
        let target = rootfs.join(library.trim_start_matches('/'));
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(library, &target).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// A private containerd

/// A containerd of our own, with palisade-runtime as the runc shim's binary; on drop, every
/// task, container, mount, cgroup and process it made is removed and the daemon stopped.
struct Containerd {
    dir: tempfile::TempDir,
    daemon: Child,
    namespace: String,
}

impl Containerd {
    fn start() -> Containerd {
        let dir = private_dir("palisade-ctd");
        let d = dir.path().display();
        let config = format!(
            r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs"]
[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
"#
        );
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        let log = std::fs::File::create(dir.path().join("containerd.log")).unwrap();
        let daemon = Command::new("containerd")
            .arg("--config")
            .arg(dir.path().join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let containerd = Containerd {
            dir,
            daemon,
            namespace: unique_name("palisade-eco"),
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let version = try_run(&mut containerd.ctr_command(&["version"]), COMMAND_TIMEOUT);
            if version.is_ok_and(|out| out.code == Some(0)) {
                return containerd;
            }
            let log = std::fs::read_to_string(containerd.dir.path().join("containerd.log"));
            assert!(
                Instant::now() < deadline,
                "containerd did not come up:\n{}",
                log.unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn ctr_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address")
            .arg(self.dir.path().join("containerd.sock"))
            .arg("--namespace")
            .arg(&self.namespace)
            .args(args);
        cmd
    }

    fn ctr(&self, args: &[&str]) -> Finished {
        run(&mut self.ctr_command(args))
    }

    /// `ctr run` (with `options` before the image) using palisade-runtime.
    fn run_command(&self, options: &[&str], id: &str, args: &[&str]) -> Command {
        let mut cmd = self.ctr_command(&["run"]);
        cmd.arg("--runc-binary")
            .arg(RUNTIME)
            .arg("--runc-root")
            .arg(self.dir.path().join("palisade"))
            .arg("--fifo-dir")
            .arg(self.dir.path().join("fifo"))
            .args(options)
            .args([CONTAINERD_IMAGE, id])
            .args(args);
        cmd
    }

    /// `ctr task exec` of `args` in task `id` as process `exec_id`.
    fn exec(&self, options: &[&str], exec_id: &str, id: &str, args: &[&str]) -> Finished {
        let mut cmd = self.ctr_command(&["task", "exec", "--exec-id", exec_id]);
        cmd.arg("--fifo-dir")
            .arg(self.dir.path().join("fifo"))
            .args(options)
            .arg(id)
            .args(args);
        run(&mut cmd)
    }

    fn import(&self, image: &BusyboxImage) {
        self.ctr(&["image", "import", image.oci_archive().to_str().unwrap()])
            .ok();
    }

    /// palisade-runtime's state root for this containerd namespace (the shim appends it).
    fn palisade_root(&self) -> PathBuf {
        self.dir.path().join("palisade").join(&self.namespace)
    }

    /// The pid and status (RUNNING, PAUSED, STOPPED, …) `ctr task ls` shows for `id`.
    fn task(&self, id: &str) -> Option<(i32, String)> {
        let out = self.cleanup(&["task", "ls"])?;
        out.stdout.lines().skip(1).find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.as_slice() {
                [task, pid, status] if *task == id => Some((pid.parse().ok()?, status.to_string())),
                _ => None,
            }
        })
    }

    fn wait_task(&self, id: &str, status: &str) -> i32 {
        wait_for(
            &format!("task {id} to be {status}"),
            Duration::from_secs(10),
            || {
                self.task(id)
                    .filter(|(_, s)| s == status)
                    .map(|(pid, _)| pid)
            },
        )
    }

    /// Quietly runs a cleanup command, ignoring failures.
    fn cleanup(&self, args: &[&str]) -> Option<Finished> {
        try_run(&mut self.ctr_command(args), Duration::from_secs(10)).ok()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let ids = |args: &[&str]| -> Vec<String> {
            self.cleanup(args)
                .map(|out| out.stdout.lines().map(str::to_owned).collect())
                .unwrap_or_default()
        };
        for id in ids(&["task", "ls", "--quiet"]) {
            self.cleanup(&["task", "kill", "--all", "--signal", "SIGKILL", &id]);
            for _ in 0..100 {
                if !matches!(self.task(&id), Some((_, s)) if s != "STOPPED") {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            self.cleanup(&["task", "delete", "--force", &id]);
        }
        for id in ids(&["container", "ls", "--quiet"]) {
            self.cleanup(&["container", "delete", &id]);
        }
        // Whatever the shim left to palisade-runtime.
        if let Ok(entries) = std::fs::read_dir(self.palisade_root()) {
            for entry in entries.flatten() {
                let _ = try_run(
                    Command::new(RUNTIME)
                        .arg("--root")
                        .arg(self.palisade_root())
                        .args(["delete", "--force"])
                        .arg(entry.file_name()),
                    Duration::from_secs(10),
                );
            }
        }
        let pid = nix::unistd::Pid::from_raw(self.daemon.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.daemon.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        unmount_under(self.dir.path());
        remove_cgroup_tree(&self.namespace);
        // The shim makes runc's default root for the namespace (empty: we pass --runc-root)
        // when a container has a user namespace.
        let _ = std::fs::remove_dir(Path::new("/run/containerd/runc").join(&self.namespace));
    }
}

// ---------------------------------------------------------------------------------------------
// A private Podman

/// Podman with its own storage, run and lock directories, palisade-runtime as its OCI runtime
/// and the busybox image imported; on drop, its containers, mounts and cgroups are removed.
///
/// Podman passes palisade-runtime no --root, so its containers would share /run/palisade with
/// everyone's, where tools that sweep the default root (runtime-tools' validation harness kills
/// and deletes every container it finds there) reach them; and `--runtime-flag root=…` is not
/// handed on to `podman container cleanup` (Podman 4.3). So Podman runs palisade-runtime through
/// a one-line `exec palisade-runtime --root <private> "$@"` named `palisade-runtime`.
struct Podman {
    dir: tempfile::TempDir,
    cgroup_parent: String,
}

impl Podman {
    fn new(image: &BusyboxImage) -> Podman {
        let dir = private_dir("palisade-podman");
        // File locks keep this Podman out of the host's shared-memory lock table; with
        // runtime_supports_json Podman passes --log-format=json and reads errors from the log.
        std::fs::write(
            dir.path().join("containers.conf"),
            "[engine]\nlock_type = \"file\"\nevents_logger = \"file\"\n\
             runtime_supports_json = [\"crun\", \"runc\", \"palisade-runtime\"]\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        let wrapper = dir.path().join("bin/palisade-runtime");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec {} --root {} \"$@\"\n",
                shell_quote(RUNTIME),
                shell_quote(&dir.path().join("palisade").to_string_lossy())
            ),
        )
        .unwrap();
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let podman = Podman {
            dir,
            cgroup_parent: format!("/{}", unique_name("palisade-eco-podman")),
        };
        podman
            .podman(&["import", image.layer().to_str().unwrap(), PODMAN_IMAGE])
            .ok();
        podman
    }

    fn command(&self, args: &[&str]) -> Command {
        let d = self.dir.path();
        let mut cmd = Command::new("podman");
        cmd.env("CONTAINERS_CONF", d.join("containers.conf"))
            .arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("runroot"))
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .arg("--network-config-dir")
            .arg(d.join("networks"))
            .args(["--cgroup-manager", "cgroupfs", "--runtime"])
            .arg(self.runtime())
            .args(args);
        cmd
    }

    /// What Podman runs as its OCI runtime: palisade-runtime with this Podman's state root.
    fn runtime(&self) -> PathBuf {
        self.dir.path().join("bin/palisade-runtime")
    }

    /// palisade-runtime's state root for this Podman's containers.
    fn palisade_root(&self) -> PathBuf {
        self.dir.path().join("palisade")
    }

    fn podman(&self, args: &[&str]) -> Finished {
        run(&mut self.command(args))
    }

    /// `podman run` with this host's required options, then `options`, the image and `args`.
    fn run_command(&self, options: &[&str], args: &[&str]) -> Command {
        let mut cmd = self.command(&["run"]);
        // Root's bounding set here lacks CAP_SYS_RESOURCE: Podman's default rlimits (raised
        // to the hard maximum) cannot be set, so ask for ones that can.
        cmd.args([
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=4096:4096",
        ])
        .args(["--network", "none", "--cgroup-parent", &self.cgroup_parent])
        .args(options)
        .arg(PODMAN_IMAGE)
        .args(args);
        cmd
    }

    fn inspect(&self, name: &str, format: &str) -> String {
        let out = self.podman(&["inspect", "--format", format, name]).ok();
        out.stdout.trim().to_owned()
    }

    /// The container's cgroup, relative to a hierarchy's root.
    fn cgroup_of(&self, id: &str) -> String {
        format!("{}/libpod-{id}", self.cgroup_parent)
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let quietly =
            |args: &[&str]| try_run(&mut self.command(args), Duration::from_secs(20)).ok();
        let ids: Vec<String> = quietly(&["ps", "--all", "--quiet", "--no-trunc"])
            .map(|out| out.stdout.lines().map(str::to_owned).collect())
            .unwrap_or_default();
        quietly(&["rm", "--all", "--force", "--time", "0"]);
        quietly(&["rmi", "--all", "--force"]);
        for id in ids {
            let _ = try_run(
                Command::new(RUNTIME)
                    .arg("--root")
                    .arg(self.palisade_root())
                    .args(["delete", "--force", &id]),
                Duration::from_secs(10),
            );
        }
        unmount_under(self.dir.path());
        remove_cgroup_tree(&self.cgroup_parent);
    }
}

// ---------------------------------------------------------------------------------------------
// containerd

#[test]
fn containerd_runs_containers_and_reports_exit_codes_and_errors() {
    if !host_can_run(CONTAINERD_TOOLS) {
        return;
    }
    let image = BusyboxImage::build();
    let containerd = Containerd::start();
    containerd.import(&image);

    let out = run(&mut containerd.run_command(&["--rm"], "hello", &["echo", "hello"])).ok();
    assert_eq!(out.stdout.trim(), "hello");

    run(&mut containerd.run_command(&["--rm"], "exit3", &["sh", "-c", "exit 3"])).exits_with(3);

    // The shim reads the error from the JSON --log file palisade-runtime writes (runc would
    // say "runc create failed: unable to start container process").
    let out = run(&mut containerd.run_command(&["--rm"], "missing", &["/nonexistent"]));
    assert_ne!(out.code, Some(0), "{out}");
    let expected = "container init failed: exec: \"/nonexistent\": no such file or directory";
    assert!(out.stderr.contains("OCI runtime create failed: "), "{out}");
    assert!(out.stderr.contains(expected), "{out}");

    // Nothing is left behind: no state, no cgroup.
    let left: Vec<_> = std::fs::read_dir(containerd.palisade_root())
        .map(|entries| entries.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "palisade-runtime state left behind: {left:?}"
    );
    for id in ["hello", "exit3", "missing"] {
        let cgroup = format!("{}/{id}", containerd.namespace);
        assert!(!cgroup_exists(&cgroup), "cgroup {cgroup} left behind");
    }
}

#[test]
fn containerd_task_exec_ps_pause_resume_kill_delete() {
    if !host_can_run(CONTAINERD_TOOLS) {
        return;
    }
    let image = BusyboxImage::build();
    let containerd = Containerd::start();
    containerd.import(&image);
    let id = "lifecycle";
    run(&mut containerd.run_command(&["--detach"], id, GRACEFUL_INIT)).ok();
    let pid = containerd.wait_task(id, "RUNNING");

    // palisade-runtime made it: its state names the pid containerd reports.
    let state = palisade_state(&containerd.palisade_root(), id).expect("palisade-runtime state");
    assert_eq!(state["status"], "running", "{state}");
    assert_eq!(state["pid"], pid, "{state}");
    let persisted =
        std::fs::read_to_string(containerd.palisade_root().join(id).join("state.json")).unwrap();
    assert!(
        persisted.contains("\"initStartTime\""),
        "not palisade's state file"
    );

    let out = containerd
        .exec(&[], "e1", id, &["sh", "-c", "echo from-exec; exit 5"])
        .exits_with(5);
    assert_eq!(out.stdout.trim(), "from-exec");

    containerd
        .exec(&["--detach"], "e2", id, &["sleep", "300"])
        .ok();
    let ps = containerd.ctr(&["task", "ps", id]).ok().stdout;
    assert!(ps.contains(&pid.to_string()), "init missing from ps:\n{ps}");
    assert!(
        ps.contains("ExecID:e2"),
        "exec'd process missing from ps:\n{ps}"
    );

    containerd.ctr(&["task", "pause", id]).ok();
    containerd.wait_task(id, "PAUSED");
    let state = palisade_state(&containerd.palisade_root(), id).unwrap();
    assert_eq!(state["status"], "paused", "{state}");
    containerd.ctr(&["task", "resume", id]).ok();
    containerd.wait_task(id, "RUNNING");
    let state = palisade_state(&containerd.palisade_root(), id).unwrap();
    assert_eq!(state["status"], "running", "{state}");

    // SIGTERM reaches the init, which exits 0; containerd warns only about non-zero codes.
    containerd.ctr(&["task", "kill", id]).ok();
    containerd.wait_task(id, "STOPPED");
    let out = containerd.ctr(&["task", "delete", id]).ok();
    assert!(!out.stderr.contains("non-zero exit code"), "{out}");
    containerd.ctr(&["container", "delete", id]).ok();
    assert!(
        !containerd.palisade_root().join(id).exists(),
        "state left behind"
    );
    assert!(!cgroup_exists(&format!("{}/{id}", containerd.namespace)));

    // kill --all reaches every process; the init dies of SIGKILL.
    let id = "killall";
    run(&mut containerd.run_command(&["--detach"], id, &["sleep", "300"])).ok();
    containerd.wait_task(id, "RUNNING");
    containerd
        .exec(&["--detach"], "e3", id, &["sleep", "300"])
        .ok();
    containerd
        .ctr(&["task", "kill", "--all", "--signal", "SIGKILL", id])
        .ok();
    containerd.wait_task(id, "STOPPED");
    let out = containerd.ctr(&["task", "delete", id]).ok();
    assert!(out.stderr.contains("exit code 137"), "{out}");
    containerd.ctr(&["container", "delete", id]).ok();
    assert!(
        !containerd.palisade_root().join(id).exists(),
        "state left behind"
    );
}

#[test]
fn containerd_terminal_and_user_namespace() {
    if !host_can_run(CONTAINERD_TOOLS) {
        return;
    }
    let image = BusyboxImage::build();
    let containerd = Containerd::start();
    containerd.import(&image);

    // A terminal: the pty master travels to the shim over --console-socket.
    let out = run_in_terminal(&containerd.run_command(
        &["--rm", "--tty"],
        "tty",
        &["sh", "-c", "tty; exit 4"],
    ))
    .exits_with(4);
    assert!(out.stdout.contains("/dev/pts/"), "{out}");

    // A user namespace: container root is host uid 300000.
    let out = run(&mut containerd.run_command(
        &[
            "--rm",
            "--uidmap",
            "0:300000:65536",
            "--gidmap",
            "0:300000:65536",
        ],
        "userns",
        &["cat", "/proc/self/uid_map"],
    ))
    .ok();
    let map: Vec<&str> = out.stdout.split_whitespace().collect();
    assert_eq!(map, ["0", "300000", "65536"], "{out}");
}

// ---------------------------------------------------------------------------------------------
// Podman

#[test]
fn podman_runs_containers_and_reports_exit_codes_and_errors() {
    if !host_can_run(PODMAN_TOOLS) {
        return;
    }
    let image = BusyboxImage::build();
    let podman = Podman::new(&image);

    let out = run(&mut podman.run_command(&["--rm"], &["echo", "hello"])).ok();
    assert_eq!(out.stdout.trim(), "hello");

    run(&mut podman.run_command(&["--rm"], &["sh", "-c", "exit 3"])).exits_with(3);

    // Podman reads the error from the JSON log (not stderr, which says "palisade-runtime:
    // error:") and maps it to the exit codes runc's errors get: 127 not found, 126 not runnable.
    let out = run(&mut podman.run_command(&["--rm"], &["/nonexistent"])).exits_with(127);
    assert!(
        out.stderr
            .contains("exec: \"/nonexistent\": no such file or directory"),
        "{out}"
    );
    assert!(!out.stderr.contains("palisade-runtime: error:"), "{out}");
    let out = run(&mut podman.run_command(&["--rm"], &["/etc/passwd"])).exits_with(126);
    assert!(out.stderr.contains("permission denied"), "{out}");

    let left = podman.podman(&["ps", "--all", "--quiet"]).ok();
    assert_eq!(left.stdout.trim(), "", "containers left behind");
}

#[test]
fn podman_detached_exec_pause_stop_kill_rm() {
    if !host_can_run(PODMAN_TOOLS) {
        return;
    }
    let image = BusyboxImage::build();
    let podman = Podman::new(&image);
    let out = run(&mut podman.run_command(&["--detach", "--name", "graceful"], GRACEFUL_INIT)).ok();
    let id = out.stdout.trim().to_owned();
    assert_eq!(id.len(), 64, "{out}");

    // Podman used palisade-runtime, whose state names the pid Podman reports.
    assert_eq!(
        podman.inspect("graceful", "{{.OCIRuntime}}"),
        podman.runtime().to_str().unwrap()
    );
    let pid: i64 = podman
        .inspect("graceful", "{{.State.Pid}}")
        .parse()
        .unwrap();
    let state = palisade_state(&podman.palisade_root(), &id).expect("palisade state");
    assert_eq!(state["status"], "running", "{state}");
    assert_eq!(state["pid"], pid, "{state}");
    assert!(cgroup_exists(&podman.cgroup_of(&id)));

    let out = podman
        .podman(&["exec", "graceful", "sh", "-c", "echo from-exec; exit 6"])
        .exits_with(6);
    assert_eq!(out.stdout.trim(), "from-exec");

    podman.podman(&["pause", "graceful"]).ok();
    assert_eq!(podman.inspect("graceful", "{{.State.Status}}"), "paused");
    let state = palisade_state(&podman.palisade_root(), &id).unwrap();
    assert_eq!(state["status"], "paused", "{state}");
    podman.podman(&["unpause", "graceful"]).ok();
    assert_eq!(podman.inspect("graceful", "{{.State.Status}}"), "running");

    // stop sends SIGTERM first; the init's trap makes it exit 0 well before the timeout.
    podman.podman(&["stop", "--time", "20", "graceful"]).ok();
    assert_eq!(podman.inspect("graceful", "{{.State.ExitCode}}"), "0");
    podman.podman(&["rm", "graceful"]).ok();
    assert!(
        !podman.palisade_root().join(&id).exists(),
        "palisade-runtime state left behind"
    );
    assert!(!cgroup_exists(&podman.cgroup_of(&id)), "cgroup left behind");

    run(&mut podman.run_command(&["--detach", "--name", "killed"], &["sleep", "300"])).ok();
    podman.podman(&["kill", "killed"]).ok();
    let out = podman.podman(&["wait", "killed"]).ok();
    assert_eq!(out.stdout.trim(), "137");
    podman.podman(&["rm", "killed"]).ok();
}

#[test]
fn podman_terminal_and_user_namespace() {
    if !host_can_run(PODMAN_TOOLS) {
        return;
    }
    let image = BusyboxImage::build();
    let podman = Podman::new(&image);

    // -t: conmon receives the pty master over --console-socket.
    let out = run(&mut podman.run_command(&["--rm", "--tty"], &["sh", "-c", "tty; exit 4"]))
        .exits_with(4);
    assert!(out.stdout.contains("/dev/pts/"), "{out}");

    run(&mut podman.run_command(&["--detach", "--name", "box"], &["sleep", "300"])).ok();
    let out = podman.podman(&["exec", "--tty", "box", "tty"]).ok();
    assert!(out.stdout.contains("/dev/pts/"), "{out}");
    podman.podman(&["rm", "--force", "--time", "0", "box"]).ok();

    let out = run(&mut podman.run_command(
        &[
            "--rm",
            "--uidmap",
            "0:200000:65536",
            "--gidmap",
            "0:200000:65536",
        ],
        &["cat", "/proc/self/uid_map"],
    ))
    .ok();
    let map: Vec<&str> = out.stdout.split_whitespace().collect();
    assert_eq!(map, ["0", "200000", "65536"], "{out}");
}
