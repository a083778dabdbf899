//! The registry client against Debian's `docker-registry` (the CNCF distribution registry) on
//! 127.0.0.1, in three set-ups: plain HTTP; TLS with a CA made here plus htpasswd basic auth;
//! Docker token auth with a small token server run here that signs ES256 JWTs.
//!
//! In each: push images imported from a busybox rootfs (chunked and monolithic uploads), pull
//! them into fresh stores with equal digests, cross-repository mounts (seen in the registry's
//! access log), an index that picks the host platform, a pull killed mid-download (a child
//! process, SIGKILL) and resumed with a `Range` request, skopeo interop both ways, refused
//! credentials, and a blob tampered on the registry's disk that fails the pull with a digest
//! error and leaves nothing tagged.
//!
//! Without `/usr/bin/docker-registry` (and no way to install it) the tests print `SKIP:` and
//! pass, unless `PALISADE_REQUIRE_PRIVILEGED=1`, which turns the skip into a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use palisade_image::distribution::{
    self, BlobOutcome, ClientOptions, CredentialStore, Credentials, DistributionError, NoProgress,
    Secret, PARTIAL_DIR,
};
use palisade_image::import::{import, ImportOptions};
use palisade_image::manifest::PlatformSpec;
use palisade_image::{Digest, ImageReference, LocalImage, Store};
use serde_json::{json, Value};

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
const BUSYBOX: &str = "/bin/busybox";
const USER: &str = "alice";
const PASSWORD: &str = "correct horse battery staple";
const SERVICE: &str = "palisade-test-registry";
const ISSUER: &str = "palisade-test-issuer";
/// Uploads above this go in PATCH chunks of this size (small, so the tests exercise both).
const CHUNK: u64 = 1 << 20;

// ---------------------------------------------------------------------------------------------
// skipping

fn require_privileged() -> bool {
    std::env::var("PALISADE_REQUIRE_PRIVILEGED").is_ok_and(|v| v == "1")
}

fn skip(reason: &str) {
    if require_privileged() {
        panic!("PALISADE_REQUIRE_PRIVILEGED=1 but: {reason}");
    }
    eprintln!("SKIP: {reason}");
}

/// The registry binary, installed with apt-get when missing and running as root.
fn registry_binary() -> Result<PathBuf, String> {
    static INSTALL: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    INSTALL
        .get_or_init(|| {
            let bin = PathBuf::from(REGISTRY_BIN);
            if bin.is_file() {
                return Ok(bin);
            }
            if !rustix::process::geteuid().is_root() {
                return Err(format!(
                    "{REGISTRY_BIN} is missing (apt-get install docker-registry)"
                ));
            }
            let install = || {
                Command::new("apt-get")
                    .args([
                        "install",
                        "-y",
                        "-qq",
                        "--no-install-recommends",
                        "docker-registry",
                    ])
                    .env("DEBIAN_FRONTEND", "noninteractive")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            };
            if !install() {
                let _ = Command::new("apt-get").args(["update", "-qq"]).status();
                install();
            }
            if bin.is_file() {
                Ok(bin)
            } else {
                Err(format!(
                    "{REGISTRY_BIN} is missing and apt-get could not install docker-registry"
                ))
            }
        })
        .clone()
}

// ---------------------------------------------------------------------------------------------
// the registry

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Setup {
    Plain,
    TlsBasic,
    Token,
}

/// A running `docker-registry serve`, killed on drop.
struct Registry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    log: PathBuf,
    /// The CA that signed the TLS certificate (TLS set-up).
    ca: Option<PathBuf>,
    token: Option<TokenServer>,
    setup: Setup,
}

