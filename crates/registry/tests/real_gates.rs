//! The real gates: the `signature` gate verifying cosign signatures with palisade-trust, and
//! scan on push with palisade-scan's database and vulnerability policy, through the registry's
//! HTTP handler over filesystem storage.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use palisade_image::digest::Digest;
use palisade_registry::config::Config;
use palisade_registry::daemon::Extensions;
use palisade_registry::gate::{Gate, GatePolicy, RegistryView};
use palisade_registry::name::RepositoryName;
use palisade_registry::scan::{ScanGate, ScanQueue, ScanVerdict, Scanner, VerdictStore};
use palisade_registry::server::{Limits, Registry};
use palisade_registry::signature::{SignatureGate, ViewSource};
use palisade_registry::storage::fs::FsStorage;
use palisade_registry::vuln::VulnScanner;
use palisade_trust::{
    sign_image, ImageId, KeyAlgorithm, PrivateKey, SignatureForm, SignatureSink, SignatureSource,
    TrustError,
};

type Reg = Registry<FsStorage>;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const REGISTRY_NAME: &str = "reg.test:5000";

async fn call(reg: &Reg, method: Method, uri: &str, ct: &str, body: &[u8]) -> (StatusCode, Bytes) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", ct)
        .body(Full::new(Bytes::copy_from_slice(body)))
        .unwrap();
    let resp = reg.handle(req, IpAddr::from([127, 0, 0, 1])).await;
    let status = resp.status();
    (status, resp.into_body().collect().await.unwrap().to_bytes())
}

async fn get(reg: &Reg, uri: &str) -> (StatusCode, String) {
    let (s, b) = call(reg, Method::GET, uri, "", b"").await;
    (s, String::from_utf8_lossy(&b).into_owned())
}

async fn blob(reg: &Reg, repo: &str, data: &[u8]) -> Digest {
    let d = Digest::of(data);
    let uri = format!("/v2/{repo}/blobs/uploads/?digest={d}");
    let (s, _) = call(reg, Method::POST, &uri, "application/octet-stream", data).await;
    assert_eq!(s, StatusCode::CREATED);
    d
}

/// Pushes an image (config `{}` plus `layers` as (media type, bytes)) under `tag`.
async fn push_image(reg: &Reg, repo: &str, tag: &str, layers: &[(&str, Vec<u8>)]) -> Digest {
    let config = blob(reg, repo, b"{}").await;
    let mut descs = Vec::new();
    for (mt, data) in layers {
        let d = blob(reg, repo, data).await;
        descs.push(
            serde_json::json!({"mediaType": mt, "digest": d.to_string(), "size": data.len()}),
        );
    }
    let m = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.to_string(), "size": 2},
        "layers": descs,
    }))
    .unwrap();
    let uri = format!("/v2/{repo}/manifests/{tag}");
    let (s, _) = call(reg, Method::PUT, &uri, OCI_MANIFEST, &m).await;
    assert_eq!(s, StatusCode::CREATED);
    Digest::of(&m)
}

enum Write {
    Blob(Vec<u8>),
    Manifest {
        reference: String,
        media_type: String,
        bytes: Vec<u8>,
    },
}

/// What `sign_image` writes, recorded (it is synchronous, the handler is not) and then pushed
/// through the HTTP API; reads go to the registry's storage.
struct Recorder<'a> {
    source: ViewSource<'a>,
    writes: Mutex<Vec<Write>>,
}

impl SignatureSource for Recorder<'_> {
    fn manifest(&self, repository: &str, reference: &str) -> Result<Option<Vec<u8>>, TrustError> {
        self.source.manifest(repository, reference)
    }
    fn referrers(&self, repository: &str, subject: &Digest) -> Result<Option<Vec<u8>>, TrustError> {
        self.source.referrers(repository, subject)
    }
    fn blob(
        &self,
        repository: &str,
        d: &Digest,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, TrustError> {
        self.source.blob(repository, d, limit)
    }
}

impl SignatureSink for Recorder<'_> {
    fn push_blob(&self, _repository: &str, bytes: &[u8]) -> Result<Digest, TrustError> {
        self.writes
            .lock()
            .unwrap()
            .push(Write::Blob(bytes.to_vec()));
        Ok(Digest::of(bytes))
    }
    fn put_manifest(
        &self,
        _repository: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<bool, TrustError> {
        self.writes.lock().unwrap().push(Write::Manifest {
            reference: reference.into(),
            media_type: media_type.into(),
            bytes: bytes.to_vec(),
        });
        Ok(true)
    }
}

