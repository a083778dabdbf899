//! Network definitions and leases on disk, under one lock.
//!
//! `<state>/networks/<name>.json` holds a [`Network`], `<state>/networks/<name>.leases.json`
//! its leases (container id -> [`Lease`]). Every change happens under an exclusive `flock` on
//! `<state>/networks/lock`, held by [`NetworkStore::lock`]'s guard, so two `palisade run`s
//! started at once never get the same address, and a network cannot be removed while a
//! container is being attached to it. Files are replaced atomically (write, fsync, rename).

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::addr::{Mac, Subnet4, Subnet6};
use crate::error::NetError;
use crate::network::{host_veth_name, Lease, Network, NetworkName, PortMapping};

/// The pool auto-assigned IPv4 subnets come from: 10.47.N.0/24. (Podman's netavark starts
/// at 10.88.0.0/16 and 10.89.N.0/24, Docker at 172.17.0.0/16.)
const AUTO_POOL: [u8; 2] = [10, 47];
/// The IPv6 ULA prefix of the /64 paired with an IPv4 subnet: the fourth group is the IPv4
/// network's second and third bytes (10.47.3.0/24 -> fd47:5061:6c00:2f03::/64).
const AUTO_POOL6: [u16; 3] = [0xfd47, 0x5061, 0x6c00];

/// The /64 paired with `subnet` (see [`AUTO_POOL6`]).
pub fn paired_subnet6(subnet: Subnet4) -> Subnet6 {
    let [_, b, c, _] = subnet.network().octets();
    let [x, y, z] = AUTO_POOL6;
    let network = std::net::Ipv6Addr::new(x, y, z, u16::from_be_bytes([b, c]), 0, 0, 0, 0);
    Subnet6::new(network).unwrap_or(Subnet6::ZERO)
}

/// Leases of one network, by container id.
pub type Leases = BTreeMap<String, Lease>;

/// The networks under a state directory.
#[derive(Debug, Clone)]
pub struct NetworkStore {
    dir: PathBuf,
}

/// Proof that the store's lock is held; released on drop.
#[derive(Debug)]
pub struct StoreLock {
    _lock: Flock<fs::File>,
}

fn io_error(operation: &'static str, path: &Path) -> impl FnOnce(io::Error) -> NetError {
    let path = path.to_owned();
    move |source| NetError::Io {
        operation,
        path,
        source,
    }
}

impl NetworkStore {
    /// The store under `state_dir` (the engine's store root); creates `networks/` (0700).
    pub fn open(state_dir: &Path) -> Result<Self, NetError> {
        let dir = state_dir.join("networks");
        fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(&dir)
            .map_err(io_error("create", &dir))?;
        Ok(Self { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes the host-wide lock that serialises network creation across stores: bridge
    /// names, subnets (seen as host routes) and nftables tables are host-wide.
    pub fn host_lock(&self) -> Result<StoreLock, NetError> {
        lock_file(std::path::Path::new(HOST_LOCK))
    }

    /// Takes the store's exclusive lock (blocking).
    pub fn lock(&self) -> Result<StoreLock, NetError> {
        lock_file(&self.dir.join("lock"))
    }

    fn config_path(&self, name: &NetworkName) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    fn leases_path(&self, name: &NetworkName) -> PathBuf {
        self.dir.join(format!("{name}.leases.json"))
    }

    /// Every network, by name.
    pub fn list(&self) -> Result<Vec<Network>, NetError> {
        let mut networks = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_error("read", &self.dir))? {
            let entry = entry.map_err(io_error("read", &self.dir))?;
            let file = entry.file_name();
            let Some(stem) = file.to_str().and_then(|f| f.strip_suffix(".json")) else {
                continue;
            };
            if stem.ends_with(".leases") {
                continue;
            }
            if let Ok(name) = stem.parse::<NetworkName>() {
                networks.push(self.load(&name)?);
            }
        }
        networks.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(networks)
    }

    /// The network `name`.
    pub fn load(&self, name: &NetworkName) -> Result<Network, NetError> {
        let path = self.config_path(name);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(NetError::NoSuchNetwork {
                    name: name.to_string(),
                })
            }
            Err(e) => return Err(io_error("read", &path)(e)),
        };
        serde_json::from_slice(&bytes).map_err(|e| NetError::Corrupt {
            path,
            reason: e.to_string(),
        })
    }

