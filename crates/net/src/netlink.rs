//! A small synchronous rtnetlink client: the link, address, route and bridge-FDB requests
//! palisade needs, built with `netlink-packet-route` and sent over a `rustix` netlink socket
//! in the calling thread's network namespace.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::link::{
    InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoPortKind, InfoVeth, LinkAttribute,
    LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::neighbour::{
    NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use rustix::net::{RecvFlags, SendFlags};

use crate::addr::Mac;
use crate::error::NetError;

/// ENODEV: no such device.
const ENODEV: i32 = 19;

/// A link as a dump reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSummary {
    /// Its index.
    pub index: u32,
    /// Its name.
    pub name: String,
    /// The index of the bridge (or other controller) it is enslaved to.
    pub master: Option<u32>,
    /// Its kind (`veth`, `bridge`, ...), if it says.
    pub kind: Option<String>,
}

/// A static bridge forwarding entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdbEntry {
    /// The port it points at.
    pub port: u32,
    /// The MAC.
    pub mac: Mac,
    /// Whether it is static (not learned).
    pub is_static: bool,
}

/// A NETLINK_ROUTE socket.
#[derive(Debug)]
pub struct Rtnl {
    socket: OwnedFd,
    sequence: u32,
}

fn failed(operation: impl Into<String>) -> impl FnOnce(io::Error) -> NetError {
    let operation = operation.into();
    move |source| NetError::Netlink { operation, source }
}

impl Rtnl {
    /// A socket in the calling thread's network namespace.
    pub fn open() -> Result<Self, NetError> {
        let socket = rustix::net::socket(
            rustix::net::AddressFamily::NETLINK,
            rustix::net::SocketType::RAW,
            // Protocol 0 is NETLINK_ROUTE.
            None,
        )
        .map_err(|e| failed("open a netlink socket")(e.into()))?;
        Ok(Self {
            socket,
            sequence: 0,
        })
    }

