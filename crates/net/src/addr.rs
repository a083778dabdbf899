//! Subnets and MAC addresses, parsed once at the edge.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A value that is not a subnet or MAC address.
#[derive(Debug, thiserror::Error)]
#[error("invalid {what} {value:?}: expected {expected}")]
pub struct AddrError {
    what: &'static str,
    value: String,
    expected: &'static str,
}

/// An IPv4 subnet in CIDR form with host bits clear (`10.47.0.0/24`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subnet4 {
    network: Ipv4Addr,
    prefix: u8,
}

impl Subnet4 {
    /// The subnet `network/prefix`; host bits must be clear and the prefix 8..=30 (a
    /// network needs a gateway and at least one container address).
    pub fn new(network: Ipv4Addr, prefix: u8) -> Option<Self> {
        if !(8..=30).contains(&prefix) {
            return None;
        }
        let subnet = Self { network, prefix };
        (u32::from(network) & !subnet.mask() == 0).then_some(subnet)
    }

    fn mask(self) -> u32 {
        u32::MAX << (32 - u32::from(self.prefix))
    }

    /// The network address.
    pub fn network(self) -> Ipv4Addr {
        self.network
    }

    /// The prefix length.
    pub fn prefix(self) -> u8 {
        self.prefix
    }

    /// The number of addresses, network and broadcast included.
    pub fn size(self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    /// The address at `index` from the network address, if inside.
    pub fn nth(self, index: u64) -> Option<Ipv4Addr> {
        (index < self.size()).then(|| Ipv4Addr::from(u32::from(self.network) + index as u32))
    }

    /// Whether `address` is inside.
    pub fn contains(self, address: Ipv4Addr) -> bool {
        u32::from(address) & self.mask() == u32::from(self.network)
    }

    /// Whether the two subnets share an address.
    pub fn overlaps(self, other: Self) -> bool {
        self.contains(other.network) || other.contains(self.network)
    }

    /// The index of `address` from the network address, if inside.
    pub fn index_of(self, address: Ipv4Addr) -> Option<u64> {
        self.contains(address)
            .then(|| u64::from(u32::from(address) - u32::from(self.network)))
    }
}

impl fmt::Display for Subnet4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl FromStr for Subnet4 {
    type Err = AddrError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let fail = || {
            AddrError {
            what: "IPv4 subnet",
            value: value.to_owned(),
            expected: "a network address with host bits clear and a /8 to /30 prefix, such as 10.47.3.0/24",
        }
        };
        let (address, prefix) = value.split_once('/').ok_or_else(fail)?;
        let address: Ipv4Addr = address.parse().map_err(|_| fail())?;
        let prefix: u8 = prefix.parse().map_err(|_| fail())?;
        Self::new(address, prefix).ok_or_else(fail)
    }
}

impl TryFrom<String> for Subnet4 {
    type Error = AddrError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<Subnet4> for String {
    fn from(value: Subnet4) -> Self {
        value.to_string()
    }
}

/// An IPv6 /64 subnet (`fd47:5061:6c00:1::/64`): addresses are the prefix plus the IPv4
/// host index, so the two families stay in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subnet6 {
    network: Ipv6Addr,
}

impl Subnet6 {
    /// The prefix length (always 64).
    pub const PREFIX: u8 = 64;
    /// `::/64`.
    pub const ZERO: Self = Self {
        network: Ipv6Addr::UNSPECIFIED,
    };

    /// The /64 starting at `network`; the host half must be zero.
    pub fn new(network: Ipv6Addr) -> Option<Self> {
        (u128::from(network) & u128::from(u64::MAX) == 0).then_some(Self { network })
    }

    /// The network address.
    pub fn network(self) -> Ipv6Addr {
        self.network
    }

    /// The address with host part `index`.
    pub fn nth(self, index: u64) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.network) | u128::from(index))
    }

    /// Whether `address` is inside.
    pub fn contains(self, address: Ipv6Addr) -> bool {
        u128::from(address) >> 64 == u128::from(self.network) >> 64
    }
}

impl fmt::Display for Subnet6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, Self::PREFIX)
    }
}

