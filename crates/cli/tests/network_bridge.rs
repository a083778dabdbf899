//! Bridge networks end to end: containers on one network talk over TCP and get /etc/hosts
//! and /etc/resolv.conf; networks cannot reach each other; a published port reaches the
//! container on the host address it is bound to only; concurrent runs get distinct
//! addresses; removing containers and networks leaves no interface, rule or lease.
//!
//! Privileged: skips (or fails under `PALISADE_REQUIRE_PRIVILEGED=1`) without root.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod netsupport;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use netsupport::{host, privileged, unique, Palisade};
use serde_json::Value;

fn leases(p: &Palisade, network: &str) -> Value {
    let text = std::fs::read_to_string(p.root().join(format!("networks/{network}.leases.json")))
        .unwrap_or_else(|_| "{}".into());
    serde_json::from_str(&text).unwrap()
}

#[test]
fn containers_talk_get_their_files_and_leave_nothing_behind() {
    if !privileged() {
        return;
    }
    let p = Palisade::new();
    let name = unique("brg");
    let net = p.network(&name, None, &[]);
    p.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        &name,
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    ]);
    let web: Value = serde_json::from_str(&p.ok(&["inspect", "web"])).unwrap();
    let web_ip = web[0]["network"]["ipv4"].as_str().unwrap().to_owned();
    let web_veth = web[0]["network"]["host_veth"].as_str().unwrap().to_owned();
    let prefix = net.subnet.trim_end_matches("0/24");
    assert!(
        web_ip.starts_with(prefix),
        "{web_ip} is not in {}",
        net.subnet
    );

    // TCP between two containers; the client's /etc/hosts names it.
    let page = p.ok(&[
        "run",
        "--rm",
        "--network",
        &name,
        "--hostname",
        "client",
        "busybox",
        "sh",
        "-c",
        &format!(
            "wget -q -O- http://{web_ip}/hosts && echo --- && cat /etc/hosts /etc/resolv.conf"
        ),
    ]);
    let (served, own) = page.split_once("---").unwrap();
    assert!(served.contains(&format!("{web_ip}\t")), "{served}");
    assert!(own.contains("\tclient "), "{own}");
    assert!(
        own.contains(&format!("{}\thost.palisade.internal", net.gateway)),
        "{own}"
    );
    assert!(own.contains("nameserver "), "{own}");
    assert!(!own.contains("nameserver 127."), "{own}");

    // The files are read-only.
    let write = p.run(&[
        "run",
        "--rm",
        "--network",
        &name,
        "busybox",
        "sh",
        "-c",
        "echo x > /etc/hosts",
    ]);
    assert!(!write.status.success(), "/etc/hosts is writable");

    // The port is hardened: learning and unicast flooding off, a static FDB entry.
    let link = host(&["ip", "-d", "link", "show", &web_veth]);
    assert!(
        link.contains("learning off") && link.contains(" flood off"),
        "{link}"
    );
    let fdb = host(&["bridge", "fdb", "show", "dev", &web_veth]);
    let mac = web[0]["network"]["mac"].as_str().unwrap();
    assert!(
        fdb.lines()
            .any(|l| l.starts_with(mac) && l.contains("static")),
        "{fdb}"
    );

    // In use: refused, with the container named.
    let refused = p.run(&["network", "rm", &name]);
    assert_eq!(refused.status.code(), Some(1));
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("in use by web"), "{message}");

    p.ok(&["rm", "-f", "web"]);
    assert_eq!(leases(&p, &name), serde_json::json!({}));
    assert!(!host(&["ip", "-o", "link"]).contains(&web_veth));
    let rules = host(&[
        "nft",
        "list",
        "table",
        "bridge",
        &format!("palisade-{name}"),
    ]);
    assert!(!rules.contains(&web_veth), "{rules}");

    p.ok(&["network", "rm", &name]);
    assert!(!host(&["ip", "-o", "link"]).contains(&net.bridge));
    assert!(!host(&["nft", "list", "tables"]).contains(&format!("palisade-{name}")));
    assert!(!p.root().join(format!("networks/{name}.json")).exists());
    assert!(!p
        .root()
        .join(format!("networks/{name}.leases.json"))
        .exists());
}

#[test]
fn networks_cannot_reach_each_other() {
    if !privileged() {
        return;
    }
    let p = Palisade::new();
    let (one, two) = (unique("iso1"), unique("iso2"));
    let first = p.network(&one, None, &[]);
    let second = p.network(&two, None, &[]);
    let raw = ["--cap-add", "NET_RAW"];
    let a = p.container("a", &one, &raw);
    let b = p.container("b", &two, &raw);
    let reach = |from: &str, ip: &str| {
        p.exec(from, &["ping", "-c", "1", "-W", "1", ip])
            .status
            .success()
    };
    assert!(reach("a", &first.gateway));
    assert!(reach("b", &second.gateway));
    assert!(!reach("a", &b.ip), "network {one} reached {two}");
    assert!(!reach("b", &a.ip), "network {two} reached {one}");
}

