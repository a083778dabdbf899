//! `palisade registry serve` end to end over TLS with the built-in token service: palisade,
//! skopeo and podman push to it and pull from it, a read-only user is refused pushes, and
//! `palisade registry user` manages the accounts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const PALISADE: &str = env!("CARGO_BIN_EXE_palisade");
const BUSYBOX: &str = "/bin/busybox";

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A CA and a server certificate for 127.0.0.1 and localhost, as PEM (CA, cert, key).
fn tls_material() -> (String, String, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose, SanType,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "palisade registry test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut server = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    server
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    server
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = server.signed_by(&key, &ca_cert, &ca_key).unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn palisade(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(PALISADE);
        cmd.args(["--root", self.path("store").to_str().unwrap()])
            .args(args)
            .env("HOME", self.path("home"))
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("DOCKER_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        if let Some(s) = stdin {
            child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
        } else {
            drop(child.stdin.take());
        }
        child.wait_with_output().unwrap()
    }

    fn palisade_ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.palisade(args, stdin);
        assert!(
            out.status.success(),
            "palisade {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn rootfs(&self) -> PathBuf {
        let root = self.path("rootfs");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::copy(BUSYBOX, root.join("bin/busybox")).unwrap();
        std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
        root
    }
}

fn tool(args: &[&str]) -> Output {
    Command::new(args[0]).args(&args[1..]).output().unwrap()
}

