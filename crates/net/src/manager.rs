//! The operations the engine and the CLI call: create, list, inspect and remove networks;
//! connect a container (lease and rules, at container creation), attach it (veth, addresses,
//! routes, from the runtime's `createRuntime` hook), disconnect it (at removal), and the
//! cleanup pass that removes what a crash left behind.

use std::fs;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsFd, OwnedFd};

use crate::addr::{Mac, Subnet4, Subnet6};
use crate::error::NetError;
use crate::firewall;
use crate::netlink::{self, Rtnl};
use crate::network::{Lease, Network, NetworkName, PortMapping};
use crate::store::{Leases, NetworkStore, StoreLock};

/// The container's end of its veth pair.
pub const CONTAINER_INTERFACE: &str = "eth0";
/// A file in the store's `networks/` directory that, when it reads `after-veth`, makes
/// [`Networks::attach`] fail right after creating the veth pair: tests simulate a crash there.
/// (A file, not an environment variable: OCI hooks run with an empty environment.)
pub const FAULT_FILE: &str = "inject-fault";

/// `palisade network create`'s request.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    /// The name.
    pub name: NetworkName,
    /// The IPv4 subnet (auto-assigned from 10.47.0.0/16 if `None`).
    pub subnet: Option<Subnet4>,
    /// The IPv6 /64 (auto-assigned if `None`).
    pub subnet6: Option<Subnet6>,
    /// `--internal`.
    pub internal: bool,
    /// `false` only with `--insecure-allow-spoofing`.
    pub spoof_protection: bool,
}

/// What a cleanup pass removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cleanup {
    /// Leases of containers that no longer exist.
    pub leases: Vec<String>,
    /// Host interfaces without a lease.
    pub interfaces: Vec<String>,
}

/// The networks under the engine's state directory.
#[derive(Debug, Clone)]
pub struct Networks {
    store: NetworkStore,
}

impl Networks {
    /// Opens (creating `networks/` if needed) the store under `state_dir`.
    pub fn open(state_dir: &std::path::Path) -> Result<Self, NetError> {
        Ok(Self {
            store: NetworkStore::open(state_dir)?,
        })
    }

    /// The store.
    pub fn store(&self) -> &NetworkStore {
        &self.store
    }

    /// Creates a network (definition, bridge, rules).
    pub fn create(&self, request: &CreateRequest) -> Result<Network, NetError> {
        let lock = self.store.lock()?;
        self.create_locked(request, &lock)
    }

    fn create_locked(
        &self,
        request: &CreateRequest,
        lock: &StoreLock,
    ) -> Result<Network, NetError> {
        if self.store.exists(&request.name) {
            return Err(NetError::NetworkExists {
                name: request.name.to_string(),
            });
        }
        // Interface and table names are host-wide: another store may own this network.
        if Rtnl::open()?.link_index(&request.name.bridge())?.is_some() {
            return Err(NetError::BridgeExists {
                bridge: request.name.bridge(),
            });
        }
        let subnet = match request.subnet {
            Some(subnet) => subnet,
            None => self
                .store
                .free_subnet(request.name != NetworkName::default_network())?,
        };
        let subnet6 = request
            .subnet6
            .unwrap_or_else(|| crate::store::paired_subnet6(subnet));
        let mut network = Network::new(
            request.name.clone(),
            subnet,
            subnet6,
            palisade_audit::Timestamp::now().to_string(),
        );
        network.internal = request.internal;
        network.spoof_protection = request.spoof_protection;
        self.store.insert(&network, lock)?;
        if let Err(e) = self.realize(&network, &Leases::new()) {
            let _ = self.teardown(&network);
            let _ = self.store.delete(&network.name, lock);
            return Err(e);
        }
        Ok(network)
    }

    /// The default network, created on first use.
    pub fn ensure_default(&self) -> Result<Network, NetError> {
        let name = NetworkName::default_network();
        let lock = self.store.lock()?;
        if self.store.exists(&name) {
            return self.store.load(&name);
        }
        self.create_locked(
            &CreateRequest {
                name,
                subnet: None,
                subnet6: None,
                internal: false,
                spoof_protection: true,
            },
            &lock,
        )
    }

    /// Every network with its leases.
    pub fn list(&self) -> Result<Vec<(Network, Leases)>, NetError> {
        self.store
            .list()?
            .into_iter()
            .map(|n| {
                let leases = self.store.leases(&n.name)?;
                Ok((n, leases))
            })
            .collect()
    }

    /// One network with its leases.
    pub fn inspect(&self, name: &NetworkName) -> Result<(Network, Leases), NetError> {
        let network = self.store.load(name)?;
        let leases = self.store.leases(name)?;
        Ok((network, leases))
    }