#[test]
fn a_published_port_answers_on_its_host_address_only() {
    if !privileged() {
        return;
    }
    let p = Palisade::new();
    let name = unique("pub");
    let net = p.network(&name, None, &[]);
    // Per process: other runs of this suite may publish at the same time.
    let port = 40000 + u16::try_from(std::process::id() % 8000).unwrap() * 3;
    p.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        &name,
        "-p",
        &format!("{}:{port}:80", net.gateway),
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    ]);
    let fetch = |address: &str| -> Option<String> {
        let mut stream = TcpStream::connect_timeout(
            &format!("{address}:{port}").parse().unwrap(),
            Duration::from_secs(3),
        )
        .ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
        stream.write_all(b"GET /passwd HTTP/1.0\r\n\r\n").ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).ok()?;
        Some(text)
    };
    let mut answer = None;
    for _ in 0..20 {
        answer = fetch(&net.gateway);
        if answer.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let answer = answer.expect("the published port did not answer");
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.contains("root:x:0:0"),
        "{answer}"
    );
    assert!(
        fetch("127.0.0.1").is_none(),
        "the port answered on 127.0.0.1 too"
    );
    // Published on every local address: the host's loopback reaches it too.
    let all = port + 1;
    p.ok(&[
        "run",
        "-d",
        "--name",
        "web2",
        "--network",
        &name,
        "-p",
        &format!("{all}:80"),
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    ]);
    let fetch_all = |address: &str| -> Option<String> {
        let mut stream = TcpStream::connect_timeout(
            &format!("{address}:{all}").parse().unwrap(),
            Duration::from_secs(3),
        )
        .ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
        stream.write_all(b"GET /passwd HTTP/1.0\r\n\r\n").ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).ok()?;
        Some(text)
    };
    let mut local = None;
    for _ in 0..20 {
        local = fetch_all("127.0.0.1");
        if local.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let local = local.expect("a port published on all addresses did not answer on 127.0.0.1");
    assert!(local.contains("root:x:0:0"), "{local}");
    // A container cannot use the bridge's route_localnet to reach the host's loopback: a
    // forged frame to the gateway's MAC for 127.0.0.1 (own MAC and IP, so the bridge rules
    // pass it) is dropped by the input guard.
    let listener = std::net::UdpSocket::bind(("127.0.0.1", all + 1)).unwrap();
    listener
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let raw = p.container("raw", &name, &["--cap-add", "NET_RAW"]);
    p.probe(
        "raw",
        &[
            "udp",
            "--src-mac",
            &raw.mac,
            "--dst-mac",
            &net.mac(),
            "--src-ip",
            &raw.ip,
            "--dst-ip",
            "127.0.0.1",
            "--port",
            &(all + 1).to_string(),
            "--payload",
            "sneak",
        ],
    );
    let mut buffer = [0u8; 16];
    assert!(
        listener.recv_from(&mut buffer).is_err(),
        "a container reached the host's loopback"
    );
    let rules = host(&["nft", "list", "table", "inet", &format!("palisade-{name}")]);
    let guard = rules
        .lines()
        .find(|l| l.contains("ct direction original counter"))
        .unwrap_or_default()
        .to_owned();
    assert!(
        guard.contains("packets ") && !guard.contains("packets 0 "),
        "the guard dropped nothing: {rules}"
    );
    p.ok(&["rm", "-f", "web2"]);
    let taken = p.run(&[
        "run",
        "--rm",
        "--network",
        &name,
        "-p",
        &format!("{port}:81"),
        "busybox",
        "true",
    ]);
    assert!(!taken.status.success());
    assert!(String::from_utf8_lossy(&taken.stderr).contains("already published"));
    p.ok(&["rm", "-f", "web"]);
    let rules = host(&["nft", "list", "table", "inet", &format!("palisade-{name}")]);
    assert!(!rules.contains("dnat ip to"), "{rules}");
}

#[test]
fn concurrent_runs_get_distinct_addresses() {
    if !privileged() {
        return;
    }
    let p = Palisade::new();
    let name = unique("par");
    p.network(&name, None, &[]);
    let children: Vec<_> = (0..5)
        .map(|i| {
            p.command(&[
                "run",
                "-d",
                "--name",
                &format!("c{i}"),
                "--network",
                &name,
                "busybox",
                "sleep",
                "600",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let leases = leases(&p, &name);
    let mut ips: Vec<&str> = leases
        .as_object()
        .unwrap()
        .values()
        .map(|l| l["ipv4"].as_str().unwrap())
        .collect();
    ips.sort_unstable();
    ips.dedup();
    assert_eq!(ips.len(), 5, "{leases}");
}

#[test]
fn an_internal_network_forwards_nothing_and_publishes_nothing() {
    if !privileged() {
        return;
    }
    let p = Palisade::new();
    let name = unique("int");
    let net = p.network(&name, None, &["--internal"]);
    let refused = p.run(&[
        "run",
        "--rm",
        "--network",
        &name,
        "-p",
        "47226:80",
        "busybox",
        "true",
    ]);
    assert_eq!(refused.status.code(), Some(125));
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("is --internal"), "{message}");
    let rules = host(&["nft", "list", "table", "inet", &format!("palisade-{name}")]);
    assert!(!rules.contains("masquerade"), "{rules}");
    assert!(
        rules.contains(&format!("iifname \"{}\" counter", net.bridge)),
        "{rules}"
    );
    // Containers on it still reach each other.
    p.ok(&[
        "run",
        "-d",
        "--name",
        "peer",
        "--network",
        &name,
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    ]);
    let peer: Value = serde_json::from_str(&p.ok(&["inspect", "peer"])).unwrap();
    let ip = peer[0]["network"]["ipv4"].as_str().unwrap().to_owned();
    let page = p.ok(&[
        "run",
        "--rm",
        "--network",
        &name,
        "busybox",
        "wget",
        "-q",
        "-O-",
        &format!("http://{ip}/passwd"),
    ]);
    assert!(page.contains("root:x:0:0"), "{page}");
    assert!(p.ok(&["network", "ls"]).contains("internal"));
}
