//! `palisade network create|ls|inspect|rm`: bridge networks (palisade-net).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use palisade_net::{CreateRequest, Lease, Network, NetworkName, Networks, Subnet4, Subnet6};

use crate::cli::Format;
use crate::output;
use crate::Session;

/// Bridge networks. Every container on one gets its own veth on the network's bridge, an
/// IPv4 and an IPv6 address, a default route via the host, /etc/hosts and /etc/resolv.conf.
/// The host pins each container's MAC, ARP sender and IP source addresses (nftables bridge
/// rules), its bridge port does not learn addresses and gets no unknown-unicast floods, so a
/// container cannot spoof or sniff its neighbours. Networks cannot reach each other.
#[derive(Debug, Subcommand)]
pub(crate) enum NetworkCommand {
    /// Create a bridge network (`palisade run --network NAME` attaches containers)
    Create(CreateArgs),
    /// List networks
    #[command(visible_alias = "list")]
    Ls,
    /// Show networks and the containers on them as JSON
    Inspect(NamesArgs),
    /// Remove networks (refused while containers are on them)
    #[command(visible_alias = "remove")]
    Rm(NamesArgs),
}

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// The name: up to 11 lowercase letters, digits, '-' or '_' (its bridge is pal-NAME)
    #[arg(value_name = "NAME")]
    name: String,
    /// IPv4 subnet, such as 10.47.20.0/24 [default: a free 10.47.N.0/24]
    #[arg(long, value_name = "CIDR")]
    subnet: Option<String>,
    /// IPv6 /64 [default: fd47:5061:6c00:XXYY::/64, XX.YY the IPv4 subnet's 2nd and 3rd bytes]
    #[arg(long, value_name = "CIDR")]
    ipv6_subnet: Option<String>,
    /// No traffic leaves the network: no outbound NAT, no forwarding, no published ports
    #[arg(long)]
    internal: bool,
    /// INSECURE: a plain bridge with no anti-spoofing rules, MAC learning and flooding on
    /// (for comparisons and tests; containers can then spoof and sniff each other)
    #[arg(long)]
    insecure_allow_spoofing: bool,
}

#[derive(Debug, Args)]
pub(crate) struct NamesArgs {
    /// Networks
    #[arg(value_name = "NETWORK", required = true)]
    names: Vec<String>,
}

fn networks(session: &Session) -> anyhow::Result<Networks> {
    let root: PathBuf = match &session.root {
        Some(root) => root.clone(),
        None => palisade_image::store::default_root()?,
    };
    std::fs::create_dir_all(&root).with_context(|| format!("failed to create {root:?}"))?;
    // The engine and its hooks use the canonical root; so must we.
    let root =
        std::fs::canonicalize(&root).with_context(|| format!("failed to resolve {root:?}"))?;
    Ok(Networks::open(&root)?)
}

fn name(text: &str) -> anyhow::Result<NetworkName> {
    if text == "bridge" {
        return Ok(NetworkName::default_network());
    }
    text.parse::<NetworkName>()
        .map_err(|e| crate::UsageError(e.to_string()).into())
}

fn describe(network: &Network, leases: &palisade_net::Leases) -> serde_json::Value {
    let containers: Vec<&Lease> = leases.values().collect();
    serde_json::json!({
        "name": network.name,
        "bridge": network.bridge,
        "subnet": network.subnet,
        "gateway": network.gateway,
        "ipv6_subnet": network.subnet6,
        "ipv6_gateway": network.gateway6,
        "internal": network.internal,
        "spoof_protection": network.spoof_protection,
        "created": network.created,
        "containers": containers,
    })
}

pub(crate) fn run(session: &Session, command: NetworkCommand) -> anyhow::Result<i32> {
    let networks = networks(session)?;
    match command {
        NetworkCommand::Create(args) => {
            let subnet = args
                .subnet
                .as_deref()
                .map(str::parse::<Subnet4>)
                .transpose()
                .map_err(|e| crate::UsageError(e.to_string()))?;
            let subnet6 = args
                .ipv6_subnet
                .as_deref()
                .map(str::parse::<Subnet6>)
                .transpose()
                .map_err(|e| crate::UsageError(e.to_string()))?;
            if args.insecure_allow_spoofing {
                eprintln!("palisade: warning: network {} has NO anti-spoofing: its containers can forge addresses, poison ARP caches and sniff each other", args.name);
                // Recorded before the network exists: a relaxation the log cannot hold is refused.
                crate::audit::record(
                    session,
                    palisade_audit::Event::PolicyRelaxed {
                        actor: palisade_audit::Actor::current_process(),
                        container_id: None,
                        image: None,
                        relaxation: "--insecure-allow-spoofing".into(),
                        reason: Some(format!(
                            "network {} created without anti-spoofing rules",
                            args.name
                        )),
                    },
                )?;
            }
            let network = networks.create(&CreateRequest {
                name: name(&args.name)?,
                subnet,
                subnet6,
                internal: args.internal,
                spoof_protection: !args.insecure_allow_spoofing,
            })?;
            output::line(&network.name)?;
            Ok(0)
        }
        NetworkCommand::Ls => {
            let all = networks.list()?;
            match session.format {
                Format::Json => {
                    output::json(&all.iter().map(|(n, l)| describe(n, l)).collect::<Vec<_>>())?
                }
                Format::Table => {
                    let rows: Vec<Vec<String>> = all
                        .iter()
                        .map(|(n, leases)| {
                            let mut flags = Vec::new();
                            if n.internal {
                                flags.push("internal");
                            }
                            if !n.spoof_protection {
                                flags.push("INSECURE-spoofable");
                            }
                            vec![
                                n.name.to_string(),
                                n.bridge.clone(),
                                n.subnet.to_string(),
                                n.subnet6.to_string(),
                                leases.len().to_string(),
                                flags.join(","),
                            ]
                        })
                        .collect();
                    output::table(
                        &[
                            "NAME",
                            "BRIDGE",
                            "SUBNET",
                            "IPV6 SUBNET",
                            "CONTAINERS",
                            "FLAGS",
                        ],
                        &rows,
                    )?;
                }
            }
            Ok(0)
        }
        NetworkCommand::Inspect(args) => {
            let mut found = Vec::new();
            let mut code = 0;
            for text in &args.names {
                match name(text).and_then(|n| Ok(networks.inspect(&n)?)) {
                    Ok((network, leases)) => found.push(describe(&network, &leases)),
                    Err(e) => {
                        crate::report_error(&e);
                        code = 1;
                    }
                }
            }
            output::json(&found)?;
            Ok(code)
        }
        NetworkCommand::Rm(args) => {
            let mut code = 0;
            for text in &args.names {
                match name(text).and_then(|n| Ok(networks.remove(&n)?)) {
                    Ok(()) => output::line(text)?,
                    Err(e) => {
                        crate::report_error(&e);
                        code = 1;
                    }
                }
            }
            Ok(code)
        }
    }
}