/// Signs `digest` in `repo` with `key`; `tamper` may rewrite each signature manifest before it
/// is pushed. Returns the pushed manifest references.
async fn sign(
    reg: &Reg,
    view: &dyn RegistryView,
    repo: &str,
    digest: &Digest,
    key: &PrivateKey,
    form: SignatureForm,
    tamper: impl Fn(Vec<u8>) -> Vec<u8>,
) -> Vec<String> {
    let rec = Recorder {
        source: ViewSource { view },
        writes: Mutex::new(Vec::new()),
    };
    let image = ImageId {
        registry: REGISTRY_NAME.into(),
        repository: repo.into(),
        digest: digest.clone(),
    };
    sign_image(&rec, &image, key, &BTreeMap::new(), form).unwrap();
    let mut refs = Vec::new();
    for w in rec.writes.into_inner().unwrap() {
        match w {
            Write::Blob(b) => {
                blob(reg, repo, &b).await;
            }
            Write::Manifest {
                reference,
                media_type,
                bytes,
            } => {
                let bytes = tamper(bytes);
                let reference = if reference.starts_with("sha256:") {
                    Digest::of(&bytes).to_string()
                } else {
                    reference
                };
                let uri = format!("/v2/{repo}/manifests/{reference}");
                let (s, body) = call(reg, Method::PUT, &uri, &media_type, &bytes).await;
                assert_eq!(s, StatusCode::CREATED, "{}", String::from_utf8_lossy(&body));
                refs.push(reference);
            }
        }
    }
    refs
}

/// Gates `prod/**` with `gate`, caching verdicts for `cache`.
fn gated(reg: &Reg, gate: Arc<dyn Gate>, name: &str, cache: Duration) {
    let policy = GatePolicy::new(
        &[(vec!["prod/**".into()], vec![name.into()])],
        &[gate],
        cache,
    )
    .unwrap();
    reg.set_gates(Arc::new(policy));
}

fn trust_policy(dir: &Path, team: &PrivateKey) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    std::fs::write(dir.join("keys/team.pub"), team.public().to_pem()).unwrap();
    let path = dir.join("policy.json");
    std::fs::write(
        &path,
        format!(
            r#"{{"scopes": {{"{REGISTRY_NAME}/prod/*": {{"keys": ["team.pub"]}}, "*": "reject"}}}}"#
        ),
    )
    .unwrap();
    path
}

fn flip_signature(bytes: Vec<u8>) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let ann = &mut v["layers"][0]["annotations"]["dev.cosignproject.cosign/signature"];
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut sig = b64.decode(ann.as_str().unwrap()).unwrap();
    let n = sig.len();
    sig[n / 2] ^= 0x01;
    *ann = b64.encode(sig).into();
    serde_json::to_vec(&v).unwrap()
}

