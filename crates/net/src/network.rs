//! A network's definition and a container's lease on it.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::addr::{Mac, Subnet4, Subnet6};

/// The default network's name (`--network bridge` is an alias).
pub const DEFAULT_NETWORK: &str = "palisade";
/// The default network's bridge.
pub const DEFAULT_BRIDGE: &str = "palisade0";
/// The longest network name: `pal-` plus the name must fit an interface name (15 bytes).
pub const MAX_NAME_LEN: usize = 11;

/// A network name that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid network name {value:?}: use 1 to {MAX_NAME_LEN} lowercase letters, digits, '-' or '_', starting with a letter or digit (none and host are reserved)")]
pub struct NameError {
    value: String,
}

/// A network's name: short enough to name its bridge and nftables tables.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NetworkName(String);

impl NetworkName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The default network.
    pub fn default_network() -> Self {
        Self(DEFAULT_NETWORK.to_owned())
    }

    /// The bridge interface: `palisade0` for the default network, else `pal-<name>`.
    pub fn bridge(&self) -> String {
        if self.0 == DEFAULT_NETWORK {
            DEFAULT_BRIDGE.to_owned()
        } else {
            format!("pal-{}", self.0)
        }
    }

    /// The nftables table name (in the bridge and inet families): `palisade-<name>`.
    pub fn table(&self) -> String {
        format!("palisade-{}", self.0)
    }
}

impl fmt::Display for NetworkName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for NetworkName {
    type Err = NameError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let valid = !value.is_empty()
            && value.len() <= MAX_NAME_LEN
            && value
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            && !matches!(value, "none" | "host" | "bridge");
        if valid {
            Ok(Self(value.to_owned()))
        } else {
            Err(NameError {
                value: value.to_owned(),
            })
        }
    }
}

impl TryFrom<String> for NetworkName {
    type Error = NameError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<NetworkName> for String {
    fn from(value: NetworkName) -> Self {
        value.0
    }
}

/// A bridge network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// The name.
    pub name: NetworkName,
    /// The bridge interface.
    pub bridge: String,
    /// The IPv4 subnet.
    pub subnet: Subnet4,
    /// The host's address on the bridge (the containers' default route).
    pub gateway: Ipv4Addr,
    /// The IPv6 subnet.
    pub subnet6: Subnet6,
    /// The host's IPv6 address on the bridge.
    pub gateway6: Ipv6Addr,
    /// `--internal`: no traffic leaves the network (no NAT, no forwarding, no published ports).
    pub internal: bool,
    /// Host-enforced anti-spoofing (on unless created with `--insecure-allow-spoofing`).
    pub spoof_protection: bool,
    /// When it was created (RFC 3339).
    pub created: String,
}

impl Network {
    /// A network named `name` over `subnet` and `subnet6`, gateways at host index 1.
    pub fn new(name: NetworkName, subnet: Subnet4, subnet6: Subnet6, created: String) -> Self {
        Self {
            bridge: name.bridge(),
            gateway: subnet.nth(1).unwrap_or(subnet.network()),
            gateway6: subnet6.nth(1),
            name,
            subnet,
            subnet6,
            internal: false,
            spoof_protection: true,
            created,
        }
    }
}

/// The transport of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// `tcp` or `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }
}

/// A `-p` value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid -p {value:?}: expected [HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|/udp], ports 1-65535, HOST_IP an IPv4 address")]
pub struct PortError {
    value: String,
}

/// `-p [host_ip:]host_port:container_port[/proto]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    /// The host address the port is bound to (`None`: every local address).
    pub host_ip: Option<Ipv4Addr>,
    /// The host port.
    pub host_port: u16,
    /// The container port.
    pub container_port: u16,
    /// The transport.
    pub protocol: Protocol,
}

impl FromStr for PortMapping {
    type Err = PortError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let fail = || PortError {
            value: value.to_owned(),
        };
        let (spec, protocol) = match value.rsplit_once('/') {
            Some((spec, "tcp")) => (spec, Protocol::Tcp),
            Some((spec, "udp")) => (spec, Protocol::Udp),
            Some(_) => return Err(fail()),
            None => (value, Protocol::Tcp),
        };
        let parts: Vec<&str> = spec.split(':').collect();
        let (host_ip, host_port, container_port) = match parts.as_slice() {
            [host, container] => (None, *host, *container),
            [ip, host, container] => {
                let ip: Ipv4Addr = ip.parse().map_err(|_| fail())?;
                (Some(ip), *host, *container)
            }
            _ => return Err(fail()),
        };
        let port = |text: &str| {
            text.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(fail)
        };
        Ok(Self {
            host_ip: host_ip.filter(|ip| !ip.is_unspecified()),
            host_port: port(host_port)?,
            container_port: port(container_port)?,
            protocol,
        })
    }
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(ip) = self.host_ip {
            write!(f, "{ip}:")?;
        }
        write!(
            f,
            "{}:{}/{}",
            self.host_port,
            self.container_port,
            self.protocol.as_str()
        )
    }
}

/// A container's place on a network, from creation until removal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The container's full id.
    pub container: String,
    /// The container's name (for /etc/hosts of its neighbours and `network inspect`).
    pub name: String,
    /// Its IPv4 address.
    pub ipv4: Ipv4Addr,
    /// Its IPv6 address.
    pub ipv6: Ipv6Addr,
    /// Its MAC address.
    pub mac: Mac,
    /// The host end of its veth pair.
    pub host_veth: String,
    /// Published ports.
    pub ports: Vec<PortMapping>,
}

/// The host end of a container's veth pair: `pv` and 12 hex digits of its id.
pub fn host_veth_name(container: &str) -> String {
    let short: String = container.chars().take(12).collect();
    format!("pv{short}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_interfaces_and_reserved_ones_are_refused() {
        let name: NetworkName = "backend_1".parse().unwrap();
        assert_eq!(name.bridge(), "pal-backend_1");
        assert!(name.bridge().len() <= 15);
        assert_eq!(NetworkName::default_network().bridge(), "palisade0");
        for bad in [
            "",
            "none",
            "host",
            "bridge",
            "Upper",
            "-x",
            "a b",
            "twelve_chars",
        ] {
            assert!(bad.parse::<NetworkName>().is_err(), "{bad}");
        }
    }

    #[test]
    fn port_mappings_parse() {
        let p: PortMapping = "127.0.0.1:8080:80/udp".parse().unwrap();
        assert_eq!(p.host_ip, Some(Ipv4Addr::LOCALHOST));
        assert_eq!((p.host_port, p.container_port), (8080, 80));
        assert_eq!(p.protocol, Protocol::Udp);
        assert_eq!(p.to_string(), "127.0.0.1:8080:80/udp");
        let p: PortMapping = "8080:80".parse().unwrap();
        assert_eq!((p.host_ip, p.protocol), (None, Protocol::Tcp));
        for bad in [
            "80",
            "0:80",
            "80:0",
            "x:80:80",
            "8080:80/sctp",
            "1:2:3:4",
            "70000:80",
        ] {
            assert!(bad.parse::<PortMapping>().is_err(), "{bad}");
        }
        assert_eq!(host_veth_name(&"ab".repeat(32)), "pvabababababab");
    }
}
