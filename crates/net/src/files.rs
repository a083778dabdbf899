//! The `/etc/hosts` and `/etc/resolv.conf` a container on a bridge network gets (bind-mounted
//! read-only by the engine).

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::network::Lease;

/// Docker's fallback resolvers when the host has only loopback ones.
const FALLBACK_RESOLVERS: [&str; 2] = ["8.8.8.8", "8.8.4.4"];

/// `/etc/hosts`: localhost, the container under its hostname and name, and the gateway as
/// `host.palisade.internal`.
pub fn hosts(hostname: &str, lease: &Lease, gateway: IpAddr) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "127.0.0.1\tlocalhost");
    let _ = writeln!(out, "::1\tlocalhost ip6-localhost ip6-loopback");
    let names = if hostname == lease.name {
        hostname.to_owned()
    } else {
        format!("{hostname} {}", lease.name)
    };
    let _ = writeln!(out, "{}\t{names}", lease.ipv4);
    let _ = writeln!(out, "{}\t{names}", lease.ipv6);
    let _ = writeln!(out, "{gateway}\thost.palisade.internal");
    out
}

/// `/etc/resolv.conf` from the host's: `nameserver` lines for loopback addresses (a stub
/// resolver the container cannot reach) are dropped; if none is left, Docker's fallback
/// resolvers are used. `search` and `options` lines are kept.
pub fn resolv_conf(host: &str) -> String {
    let mut out = String::new();
    let mut servers = 0;
    for line in host.lines() {
        let trimmed = line.trim();
        let mut words = trimmed.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                let Some(address) = words.next() else {
                    continue;
                };
                // An IPv6 address may carry a zone (`fe80::1%eth0`): the zone is the host's.
                let parsed = address
                    .split('%')
                    .next()
                    .and_then(|a| a.parse::<IpAddr>().ok());
                match parsed {
                    Some(ip) if !ip.is_loopback() && !address.contains('%') => {
                        let _ = writeln!(out, "nameserver {ip}");
                        servers += 1;
                    }
                    _ => {}
                }
            }
            Some("search" | "domain" | "options") => {
                let _ = writeln!(out, "{trimmed}");
            }
            _ => {}
        }
    }
    if servers == 0 {
        for server in FALLBACK_RESOLVERS {
            let _ = writeln!(out, "nameserver {server}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::Mac;

    #[test]
    fn loopback_resolvers_are_replaced() {
        let text = resolv_conf(
            "# comment\nnameserver 127.0.0.53\nnameserver ::1\nsearch example.org\noptions edns0\n",
        );
        assert_eq!(
            text,
            "search example.org\noptions edns0\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
        let text = resolv_conf("nameserver 10.255.255.53\nnameserver fe80::1%eth0\n");
        assert_eq!(text, "nameserver 10.255.255.53\n");
    }

    #[test]
    fn hosts_names_the_container() {
        let ipv4 = "10.47.0.2".parse().unwrap();
        let lease = Lease {
            container: "c".into(),
            name: "web".into(),
            ipv4,
            ipv6: "fd47::2".parse().unwrap(),
            mac: Mac::for_address(ipv4),
            host_veth: "pvc".into(),
            ports: Vec::new(),
        };
        let text = hosts("abc123", &lease, "10.47.0.1".parse().unwrap());
        assert!(text.contains("10.47.0.2\tabc123 web\n"));
        assert!(text.contains("10.47.0.1\thost.palisade.internal\n"));
    }
}
