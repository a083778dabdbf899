//! The attacks of issue 7 (and IPv6's ARP poisoning, spoofed neighbour advertisements), from a container given CAP_NET_RAW on purpose, against a victim and
//! the gateway on the same bridge. Each attack runs twice on the same setup: on a palisade
//! network (anti-spoofing on: it must fail) and on a network created with
//! `--insecure-allow-spoofing` (a plain learning, flooding bridge: it must succeed), so the
//! test proves that the rules, not a missing capability, stop it.
//!
//! Privileged: skips (or fails under `PALISADE_REQUIRE_PRIVILEGED=1`) without root.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod netsupport;

use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use netsupport::{host, privileged, unique, Container, Network, Palisade};

/// The victim's (or a neighbour's) entry in the host's ARP cache on the bridge.
fn host_arp(network: &Network, ip: &str) -> String {
    host(&["ip", "neigh", "show", ip, "dev", &network.bridge])
}

/// The MAC a container's ARP cache holds for `ip`.
fn container_arp(p: &Palisade, container: &str, ip: &str) -> String {
    let out = p.exec(container, &["cat", "/proc/net/arp"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.split_whitespace().next() == Some(ip))
        .and_then(|l| l.split_whitespace().nth(3))
        .unwrap_or("")
        .to_owned()
}

/// Dynamic (learned) forwarding entries on the bridge.
fn learned_fdb_entries(network: &Network) -> usize {
    host(&["bridge", "fdb", "show", "br", &network.bridge])
        .lines()
        .filter(|l| !l.contains("permanent") && !l.contains("static"))
        .count()
}

/// The host pings `ip` every 50 ms in the background (busybox ping: the host may have none).
fn keep_pinging(ip: &str) -> Child {
    Command::new("/bin/busybox")
        .args(["ping", "-i", "0.05", "-w", "8", ip])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

struct Setup {
    p: Palisade,
    net: Network,
    victim: Container,
    neighbour: Container,
    attacker: Container,
}

fn setup(tag: &str, protected: bool) -> Setup {
    let p = Palisade::new();
    let name = unique(tag);
    let extra: &[&str] = if protected {
        &[]
    } else {
        &["--insecure-allow-spoofing"]
    };
    let net = p.network(&name, None, extra);
    let raw = ["--cap-add", "NET_RAW"];
    let victim = p.container("victim", &name, &raw);
    let neighbour = p.container("neighbour", &name, &raw);
    let attacker = p.container("attacker", &name, &raw);
    // Fill the ARP caches: host <-> victim, neighbour <-> victim, attacker -> gateway.
    for (who, target) in [
        ("neighbour", victim.ip.as_str()),
        ("victim", net.gateway.as_str()),
        ("attacker", net.gateway.as_str()),
        ("attacker", victim.ip.as_str()),
    ] {
        let out = p.exec(who, &["ping", "-c", "1", "-W", "2", target]);
        assert!(out.status.success(), "{who} cannot ping {target}");
    }
    assert!(host_arp(&net, &victim.ip).contains(&victim.mac));
    assert_eq!(container_arp(&p, "neighbour", &victim.ip), victim.mac);
    Setup {
        p,
        net,
        victim,
        neighbour,
        attacker,
    }
}

/// Gratuitous ARP replies claiming the victim's IP, to the gateway and to the neighbour.
/// Returns whether a cache was poisoned.
fn arp_poisoning(s: &Setup) -> bool {
    let gateway_mac = s.net.mac();
    for (dst_mac, target_ip) in [
        (gateway_mac.as_str(), s.net.gateway.as_str()),
        (s.neighbour.mac.as_str(), s.neighbour.ip.as_str()),
    ] {
        s.p.probe(
            "attacker",
            &[
                "arp",
                "--sender-mac",
                &s.attacker.mac,
                "--sender-ip",
                &s.victim.ip,
                "--dst-mac",
                dst_mac,
                "--target-ip",
                target_ip,
                "--count",
                "15",
            ],
        );
    }
    let gateway_poisoned = host_arp(&s.net, &s.victim.ip).contains(&s.attacker.mac);
    let neighbour_poisoned = container_arp(&s.p, "neighbour", &s.victim.ip) == s.attacker.mac;
    gateway_poisoned || neighbour_poisoned
}

/// The MAC in an `ip -6 neigh` line for `ip`.
fn neigh6(text: &str, ip: &str) -> String {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(ip))
        .and_then(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let at = words.iter().position(|w| *w == "lladdr")?;
            words.get(at + 1).map(|w| (*w).to_owned())
        })
        .unwrap_or_default()
}

