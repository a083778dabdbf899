//! Why a network operation failed.

use std::io;
use std::path::PathBuf;

/// Why a network operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A file operation failed.
    #[error("failed to {operation} {path:?}")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A state file does not parse.
    #[error(
        "network state file {path:?} is damaged ({reason}); move it away and recreate the network"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// No such network.
    #[error("network {name} does not exist (see `palisade network ls`, or create it with `palisade network create {name}`)")]
    NoSuchNetwork {
        /// The name.
        name: String,
    },
    /// The name is taken.
    #[error("network {name} already exists")]
    NetworkExists {
        /// The name.
        name: String,
    },
    /// The bridge exists already (another palisade store, or someone else, made it).
    #[error("interface {bridge} already exists on this host (network names are host-wide; another palisade store may own it): choose another network name")]
    BridgeExists {
        /// The bridge.
        bridge: String,
    },
    /// The subnet collides with another network or a host route.
    #[error("subnet {subnet} overlaps {with}: choose another with --subnet")]
    Overlap {
        /// The subnet asked for.
        subnet: String,
        /// What it collides with.
        with: String,
    },
    /// Every auto-assigned subnet is taken.
    #[error("no free subnet left in 10.47.0.0/16: remove a network or give --subnet")]
    NoFreeSubnet,
    /// Every address is leased.
    #[error("network {name} ({subnet}) has no free address: its {leases} addresses are all leased; remove a container or use a larger subnet")]
    Exhausted {
        /// The network.
        name: String,
        /// Its subnet.
        subnet: String,
        /// How many leases there are.
        leases: usize,
    },
    /// Containers still hold leases.
    #[error("network {name} is in use by {}: remove them first", containers.join(", "))]
    InUse {
        /// The network.
        name: String,
        /// The containers' names.
        containers: Vec<String>,
    },
    /// The host port is published already.
    #[error("host port {port} is already published by container {container}")]
    PortTaken {
        /// The mapping asked for.
        port: String,
        /// The holder.
        container: String,
    },
    /// `-p` on an `--internal` network.
    #[error("network {name} is --internal: nothing outside it can reach a published port; drop -p or use another network")]
    InternalPorts {
        /// The network.
        name: String,
    },
    /// The container holds no lease.
    #[error("container {container} has no network lease")]
    NoLease {
        /// The container id.
        container: String,
    },
    /// A netlink request failed.
    #[error("netlink: failed to {operation}")]
    Netlink {
        /// What was being done.
        operation: String,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },
    /// An `nft` run failed.
    #[error("nftables: failed to {operation}: {stderr}")]
    Nft {
        /// What was being done.
        operation: String,
        /// What nft said.
        stderr: String,
    },
    /// A fault injected by a test (the `inject-fault` file).
    #[error("injected fault at {point}")]
    Injected {
        /// Where.
        point: String,
    },
}