fn tool_ok(args: &[&str]) -> String {
    let out = tool(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn start(env: &Env) -> Server {
    let (ca, cert, key) = tls_material();
    std::fs::create_dir_all(env.path("certs")).unwrap();
    std::fs::write(env.path("certs/ca.crt"), &ca).unwrap();
    std::fs::write(env.path("server.crt"), cert).unwrap();
    std::fs::write(env.path("server.key"), key).unwrap();
    let port = free_port();
    let config = format!(
        r#"listen = "127.0.0.1:{port}"
audit_log = "{dir}/audit.log"
[storage]
root = "{dir}/data"
[tls]
cert = "{dir}/server.crt"
key = "{dir}/server.key"
[auth]
users_file = "{dir}/users.json"
[auth.roles.writer]
rules = [{{ repositories = ["team-a/**"], actions = ["pull", "push", "delete"] }}]
[auth.roles.reader]
rules = [{{ repositories = ["team-a/**"], actions = ["pull"] }}]
[auth.token]
realm = "https://127.0.0.1:{port}/token"
service = "127.0.0.1:{port}"
issuer = "palisade-test"
key_file = "{dir}/token.pem"
algorithm = "es256"
"#,
        dir = env.dir.path().display()
    );
    std::fs::write(env.path("registry.toml"), config).unwrap();
    let cfg = env.path("registry.toml");
    let cfg = cfg.to_str().unwrap();
    env.palisade_ok(
        &[
            "registry", "user", "add", "--config", cfg, "--role", "writer", "alice",
        ],
        Some("alice-password\n"),
    );
    env.palisade_ok(
        &[
            "registry", "user", "add", "--config", cfg, "--role", "reader", "bob",
        ],
        Some("bob-password\n"),
    );
    // bad input: a duplicate user and a short password are refused
    assert!(!env
        .palisade(
            &["registry", "user", "add", "--config", cfg, "alice"],
            Some("another-pass\n")
        )
        .status
        .success());
    assert!(!env
        .palisade(
            &["registry", "user", "add", "--config", cfg, "carol"],
            Some("short\n")
        )
        .status
        .success());

    let mut child = Command::new(PALISADE)
        .args(["registry", "serve", "--config", cfg])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut line = String::new();
    let mut reader = BufReader::new(stderr);
    reader.read_line(&mut line).unwrap();
    assert!(line.contains("listening"), "server did not start: {line}");
    std::thread::spawn(move || for _ in reader.lines() {});
    Server { child, port }
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn palisade_skopeo_and_podman_push_and_pull_over_tls_with_tokens() {
    if !Path::new(BUSYBOX).is_file() {
        eprintln!("skipped: {BUSYBOX} missing (install busybox-static)");
        return;
    }
    let env = Env {
        dir: tempfile::tempdir().unwrap(),
    };
    let server = start(&env);
    let host = format!("127.0.0.1:{}", server.port);
    let ca = env.path("certs/ca.crt");
    let ca = ca.to_str().unwrap();
    let certs = env.path("certs");
    let certs = certs.to_str().unwrap();

    // palisade: import, login, push, pull into a fresh store
    let rootfs = env.rootfs();
    let image = format!("{host}/team-a/busybox:1");
    env.palisade_ok(&["image", "import", rootfs.to_str().unwrap(), &image], None);
    let login = env.palisade(
        &[
            "login",
            "-u",
            "alice",
            "--password-stdin",
            "--ca-cert",
            ca,
            &host,
        ],
        Some("wrong-password\n"),
    );
    assert!(!login.status.success(), "a wrong password must not log in");
    env.palisade_ok(
        &[
            "login",
            "-u",
            "alice",
            "--password-stdin",
            "--ca-cert",
            ca,
            &host,
        ],
        Some("alice-password\n"),
    );
    env.palisade_ok(&["push", "-q", "--ca-cert", ca, &image], None);
    env.palisade_ok(&["rmi", &image], None);
    env.palisade_ok(&["pull", "-q", "--ca-cert", ca, &image], None);
    assert!(env
        .palisade_ok(&["images"], None)
        .contains("team-a/busybox"));

    let skopeo = have("skopeo");
    if skopeo {
        let out = tool_ok(&[
            "skopeo",
            "inspect",
            "--cert-dir",
            certs,
            "--creds",
            "alice:alice-password",
            &format!("docker://{image}"),
        ]);
        assert!(out.contains("Digest"), "{out}");
        tool_ok(&[
            "skopeo",
            "copy",
            "--src-cert-dir",
            certs,
            "--src-creds",
            "alice:alice-password",
            "--dest-cert-dir",
            certs,
            "--dest-creds",
            "alice:alice-password",
            &format!("docker://{image}"),
            &format!("docker://{host}/team-a/copied:1"),
        ]);
        // bob may pull but not push
        tool_ok(&[
            "skopeo",
            "inspect",
            "--cert-dir",
            certs,
            "--creds",
            "bob:bob-password",
            &format!("docker://{host}/team-a/copied:1"),
        ]);
        let denied = tool(&[
            "skopeo",
            "copy",
            "--src-cert-dir",
            certs,
            "--src-creds",
            "bob:bob-password",
            "--dest-cert-dir",
            certs,
            "--dest-creds",
            "bob:bob-password",
            &format!("docker://{image}"),
            &format!("docker://{host}/team-a/by-bob:1"),
        ]);
        assert!(
            !denied.status.success(),
            "bob pushed without push permission"
        );
        // and nobody gets in without credentials
        assert!(!tool(&[
            "skopeo",
            "inspect",
            "--cert-dir",
            certs,
            "--no-creds",
            &format!("docker://{image}")
        ])
        .status
        .success());
    } else {
        eprintln!("skopeo not installed: its part is skipped (scripts/setup.sh installs it)");
    }

    if have("podman") && skopeo {
        let root = env.path("podman-root");
        let run = env.path("podman-run");
        let podman = |args: &[&str]| {
            let mut all = vec![
                "podman",
                "--root",
                root.to_str().unwrap(),
                "--runroot",
                run.to_str().unwrap(),
                "--storage-driver",
                "vfs",
            ];
            all.extend_from_slice(args);
            tool_ok(&all)
        };
        podman(&[
            "pull",
            "-q",
            "--cert-dir",
            certs,
            "--creds",
            "alice:alice-password",
            &format!("{host}/team-a/copied:1"),
        ]);
        podman(&[
            "tag",
            &format!("{host}/team-a/copied:1"),
            &format!("{host}/team-a/from-podman:1"),
        ]);
        podman(&[
            "push",
            "-q",
            "--cert-dir",
            certs,
            "--creds",
            "alice:alice-password",
            &format!("{host}/team-a/from-podman:1"),
        ]);
        podman(&["rmi", "-a", "-f"]);
        let _ = std::fs::remove_dir_all(&root);
        let out = tool_ok(&[
            "skopeo",
            "inspect",
            "--cert-dir",
            certs,
            "--creds",
            "alice:alice-password",
            &format!("docker://{host}/team-a/from-podman:1"),
        ]);
        assert!(out.contains("Digest"));
    } else {
        eprintln!("podman not installed: its part is skipped (scripts/setup.sh installs it)");
    }

    // the audit log recorded pushes, pulls and the refused requests
    std::thread::sleep(Duration::from_millis(300));
    let audit = std::fs::read_to_string(env.path("audit.log")).unwrap();
    assert!(audit.contains("image_pushed"), "{audit}");
    assert!(audit.contains("image_pulled"));
    if skopeo {
        assert!(audit.contains("registry_request_denied"));
    }
    drop(server);
}

fn b64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in input.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One raw HTTP/1.1 exchange on a fresh connection; returns the status.
fn http(port: u16, head: &str, body: &[u8]) -> u16 {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[9..12]).parse().unwrap()
}

#[test]
fn sighup_reloads_users_and_sigterm_finishes_uploads_in_flight() {
    use std::io::Read;
    let env = Env {
        dir: tempfile::tempdir().unwrap(),
    };
    let port = free_port();
    let dir = env.dir.path().display().to_string();
    std::fs::write(
        env.path("registry.toml"),
        format!(
            "listen = \"127.0.0.1:{port}\"\n[storage]\nroot = \"{dir}/data\"\n[auth]\nusers_file = \"{dir}/users.json\"\n\
             [auth.roles.rw]\nrules = [{{ repositories = [\"a/**\"], actions = [\"pull\", \"push\"] }}]\n"
        ),
    )
    .unwrap();
    let cfg = env.path("registry.toml");
    let cfg = cfg.to_str().unwrap();
    env.palisade_ok(
        &[
            "registry", "user", "add", "--config", cfg, "--role", "rw", "alice",
        ],
        Some("alice-password\n"),
    );
    let mut child = Command::new(PALISADE)
        .args(["registry", "serve", "--config", cfg])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.contains("listening"), "{line}");
    std::thread::spawn(move || for _ in reader.lines() {});
    let pid = child.id().to_string();
    let server = Server { child, port };

    let get = |user: &str, pw: &str| {
        let auth = b64(format!("{user}:{pw}").as_bytes());
        http(port, &format!("GET /v2/ HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nConnection: close\r\n\r\n"), b"")
    };
    assert_eq!(get("alice", "alice-password"), 200);
    assert_eq!(get("dave", "dave-password"), 401);
    env.palisade_ok(
        &[
            "registry", "user", "add", "--config", cfg, "--role", "rw", "dave",
        ],
        Some("dave-password\n"),
    );
    assert_eq!(
        get("dave", "dave-password"),
        401,
        "not loaded before SIGHUP"
    );
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    let mut ok = false;
    for _ in 0..50 {
        if get("dave", "dave-password") == 200 {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(ok, "SIGHUP did not load the new user");

    // an upload in flight when SIGTERM arrives still completes
    let data = vec![b'x'; 1 << 20];
    let d = format!("sha256:{}", {
        let out = Command::new("sha256sum")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = out;
        out.stdin.take().unwrap().write_all(&data).unwrap();
        let o = out.wait_with_output().unwrap();
        String::from_utf8_lossy(&o.stdout)[..64].to_owned()
    });
    let auth = b64(b"alice:alice-password");
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(
        format!(
            "POST /v2/a/b/blobs/uploads/?digest={d} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nContent-Length: {}\r\n\r\n",
            data.len()
        )
        .as_bytes(),
    )
    .unwrap();
    s.write_all(&data[..data.len() / 2]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    std::thread::sleep(Duration::from_millis(300));
    s.write_all(&data[data.len() / 2..]).unwrap();
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf[9..12], b"201", "the upload in flight was not finished");
    drop(s);
    let mut server = server;
    let status = server.child.wait().unwrap();
    assert!(status.success(), "server exit: {status:?}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "still listening after SIGTERM"
    );
    let blob = env.path(&format!("data/blobs/sha256/{}/{}", &d[7..9], &d[7..]));
    assert_eq!(std::fs::read(blob).unwrap().len(), data.len());
}
