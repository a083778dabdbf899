//! Bad input and faults: overlapping subnets, an exhausted pool, a crash between creating the
//! veth pair and starting the container, and leftovers of an engine crash. Each must give a
//! clear error and leave no interface, rule or lease behind (the next run's cleanup pass
//! removes what a crash left).
//!
//! Privileged: skips (or fails under `PALISADE_REQUIRE_PRIVILEGED=1`) without root.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod netsupport;

use std::process::Command;

use netsupport::{host, privileged, unique, Palisade};
use serde_json::Value;

fn leases(p: &Palisade, network: &str) -> Value {
    let text =
        std::fs::read_to_string(p.root().join(format!("networks/{network}.leases.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The tests here probe for free subnets and then use them: one at a time, or two could
/// find the same one.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
fn overlapping_subnets_are_refused_and_leave_nothing() {
    if !privileged() {
        return;
    }
    let _serial = serial();
    let p = Palisade::new();
    let (first, second) = (unique("ovl1"), unique("ovl2"));
    let net = p.network(&first, None, &[]);
    let half = net.subnet.replace("0/24", "128/25");
    let out = p.run(&["network", "create", &second, "--subnet", &half]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("overlaps network {first}")),
        "{}",
        stderr(&out)
    );
    assert!(!host(&["ip", "-o", "link"]).contains(&format!("pal-{second}")));
    assert!(!host(&["nft", "list", "tables"]).contains(&format!("palisade-{second}")));
    assert!(!p.root().join(format!("networks/{second}.json")).exists());

    // Another store sees the first network's bridge route and refuses the subnet too.
    let other = Palisade::new();
    let out = other.run(&["network", "create", &second, "--subnet", &net.subnet]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("host route {}", net.subnet)),
        "{}",
        stderr(&out)
    );

    let bad = p.run(&["network", "create", &second, "--subnet", "10.47.1.1/24"]);
    assert_eq!(bad.status.code(), Some(125), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("host bits clear"));
}

#[test]
fn an_exhausted_pool_is_refused_and_leaves_nothing() {
    if !privileged() {
        return;
    }
    let _serial = serial();
    let p = Palisade::new();
    let name = unique("full");
    // A /30 (network, gateway, one container, broadcast) in a /24 the engine found free.
    let probe = p.network(&unique("fre"), None, &[]);
    p.ok(&["network", "rm", &probe.name]);
    let quarter = probe.subnet.replace("0/24", "0/30");
    p.network(&name, Some(&quarter), &[]);
    p.container("only", &name, &[]);
    let links_before = host(&["ip", "-o", "link"]).matches(" pv").count();
    let out = p.run(&[
        "run",
        "-d",
        "--name",
        "extra",
        "--network",
        &name,
        "busybox",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("has no free address"),
        "{}",
        stderr(&out)
    );
    assert_eq!(leases(&p, &name).as_object().unwrap().len(), 1);
    let ps = p.ok(&["ps", "-a", "--format", "json"]);
    assert!(!ps.contains("\"extra\""), "{ps}");
    assert_eq!(
        host(&["ip", "-o", "link"]).matches(" pv").count(),
        links_before
    );
}

#[test]
fn a_crash_between_veth_and_start_leaves_nothing_after_the_next_run() {
    if !privileged() {
        return;
    }
    let _serial = serial();
    let p = Palisade::new();
    let name = unique("crash");
    let net = p.network(&name, None, &[]);
    let fault = p.root().join("networks/inject-fault");
    std::fs::write(&fault, "after-veth").unwrap();
    let out = p.run(&[
        "run",
        "-d",
        "--name",
        "crashed",
        "--network",
        &name,
        "busybox",
        "sleep",
        "60",
    ]);
    std::fs::remove_file(&fault).unwrap();
    assert!(
        !out.status.success(),
        "the injected fault did not fail the start"
    );
    let id = p.ok(&["ps", "-a", "-q", "--no-trunc"]).trim().to_owned();
    assert_eq!(id.len(), 64, "{id}");
    let veth = format!("pv{}", &id[..12]);
    // The pair's container end was in the container's namespace: both went with it.
    assert!(!host(&["ip", "-o", "link"]).contains(&veth));
    assert!(leases(&p, &name).get(&id).is_some());

    // The engine "crashes" while removing the container: its directory is gone, its lease
    // and its port's rules are not. A stray palisade veth sits on the bridge as well.
    // (Once the detached monitor has finished its own cleanup: the overlay unmounted.)
    let dir = p.root().join("containers").join(&id);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(&dir.display().to_string())
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the overlay stayed mounted"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::fs::remove_dir_all(&dir).unwrap();
    let stray = format!("pv{:012x}", std::process::id());
    let peer = format!("px{:012x}", std::process::id());
    assert!(Command::new("ip")
        .args(["link", "add", &stray, "type", "veth", "peer", "name", &peer])
        .status()
        .unwrap()
        .success());
    assert!(Command::new("ip")
        .args(["link", "set", &stray, "master", &net.bridge])
        .status()
        .unwrap()
        .success());
    let rules = host(&[
        "nft",
        "list",
        "table",
        "bridge",
        &format!("palisade-{name}"),
    ]);
    assert!(rules.contains(&veth), "{rules}");

    // The next run's cleanup pass removes all of it.
    p.ok(&["run", "--rm", "--network", &name, "busybox", "true"]);
    assert_eq!(leases(&p, &name), serde_json::json!({}));
    let links = host(&["ip", "-o", "link"]);
    assert!(!links.contains(&stray) && !links.contains(&peer), "{links}");
    let rules = host(&[
        "nft",
        "list",
        "table",
        "bridge",
        &format!("palisade-{name}"),
    ]);
    assert!(!rules.contains(&veth), "{rules}");
}