#[tokio::test]
async fn signature_gate_verifies_with_the_trust_policy() {
    let dir = tempfile::tempdir().unwrap();
    let storage = FsStorage::open(dir.path().join("storage")).unwrap();
    let view = Arc::new(storage.view());
    let reg = Registry::new(storage, Limits::default()).with_view(view.clone());
    let team = PrivateKey::generate(KeyAlgorithm::EcdsaP256);
    let stranger = PrivateKey::generate(KeyAlgorithm::EcdsaP256);
    let gate = SignatureGate::load(&trust_policy(dir.path(), &team), REGISTRY_NAME).unwrap();
    // a long verdict cache: pushing a signature must drop the cached denial
    gated(&reg, Arc::new(gate), "signature", Duration::from_secs(600));

    // unsigned: 403 DENIED, the reason names the missing key
    let unsigned = push_image(&reg, "prod/app", "unsigned", &[]).await;
    let (s, body) = get(&reg, "/v2/prod/app/manifests/unsigned").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    let e: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(e["errors"][0]["code"], "DENIED");
    let msg = e["errors"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("signature gate") && msg.contains("team.pub"),
        "{msg}"
    );
    let (s, _) = call(
        &reg,
        Method::HEAD,
        &format!("/v2/prod/app/manifests/{unsigned}"),
        "",
        b"",
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // signed by the team key (cosign tag form): served; the signature stays fetchable
    let signed = push_image(
        &reg,
        "prod/app",
        "signed",
        &[("application/vnd.test", b"s".to_vec())],
    )
    .await;
    // denied before it is signed; the cached denial is dropped when the signature is pushed
    let (s, _) = get(&reg, "/v2/prod/app/manifests/signed").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let refs = sign(
        &reg,
        &*view,
        "prod/app",
        &signed,
        &team,
        SignatureForm::Tag,
        |b| b,
    )
    .await;
    assert_eq!(refs, [format!("sha256-{}.sig", signed.hex())]);
    let (s, body) = get(&reg, "/v2/prod/app/manifests/signed").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, body) = get(&reg, &format!("/v2/prod/app/manifests/{}", refs[0])).await;
    assert_eq!(s, StatusCode::OK, "{body}");

    // signed by a key the policy does not name: denied
    let other = push_image(
        &reg,
        "prod/app",
        "other",
        &[("application/vnd.test", b"x".to_vec())],
    )
    .await;
    sign(
        &reg,
        &*view,
        "prod/app",
        &other,
        &stranger,
        SignatureForm::Tag,
        |b| b,
    )
    .await;
    let (s, body) = get(&reg, "/v2/prod/app/manifests/other").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("team.pub"), "{body}");

    // a tampered team signature: denied
    let tampered = push_image(
        &reg,
        "prod/app",
        "tampered",
        &[("application/vnd.test", b"y".to_vec())],
    )
    .await;
    sign(
        &reg,
        &*view,
        "prod/app",
        &tampered,
        &team,
        SignatureForm::Tag,
        flip_signature,
    )
    .await;
    let (s, body) = get(&reg, "/v2/prod/app/manifests/tampered").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");

    // a team signature of another image, pushed under this image's signature tag: denied
    let moved = push_image(
        &reg,
        "prod/app",
        "moved",
        &[("application/vnd.test", b"z".to_vec())],
    )
    .await;
    let sig_of_signed = view
        .signature_tag(&RepositoryName::parse("prod/app").unwrap(), &signed)
        .unwrap()
        .1;
    let uri = format!("/v2/prod/app/manifests/sha256-{}.sig", moved.hex());
    assert_eq!(
        call(&reg, Method::PUT, &uri, OCI_MANIFEST, &sig_of_signed)
            .await
            .0,
        StatusCode::CREATED
    );
    let (s, body) = get(&reg, "/v2/prod/app/manifests/moved").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");

    // the OCI 1.1 referrer form (Sigstore bundle) by the team key: served, bundle fetchable
    let referred = push_image(
        &reg,
        "prod/app",
        "referred",
        &[("application/vnd.test", b"w".to_vec())],
    )
    .await;
    let refs = sign(
        &reg,
        &*view,
        "prod/app",
        &referred,
        &team,
        SignatureForm::Referrer,
        |b| b,
    )
    .await;
    let (s, body) = get(&reg, "/v2/prod/app/manifests/referred").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    for r in &refs {
        let (s, body) = get(&reg, &format!("/v2/prod/app/manifests/{r}")).await;
        assert_eq!(s, StatusCode::OK, "{r}: {body}");
    }
}

fn gzip_layer(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, path, *data).unwrap();
    }
    let tar = b.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

/// An advisory database from the scan crate's fixtures (urllib3 CVE-2021-33503) and a policy
/// allowing up to MEDIUM.
fn scan_files(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scan/tests/fixtures/osv/pypi");
    let db = dir.join("vulndb");
    palisade_scan::db::import(&[fixtures], &db).unwrap();
    let policy = dir.join("vuln-policy.toml");
    std::fs::write(&policy, "name = \"registry\"\nmax_severity = \"MEDIUM\"\n").unwrap();
    (db, policy)
}