    /// Removes a network: refused while a container holds a lease on it.
    pub fn remove(&self, name: &NetworkName) -> Result<(), NetError> {
        let lock = self.store.lock()?;
        let network = self.store.load(name)?;
        let leases = self.store.leases(name)?;
        if !leases.is_empty() {
            return Err(NetError::InUse {
                name: name.to_string(),
                containers: leases.values().map(|l| l.name.clone()).collect(),
            });
        }
        self.teardown(&network)?;
        self.store.delete(name, &lock)
    }

    /// Bridge up with the gateways, forwarding on if needed, rules as the leases say.
    fn realize(&self, network: &Network, leases: &Leases) -> Result<(), NetError> {
        let mut rtnl = Rtnl::open()?;
        let bridge = rtnl.ensure_bridge(&network.bridge, Mac::for_address(network.gateway))?;
        rtnl.add_address(bridge, IpAddr::V4(network.gateway), network.subnet.prefix())?;
        rtnl.add_address(bridge, IpAddr::V6(network.gateway6), Subnet6::PREFIX)?;
        rtnl.set_up(bridge)?;
        if !network.internal {
            enable_ipv4_forwarding()?;
            set_route_localnet(&network.bridge)?;
        }
        firewall::apply(
            &firewall::ruleset(network, leases),
            &format!("apply the rules of network {}", network.name),
        )
    }

    /// Deletes the bridge and the tables.
    fn teardown(&self, network: &Network) -> Result<(), NetError> {
        firewall::apply(
            &firewall::removal(network),
            &format!("remove the rules of network {}", network.name),
        )?;
        let mut rtnl = Rtnl::open()?;
        if let Some(index) = rtnl.link_index(&network.bridge)? {
            rtnl.delete_link(index)?;
        }
        Ok(())
    }

    /// Gives `container` a lease on `network` (creating the default network if that is the
    /// one asked for) and installs its rules, before the container exists: its port's rules
    /// are in place before its interface is.
    pub fn connect(
        &self,
        network: &NetworkName,
        container: &str,
        container_name: &str,
        ports: &[PortMapping],
    ) -> Result<(Network, Lease), NetError> {
        if *network == NetworkName::default_network() {
            self.ensure_default()?;
        }
        let lock = self.store.lock()?;
        let definition = self.store.load(network)?;
        if definition.internal && !ports.is_empty() {
            return Err(NetError::InternalPorts {
                name: network.to_string(),
            });
        }
        let lease = self
            .store
            .allocate(&definition, container, container_name, ports, &lock)?;
        let leases = self.store.leases(network)?;
        if let Err(e) = self.realize(&definition, &leases) {
            let _ = self.store.release(network, container, &lock);
            let leases = self.store.leases(network)?;
            let _ = self.realize(&definition, &leases);
            return Err(e);
        }
        Ok((definition, lease))
    }

    /// Connects the running container (its init is `pid`) to the network it holds a lease
    /// on: veth pair (container end created inside its namespace), bridge port hardened
    /// before it comes up, addresses and default routes inside.
    pub fn attach(&self, container: &str, pid: i32) -> Result<Lease, NetError> {
        let lock = self.store.lock()?;
        let (network, lease) =
            self.store
                .lease_of(container)?
                .ok_or_else(|| NetError::NoLease {
                    container: container.to_owned(),
                })?;
        let mut rtnl = Rtnl::open()?;
        // `connect` set up the bridge and the rules; only after a reboot (or someone
        // deleting the bridge) are they gone and made again here.
        if rtnl.link_index(&network.bridge)?.is_none() {
            let leases = self.store.leases(&network.name)?;
            self.realize(&network, &leases)?;
        }
        let path = format!("/proc/{pid}/ns/net");
        let netns: OwnedFd = fs::File::open(&path)
            .map_err(|source| NetError::Io {
                operation: "open",
                path: path.clone().into(),
                source,
            })?
            .into();
        if let Some(stale) = rtnl.link_index(&lease.host_veth)? {
            rtnl.delete_link(stale)?;
        }
        let host = rtnl.create_veth(
            &lease.host_veth,
            CONTAINER_INTERFACE,
            lease.mac,
            netns.as_fd(),
        )?;
        let result = (|| {
            let fault = fs::read_to_string(self.store.dir().join(FAULT_FILE)).unwrap_or_default();
            if fault.trim() == "after-veth" {
                return Err(NetError::Injected {
                    point: "after-veth".into(),
                });
            }
            let bridge = rtnl
                .link_index(&network.bridge)?
                .ok_or_else(|| NetError::Netlink {
                    operation: format!("find bridge {}", network.bridge),
                    source: io::Error::from(io::ErrorKind::NotFound),
                })?;
            rtnl.set_master(host, bridge)?;
            if network.spoof_protection {
                rtnl.set_port_flags(host, false, false)?;
                rtnl.add_static_fdb(host, lease.mac)?;
            }
            rtnl.set_up(host)?;
            let (ipv4, ipv6) = (lease.ipv4, lease.ipv6);
            let (gateway, gateway6) = (network.gateway, network.gateway6);
            let prefix = network.subnet.prefix();
            netlink::in_netns(netns, move || {
                let mut inside = Rtnl::open()?;
                netlink::configure_container_side(
                    &mut inside,
                    CONTAINER_INTERFACE,
                    (ipv4, prefix),
                    gateway,
                    (ipv6, Subnet6::PREFIX),
                    gateway6,
                )
            })
        })();
        if let Err(e) = result {
            // Only a simulated crash leaves the pair for the next cleanup pass.
            if !matches!(e, NetError::Injected { .. }) {
                let _ = rtnl.delete_link(host);
            }
            return Err(e);
        }
        drop(lock);
        Ok(lease)
    }

