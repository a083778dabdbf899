//! Bridge networks for Palisade containers that a neighbour cannot spoof.
//!
//! A network is a Linux bridge (`palisade0` for the default network, `pal-<name>` for
//! others) with an IPv4 subnet and an IPv6 /64, persisted with its leases under the engine's
//! state directory ([`store`]). Each container gets a veth pair: the host end on the bridge,
//! the other end created directly inside the container's network namespace as `eth0`
//! ([`netlink`]). The host enforces the container's identity ([`firewall`]): per-port
//! nftables bridge rules pin its MAC, ARP sender and IP source addresses; the bridge port does
//! not learn and is not flooded with unknown unicast, and the container's MAC has a static
//! forwarding entry, so forged addresses and MAC floods change nothing.
//!
//! Entry point: [`Networks`].

pub mod addr;
pub mod error;
pub mod files;
pub mod firewall;
pub mod manager;
pub mod netlink;
pub mod network;
pub mod store;

pub use addr::{Mac, Subnet4, Subnet6};
pub use error::NetError;
pub use manager::{Cleanup, CreateRequest, Networks, CONTAINER_INTERFACE, FAULT_FILE};
pub use network::{
    host_veth_name, Lease, Network, NetworkName, PortMapping, Protocol, DEFAULT_BRIDGE,
    DEFAULT_NETWORK,
};
pub use store::{Leases, NetworkStore};