#[tokio::test]
async fn scan_on_push_denies_vulnerable_images() {
    let dir = tempfile::tempdir().unwrap();
    let (db, policy) = scan_files(dir.path());
    let root = dir.path().join("storage");
    let storage = FsStorage::open(&root).unwrap();
    let view: Arc<dyn RegistryView> = Arc::new(storage.view());
    let store = VerdictStore::new(&root);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let scanner = Arc::new(VulnScanner::load(&db, &policy, 1 << 20).unwrap());
    let queue = ScanQueue::start(
        Arc::clone(&scanner) as Arc<dyn Scanner>,
        Arc::clone(&view),
        store.clone(),
        Arc::new(move |_r: &RepositoryName, d: &Digest, v: &ScanVerdict| {
            let _ = tx.send((d.clone(), v.clone()));
        }),
    );
    let reg = Registry::new(storage, Limits::default())
        .with_view(view)
        .with_scan_queue(queue);
    gated(
        &reg,
        Arc::new(ScanGate::new(store.clone())),
        "scan",
        Duration::ZERO,
    );

    let gz = "application/vnd.oci.image.layer.v1.tar+gzip";
    let meta = b"Metadata-Version: 2.1\nName: urllib3\nVersion: 1.26.4\n\n" as &[u8];
    let fixed = b"Metadata-Version: 2.1\nName: urllib3\nVersion: 1.26.18\n\n" as &[u8];
    let path = "usr/lib/python3/site-packages/urllib3-1.26.4.dist-info/METADATA";
    let path_fixed = "usr/lib/python3/site-packages/urllib3-1.26.18.dist-info/METADATA";
    for (tag, layer, ok) in [
        ("vulnerable", gzip_layer(&[(path, meta)]), false),
        (
            "clean",
            gzip_layer(&[(path_fixed, fixed), ("etc/hostname", b"x\n")]),
            true,
        ),
    ] {
        let d = push_image(&reg, "prod/app", tag, &[(gz, layer)]).await;
        let (scanned, verdict) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(scanned, d);
        assert_eq!(verdict.passed, ok, "{verdict:?}");
        assert!(verdict.scanner.starts_with("palisade-scan"), "{verdict:?}");
        let (s, body) = get(&reg, &format!("/v2/prod/app/manifests/{tag}")).await;
        if ok {
            assert_eq!(s, StatusCode::OK, "{body}");
        } else {
            assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
            assert!(
                body.contains("scan gate") && body.contains("CVE-2021-33503"),
                "{body}"
            );
        }
    }

    // a layer over the scan's size limit fails closed, saying why
    let big: Vec<u8> = (0..(2 << 20) / 8)
        .flat_map(|_| rand::random::<u64>().to_le_bytes())
        .collect();
    let layer = gzip_layer(&[("big", &big)]);
    assert!(layer.len() > 1 << 20);
    push_image(&reg, "prod/app", "big", &[(gz, layer)]).await;
    let (_, verdict) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        !verdict.passed && verdict.summary.contains("scan limit"),
        "{verdict:?}"
    );

    // a layer that is not gzip despite its media type fails closed
    push_image(
        &reg,
        "prod/app",
        "garbage",
        &[(gz, b"not gzip at all".to_vec())],
    )
    .await;
    let (_, verdict) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        !verdict.passed && verdict.summary.contains("scan failed"),
        "{verdict:?}"
    );
    let (s, _) = get(&reg, "/v2/prod/app/manifests/garbage").await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // a rebuilt database changes the scanner's database version, and a rescan re-queues every
    // stored manifest (the daemon does this when the version changes)
    let before = scanner.database_version().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scan/tests/fixtures/osv/pypi");
    palisade_scan::db::import(&[fixtures], &db).unwrap();
    assert_ne!(scanner.database_version().unwrap(), before);
    assert_eq!(reg.rescan_all().await.unwrap(), 4);
    let mut rescanned = Vec::new();
    for _ in 0..4 {
        let (d, v) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .unwrap()
            .unwrap();
        rescanned.push((d, v.passed));
    }
    assert_eq!(rescanned.iter().filter(|(_, passed)| *passed).count(), 1);
    let (s, body) = get(&reg, "/v2/prod/app/manifests/vulnerable").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
}

#[test]
fn gate_configuration_is_checked_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let team = PrivateKey::generate(KeyAlgorithm::EcdsaP256);
    let trust = trust_policy(dir.path(), &team);
    let (db, policy) = scan_files(dir.path());
    let text = format!(
        "[storage]\nroot = \"/r\"\n[gates.signature]\npolicy = {trust:?}\nregistry_name = \"{REGISTRY_NAME}\"\n\
         [gates.scan]\ndatabase = {db:?}\npolicy = {policy:?}\n\
         [[policies]]\nrepositories = [\"prod/**\"]\ngates = [\"signature\", \"scan\"]\n"
    );
    let cfg = Config::parse(&text, "t").unwrap();
    let ext = Extensions::from_config(&cfg).unwrap();
    assert_eq!(ext.gates.len(), 1);
    assert!(ext.scanner.is_some());

    // missing files name the field
    let missing = text.replace(&format!("{db:?}"), "\"/nonexistent/vulndb\"");
    let e = Config::parse(&missing, "t").unwrap_err().to_string();
    assert!(e.contains("gates.scan.database"), "{e}");
    // invalid files: the start fails with the file's problem
    std::fs::write(&db, b"not a database").unwrap();
    std::fs::write(dir.path().join("keys/team.pub"), b"not a key").unwrap();
    let e = Extensions::from_config(&cfg).unwrap_err().to_string();
    assert!(e.contains("policy.json"), "{e}");
    let mut cfg2 = cfg.clone();
    cfg2.gates.signature = None;
    let e = Extensions::from_config(&cfg2).unwrap_err().to_string();
    assert!(e.contains("vulndb"), "{e}");
    // a registry_name with a path is refused
    let bad = text.replace(REGISTRY_NAME, "reg.test/prod");
    let e = Config::parse(&bad, "t").unwrap_err().to_string();
    assert!(e.contains("gates.signature.registry_name"), "{e}");
}