    /// Sends `message` with `flags`; returns the replies up to the acknowledgement (or the
    /// end of a dump).
    fn exchange(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
        operation: &str,
    ) -> Result<Vec<RouteNetlinkMessage>, NetError> {
        self.sequence = self.sequence.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.sequence;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(message));
        packet.finalize();
        let mut buffer = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buffer);
        rustix::net::send(&self.socket, &buffer, SendFlags::empty())
            .map_err(|e| failed(operation)(e.into()))?;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut replies = Vec::new();
        let mut receive = vec![0u8; 1 << 16];
        loop {
            let (length, _) = rustix::net::recv(&self.socket, &mut receive, RecvFlags::empty())
                .map_err(|e| failed(operation)(e.into()))?;
            let mut offset = 0;
            while offset < length {
                let reply =
                    NetlinkMessage::<RouteNetlinkMessage>::deserialize(&receive[offset..length])
                        .map_err(|e| failed(operation)(io::Error::other(e.to_string())))?;
                let size = reply.header.length as usize;
                if size == 0 {
                    break;
                }
                offset += size;
                if reply.header.sequence_number != self.sequence {
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::Error(error) => {
                        return match error.code {
                            None => Ok(replies),
                            Some(_) => Err(failed(operation)(error.to_io())),
                        };
                    }
                    NetlinkPayload::Done(_) => return Ok(replies),
                    NetlinkPayload::InnerMessage(inner) => {
                        replies.push(inner);
                        if !dump && flags & NLM_F_ACK == 0 {
                            return Ok(replies);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    fn request(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
        operation: &str,
    ) -> Result<(), NetError> {
        self.exchange(message, NLM_F_REQUEST | NLM_F_ACK | flags, operation)
            .map(|_| ())
    }

    /// The index of the link `name`, if it exists.
    pub fn link_index(&mut self, name: &str) -> Result<Option<u32>, NetError> {
        let mut message = LinkMessage::default();
        message
            .attributes
            .push(LinkAttribute::IfName(name.to_owned()));
        match self.exchange(
            RouteNetlinkMessage::GetLink(message),
            NLM_F_REQUEST,
            &format!("look up link {name}"),
        ) {
            Ok(replies) => Ok(replies.into_iter().find_map(|r| match r {
                RouteNetlinkMessage::NewLink(link) => Some(link.header.index),
                _ => None,
            })),
            Err(NetError::Netlink { source, .. }) if source.raw_os_error() == Some(ENODEV) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Every link in this namespace.
    pub fn links(&mut self) -> Result<Vec<LinkSummary>, NetError> {
        let replies = self.exchange(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_REQUEST | NLM_F_DUMP,
            "list links",
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|reply| {
                let RouteNetlinkMessage::NewLink(link) = reply else {
                    return None;
                };
                let mut summary = LinkSummary {
                    index: link.header.index,
                    name: String::new(),
                    master: None,
                    kind: None,
                };
                for attribute in link.attributes {
                    match attribute {
                        LinkAttribute::IfName(name) => summary.name = name,
                        LinkAttribute::Controller(master) => summary.master = Some(master),
                        LinkAttribute::LinkInfo(infos) => {
                            summary.kind = infos.into_iter().find_map(|i| match i {
                                LinkInfo::Kind(kind) => Some(kind.to_string()),
                                _ => None,
                            })
                        }
                        _ => {}
                    }
                }
                Some(summary)
            })
            .collect())
    }

    /// Creates the bridge `name` (down) with the fixed address `mac` unless it exists;
    /// returns its index. (Without a fixed address a bridge takes its lowest port's, which
    /// changes as containers come and go and stales their ARP caches.)
    pub fn ensure_bridge(&mut self, name: &str, mac: Mac) -> Result<u32, NetError> {
        if let Some(index) = self.link_index(name)? {
            return Ok(index);
        }
        let mut message = LinkMessage::default();
        message
            .attributes
            .push(LinkAttribute::IfName(name.to_owned()));
        message
            .attributes
            .push(LinkAttribute::Address(mac.0.to_vec()));
        message
            .attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        self.request(
            RouteNetlinkMessage::NewLink(message),
            NLM_F_CREATE | NLM_F_EXCL,
            &format!("create bridge {name}"),
        )?;
        self.link_index(name)?.ok_or_else(|| {
            failed(format!("find bridge {name} after creating it"))(io::Error::from_raw_os_error(
                ENODEV,
            ))
        })
    }

    /// Creates a veth pair: `host` here, the peer (named `peer_name`, with `peer_mac`)
    /// directly in the network namespace `peer_netns`, so no half of it ever sits in the
    /// host's namespace under the container's name.
    pub fn create_veth(
        &mut self,
        host: &str,
        peer_name: &str,
        peer_mac: Mac,
        peer_netns: BorrowedFd<'_>,
    ) -> Result<u32, NetError> {
        let mut peer = LinkMessage::default();
        peer.attributes
            .push(LinkAttribute::IfName(peer_name.to_owned()));
        peer.attributes
            .push(LinkAttribute::Address(peer_mac.0.to_vec()));
        peer.attributes
            .push(LinkAttribute::NetNsFd(peer_netns.as_raw_fd()));
        let mut message = LinkMessage::default();
        message
            .attributes
            .push(LinkAttribute::IfName(host.to_owned()));
        message.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]));
        self.request(
            RouteNetlinkMessage::NewLink(message),
            NLM_F_CREATE | NLM_F_EXCL,
            &format!("create veth pair {host}"),
        )?;
        self.link_index(host)?.ok_or_else(|| {
            failed(format!("find {host} after creating it"))(io::Error::from_raw_os_error(ENODEV))
        })
    }

    fn set_link(
        &mut self,
        index: u32,
        attributes: Vec<LinkAttribute>,
        flags: Option<LinkFlags>,
        operation: &str,
    ) -> Result<(), NetError> {
        let mut message = LinkMessage::default();
        message.header.index = index;
        if let Some(flags) = flags {
            message.header.flags = flags;
            message.header.change_mask = LinkFlags::Up;
        }
        message.attributes = attributes;
        self.request(RouteNetlinkMessage::SetLink(message), 0, operation)
    }

    /// Sets the link up.
    pub fn set_up(&mut self, index: u32) -> Result<(), NetError> {
        self.set_link(
            index,
            Vec::new(),
            Some(LinkFlags::Up),
            &format!("bring up link {index}"),
        )
    }

    /// Enslaves the link to `bridge`.
    pub fn set_master(&mut self, index: u32, bridge: u32) -> Result<(), NetError> {
        self.set_link(
            index,
            vec![LinkAttribute::Controller(bridge)],
            None,
            &format!("attach link {index} to bridge {bridge}"),
        )
    }

    /// Sets the bridge-port flags of the enslaved link: learning, unicast/multicast/broadcast
    /// flooding towards it.
    pub fn set_port_flags(
        &mut self,
        index: u32,
        learning: bool,
        unicast_flood: bool,
    ) -> Result<(), NetError> {
        let data = vec![
            InfoBridgePort::Learning(learning),
            InfoBridgePort::UnicastFlood(unicast_flood),
        ];
        // Port (slave) data is only read by RTM_NEWLINK, not RTM_SETLINK.
        let mut message = LinkMessage::default();
        message.header.index = index;
        message.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::PortKind(InfoPortKind::Bridge),
            LinkInfo::PortData(InfoPortData::BridgePort(data)),
        ]));
        self.request(
            RouteNetlinkMessage::NewLink(message),
            0,
            &format!("set the bridge port flags of link {index}"),
        )
    }

    /// Deletes the link (a veth's peer goes with it).
    pub fn delete_link(&mut self, index: u32) -> Result<(), NetError> {
        let mut message = LinkMessage::default();
        message.header.index = index;
        self.request(
            RouteNetlinkMessage::DelLink(message),
            0,
            &format!("delete link {index}"),
        )
    }

    /// Adds `address/prefix` to the link (IPv6 without duplicate address detection: the
    /// IPAM guarantees uniqueness). An address already present is fine.
    pub fn add_address(&mut self, index: u32, address: IpAddr, prefix: u8) -> Result<(), NetError> {
        let mut message = AddressMessage::default();
        message.header.index = index;
        message.header.prefix_len = prefix;
        message.header.family = match address {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        message.attributes.push(AddressAttribute::Local(address));
        message.attributes.push(AddressAttribute::Address(address));
        if address.is_ipv6() {
            message
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        self.request(
            RouteNetlinkMessage::NewAddress(message),
            NLM_F_CREATE | NLM_F_REPLACE,
            &format!("add address {address}/{prefix} to link {index}"),
        )
    }

    /// Adds a default route via `gateway` out of link `index`.
    pub fn add_default_route(&mut self, index: u32, gateway: IpAddr) -> Result<(), NetError> {
        let mut message = RouteMessage::default();
        message.header.address_family = match gateway {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        message.header.table = RouteHeader::RT_TABLE_MAIN;
        message.header.protocol = RouteProtocol::Static;
        message.header.scope = RouteScope::Universe;
        message.header.kind = RouteType::Unicast;
        message
            .attributes
            .push(RouteAttribute::Gateway(match gateway {
                IpAddr::V4(v4) => RouteAddress::Inet(v4),
                IpAddr::V6(v6) => RouteAddress::Inet6(v6),
            }));
        message.attributes.push(RouteAttribute::Oif(index));
        self.request(
            RouteNetlinkMessage::NewRoute(message),
            NLM_F_CREATE | NLM_F_REPLACE,
            &format!("add a default route via {gateway}"),
        )
    }

    /// Adds a static FDB entry on the bridge: frames for `mac` go to port `port` only.
    pub fn add_static_fdb(&mut self, port: u32, mac: Mac) -> Result<(), NetError> {
        let mut message = NeighbourMessage::default();
        message.header.family = AddressFamily::Bridge;
        message.header.ifindex = port;
        message.header.state = NeighbourState::Noarp;
        message.header.flags = NeighbourFlags::Controller;
        message
            .attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.0.to_vec()));
        self.request(
            RouteNetlinkMessage::NewNeighbour(message),
            NLM_F_CREATE | NLM_F_REPLACE,
            &format!("add a static FDB entry for {mac} on link {port}"),
        )
    }

    /// The bridge's forwarding entries for the ports of `bridge`.
    pub fn fdb(&mut self, bridge: u32) -> Result<Vec<FdbEntry>, NetError> {
        let mut message = NeighbourMessage::default();
        message.header.family = AddressFamily::Bridge;
        let replies = self.exchange(
            RouteNetlinkMessage::GetNeighbour(message),
            NLM_F_REQUEST | NLM_F_DUMP,
            "list the bridge forwarding table",
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|reply| {
                let RouteNetlinkMessage::NewNeighbour(entry) = reply else {
                    return None;
                };
                let mut mac = None;
                let mut master = None;
                for attribute in &entry.attributes {
                    match attribute {
                        NeighbourAttribute::LinkLayerAddress(bytes) => {
                            mac = <[u8; 6]>::try_from(bytes.as_slice()).ok().map(Mac)
                        }
                        NeighbourAttribute::Controller(m) => master = Some(*m),
                        _ => {}
                    }
                }
                (master == Some(bridge)).then_some(())?;
                Some(FdbEntry {
                    port: entry.header.ifindex,
                    mac: mac?,
                    is_static: matches!(
                        entry.header.state,
                        NeighbourState::Noarp | NeighbourState::Permanent
                    ),
                })
            })
            .collect())
    }
}