    /// Whether the network `name` exists.
    pub fn exists(&self, name: &NetworkName) -> bool {
        self.config_path(name).exists()
    }

    /// Saves a new network after checking its subnets against the others and the host's
    /// routes. The caller holds the lock.
    pub fn insert(&self, network: &Network, _lock: &StoreLock) -> Result<(), NetError> {
        if self.exists(&network.name) {
            return Err(NetError::NetworkExists {
                name: network.name.to_string(),
            });
        }
        for other in self.list()? {
            if other.subnet.overlaps(network.subnet) {
                return Err(NetError::Overlap {
                    subnet: network.subnet.to_string(),
                    with: format!("network {} ({})", other.name, other.subnet),
                });
            }
            if other.subnet6 == network.subnet6 {
                return Err(NetError::Overlap {
                    subnet: network.subnet6.to_string(),
                    with: format!("network {} ({})", other.name, other.subnet6),
                });
            }
        }
        for (route, device) in host_routes() {
            if route.overlaps(network.subnet) {
                return Err(NetError::Overlap {
                    subnet: network.subnet.to_string(),
                    with: format!("the host route {route} on {device}"),
                });
            }
        }
        write_json(&self.config_path(&network.name), network)?;
        write_json(&self.leases_path(&network.name), &Leases::new())
    }

    /// A free auto-assigned IPv4 subnet (10.47.N.0/24, N from 1; 0 is the default
    /// network's).
    pub fn free_subnet(&self, skip_zero: bool) -> Result<Subnet4, NetError> {
        let taken: Vec<Subnet4> = self
            .list()?
            .iter()
            .map(|n| n.subnet)
            .chain(host_routes().into_iter().map(|(r, _)| r))
            .collect();
        (u8::from(skip_zero)..=255)
            .filter_map(|n| Subnet4::new(Ipv4Addr::new(AUTO_POOL[0], AUTO_POOL[1], n, 0), 24))
            .find(|subnet| !taken.iter().any(|t| t.overlaps(*subnet)))
            .ok_or(NetError::NoFreeSubnet)
    }

    /// Deletes the network's files; refused while it has leases. The caller holds the lock
    /// and has torn down the bridge and rules.
    pub fn delete(&self, name: &NetworkName, _lock: &StoreLock) -> Result<(), NetError> {
        let leases = self.leases(name)?;
        if !leases.is_empty() {
            return Err(NetError::InUse {
                name: name.to_string(),
                containers: leases.values().map(|l| l.name.clone()).collect(),
            });
        }
        for path in [self.leases_path(name), self.config_path(name)] {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error("remove", &path)(e)),
            }
        }
        Ok(())
    }

    /// The network's leases.
    pub fn leases(&self, name: &NetworkName) -> Result<Leases, NetError> {
        let path = self.leases_path(name);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| NetError::Corrupt {
                path,
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Leases::new()),
            Err(e) => Err(io_error("read", &path)(e)),
        }
    }

    /// The lease of `container` on any network.
    pub fn lease_of(&self, container: &str) -> Result<Option<(Network, Lease)>, NetError> {
        for network in self.list()? {
            if let Some(lease) = self.leases(&network.name)?.remove(container) {
                return Ok(Some((network, lease)));
            }
        }
        Ok(None)
    }

    /// Gives `container` the lowest free address of `network` (host index 2 up; 1 is the
    /// gateway, the last the broadcast address). Idempotent for a container that already
    /// holds a lease. The caller holds the lock.
    pub fn allocate(
        &self,
        network: &Network,
        container: &str,
        container_name: &str,
        ports: &[PortMapping],
        _lock: &StoreLock,
    ) -> Result<Lease, NetError> {
        let mut leases = self.leases(&network.name)?;
        if let Some(lease) = leases.get(container) {
            return Ok(lease.clone());
        }
        for port in ports {
            let clash = self.list()?.into_iter().try_fold(None, |found, other| {
                if found.is_some() {
                    return Ok::<_, NetError>(found);
                }
                Ok(self.leases(&other.name)?.into_values().find(|l| {
                    l.ports.iter().any(|p| {
                        p.host_port == port.host_port
                            && p.protocol == port.protocol
                            && (p.host_ip.is_none()
                                || port.host_ip.is_none()
                                || p.host_ip == port.host_ip)
                    })
                }))
            })?;
            if let Some(holder) = clash {
                return Err(NetError::PortTaken {
                    port: port.to_string(),
                    container: holder.name,
                });
            }
        }
        let taken: Vec<Ipv4Addr> = leases.values().map(|l| l.ipv4).collect();
        let last = network.subnet.size() - 1;
        let ipv4 = (2..last)
            .filter_map(|i| network.subnet.nth(i))
            .find(|ip| *ip != network.gateway && !taken.contains(ip))
            .ok_or_else(|| NetError::Exhausted {
                name: network.name.to_string(),
                subnet: network.subnet.to_string(),
                leases: leases.len(),
            })?;
        let index = network.subnet.index_of(ipv4).unwrap_or(0);
        let lease = Lease {
            container: container.to_owned(),
            name: container_name.to_owned(),
            ipv4,
            ipv6: network.subnet6.nth(index),
            mac: Mac::for_address(ipv4),
            host_veth: host_veth_name(container),
            ports: ports.to_vec(),
        };
        leases.insert(container.to_owned(), lease.clone());
        write_json(&self.leases_path(&network.name), &leases)?;
        Ok(lease)
    }

    /// Releases `container`'s lease on `network`; returns it if there was one. The caller
    /// holds the lock.
    pub fn release(
        &self,
        network: &NetworkName,
        container: &str,
        _lock: &StoreLock,
    ) -> Result<Option<Lease>, NetError> {
        let mut leases = self.leases(network)?;
        let lease = leases.remove(container);
        if lease.is_some() {
            write_json(&self.leases_path(network), &leases)?;
        }
        Ok(lease)
    }
}

