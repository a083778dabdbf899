//! A network's nftables rules, generated from its definition and leases and applied in one
//! `nft -f -` transaction (the table is declared, flushed by deletion and re-created inside
//! the same batch, so the kernel swaps old rules for new atomically).
//!
//! Two tables per network, both named `palisade-<name>`, touching only this network's
//! bridge and veths:
//!
//! - `bridge` family, anti-spoofing (unless the network was created without it): every frame
//!   entering the bridge from a container port jumps to that port's chain, which accepts only
//!   the container's MAC as Ethernet source; for ARP only its MAC and IPv4 as sender; for IPv4
//!   only its address as source; for IPv6 its address, its link-local address, or `::` for
//!   duplicate address detection, neighbour advertisements only for those addresses (IPv6's
//!   ARP poisoning), and never router advertisements or redirects; any other
//!   EtherType (VLAN tags included) is dropped. (Only palisade attaches ports to its bridges;
//!   a port with no lease is removed by the cleanup pass.)
//! - `inet` family, routing: forwarding between this bridge and any other palisade bridge is
//!   dropped (networks are isolated); unsolicited traffic into the bridge is dropped unless a
//!   published port's DNAT let it in; outbound traffic is masqueraded unless the network is
//!   `--internal`, in which case nothing is forwarded to or from it at all. Published ports
//!   are DNAT rules in prerouting (from other hosts) and output (from the host itself, its
//!   loopback included: `route_localnet` is set on the bridge, packets from a container to
//!   127.0.0.0/8 are dropped on input, loopback-sourced DNAT traffic is masqueraded).

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::{Command, Stdio};

use crate::error::NetError;
use crate::network::{Lease, Network};
use crate::store::Leases;

/// Interface-name prefix shared by every palisade bridge (`palisade0`, `pal-*`).
const BRIDGE_WILDCARD: &str = "pal*";

/// The bridge-family anti-spoofing table (without the `table` wrapper).
fn bridge_chains(leases: &Leases) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "  chain ports {{");
    let _ = writeln!(
        out,
        "    type filter hook prerouting priority -200; policy accept;"
    );
    if !leases.is_empty() {
        let map: Vec<String> = leases
            .values()
            .map(|l| format!("\"{}\" : jump {}", l.host_veth, port_chain(l)))
            .collect();
        let _ = writeln!(out, "    iifname vmap {{ {} }}", map.join(", "));
    }
    let _ = writeln!(out, "  }}");
    for lease in leases.values() {
        let _ = writeln!(out, "  chain {} {{", port_chain(lease));
        let mac = lease.mac;
        let ip = lease.ipv4;
        let ip6 = lease.ipv6;
        let link_local = mac.link_local();
        let _ = writeln!(out, "    ether saddr != {mac} counter drop");
        let _ = writeln!(
            out,
            "    ether type arp arp htype 1 arp ptype ip arp hlen 6 arp plen 4 arp saddr ether {mac} arp saddr ip {ip} accept"
        );
        let _ = writeln!(out, "    ether type ip ip saddr {ip} accept");
        let _ = writeln!(
            out,
            "    ether type ip6 icmpv6 type {{ nd-router-advert, nd-redirect }} counter drop"
        );
        // Neighbour advertisements are IPv6's ARP replies: only for its own addresses.
        let _ = writeln!(
            out,
            "    ether type ip6 icmpv6 type nd-neighbor-advert @th,64,128 != {{ {:#034x}, {:#034x} }} counter drop",
            u128::from(ip6),
            u128::from(link_local)
        );
        let _ = writeln!(
            out,
            "    ether type ip6 ip6 saddr :: icmpv6 type {{ nd-neighbor-solicit, mld2-listener-report }} accept"
        );
        let _ = writeln!(
            out,
            "    ether type ip6 ip6 saddr {{ {ip6}, {link_local} }} accept"
        );
        let _ = writeln!(out, "    counter drop");
        let _ = writeln!(out, "  }}");
    }
    out
}