/// Runs `work` on a thread that has joined the network namespace `netns` (network
/// namespaces are per thread; the thread ends right after).
pub fn in_netns<T: Send + 'static>(
    netns: OwnedFd,
    work: impl FnOnce() -> Result<T, NetError> + Send + 'static,
) -> Result<T, NetError> {
    std::thread::Builder::new()
        .name("netns".into())
        .spawn(move || {
            nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| failed("join the container's network namespace")(e.into()))?;
            work()
        })
        .map_err(failed("start a thread"))?
        .join()
        .unwrap_or_else(|_| {
            Err(failed("configure the namespace")(io::Error::other(
                "the thread panicked",
            )))
        })
}

/// Configures a container's end inside its namespace: loopback and `eth0` up, the addresses,
/// default routes via the gateways.
pub fn configure_container_side(
    rtnl: &mut Rtnl,
    interface: &str,
    ipv4: (Ipv4Addr, u8),
    gateway: Ipv4Addr,
    ipv6: (Ipv6Addr, u8),
    gateway6: Ipv6Addr,
) -> Result<(), NetError> {
    rtnl.set_up(1)?;
    let index = rtnl
        .link_index(interface)?
        .ok_or_else(|| failed(format!("find {interface}"))(io::Error::from_raw_os_error(ENODEV)))?;
    rtnl.add_address(index, IpAddr::V4(ipv4.0), ipv4.1)?;
    rtnl.add_address(index, IpAddr::V6(ipv6.0), ipv6.1)?;
    rtnl.set_up(index)?;
    rtnl.add_default_route(index, IpAddr::V4(gateway))?;
    rtnl.add_default_route(index, IpAddr::V6(gateway6))?;
    Ok(())
}