/// Where [`NetworkStore::host_lock`] lives.
const HOST_LOCK: &str = "/run/palisade-net.lock";

/// An exclusive `flock` on `path` (created 0600 if missing).
fn lock_file(path: &Path) -> Result<StoreLock, NetError> {
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(io_error("open", path))?;
    let lock = Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, e)| io_error("lock", path)(e.into()))?;
    Ok(StoreLock { _lock: lock })
}

/// Writes `value` as JSON to `path` atomically (0600).
fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), NetError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| NetError::Corrupt {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let temporary = path.with_extension(format!("tmp{}", std::process::id()));
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        fs::rename(&temporary, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result.map_err(io_error("write", path))
}

/// The host's IPv4 routes other than the default route (palisade bridges of other stores
/// included), from `/proc/net/route` (the main table), with their devices.
fn host_routes() -> Vec<(Subnet4, String)> {
    let text = fs::read_to_string("/proc/net/route").unwrap_or_default();
    parse_routes(&text)
}

fn parse_routes(text: &str) -> Vec<(Subnet4, String)> {
    let hex = |field: &str| u32::from_str_radix(field, 16).ok().map(u32::from_be);
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let device = *fields.first()?;
            // The file prints the kernel's big-endian words as native (little-endian) hex.
            let destination = hex(fields.get(1)?)?;
            let mask = hex(fields.get(7)?)?;
            let prefix = u8::try_from(mask.leading_ones()).ok()?;
            if prefix == 0 {
                return None;
            }
            // Routes narrower than /30 or wider than /8 cannot be Subnet4s; widen or skip.
            let prefix = prefix.clamp(8, 30);
            let network = Ipv4Addr::from(destination & (u32::MAX << (32 - u32::from(prefix))));
            Some((Subnet4::new(network, prefix)?, device.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(store: &NetworkStore, name: &str, subnet: &str, n: u16) -> Network {
        let network = Network::new(
            name.parse().unwrap(),
            subnet.parse().unwrap(),
            Subnet6::new(std::net::Ipv6Addr::new(0xfd47, 1, 2, n, 0, 0, 0, 0)).unwrap(),
            "now".into(),
        );
        let lock = store.lock().unwrap();
        store.insert(&network, &lock).unwrap();
        network
    }

    #[test]
    fn each_ipv4_subnet_has_its_own_ipv6_subnet() {
        let six = paired_subnet6("10.47.221.0/24".parse().unwrap());
        assert_eq!(six.to_string(), "fd47:5061:6c00:2fdd::/64");
        assert_ne!(six, paired_subnet6("10.47.222.0/24".parse().unwrap()));
    }

    #[test]
    fn routes_parse_from_proc() {
        let text =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                    eth0\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                    eth0\t0000000A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n\
                    palisade0\t00002F0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        let routes = parse_routes(text);
        assert_eq!(routes.len(), 2);
        assert_eq!(routes[0].0.to_string(), "10.0.0.0/16");
        assert_eq!(routes[0].1, "eth0");
        assert_eq!(routes[1].0.to_string(), "10.47.0.0/24");
    }

    #[test]
    fn leases_are_unique_persisted_and_released() {
        let dir = tempfile::tempdir().unwrap();
        let store = NetworkStore::open(dir.path()).unwrap();
        let net = network(&store, "small", "10.47.250.0/29", 1);
        let lock = store.lock().unwrap();
        let mut seen = Vec::new();
        // /29: 8 addresses, minus network, gateway and broadcast.
        for i in 0..5 {
            let lease = store
                .allocate(&net, &format!("{i:064}"), &format!("c{i}"), &[], &lock)
                .unwrap();
            assert!(!seen.contains(&lease.ipv4));
            assert!(net.subnet.contains(lease.ipv4));
            assert_ne!(lease.ipv4, net.gateway);
            seen.push(lease.ipv4);
        }
        let again = store
            .allocate(&net, &format!("{:064}", 0), "c0", &[], &lock)
            .unwrap();
        assert_eq!(again.ipv4, seen[0]);
        let full = store.allocate(&net, &format!("{:064}", 9), "c9", &[], &lock);
        assert!(matches!(full, Err(NetError::Exhausted { .. })), "{full:?}");
        assert_eq!(store.leases(&net.name).unwrap().len(), 5);
        let released = store
            .release(&net.name, &format!("{:064}", 2), &lock)
            .unwrap();
        assert_eq!(released.map(|l| l.ipv4), Some(seen[2]));
        let reused = store
            .allocate(&net, &format!("{:064}", 9), "c9", &[], &lock)
            .unwrap();
        assert_eq!(reused.ipv4, seen[2]);
        assert!(matches!(
            store.delete(&net.name, &lock),
            Err(NetError::InUse { .. })
        ));
    }

    #[test]
    fn overlapping_subnets_and_taken_ports_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = NetworkStore::open(dir.path()).unwrap();
        let a = network(&store, "a", "10.47.240.0/24", 1);
        let b = Network::new(
            "b".parse().unwrap(),
            "10.47.240.128/25".parse().unwrap(),
            Subnet6::new(std::net::Ipv6Addr::new(0xfd47, 1, 2, 2, 0, 0, 0, 0)).unwrap(),
            "now".into(),
        );
        let lock = store.lock().unwrap();
        let refused = store.insert(&b, &lock);
        assert!(
            matches!(refused, Err(NetError::Overlap { .. })),
            "{refused:?}"
        );
        assert!(!store.exists(&b.name));
        let port: PortMapping = "8080:80".parse().unwrap();
        store
            .allocate(&a, &"1".repeat(64), "one", &[port], &lock)
            .unwrap();
        let other: PortMapping = "127.0.0.1:8080:81".parse().unwrap();
        let taken = store.allocate(&a, &"2".repeat(64), "two", &[other], &lock);
        assert!(
            matches!(taken, Err(NetError::PortTaken { .. })),
            "{taken:?}"
        );
        assert_eq!(store.leases(&a.name).unwrap().len(), 1);
    }

    #[test]
    fn concurrent_allocations_never_share_an_address() {
        let dir = tempfile::tempdir().unwrap();
        let store = NetworkStore::open(dir.path()).unwrap();
        let net = network(&store, "busy", "10.47.241.0/24", 3);
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let store = store.clone();
                let net = net.clone();
                std::thread::spawn(move || {
                    (0..10)
                        .map(|i| {
                            // A lock per call, as separate processes would take.
                            let lock = store.lock().unwrap();
                            let id = format!("{t:032}{i:032}");
                            store.allocate(&net, &id, &id, &[], &lock).unwrap().ipv4
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<Ipv4Addr> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 80);
        assert_eq!(store.leases(&net.name).unwrap().len(), 80);
    }
}