fn port_chain(lease: &Lease) -> String {
    format!("port-{}", lease.host_veth)
}

/// The inet-family routing table (without the `table` wrapper).
fn inet_chains(network: &Network, leases: &Leases) -> String {
    let mut out = String::new();
    let bridge = &network.bridge;
    let subnet = network.subnet;
    let subnet6 = network.subnet6;
    let _ = writeln!(out, "  chain forward {{");
    let _ = writeln!(
        out,
        "    type filter hook forward priority filter; policy accept;"
    );
    let _ = writeln!(out, "    iifname \"{bridge}\" oifname \"{bridge}\" accept");
    let _ = writeln!(
        out,
        "    iifname \"{bridge}\" oifname \"{BRIDGE_WILDCARD}\" counter drop"
    );
    let _ = writeln!(
        out,
        "    oifname \"{bridge}\" iifname \"{BRIDGE_WILDCARD}\" counter drop"
    );
    if network.internal {
        let _ = writeln!(out, "    iifname \"{bridge}\" counter drop");
        let _ = writeln!(out, "    oifname \"{bridge}\" counter drop");
    } else {
        let _ = writeln!(
            out,
            "    oifname \"{bridge}\" ct state established,related accept"
        );
        let _ = writeln!(out, "    oifname \"{bridge}\" ct status dnat accept");
        let _ = writeln!(out, "    oifname \"{bridge}\" counter drop");
    }
    let _ = writeln!(out, "  }}");
    if network.internal {
        return out;
    }
    // route_localnet is on for this bridge (loopback-published ports): never let a container
    // reach the host's loopback-only services through it.
    let _ = writeln!(out, "  chain input {{");
    let _ = writeln!(
        out,
        "    type filter hook input priority filter; policy accept;"
    );
    // Replies of loopback-published connections are de-masqueraded to 127.0.0.1 before
    // this hook, so only new (original-direction), invalid and untracked packets are dropped.
    let _ = writeln!(
        out,
        "    iifname \"{bridge}\" ip daddr 127.0.0.0/8 ct state invalid,untracked counter drop"
    );
    let _ = writeln!(
        out,
        "    iifname \"{bridge}\" ip daddr 127.0.0.0/8 ct direction original counter drop"
    );
    let _ = writeln!(out, "  }}");
    let _ = writeln!(out, "  chain postrouting {{");
    let _ = writeln!(
        out,
        "    type nat hook postrouting priority srcnat; policy accept;"
    );
    let _ = writeln!(
        out,
        "    ip saddr {subnet} oifname != \"{bridge}\" masquerade"
    );
    let _ = writeln!(
        out,
        "    ip6 saddr {subnet6} oifname != \"{bridge}\" masquerade"
    );
    // A published port reached through the host's loopback: DNAT sends it out of the bridge
    // with source 127.0.0.1 (allowed by route_localnet on this bridge only); the source
    // becomes the gateway so the reply comes back.
    let _ = writeln!(
        out,
        "    oifname \"{bridge}\" ip saddr 127.0.0.0/8 ct status dnat masquerade"
    );
    let _ = writeln!(out, "  }}");
    let mut dnat = String::new();
    for lease in leases.values() {
        for port in &lease.ports {
            let proto = port.protocol.as_str();
            let destination = match port.host_ip {
                Some(ip) => format!("ip daddr {ip}"),
                None => "fib daddr type local".to_owned(),
            };
            let _ = writeln!(
                dnat,
                "    {destination} {proto} dport {} dnat ip to {}:{}",
                port.host_port, lease.ipv4, port.container_port
            );
        }
    }
    let _ = writeln!(out, "  chain prerouting {{");
    let _ = writeln!(
        out,
        "    type nat hook prerouting priority dstnat; policy accept;"
    );
    out.push_str(&dnat);
    let _ = writeln!(out, "  }}");
    let _ = writeln!(out, "  chain output {{");
    let _ = writeln!(
        out,
        "    type nat hook output priority -100; policy accept;"
    );
    out.push_str(&dnat);
    let _ = writeln!(out, "  }}");
    out
}