    /// Releases `container`'s lease, removes its host interface if it is still there and
    /// its rules. Idempotent.
    pub fn disconnect(&self, container: &str) -> Result<Option<Lease>, NetError> {
        let lock = self.store.lock()?;
        let Some((network, lease)) = self.store.lease_of(container)? else {
            return Ok(None);
        };
        let mut rtnl = Rtnl::open()?;
        if let Some(index) = rtnl.link_index(&lease.host_veth)? {
            rtnl.delete_link(index)?;
        }
        self.store.release(&network.name, container, &lock)?;
        let leases = self.store.leases(&network.name)?;
        firewall::apply(
            &firewall::ruleset(&network, &leases),
            &format!("apply the rules of network {}", network.name),
        )?;
        Ok(Some(lease))
    }

    /// The cleanup pass: releases the leases of containers `exists` says are gone (a crash
    /// between creating a container and removing it) and rewrites their networks' rules;
    /// deletes palisade veths (`pv` + 12 hex digits) that sit on one of this store's bridges
    /// without a lease, or that belonged to a released lease. Interfaces of other stores are
    /// left alone.
    pub fn cleanup(&self, exists: &dyn Fn(&str) -> bool) -> Result<Cleanup, NetError> {
        let lock = self.store.lock()?;
        let mut report = Cleanup::default();
        let mut rtnl = Rtnl::open()?;
        let links = rtnl.links()?;
        let mut live = Vec::new();
        let mut released = Vec::new();
        let mut bridges = Vec::new();
        for network in self.store.list()? {
            if let Some(bridge) = links.iter().find(|l| l.name == network.bridge) {
                bridges.push(bridge.index);
            }
            let leases = self.store.leases(&network.name)?;
            let mut changed = false;
            for (id, lease) in &leases {
                if exists(id) {
                    live.push(lease.host_veth.clone());
                } else {
                    self.store.release(&network.name, id, &lock)?;
                    report.leases.push(id.clone());
                    released.push(lease.host_veth.clone());
                    changed = true;
                }
            }
            if changed {
                let leases = self.store.leases(&network.name)?;
                firewall::apply(
                    &firewall::ruleset(&network, &leases),
                    &format!("apply the rules of network {}", network.name),
                )?;
            }
        }
        for link in &links {
            if !is_veth_name(&link.name) {
                continue;
            }
            let stray =
                link.master.is_some_and(|m| bridges.contains(&m)) && !live.contains(&link.name);
            if stray || released.contains(&link.name) {
                rtnl.delete_link(link.index)?;
                report.interfaces.push(link.name.clone());
            }
        }
        Ok(report)
    }
}

/// `pv` and 12 lowercase hex digits.
fn is_veth_name(name: &str) -> bool {
    name.len() == 14
        && name.starts_with("pv")
        && name[2..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Sets `net.ipv4.conf.<bridge>.route_localnet` to 1 so ports published on the host's
/// loopback can be DNATed onto the bridge (the inet table's input chain drops what containers
/// send to 127.0.0.0/8, which this would otherwise let in).
fn set_route_localnet(bridge: &str) -> Result<(), NetError> {
    let path = format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet");
    fs::write(&path, "1").map_err(|source| NetError::Io {
        operation: "write",
        path: path.into(),
        source,
    })
}

/// Sets `net.ipv4.ip_forward` to 1 if it is 0 (outbound NAT and published ports need it).
fn enable_ipv4_forwarding() -> Result<(), NetError> {
    let path = "/proc/sys/net/ipv4/ip_forward";
    let current = fs::read_to_string(path).unwrap_or_default();
    if current.trim() == "1" {
        return Ok(());
    }
    fs::write(path, "1").map_err(|source| NetError::Io {
        operation: "write",
        path: path.into(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_names_are_recognised_exactly() {
        assert!(is_veth_name("pv0123456789ab"));
        assert!(!is_veth_name("pv0123456789abc"));
        assert!(!is_veth_name("pvZ123456789ab"));
        assert!(!is_veth_name("veth0123456789"));
    }
}