/// Unsolicited neighbour advertisements claiming the victim's IPv6 address, to the gateway
/// and to the neighbour, from the attacker's own (allowed) address. Returns whether a cache
/// was poisoned.
fn nd_spoofing(s: &Setup) -> bool {
    // Fill the IPv6 neighbour caches first.
    let host_ping = Command::new("/bin/busybox")
        .args(["ping6", "-c", "1", "-W", "2", &s.victim.ip6])
        .output()
        .unwrap();
    assert!(
        host_ping.status.success(),
        "the host cannot ping6 the victim"
    );
    let out =
        s.p.exec("neighbour", &["ping6", "-c", "1", "-W", "2", &s.victim.ip6]);
    assert!(
        out.status.success(),
        "the neighbour cannot ping6 the victim"
    );
    let host_neigh = || host(&["ip", "-6", "neigh", "show", "dev", &s.net.bridge]);
    let neighbour_neigh = || {
        let out = s.p.exec("neighbour", &["ip", "-6", "neigh", "show"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(neigh6(&host_neigh(), &s.victim.ip6), s.victim.mac);
    let gateway_mac = s.net.mac();
    for (dst_ip, dst_mac) in [
        (s.net.gateway6.as_str(), gateway_mac.as_str()),
        (s.neighbour.ip6.as_str(), s.neighbour.mac.as_str()),
    ] {
        s.p.probe(
            "attacker",
            &[
                "na",
                "--src-ip",
                &s.attacker.ip6,
                "--dst-ip",
                dst_ip,
                "--dst-mac",
                dst_mac,
                "--target-ip",
                &s.victim.ip6,
                "--count",
                "10",
            ],
        );
    }
    neigh6(&host_neigh(), &s.victim.ip6) == s.attacker.mac
        || neigh6(&neighbour_neigh(), &s.victim.ip6) == s.attacker.mac
}

/// UDP to the gateway with the victim's IPv4 address as source (and, a second time, also a
/// forged source MAC). Returns whether the host received a datagram "from the victim".
fn forged_ip_source(s: &Setup, port: u16) -> bool {
    let socket = UdpSocket::bind((s.net.gateway.as_str(), port)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let gateway_mac = s.net.mac();
    for src_mac in [s.attacker.mac.as_str(), "02:de:ad:be:ef:01"] {
        s.p.probe(
            "attacker",
            &[
                "udp",
                "--src-mac",
                src_mac,
                "--dst-mac",
                &gateway_mac,
                "--src-ip",
                &s.victim.ip,
                "--dst-ip",
                &s.net.gateway,
                "--port",
                &port.to_string(),
                "--payload",
                "forged",
            ],
        );
    }
    let mut buffer = [0u8; 64];
    match socket.recv_from(&mut buffer) {
        Ok((n, from)) => {
            assert_eq!(&buffer[..n], b"forged");
            assert_eq!(from.ip().to_string(), s.victim.ip);
            true
        }
        Err(_) => false,
    }
}

/// Frames with the victim's MAC as source while the host talks to the victim: returns how
/// many of the victim's frames the attacker received (port stealing, then sniffing).
fn mac_stealing(s: &Setup) -> u64 {
    let mut ping = keep_pinging(&s.victim.ip);
    let report = s.p.probe(
        "attacker",
        &["steal", "--victim-mac", &s.victim.mac, "--seconds", "3"],
    );
    let _ = ping.kill();
    let _ = ping.wait();
    report["stolen"].as_u64().unwrap()
}

/// A packet socket on the attacker while the host and the victim talk: frames seen.
fn sniffing(s: &Setup) -> u64 {
    let mut ping = keep_pinging(&s.victim.ip);
    let report = s.p.probe(
        "attacker",
        &["sniff", "--mac", &s.victim.mac, "--seconds", "2"],
    );
    let _ = ping.kill();
    let _ = ping.wait();
    report["frames"].as_u64().unwrap()
}

/// Thousands of random source MACs: returns how many entries the bridge learned.
fn mac_flood(s: &Setup) -> usize {
    let before = learned_fdb_entries(&s.net);
    s.p.probe("attacker", &["flood", "--count", "3000"]);
    learned_fdb_entries(&s.net).saturating_sub(before)
}

#[test]
fn every_attack_fails_on_a_palisade_network() {
    if !privileged() {
        return;
    }
    let s = setup("atk", true);
    assert!(!arp_poisoning(&s), "ARP poisoning got through");
    assert!(host_arp(&s.net, &s.victim.ip).contains(&s.victim.mac));
    assert_eq!(container_arp(&s.p, "neighbour", &s.victim.ip), s.victim.mac);
    assert!(
        !forged_ip_source(&s, 47211),
        "a forged IPv4 source got through"
    );
    assert_eq!(
        mac_stealing(&s),
        0,
        "a forged source MAC stole the victim's frames"
    );
    assert_eq!(mac_flood(&s), 0, "the bridge learned flooded MACs");
    // After the flood, the third container still sees none of the victim's traffic.
    assert_eq!(sniffing(&s), 0, "the attacker sniffed the victim's traffic");
    // The victim's own traffic still flows.
    let out =
        s.p.exec("neighbour", &["ping", "-c", "1", "-W", "2", &s.victim.ip]);
    assert!(out.status.success());
    drop(s);
}

#[test]
fn the_same_attacks_succeed_on_a_plain_bridge() {
    if !privileged() {
        return;
    }
    let s = setup("pln", false);
    // The relaxation is on record.
    let audit = std::fs::read_to_string(s.p.root().join("audit/engine.log")).unwrap_or_default();
    assert!(
        audit.contains("policy_relaxed") && audit.contains("--insecure-allow-spoofing"),
        "{audit}"
    );
    // Stealing first: a poisoned ARP cache would send the host's pings to the attacker's
    // own MAC, which is not what this attack measures.
    assert!(
        mac_stealing(&s) > 0,
        "a forged source MAC stole nothing even without the rules"
    );
    assert!(
        mac_flood(&s) >= 2500,
        "the plain bridge did not learn the flooded MACs"
    );
    assert!(
        arp_poisoning(&s),
        "ARP poisoning failed even without the rules"
    );
    assert!(
        forged_ip_source(&s, 47212),
        "a forged IPv4 source was dropped even without the rules"
    );
    assert!(
        nd_spoofing(&s),
        "IPv6 neighbour advertisement spoofing failed even without the rules"
    );
    drop(s);
}