/// The whole batch that replaces the network's tables.
pub fn ruleset(network: &Network, leases: &Leases) -> String {
    let table = network.name.table();
    let mut out = String::new();
    // Declaring before deleting makes the delete valid whether or not the table existed.
    let _ = writeln!(out, "table bridge {table}\ndelete table bridge {table}");
    let _ = writeln!(out, "table inet {table}\ndelete table inet {table}");
    if network.spoof_protection {
        let _ = writeln!(out, "table bridge {table} {{\n{}}}", bridge_chains(leases));
    }
    let _ = writeln!(
        out,
        "table inet {table} {{\n{}}}",
        inet_chains(network, leases)
    );
    out
}

/// The batch that removes the network's tables.
pub fn removal(network: &Network) -> String {
    let table = network.name.table();
    format!("table bridge {table}\ndelete table bridge {table}\ntable inet {table}\ndelete table inet {table}\n")
}

/// The `nft` binary: by absolute path, since OCI hooks run with an empty environment.
fn nft_binary() -> &'static str {
    ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("nft")
}

/// Runs `nft -f -` with `batch`.
pub fn apply(batch: &str, operation: &str) -> Result<(), NetError> {
    let fail = |stderr: String| NetError::Nft {
        operation: operation.to_owned(),
        stderr,
    };
    let mut child = Command::new(nft_binary())
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            fail(format!(
                "cannot run nft ({e}); install the nftables package"
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(batch.as_bytes())
            .map_err(|e| fail(e.to_string()))?;
    }
    let output = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(fail(
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::{Mac, Subnet6};
    use crate::network::host_veth_name;

    fn sample(internal: bool) -> (Network, Leases) {
        let mut network = Network::new(
            "web".parse().unwrap(),
            "10.47.9.0/24".parse().unwrap(),
            "fd47:5061:6c00:9::/64".parse::<Subnet6>().unwrap(),
            "now".into(),
        );
        network.internal = internal;
        let id = "a".repeat(64);
        let ipv4 = "10.47.9.2".parse().unwrap();
        let lease = Lease {
            container: id.clone(),
            name: "one".into(),
            ipv4,
            ipv6: network.subnet6.nth(2),
            mac: Mac::for_address(ipv4),
            host_veth: host_veth_name(&id),
            ports: vec!["192.0.2.1:8080:80".parse().unwrap()],
        };
        (network, [(id, lease)].into_iter().collect())
    }

    #[test]
    fn the_port_chain_pins_mac_and_addresses() {
        let (network, leases) = sample(false);
        let text = ruleset(&network, &leases);
        assert!(text.contains("iifname vmap { \"pvaaaaaaaaaaaa\" : jump port-pvaaaaaaaaaaaa }"));
        assert!(text.contains("ether saddr != 02:50:0a:2f:09:02 counter drop"));
        assert!(text.contains("arp saddr ether 02:50:0a:2f:09:02 arp saddr ip 10.47.9.2 accept"));
        assert!(text.contains("ip saddr 10.47.9.2 accept"));
        assert!(text.contains("nd-neighbor-advert @th,64,128 != { 0xfd4750616c0000090000000000000002, 0xfe8000000000000000500afffe2f0902 } counter drop"), "{text}");
        assert!(text.contains("ip daddr 192.0.2.1 tcp dport 8080 dnat ip to 10.47.9.2:80"));
        assert!(text.contains("masquerade"));
    }

    #[test]
    fn internal_networks_forward_nothing_and_plain_ones_have_no_bridge_rules() {
        let (mut network, leases) = sample(true);
        let text = ruleset(&network, &leases);
        assert!(text.contains("iifname \"pal-web\" counter drop"));
        assert!(!text.contains("masquerade"));
        network.spoof_protection = false;
        let text = ruleset(&network, &leases);
        assert!(!text.contains("table bridge palisade-web {"));
        assert!(text.contains("delete table bridge palisade-web"));
    }
}