impl FromStr for Subnet6 {
    type Err = AddrError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let fail = || AddrError {
            what: "IPv6 subnet",
            value: value.to_owned(),
            expected: "a /64 with the host half zero, such as fd47:5061:6c00:3::/64",
        };
        let (address, prefix) = value.split_once('/').ok_or_else(fail)?;
        if prefix != "64" {
            return Err(fail());
        }
        Self::new(address.parse().map_err(|_| fail())?).ok_or_else(fail)
    }
}

impl TryFrom<String> for Subnet6 {
    type Error = AddrError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<Subnet6> for String {
    fn from(value: Subnet6) -> Self {
        value.to_string()
    }
}

/// An Ethernet address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// The locally administered unicast address palisade gives the container holding
    /// `address`: `02:50` then the four bytes of the IPv4 address (unique per address, so
    /// unique on the host as long as subnets do not overlap, which is enforced).
    pub fn for_address(address: Ipv4Addr) -> Self {
        let [a, b, c, d] = address.octets();
        Self([0x02, 0x50, a, b, c, d])
    }

    /// The modified EUI-64 link-local IPv6 address the kernel derives from this MAC.
    pub fn link_local(self) -> Ipv6Addr {
        let m = self.0;
        Ipv6Addr::from([
            0xfe,
            0x80,
            0,
            0,
            0,
            0,
            0,
            0,
            m[0] ^ 0x02,
            m[1],
            m[2],
            0xff,
            0xfe,
            m[3],
            m[4],
            m[5],
        ])
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl FromStr for Mac {
    type Err = AddrError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let fail = || AddrError {
            what: "MAC address",
            value: value.to_owned(),
            expected: "six hex bytes separated by ':'",
        };
        let mut bytes = [0u8; 6];
        let mut parts = value.split(':');
        for byte in &mut bytes {
            let part = parts.next().ok_or_else(fail)?;
            if part.len() != 2 {
                return Err(fail());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| fail())?;
        }
        if parts.next().is_some() {
            return Err(fail());
        }
        Ok(Self(bytes))
    }
}

impl TryFrom<String> for Mac {
    type Error = AddrError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<Mac> for String {
    fn from(value: Mac) -> Self {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_parse_and_overlap() {
        let a: Subnet4 = "10.47.0.0/24".parse().unwrap();
        let b: Subnet4 = "10.47.0.128/25".parse().unwrap();
        let c: Subnet4 = "10.47.1.0/24".parse().unwrap();
        assert!(a.overlaps(b) && b.overlaps(a));
        assert!(!a.overlaps(c));
        assert_eq!(a.size(), 256);
        assert_eq!(a.nth(1), Some(Ipv4Addr::new(10, 47, 0, 1)));
        assert_eq!(a.nth(256), None);
        assert_eq!(a.index_of(Ipv4Addr::new(10, 47, 0, 9)), Some(9));
        for bad in [
            "10.47.0.1/24",
            "10.47.0.0/31",
            "10.47.0.0",
            "x/24",
            "10.0.0.0/7",
            "",
        ] {
            assert!(bad.parse::<Subnet4>().is_err(), "{bad}");
        }
        let six: Subnet6 = "fd47:5061:6c00:1::/64".parse().unwrap();
        assert_eq!(
            six.nth(5),
            "fd47:5061:6c00:1::5".parse::<Ipv6Addr>().unwrap()
        );
        assert!(six.contains(six.nth(9)));
        for bad in ["fd47::1/64", "fd47::/48", "fd47::"] {
            assert!(bad.parse::<Subnet6>().is_err(), "{bad}");
        }
    }

    #[test]
    fn macs_round_trip_and_give_the_kernels_link_local() {
        let mac = Mac::for_address(Ipv4Addr::new(10, 47, 0, 2));
        assert_eq!(mac.to_string(), "02:50:0a:2f:00:02");
        assert_eq!(mac.to_string().parse::<Mac>().unwrap(), mac);
        assert_eq!(
            mac.link_local(),
            "fe80::50:aff:fe2f:2".parse::<Ipv6Addr>().unwrap()
        );
        for bad in [
            "02:50:0a:2f:00",
            "02:50:0a:2f:00:02:01",
            "zz:50:0a:2f:00:02",
        ] {
            assert!(bad.parse::<Mac>().is_err(), "{bad}");
        }
    }
}