impl Registry {
    fn start(setup: Setup) -> Option<Self> {
        let bin = match registry_binary() {
            Ok(bin) => bin,
            Err(reason) => {
                skip(&reason);
                return None;
            }
        };
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let storage = dir.path().join("storage");
        fs::create_dir_all(&storage).unwrap();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhealth:\n  storagedriver:\n    enabled: false\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: palisade-test-secret\n",
            storage.display()
        );
        let mut ca = None;
        let mut token = None;
        match setup {
            Setup::Plain => {}
            Setup::TlsBasic => {
                let (ca_pem, cert_pem, key_pem) = tls_material();
                let ca_path = dir.path().join("ca.crt");
                fs::write(&ca_path, ca_pem).unwrap();
                fs::write(dir.path().join("server.crt"), cert_pem).unwrap();
                fs::write(dir.path().join("server.key"), key_pem).unwrap();
                let hash = bcrypt::hash(PASSWORD, 4).unwrap();
                fs::write(dir.path().join("htpasswd"), format!("{USER}:{hash}\n")).unwrap();
                config.push_str(&format!(
                    "  tls:\n    certificate: {d}/server.crt\n    key: {d}/server.key\nauth:\n  htpasswd:\n    realm: palisade-test\n    path: {d}/htpasswd\n",
                    d = dir.path().display()
                ));
                ca = Some(ca_path);
            }
            Setup::Token => {
                let server = TokenServer::start();
                let bundle = dir.path().join("token-signer.pem");
                fs::write(&bundle, &server.cert_pem).unwrap();
                config.push_str(&format!(
                    "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
                    server.port,
                    bundle.display()
                ));
                token = Some(server);
            }
        }
        let config_path = dir.path().join("config.yml");
        fs::write(&config_path, config).unwrap();
        let log = dir.path().join("registry.log");
        let out = File::create(&log).unwrap();
        let child = Command::new(bin)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let mut registry = Self {
            child,
            port,
            dir,
            log,
            ca,
            token,
            setup,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = registry.child.try_wait() {
                panic!(
                    "docker-registry exited with {status}: {}",
                    registry.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen: {}",
                registry.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(registry)
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn reference(&self, path: &str) -> ImageReference {
        ImageReference::parse(&format!("{}/{path}", self.host())).unwrap()
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Where the registry keeps a blob's bytes.
    fn blob_file(&self, digest: &Digest) -> PathBuf {
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs")
            .join(digest.algorithm().name())
            .join(&digest.hex()[..2])
            .join(digest.hex())
            .join("data")
    }

    fn credentials(&self) -> Option<Credentials> {
        (self.setup != Setup::Plain).then(|| Credentials::new(USER, Secret::new(PASSWORD)))
    }

    fn options(&self) -> ClientOptions {
        self.options_with(self.credentials())
    }

    fn options_with(&self, credentials: Option<Credentials>) -> ClientOptions {
        self.options_for(&self.host(), credentials)
    }

    /// Options with `credentials` for `host` (the registry, or a proxy in front of it).
    fn options_for(&self, host: &str, credentials: Option<Credentials>) -> ClientOptions {
        let mut store = CredentialStore::none();
        if let Some(credentials) = credentials {
            store = store.with_credentials(host, credentials);
        }
        ClientOptions {
            // Plain HTTP for the plain and token set-ups (and their token server); the TLS
            // set-up is verified against its CA.
            insecure_registries: match self.setup {
                Setup::TlsBasic => Vec::new(),
                _ => vec!["127.0.0.1".to_owned()],
            },
            ca_certs: self.ca.iter().cloned().collect(),
            config_dir: None,
            credentials: store,
            monolithic_upload_limit: CHUNK,
            chunk_size: CHUNK,
            ..ClientOptions::default()
        }
    }

    /// skopeo's flags for this registry (`src` or `dest`).
    fn skopeo_flags(&self, side: &str) -> Vec<String> {
        let mut flags = vec![format!("--{side}-tls-verify=false")];
        if self.setup != Setup::Plain {
            flags.push(format!("--{side}-creds={USER}:{PASSWORD}"));
        }
        flags
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
        .push(DnType::CommonName, "palisade test CA");
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

// ---------------------------------------------------------------------------------------------
// the token server

/// One token request as the server saw it.
#[derive(Debug, Clone)]
struct TokenRequest {
    user: Option<String>,
    scopes: Vec<String>,
}

/// A Docker token server: `GET /token?service=..&scope=..` with optional basic auth, answering
/// ES256 JWTs whose `x5c` header carries a self-signed certificate the registry trusts.
struct TokenServer {
    port: u16,
    cert_pem: String,
    requests: Arc<Mutex<Vec<TokenRequest>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TokenServer {
    fn start() -> Self {
        use rcgen::{CertificateParams, DnType, KeyPair};
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "palisade test token signer");
        let cert = params.self_signed(&key).unwrap();
        let signer = Arc::new(
            ring::signature::EcdsaKeyPair::from_pkcs8(
                &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &key.serialize_der(),
                &ring::rand::SystemRandom::new(),
            )
            .unwrap(),
        );
        let x5c = STANDARD.encode(cert.der());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let requests = requests.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let _ = serve_token(stream, &signer, &x5c, &requests);
                }
            })
        };
        Self {
            port,
            cert_pem: cert.pem(),
            requests,
            stop,
            thread: Some(thread),
        }
    }

    fn requests(&self) -> Vec<TokenRequest> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn serve_token(
    mut stream: TcpStream,
    signer: &ring::signature::EcdsaKeyPair,
    x5c: &str,
    requests: &Mutex<Vec<TokenRequest>>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut authorization = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("authorization") {
                authorization = Some(value.trim().to_owned());
            }
        }
    }
    let target = request_line.split_whitespace().nth(1).unwrap_or("");
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let mut scopes = Vec::new();
    let mut service = String::new();
    for pair in query.split('&') {
        if let Some((key, value)) = pair.split_once('=') {
            match key {
                "scope" => scopes.push(percent_decode(value)),
                "service" => service = percent_decode(value),
                _ => {}
            }
        }
    }
    let user = match authorization
        .as_deref()
        .and_then(|a| a.strip_prefix("Basic "))
    {
        Some(encoded) => {
            let decoded =
                String::from_utf8(STANDARD.decode(encoded).unwrap_or_default()).unwrap_or_default();
            if decoded != format!("{USER}:{PASSWORD}") {
                let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"invalid username or password"}]}"#;
                write!(
                    stream,
                    "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )?;
                return Ok(());
            }
            Some(USER.to_owned())
        }
        None => None,
    };
    requests.lock().unwrap().push(TokenRequest {
        user: user.clone(),
        scopes: scopes.clone(),
    });
    // The user gets what it asks for; anonymous clients get nothing.
    let access: Vec<Value> = if user.is_some() {
        scopes
            .iter()
            .filter_map(|scope| {
                let (resource, actions) = scope.rsplit_once(':')?;
                let (kind, name) = resource.split_once(':')?;
                Some(json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
            })
            .collect()
    } else {
        Vec::new()
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = json!({"typ": "JWT", "alg": "ES256", "x5c": [x5c]});
    let claims = json!({
        "iss": ISSUER, "sub": user.unwrap_or_default(), "aud": service,
        "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{now}-{}", scopes.len()),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = signer
        .sign(&ring::rand::SystemRandom::new(), signing_input.as_bytes())
        .unwrap();
    let token = format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.as_ref())
    );
    let body = json!({"token": token, "expires_in": 300}).to_string();
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.shutdown(Shutdown::Both)
}

