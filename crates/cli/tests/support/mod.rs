//! Shared pieces of the privileged integration tests: a gate that skips (or, in CI, fails)
//! when the host cannot run containers, a busybox rootfs with `palisade-check` in it, bundles
//! built from the hardened `palisade-runtime spec`, and helpers to drive the runtime.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

pub(crate) const RUNTIME: &str = env!("CARGO_BIN_EXE_palisade-runtime");
pub(crate) const CHECK: &str = env!("CARGO_BIN_EXE_palisade-check");

/// Busybox applets linked into the test rootfs.
const APPLETS: &[&str] = &[
    "sh", "ls", "cat", "echo", "true", "false", "sleep", "id", "ps", "mkdir", "hostname", "mount",
    "readlink", "touch", "rm", "stat", "grep", "head", "wc", "env", "pwd", "test", "kill", "umask",
    "ulimit", "dd", "seq", "printf",
];

/// Whether privileged tests can run here. When they cannot, prints why and returns false,
/// unless `PALISADE_REQUIRE_PRIVILEGED=1` (CI), where a skip is a failure.
pub(crate) fn privileged() -> bool {
    let reason = if !nix::unistd::geteuid().is_root() {
        Some("not running as root".to_owned())
    } else if !Path::new("/proc/self/ns/user").exists() {
        Some("the kernel has no user namespaces".to_owned())
    } else if !Path::new("/bin/busybox").exists() {
        Some("busybox is not installed (apt-get install busybox-static)".to_owned())
    } else if !Path::new("/sys/fs/cgroup").exists() {
        Some("no cgroup filesystem at /sys/fs/cgroup".to_owned())
    } else {
        None
    };
    match reason {
        None => true,
        Some(reason) if std::env::var("PALISADE_REQUIRE_PRIVILEGED").as_deref() == Ok("1") => {
            panic!("privileged test cannot run ({reason}) and PALISADE_REQUIRE_PRIVILEGED=1")
        }
        Some(reason) => {
            eprintln!("SKIP: privileged test: {reason}");
            false
        }
    }
}

/// Copies `binary` and the shared libraries it loads into `root`.
fn install_binary(root: &Path, binary: &Path, dest: &str) {
    std::fs::copy(binary, root.join(dest.trim_start_matches('/')))
        .expect("copy binary into rootfs");
    let out = Command::new("ldd").arg(binary).output().expect("run ldd");
    for lib in String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
    {
        let target = root.join(lib.trim_start_matches('/'));
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        if !target.exists() {
            std::fs::copy(lib, &target).expect("copy library into rootfs");
        }
    }
}

/// A read-only busybox rootfs shared by every test of this binary.
pub(crate) fn rootfs() -> &'static Path {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS.get_or_init(|| {
        let root =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("rootfs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for dir in [
            "bin",
            "proc",
            "sys",
            "dev",
            "tmp",
            "run",
            "etc",
            "hostout",
            "lib64",
            "lib/x86_64-linux-gnu",
        ] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        install_binary(&root, Path::new("/bin/busybox"), "/bin/busybox");
        for applet in APPLETS {
            symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
        install_binary(&root, Path::new(CHECK), "/bin/palisade-check");
        std::fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        )
        .unwrap();
        std::fs::write(root.join("etc/group"), "root:x:0:\n").unwrap();
        // The container's root is an unprivileged host uid: it must be able to traverse here.
        let mut dir = root.clone();
        loop {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&dir)
                .map(|m| m.permissions().mode())
                .unwrap_or(0);
            if mode & 0o001 == 0 {
                let _ =
                    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode | 0o011));
            }
            if !dir.pop() {
                break;
            }
        }
        root
    })
}

/// A bundle: a directory with `config.json` pointing at the shared rootfs.
pub(crate) struct Bundle {
    pub(crate) dir: tempfile::TempDir,
}

