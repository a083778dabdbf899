//! Privileged: a network, two "containers" (processes in new network namespaces) attached
//! through the crate, traffic between them and to the gateway, then clean teardown.

#![allow(clippy::unwrap_used)]

use std::process::{Child, Command};

use palisade_net::{CreateRequest, Networks};

fn root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var("PALISADE_REQUIRE_PRIVILEGED").as_deref() != Ok("1"),
        "needs root"
    );
    eprintln!("SKIP: needs root");
    false
}

struct Namespace(Child);

impl Namespace {
    fn new() -> Self {
        let child = Command::new("unshare")
            .args(["--net", "sleep", "60"])
            .spawn()
            .unwrap();
        let pid = child.id();
        let own = std::fs::read_link("/proc/self/ns/net").unwrap();
        for _ in 0..200 {
            let theirs = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok();
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if theirs.is_some_and(|t| t != own) && comm.trim() == "sleep" {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Self(child)
    }
    fn pid(&self) -> i32 {
        i32::try_from(self.0.id()).unwrap()
    }
    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("nsenter")
            .args(["-t", &self.pid().to_string(), "-n"])
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ida_() -> String {
    "a1".repeat(32)
}

fn idb_() -> String {
    "b2".repeat(32)
}

/// Removes what the test made even when it fails half way.
struct Guard(Networks, Vec<String>, &'static str);

impl Drop for Guard {
    fn drop(&mut self) {
        for id in &self.1 {
            let _ = self.0.disconnect(id);
        }
        let _ = self.0.remove(&self.2.parse().unwrap());
    }
}

fn text(args: &[&str]) -> String {
    String::from_utf8_lossy(
        &Command::new(args[0])
            .args(&args[1..])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned()
}

#[test]
fn two_namespaces_talk_over_a_protected_bridge_and_leave_nothing_behind() {
    if !root() {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let networks = Networks::open(state.path()).unwrap();
    let name = "natt".parse().unwrap();
    let network = networks
        .create(&CreateRequest {
            name: "natt".parse().unwrap(),
            subnet: None,
            subnet6: None,
            internal: false,
            spoof_protection: true,
        })
        .unwrap();
    let _guard = Guard(networks.clone(), vec![ida_(), idb_()], "natt");
    let a = Namespace::new();
    let b = Namespace::new();
    let ida = ida_();
    let idb = idb_();
    let (_, la) = networks.connect(&name, &ida, "alpha", &[]).unwrap();
    let (_, lb) = networks.connect(&name, &idb, "beta", &[]).unwrap();
    networks.attach(&ida, a.pid()).unwrap();
    networks.attach(&idb, b.pid()).unwrap();
    let ping = a.run(&[
        "busybox",
        "ping",
        "-c",
        "1",
        "-W",
        "2",
        &lb.ipv4.to_string(),
    ]);
    assert!(
        ping.status.success(),
        "{} {}",
        String::from_utf8_lossy(&ping.stdout),
        String::from_utf8_lossy(&ping.stderr)
    );
    let ping = b.run(&[
        "busybox",
        "ping",
        "-c",
        "1",
        "-W",
        "2",
        &network.gateway.to_string(),
    ]);
    assert!(
        ping.status.success(),
        "{} {}",
        String::from_utf8_lossy(&ping.stdout),
        String::from_utf8_lossy(&ping.stderr)
    );
    let ping6 = a.run(&[
        "busybox",
        "ping6",
        "-c",
        "1",
        "-W",
        "2",
        &lb.ipv6.to_string(),
    ]);
    assert!(
        ping6.status.success(),
        "{} {}",
        String::from_utf8_lossy(&ping6.stdout),
        String::from_utf8_lossy(&ping6.stderr)
    );
    let links = text(&["ip", "-d", "link", "show", &la.host_veth]);
    assert!(links.contains("learning off"), "{links}");
    assert!(links.contains("flood off"), "{links}");
    let fdb = text(&["bridge", "fdb", "show", "dev", &la.host_veth]);
    assert!(
        fdb.contains(&format!("{} master natt", la.mac)) || fdb.contains(&la.mac.to_string()),
        "{fdb}"
    );

    assert!(networks.remove(&name).is_err(), "in use");
    networks.disconnect(&ida).unwrap();
    networks.disconnect(&idb).unwrap();
    drop(a);
    drop(b);
    networks.remove(&name).unwrap();
    assert!(!text(&["ip", "-o", "link"]).contains("pal-natt"));
    assert!(!text(&["ip", "-o", "link"]).contains(&la.host_veth));
    assert!(!text(&["nft", "list", "tables"]).contains("palisade-natt"));
    assert!(!state.path().join("networks/natt.leases.json").exists());
}