// ---------------------------------------------------------------------------------------------
// a throttling proxy

/// A TCP proxy in front of the registry that can slow downloads to about 1 MiB/s, and counts
/// the bytes it passes to the client.
struct Proxy {
    port: u16,
    throttle: Arc<AtomicBool>,
    downloaded: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
    thread: Option<JoinHandle<()>>,
}

impl Proxy {
    fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let throttle = Arc::new(AtomicBool::new(true));
        let downloaded = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let streams: Arc<Mutex<Vec<TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (throttle, downloaded, stop, streams) = (
                throttle.clone(),
                downloaded.clone(),
                stop.clone(),
                streams.clone(),
            );
            std::thread::spawn(move || {
                for client in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                        continue;
                    };
                    {
                        let mut streams = streams.lock().unwrap();
                        streams.push(client.try_clone().unwrap());
                        streams.push(server.try_clone().unwrap());
                    }
                    let (mut c_read, mut s_write) =
                        (client.try_clone().unwrap(), server.try_clone().unwrap());
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut c_read, &mut s_write);
                        let _ = s_write.shutdown(Shutdown::Write);
                    });
                    let (mut s_read, mut c_write) = (server, client);
                    let (throttle, downloaded) = (throttle.clone(), downloaded.clone());
                    std::thread::spawn(move || {
                        let mut buffer = [0u8; 8192];
                        loop {
                            let n = match s_read.read(&mut buffer) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            if c_write.write_all(&buffer[..n]).is_err() {
                                break;
                            }
                            downloaded.fetch_add(n as u64, Ordering::Relaxed);
                            if throttle.load(Ordering::Relaxed) {
                                std::thread::sleep(Duration::from_millis(8));
                            }
                        }
                        let _ = c_write.shutdown(Shutdown::Write);
                    });
                }
            })
        };
        Self {
            port,
            throttle,
            downloaded,
            stop,
            streams,
            thread: Some(thread),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        for stream in self.streams.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// images

/// A rootfs with busybox and a symlink per applet.
fn busybox_rootfs(dir: &Path) -> Option<PathBuf> {
    if !Path::new(BUSYBOX).is_file() {
        skip(&format!("{BUSYBOX} is missing (install busybox-static)"));
        return None;
    }
    let root = dir.join("rootfs");
    for sub in ["bin", "etc", "tmp"] {
        fs::create_dir_all(root.join(sub)).unwrap();
    }
    fs::copy(BUSYBOX, root.join("bin/busybox")).unwrap();
    for applet in ["sh", "ls", "cat", "echo", "true"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    Some(root)
}

fn reference(text: &str) -> ImageReference {
    ImageReference::parse(text).unwrap()
}

/// Pseudo-random bytes (xorshift): incompressible, so the layer stays big after gzip.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A gzip layer with one file; returns (digest, size, diff_id).
fn put_layer(store: &Store, name: &str, content: &[u8]) -> (Digest, u64, Digest) {
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(1_700_000_000);
    header.set_cksum();
    tar.append_data(&mut header, name, content).unwrap();
    let tar = tar.into_inner().unwrap();
    let diff_id = Digest::of(&tar);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let digest = store.put_blob_bytes(&gz).unwrap();
    (digest, gz.len() as u64, diff_id)
}

/// The test images in a fresh store: `busybox` (imported from the rootfs, one layer) and `big`
/// (busybox's layer plus a ~3 MiB noise layer and a small one).
struct Images {
    _dir: tempfile::TempDir,
    store: Store,
    busybox: ImageReference,
    big: ImageReference,
    /// The big image's noise layer and its small last layer.
    noise_layer: Digest,
    small_layer: Digest,
}

fn images() -> Option<Images> {
    let dir = tempfile::tempdir().unwrap();
    let rootfs = busybox_rootfs(dir.path())?;
    let store = Store::open(dir.path().join("store")).unwrap();
    let busybox = reference("busybox:latest");
    let options = ImportOptions {
        created: Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
        ..ImportOptions::default()
    };
    import(&store, &rootfs, &busybox, &options).unwrap();
    let image = LocalImage::open(&store, &busybox, None).unwrap();
    let (noise_layer, noise_size, noise_diff) =
        put_layer(&store, "noise.bin", &noise(3 << 20, 0x9e37_79b9_7f4a_7c15));
    let (small_layer, small_size, small_diff) =
        put_layer(&store, "hello.txt", b"hello from a second layer\n");
    let mut config: Value = serde_json::from_slice(&image.config_bytes).unwrap();
    let diff_ids = config["rootfs"]["diff_ids"].as_array_mut().unwrap();
    diff_ids.push(json!(noise_diff.to_string()));
    diff_ids.push(json!(small_diff.to_string()));
    config["history"] = json!([]);
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let config_digest = store.put_blob_bytes(&config_bytes).unwrap();
    let mut manifest: Value = serde_json::from_slice(&image.manifest_bytes).unwrap();
    manifest["config"]["digest"] = json!(config_digest.to_string());
    manifest["config"]["size"] = json!(config_bytes.len());
    let layer_type = manifest["layers"][0]["mediaType"].clone();
    let layers = manifest["layers"].as_array_mut().unwrap();
    layers.push(
        json!({"mediaType": layer_type, "digest": noise_layer.to_string(), "size": noise_size}),
    );
    layers.push(
        json!({"mediaType": layer_type, "digest": small_layer.to_string(), "size": small_size}),
    );
    let manifest_digest = store
        .put_blob_bytes(&serde_json::to_vec(&manifest).unwrap())
        .unwrap();
    let big = reference("big:latest");
    store.tag(&big, &manifest_digest).unwrap();
    Some(Images {
        _dir: dir,
        store,
        busybox,
        big,
        noise_layer,
        small_layer,
    })
}

/// An OCI index in `store` with `host` for this platform and `other` for linux/s390x.
fn put_index(store: &Store, host: &ImageReference, other: &ImageReference) -> ImageReference {
    let entry = |r: &ImageReference, arch: &str| {
        let digest = store.resolve_required(r).unwrap();
        let size = store.blob_size(&digest).unwrap();
        json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest.to_string(), "size": size,
            "platform": {"os": "linux", "architecture": arch},
        })
    };
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry(other, "s390x"), entry(host, PlatformSpec::host().architecture())],
    });
    let digest = store
        .put_blob_bytes(&serde_json::to_vec(&index).unwrap())
        .unwrap();
    let multi = reference("multi:latest");
    store.tag(&multi, &digest).unwrap();
    multi
}

