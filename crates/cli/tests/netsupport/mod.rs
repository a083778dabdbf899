//! Shared harness of the network tests: a store with a busybox image that also holds
//! `palisade-netprobe`, a network of the test's own (unique name, fixed subnet so parallel
//! tests never collide), containers, and removal of all of it on drop (even on failure).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use palisade_image::import::{import, ImportOptions};
use palisade_image::{ImageReference, Store};
use serde_json::Value;

pub(crate) const PALISADE: &str = env!("CARGO_BIN_EXE_palisade");
pub(crate) const RUNTIME: &str = env!("CARGO_BIN_EXE_palisade-runtime");
pub(crate) const NETPROBE: &str = env!("CARGO_BIN_EXE_palisade-netprobe");
const BUSYBOX: &str = "/bin/busybox";
const APPLETS: &[&str] = &[
    "sh", "cat", "echo", "true", "sleep", "ip", "ping", "ping6", "nc", "wget", "httpd", "hostname",
    "grep", "seq",
];

/// Whether privileged tests can run here (root, user namespaces, busybox, nft); otherwise
/// prints why and returns false, unless `PALISADE_REQUIRE_PRIVILEGED=1`, where it fails.
pub(crate) fn privileged() -> bool {
    let reason = if !nix::unistd::geteuid().is_root() {
        Some("not running as root")
    } else if !Path::new("/proc/self/ns/user").exists() {
        Some("the kernel has no user namespaces")
    } else if !Path::new(BUSYBOX).exists() {
        Some("busybox is not installed (apt-get install busybox-static)")
    } else if !["/usr/sbin/nft", "/sbin/nft"]
        .iter()
        .any(|p| Path::new(p).exists())
    {
        Some("nft is not installed (apt-get install nftables)")
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

/// Copies `binary` and the shared libraries it loads into `root`.
fn install_binary(root: &Path, binary: &Path, dest: &str) {
    fs::copy(binary, root.join(dest.trim_start_matches('/'))).unwrap();
    let out = Command::new("ldd").arg(binary).output().unwrap();
    for lib in String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
    {
        let target = root.join(lib.trim_start_matches('/'));
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        if !target.exists() {
            fs::copy(lib, &target).unwrap();
        }
    }
}

/// A store, a runtime root and the networks this test made.
pub(crate) struct Palisade {
    dir: tempfile::TempDir,
    networks: std::cell::RefCell<Vec<String>>,
}

impl Palisade {
    pub(crate) fn new() -> Palisade {
        let dir = tempfile::Builder::new()
            .prefix("palisade-net")
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
        let p = Palisade {
            dir,
            networks: Default::default(),
        };
        fs::create_dir_all(p.runtime_root()).unwrap();
        let rootfs = p.dir.path().join("rootfs");
        for dir in ["bin", "etc", "tmp", "lib64", "lib/x86_64-linux-gnu"] {
            fs::create_dir_all(rootfs.join(dir)).unwrap();
        }
        fs::copy(BUSYBOX, rootfs.join("bin/busybox")).unwrap();
        for applet in APPLETS {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
        }
        install_binary(&rootfs, Path::new(NETPROBE), "/bin/palisade-netprobe");
        fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n").unwrap();
        fs::write(rootfs.join("etc/group"), "root:x:0:\n").unwrap();
        let store = Store::open(p.root()).unwrap();
        import(
            &store,
            &rootfs,
            &ImageReference::parse("busybox:latest").unwrap(),
            &ImportOptions::default(),
        )
        .unwrap();
        p
    }

    pub(crate) fn root(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    pub(crate) fn runtime_root(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    pub(crate) fn command(&self, args: &[&str]) -> Command {
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

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs and expects success; returns stdout.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
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

    /// `palisade network create NAME [--subnet SUBNET] EXTRA...`; removed on drop. Without
    /// a subnet the engine picks a free one under its host-wide lock, so tests run by other
    /// processes at the same time cannot collide.
    pub(crate) fn network(&self, name: &str, subnet: Option<&str>, extra: &[&str]) -> Network {
        let mut args = vec!["network", "create", name];
        if let Some(subnet) = subnet {
            args.extend_from_slice(&["--subnet", subnet]);
        }
        args.extend_from_slice(extra);
        self.networks.borrow_mut().push(name.to_owned());
        self.ok(&args);
        let info: Value = serde_json::from_str(&self.ok(&["network", "inspect", name])).unwrap();
        Network {
            name: name.to_owned(),
            bridge: info[0]["bridge"].as_str().unwrap().to_owned(),
            subnet: info[0]["subnet"].as_str().unwrap().to_owned(),
            gateway: info[0]["gateway"].as_str().unwrap().to_owned(),
            gateway6: info[0]["ipv6_gateway"].as_str().unwrap().to_owned(),
        }
    }

    /// Starts `sleep 600` detached on `network`; returns its address facts.
    pub(crate) fn container(&self, name: &str, network: &str, extra: &[&str]) -> Container {
        let mut args = vec!["run", "-d", "--name", name, "--network", network];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["busybox", "sleep", "600"]);
        self.ok(&args);
        let info: Value = serde_json::from_str(&self.ok(&["inspect", name])).unwrap();
        let net = &info[0]["network"];
        Container {
            name: name.to_owned(),
            ip: net["ipv4"].as_str().unwrap().to_owned(),
            ip6: net["ipv6"].as_str().unwrap().to_owned(),
            mac: net["mac"].as_str().unwrap().to_owned(),
            veth: net["host_veth"].as_str().unwrap().to_owned(),
        }
    }

    /// `palisade exec CONTAINER ARGS...`.
    pub(crate) fn exec(&self, container: &str, args: &[&str]) -> Output {
        let mut all = vec!["exec", container];
        all.extend_from_slice(args);
        self.run(&all)
    }

    /// Runs `palisade-netprobe` in `container`; returns its JSON report.
    pub(crate) fn probe(&self, container: &str, args: &[&str]) -> Value {
        let mut all = vec!["/bin/palisade-netprobe"];
        all.extend_from_slice(args);
        let out = self.exec(container, &all);
        assert!(
            out.status.success(),
            "netprobe {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for Palisade {
    fn drop(&mut self) {
        if let Ok(out) = self.command(&["ps", "-a", "-q", "--no-trunc"]).output() {
            for id in String::from_utf8_lossy(&out.stdout).lines() {
                let _ = self.command(&["rm", "-f", id]).output();
            }
        }
        for name in self.networks.borrow().iter() {
            if let Ok(out) = self.command(&["network", "rm", name]).output() {
                if !out.status.success() {
                    eprintln!(
                        "cleanup: network rm {name}: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            }
        }
    }
}

/// A network a test made.
pub(crate) struct Network {
    pub(crate) name: String,
    pub(crate) bridge: String,
    pub(crate) subnet: String,
    pub(crate) gateway: String,
    pub(crate) gateway6: String,
}

impl Network {
    /// The bridge's (the gateway's) MAC.
    pub(crate) fn mac(&self) -> String {
        fs::read_to_string(format!("/sys/class/net/{}/address", self.bridge))
            .unwrap()
            .trim()
            .to_owned()
    }
}

/// A container on a network.
pub(crate) struct Container {
    pub(crate) name: String,
    pub(crate) ip: String,
    pub(crate) ip6: String,
    pub(crate) mac: String,
    pub(crate) veth: String,
}

/// A network name of at most 11 characters, unique to this process and `tag`.
pub(crate) fn unique(tag: &str) -> String {
    format!("{tag}{:x}", std::process::id() % 0xffff)
}

/// Output of a host command.
pub(crate) fn host(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}