impl Bundle {
    /// The hardened default config running `args`.
    pub(crate) fn new(args: &[&str]) -> Bundle {
        let dir = tempfile::Builder::new()
            .prefix("palisade-bundle")
            .tempdir()
            .unwrap();
        let out = Command::new(RUNTIME)
            .args(["spec", "--bundle"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "spec failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bundle = Bundle { dir };
        let rootfs = rootfs().to_owned();
        bundle.edit(|c| {
            c["root"]["path"] = Value::String(rootfs.display().to_string());
            c["process"]["args"] = args
                .iter()
                .map(|a| Value::String((*a).to_owned()))
                .collect();
        });
        bundle
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn config(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.path().join("config.json")).unwrap()).unwrap()
    }

    pub(crate) fn edit(&self, f: impl FnOnce(&mut Value)) {
        let mut config = self.config();
        f(&mut config);
        std::fs::write(
            self.path().join("config.json"),
            serde_json::to_vec_pretty(&config).unwrap(),
        )
        .unwrap();
    }

    /// Adds a bind mount of a host directory, writable by anyone, at `dest`.
    pub(crate) fn bind_host_dir(&self, host: &Path, dest: &str) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(host, std::fs::Permissions::from_mode(0o777)).unwrap();
        let host = host.display().to_string();
        self.edit(|c| {
            c["mounts"].as_array_mut().unwrap().push(serde_json::json!({
                "destination": dest, "type": "bind", "source": host, "options": ["rbind", "rw"]
            }));
        });
    }
}

/// A runtime state root of its own, removed (with any container left in it) on drop.
pub(crate) struct Runtime {
    pub(crate) root: tempfile::TempDir,
}

impl Runtime {
    pub(crate) fn new() -> Runtime {
        Runtime {
            root: tempfile::Builder::new()
                .prefix("palisade-root")
                .tempdir()
                .unwrap(),
        }
    }

    pub(crate) fn command(&self) -> Command {
        let mut c = Command::new(RUNTIME);
        c.arg("--root").arg(self.root.path());
        c
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.command()
            .args(args)
            .output()
            .expect("run palisade-runtime")
    }

    /// Runs and asserts success; returns stdout.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "palisade-runtime {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a command that leaves a container behind (`create`, `run -d`): the container
    /// inherits stdio, so it gets /dev/null and a log file instead of pipes that would keep
    /// the caller waiting for the container to exit.
    pub(crate) fn detached(&self, args: &[&str]) {
        let log = tempfile::NamedTempFile::new().unwrap();
        let status = self
            .command()
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log.reopen().unwrap())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "palisade-runtime {args:?} failed ({status}): {}",
            std::fs::read_to_string(log.path()).unwrap_or_default()
        );
    }

    pub(crate) fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).unwrap()
    }

    /// Waits until `state` reports `status`.
    pub(crate) fn wait_status(&self, id: &str, status: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = self.run(&["state", id]);
            let s: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
            if s["status"] == status {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{id} never became {status}: {s} {}",
                stderr(&out)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub(crate) fn container_dir(&self, id: &str) -> PathBuf {
        self.root.path().join(id)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(self.root.path()) {
            for entry in entries.flatten() {
                let id = entry.file_name().to_string_lossy().into_owned();
                let _ = self.run(&["delete", "--force", &id]);
            }
        }
    }
}

/// The container's cgroup directory in the pids hierarchy (v1) or the unified one (v2).
pub(crate) fn cgroup_dir(id: &str) -> PathBuf {
    let v1 = Path::new("/sys/fs/cgroup/pids/palisade").join(id);
    if Path::new("/sys/fs/cgroup/pids").exists() {
        v1
    } else {
        Path::new("/sys/fs/cgroup/palisade").join(id)
    }
}

/// A unique container id for this test.
pub(crate) fn unique_id(name: &str) -> String {
    format!("{name}-{}", std::process::id())
}

pub(crate) fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A host directory the container's unprivileged root can reach (for bind mounts and hooks).
pub(crate) fn host_dir(name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let _ = rootfs();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "{name}-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}