fn fresh_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    (dir, store)
}

fn count_outcomes(blobs: &[BlobOutcome], pred: impl Fn(&BlobOutcome) -> bool) -> usize {
    blobs.iter().filter(|o| pred(o)).count()
}

// ---------------------------------------------------------------------------------------------
// the scenario every set-up runs

fn scenario(setup: Setup) {
    let started = Instant::now();
    let Some(registry) = Registry::start(setup) else {
        return;
    };
    let Some(images) = images() else {
        return;
    };
    let options = registry.options();
    let src = &images.store;

    // Push: busybox monolithic or chunked (its layer is over 1 MiB), big with a chunked layer.
    let busybox_dest = registry.reference("team/busybox:1");
    let pushed =
        distribution::push(src, &images.busybox, &busybox_dest, &options, &NoProgress).unwrap();
    assert_eq!(
        pushed.digest,
        src.resolve_required(&images.busybox).unwrap()
    );
    assert!(
        pushed
            .blobs
            .iter()
            .all(|b| matches!(b.outcome, BlobOutcome::Uploaded { .. })),
        "{pushed:?}"
    );
    let big_dest = registry.reference("team/big:1");
    let pushed_big =
        distribution::push(src, &images.big, &big_dest, &options, &NoProgress).unwrap();
    let noise = pushed_big
        .blobs
        .iter()
        .find(|b| b.digest == images.noise_layer)
        .unwrap();
    assert!(
        matches!(noise.outcome, BlobOutcome::Uploaded { chunks } if chunks >= 3),
        "the 3 MiB layer goes in 1 MiB chunks: {noise:?}"
    );
    let small = pushed_big
        .blobs
        .iter()
        .find(|b| b.digest == images.small_layer)
        .unwrap();
    assert_eq!(small.outcome, BlobOutcome::Uploaded { chunks: 1 });
    // Pushing again uploads nothing.
    let again = distribution::push(src, &images.big, &big_dest, &options, &NoProgress).unwrap();
    assert!(
        again
            .blobs
            .iter()
            .all(|b| b.outcome == BlobOutcome::AlreadyExists),
        "{again:?}"
    );
    assert_eq!(again.bytes_uploaded, 0);
    assert!(registry
        .log_text()
        .contains("\"PATCH /v2/team/big/blobs/uploads/"));

    // Pull into a fresh store: same digests, a runnable image, a clean store.
    let (_c, pulled_store) = fresh_store();
    let report = distribution::pull(&pulled_store, &big_dest, &options, &NoProgress).unwrap();
    assert_eq!(report.digest, pushed_big.digest);
    assert_eq!(
        pulled_store.resolve(&big_dest).unwrap(),
        Some(pushed_big.digest.clone())
    );
    let original = LocalImage::open(src, &images.big, None).unwrap();
    let copy = LocalImage::open(&pulled_store, &big_dest, None).unwrap();
    assert_eq!(copy.config_digest, original.config_digest);
    assert_eq!(copy.layers, original.layers);
    assert!(pulled_store.check(false).unwrap().is_clean());
    // Pulling again downloads nothing; by digest too.
    let again = distribution::pull(&pulled_store, &big_dest, &options, &NoProgress).unwrap();
    assert_eq!(again.bytes_downloaded, 0);
    assert!(again
        .blobs
        .iter()
        .all(|b| b.outcome == BlobOutcome::AlreadyPresent));
    let by_digest = big_dest.with_digest(pushed_big.digest.clone());
    distribution::pull(&pulled_store, &by_digest, &options, &NoProgress).unwrap();

    // Cross-repository mount: the store now knows team/big holds these blobs.
    let copy_dest = registry.reference("other/copy:1");
    let mounted =
        distribution::push(&pulled_store, &big_dest, &copy_dest, &options, &NoProgress).unwrap();
    let outcomes: Vec<BlobOutcome> = mounted.blobs.iter().map(|b| b.outcome.clone()).collect();
    assert_eq!(
        count_outcomes(
            &outcomes,
            |o| matches!(o, BlobOutcome::Mounted { from } if from == "team/big")
        ),
        outcomes.len(),
        "{outcomes:?}"
    );
    let log = registry.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("POST /v2/other/copy/blobs/uploads/?")
                && l.contains("mount=")
                && l.contains("\" 201 ")),
        "no mount in the registry log"
    );
    assert_eq!(mounted.bytes_uploaded, 0);

    // An index: the host's platform is picked, the other is never fetched.
    let multi = put_index(src, &images.busybox, &images.big);
    let multi_dest = registry.reference("team/multi:1");
    let pushed_multi = distribution::push(src, &multi, &multi_dest, &options, &NoProgress).unwrap();
    let (_m, multi_store) = fresh_store();
    let multi_report =
        distribution::pull(&multi_store, &multi_dest, &options, &NoProgress).unwrap();
    assert_eq!(multi_report.digest, pushed_multi.digest);
    assert_eq!(
        multi_report.manifest_digest,
        src.resolve_required(&images.busybox).unwrap()
    );
    assert!(!multi_store.has_blob(&images.noise_layer));
    LocalImage::open(&multi_store, &multi_dest, None).unwrap();

    kill_and_resume(&registry, &big_dest, &images);
    skopeo_interop(&registry, &images, &big_dest, &pushed_big.digest);
    refusals(&registry, &big_dest);

    // Last, as it breaks team/big: a layer altered on the registry's disk.
    let blob = registry.blob_file(&images.small_layer);
    let mut bytes = fs::read(&blob).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(&blob, &bytes).unwrap();
    let (_t, tampered_store) = fresh_store();
    let error = distribution::pull(&tampered_store, &big_dest, &options, &NoProgress).unwrap_err();
    assert!(
        matches!(error, DistributionError::DigestMismatch { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("digest mismatch") && message.contains("nothing was kept"),
        "{message}"
    );
    assert!(
        tampered_store.list_images().unwrap().is_empty(),
        "nothing is tagged"
    );
    assert!(!tampered_store.has_blob(&images.small_layer));
    let partial = tampered_store
        .root()
        .join(PARTIAL_DIR)
        .join(format!("sha256-{}", images.small_layer.hex()));
    assert!(!partial.exists(), "the bad download is not kept");
    assert!(tampered_store.check(false).unwrap().problems.is_empty());
    eprintln!(
        "{setup:?}: scenario took {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

/// A pull in a child process, killed (SIGKILL) while the big layer is downloading through a
/// throttled proxy; the store stays consistent and the next pull resumes with `Range`.
fn kill_and_resume(registry: &Registry, big: &ImageReference, images: &Images) {
    let proxy = Proxy::start(registry.port);
    let via_proxy = reference(&format!(
        "127.0.0.1:{}/{}:{}",
        proxy.port,
        big.path(),
        big.tag().unwrap()
    ));
    let (_k, store) = fresh_store();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_pull_for_kill_test",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("PALISADE_DIST_CHILD", "1")
        .env("PALISADE_DIST_STORE", store.root())
        .env("PALISADE_DIST_REF", via_proxy.to_string())
        .env(
            "PALISADE_DIST_TLS_CA",
            registry.ca.clone().unwrap_or_default(),
        )
        .env(
            "PALISADE_DIST_AUTH",
            if registry.setup == Setup::Plain {
                ""
            } else {
                "1"
            },
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let partial = store
        .root()
        .join(PARTIAL_DIR)
        .join(format!("sha256-{}", images.noise_layer.hex()));
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if fs::metadata(&partial).is_ok_and(|m| m.len() >= 256 << 10) {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("the child pull ended ({status}) before it could be killed: {err}");
        }
        assert!(Instant::now() < deadline, "the child pull made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let kept = fs::metadata(&partial).unwrap().len();
    assert!(kept < 3 << 20, "killed mid-download");
    // Consistent: nothing tagged, the layer not at its final path, no corrupt blob.
    assert!(store.list_images().unwrap().is_empty());
    assert!(!store.has_blob(&images.noise_layer));
    let check = store.check(false).unwrap();
    assert!(
        check
            .problems
            .iter()
            .all(|p| matches!(p, palisade_image::store::Problem::StaleTempFile { .. })),
        "{check:?}"
    );

    // The retry continues where the killed pull stopped.
    proxy.throttle.store(false, Ordering::Relaxed);
    let before = proxy.downloaded.load(Ordering::Relaxed);
    let options = registry.options_for(via_proxy.domain(), registry.credentials());
    let report = distribution::pull(&store, &via_proxy, &options, &NoProgress).unwrap();
    let noise = report
        .blobs
        .iter()
        .find(|b| b.digest == images.noise_layer)
        .unwrap();
    match noise.outcome {
        BlobOutcome::Downloaded { resumed_from } => {
            assert!(resumed_from >= kept, "{resumed_from} < {kept}")
        }
        ref other => panic!("{other:?}"),
    }
    let transferred = proxy.downloaded.load(Ordering::Relaxed) - before;
    let everything: u64 = report.blobs.iter().map(|b| b.size).sum();
    assert!(
        transferred + kept <= everything + (64 << 10),
        "the retry fetched {transferred} bytes: the kept {kept} were not reused"
    );
    assert!(!partial.exists());
    store.check(true).unwrap();
    assert!(store.check(false).unwrap().is_clean());
    assert_eq!(store.resolve(&via_proxy).unwrap(), Some(report.digest));
}

/// The kill test's child: pulls as told by the environment. Does nothing in a normal run.
#[test]
fn child_pull_for_kill_test() {
    if std::env::var_os("PALISADE_DIST_CHILD").is_none() {
        return;
    }
    let store = Store::open(std::env::var("PALISADE_DIST_STORE").unwrap()).unwrap();
    let reference = reference(&std::env::var("PALISADE_DIST_REF").unwrap());
    let ca = std::env::var("PALISADE_DIST_TLS_CA").unwrap_or_default();
    let mut credentials = CredentialStore::none();
    if std::env::var("PALISADE_DIST_AUTH").is_ok_and(|v| v == "1") {
        credentials = credentials.with_credentials(
            reference.domain(),
            Credentials::new(USER, Secret::new(PASSWORD)),
        );
    }
    let options = ClientOptions {
        insecure_registries: if ca.is_empty() {
            vec!["127.0.0.1".to_owned()]
        } else {
            Vec::new()
        },
        ca_certs: if ca.is_empty() {
            Vec::new()
        } else {
            vec![PathBuf::from(ca)]
        },
        config_dir: None,
        credentials,
        ..ClientOptions::default()
    };
    distribution::pull(&store, &reference, &options, &NoProgress).unwrap();
}

/// skopeo copies an image in that palisade pulls; palisade's push is inspected and copied out
/// by skopeo.
fn skopeo_interop(registry: &Registry, images: &Images, pushed: &ImageReference, digest: &Digest) {
    if Command::new("skopeo").arg("--version").output().is_err() {
        skip("skopeo is missing (apt-get install skopeo)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // An OCI layout written by the store's save.
    let archive = dir.path().join("busybox.tar");
    let (file, _) = palisade_image::archive::save(
        &images.store,
        std::slice::from_ref(&images.busybox),
        File::create(&archive).unwrap(),
    )
    .unwrap();
    drop(file);
    let layout = dir.path().join("layout");
    tar::Archive::new(File::open(&archive).unwrap())
        .unpack(&layout)
        .unwrap();
    let digest_file = dir.path().join("digest");
    let skopeo_ref = registry.reference("interop/skopeo:1");
    let mut copy_in = Command::new("skopeo");
    copy_in
        .args(["--insecure-policy", "copy", "--quiet"])
        .args(registry.skopeo_flags("dest"))
        .arg("--digestfile")
        .arg(&digest_file);
    if registry.setup == Setup::Plain {
        // Docker's v2 schema 2 media types on this one.
        copy_in.args(["--format", "v2s2"]);
    }
    let status = copy_in
        .arg(format!("oci:{}:{}", layout.display(), images.busybox))
        .arg(format!("docker://{skopeo_ref}"))
        .status()
        .unwrap();
    assert!(status.success(), "skopeo copy into the registry failed");
    let skopeo_digest = Digest::parse(fs::read_to_string(&digest_file).unwrap().trim()).unwrap();
    let (_s, store) = fresh_store();
    let report = distribution::pull(&store, &skopeo_ref, &registry.options(), &NoProgress).unwrap();
    assert_eq!(report.digest, skopeo_digest);
    let image = LocalImage::open(&store, &skopeo_ref, None).unwrap();
    if registry.setup == Setup::Plain {
        let media_type =
            serde_json::from_slice::<Value>(&image.manifest_bytes).unwrap()["mediaType"].clone();
        assert_eq!(
            media_type,
            json!("application/vnd.docker.distribution.manifest.v2+json")
        );
    }

    let inspect = Command::new("skopeo")
        .arg("inspect")
        .args(
            registry
                .skopeo_flags("src")
                .iter()
                .map(|f| f.replace("--src-", "--")),
        )
        .arg(format!("docker://{pushed}"))
        .output()
        .unwrap();
    assert!(
        inspect.status.success(),
        "skopeo inspect: {}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let inspected: Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(inspected["Digest"], json!(digest.to_string()));
    let out = dir.path().join("out");
    let status = Command::new("skopeo")
        .args(["--insecure-policy", "copy", "--quiet"])
        .args(registry.skopeo_flags("src"))
        .arg(format!("docker://{pushed}"))
        .arg(format!("oci:{}:copy", out.display()))
        .status()
        .unwrap();
    assert!(status.success(), "skopeo copy out of the registry failed");
}

/// Wrong or missing credentials are refused with the registry's reason and no secret.
fn refusals(registry: &Registry, big: &ImageReference) {
    let (_r, store) = fresh_store();
    if registry.setup == Setup::Plain {
        let error = distribution::pull(
            &store,
            &registry.reference("team/absent:1"),
            &registry.options(),
            &NoProgress,
        )
        .unwrap_err();
        assert!(
            matches!(error, DistributionError::ImageNotFound { .. }),
            "{error:?}"
        );
        assert!(error.to_string().starts_with("unknown image"), "{error}");
        let error = distribution::pull(
            &store,
            &reference(&format!("{}/team/big:nope", registry.host())),
            &registry.options(),
            &NoProgress,
        )
        .unwrap_err();
        assert!(error.to_string().contains("MANIFEST_UNKNOWN"), "{error}");
        return;
    }
    let wrong = registry.options_with(Some(Credentials::new(
        USER,
        Secret::new("wrong-password-123"),
    )));
    let error = distribution::pull(&store, big, &wrong, &NoProgress).unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, DistributionError::AuthRefused { .. }),
        "{error:?}"
    );
    assert!(
        message.contains("refused authentication") && message.contains("UNAUTHORIZED"),
        "{message}"
    );
    assert!(
        !message.contains("wrong-password-123")
            && !format!("{error:?}").contains("wrong-password-123")
    );
    let error = distribution::check_login(
        &registry.host(),
        &Credentials::new(USER, Secret::new("nope")),
        &wrong,
    )
    .unwrap_err();
    assert!(
        matches!(error, DistributionError::AuthRefused { .. }),
        "{error:?}"
    );
    distribution::check_login(
        &registry.host(),
        &Credentials::new(USER, Secret::new(PASSWORD)),
        &wrong,
    )
    .unwrap();
    let anonymous = registry.options_with(None);
    let error = distribution::pull(&store, big, &anonymous, &NoProgress).unwrap_err();
    assert!(
        matches!(error, DistributionError::AuthRefused { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("palisade login"), "{error}");
    assert!(store.list_images().unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// the tests

#[test]
fn plain_http_registry() {
    scenario(Setup::Plain);
}

#[test]
fn tls_registry_with_basic_auth() {
    scenario(Setup::TlsBasic);
    let Some(registry) = Registry::start(Setup::TlsBasic) else {
        return;
    };
    // Without the CA: a TLS error that says what to do.
    let mut options = registry.options();
    options.ca_certs.clear();
    let error = RegistryClientProbe::ping(&registry.host(), &options);
    assert!(
        error.contains("TLS connection to registry") && error.contains("--ca-cert"),
        "{error}"
    );
    // The CA from certs.d/<host>/ca.crt under the config directory works as well as --ca-cert.
    let config = tempfile::tempdir().unwrap();
    let certs = config.path().join("certs.d").join(registry.host());
    fs::create_dir_all(&certs).unwrap();
    fs::copy(registry.ca.as_ref().unwrap(), certs.join("ca.crt")).unwrap();
    options.config_dir = Some(config.path().to_owned());
    distribution::check_login(
        &registry.host(),
        &Credentials::new(USER, Secret::new(PASSWORD)),
        &options,
    )
    .unwrap();
    // Named insecure: self-signed TLS is accepted without the CA.
    let mut insecure = registry.options();
    insecure.ca_certs.clear();
    insecure.insecure_registries = vec![registry.host()];
    distribution::check_login(
        &registry.host(),
        &Credentials::new(USER, Secret::new(PASSWORD)),
        &insecure,
    )
    .unwrap();
}

#[test]
fn token_auth_registry() {
    scenario(Setup::Token);
    let Some(registry) = Registry::start(Setup::Token) else {
        return;
    };
    let Some(images) = images() else {
        return;
    };
    let options = registry.options();
    let dest = registry.reference("scoped/busybox:1");
    distribution::push(&images.store, &images.busybox, &dest, &options, &NoProgress).unwrap();
    let (_p, pulled) = fresh_store();
    distribution::pull(&pulled, &dest, &options, &NoProgress).unwrap();
    distribution::push(
        &pulled,
        &dest,
        &registry.reference("scoped/mounted:1"),
        &options,
        &NoProgress,
    )
    .unwrap();
    let requests = registry.token.as_ref().unwrap().requests();
    let asked = |wanted: &[&str]| {
        requests.iter().any(|r| {
            r.user.as_deref() == Some(USER)
                && wanted.iter().all(|w| r.scopes.iter().any(|s| s == w))
        })
    };
    assert!(
        asked(&["repository:scoped/busybox:pull,push"]),
        "push asks for pull,push: {requests:?}"
    );
    assert!(
        asked(&["repository:scoped/busybox:pull"]),
        "pull asks for pull: {requests:?}"
    );
    assert!(
        asked(&[
            "repository:scoped/mounted:pull,push",
            "repository:scoped/busybox:pull"
        ]),
        "a mount asks for pull on its source too: {requests:?}"
    );
    // Tokens are cached per scope: one request per distinct scope set, not per blob.
    let for_push = requests
        .iter()
        .filter(|r| r.scopes == ["repository:scoped/busybox:pull,push"])
        .count();
    assert_eq!(for_push, 1, "{requests:?}");
}

/// Connection errors name the registry and what to do.
#[test]
fn unreachable_registry_says_what_to_do() {
    let port = free_port();
    let host = format!("127.0.0.1:{port}");
    let (_d, store) = fresh_store();
    let options = ClientOptions {
        credentials: CredentialStore::none(),
        config_dir: None,
        ..ClientOptions::default()
    };
    let error = distribution::pull(
        &store,
        &reference(&format!("{host}/a:1")),
        &options,
        &NoProgress,
    )
    .unwrap_err();
    let message = error.to_string();
    assert!(
        message.starts_with(&format!("cannot reach registry {host}:")),
        "{message}"
    );
    assert!(
        message.contains("is it running?") && message.contains("--insecure-registry"),
        "{message}"
    );
    assert!(!message.contains('\n'));
    let insecure = ClientOptions {
        insecure_registries: vec![host.clone()],
        ..options
    };
    let error = distribution::pull(
        &store,
        &reference(&format!("{host}/a:1")),
        &insecure,
        &NoProgress,
    )
    .unwrap_err();
    assert!(
        error.to_string().contains("cannot reach registry"),
        "{error}"
    );
    assert!(store.list_images().unwrap().is_empty());
}

/// A plain-HTTP registry that was not named insecure is reached over HTTPS only, and the error
/// says how to allow plain HTTP.
#[test]
fn plain_registry_needs_to_be_named_insecure() {
    let Some(registry) = Registry::start(Setup::Plain) else {
        return;
    };
    let mut options = registry.options();
    options.insecure_registries.clear();
    let error = RegistryClientProbe::ping(&registry.host(), &options);
    assert!(error.contains("--insecure-registry"), "{error}");
    options.insecure_registries = vec![format!("127.0.0.1:{}", free_port())];
    let error = RegistryClientProbe::ping(&registry.host(), &options);
    assert!(
        error.contains("--insecure-registry"),
        "another port of the host is not enough: {error}"
    );
}

/// Pings a registry through `check_login` with dummy credentials and returns the error text.
struct RegistryClientProbe;

impl RegistryClientProbe {
    fn ping(host: &str, options: &ClientOptions) -> String {
        let client = distribution::RegistryClient::new(host, options).unwrap();
        client.check_login().unwrap_err().to_string()
    }
}

/// The auth file `palisade login` writes is private and read back by lookups.
#[test]
fn auth_file_permissions_and_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let file = distribution::AuthFile::at(dir.path().join("palisade/auth.json"));
    file.store(
        "127.0.0.1:5000",
        &Credentials::new(USER, Secret::new(PASSWORD)),
    )
    .unwrap();
    let mode = fs::metadata(file.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let found = CredentialStore::none()
        .with_file(file.path())
        .find("127.0.0.1:5000", "a/b")
        .unwrap();
    assert_eq!(found.password.expose(), PASSWORD);
    assert!(!format!("{found:?}").contains(PASSWORD));
}
