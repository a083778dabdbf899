//! The registry over S3-compatible object storage, against a real local S3 server (moto's
//! `moto_server`, bound to 127.0.0.1). Found through `PALISADE_MOTO_SERVER`, `PATH` or
//! `/opt/palisade-moto/bin/moto_server` (scripts/setup.sh installs it there); without it the
//! tests skip with a message, and fail when `PALISADE_REQUIRE_PRIVILEGED=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::TryStreamExt;
use http::{Method, StatusCode};
use object_store::PutPayload;
use palisade_image::digest::Digest;
use palisade_registry::server::{Limits, Registry};
use palisade_registry::storage::s3::{S3Config, S3Storage};
use tokio::io::AsyncWriteExt;

mod support;
use support::{call, manifest, push_blob, MT};

type Reg = Registry<S3Storage>;

fn moto_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PALISADE_MOTO_SERVER") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("moto_server"))
        .chain([PathBuf::from("/opt/palisade-moto/bin/moto_server")])
        .find(|p| p.is_file())
}

/// A moto server on a free 127.0.0.1 port, killed on drop.
struct Moto {
    child: Child,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts moto with an empty bucket `palisade-test`, or `None` (after saying why) when moto is missing.
async fn moto() -> Option<Moto> {
    let Some(bin) = moto_binary() else {
        let msg = "moto_server not found (set PALISADE_MOTO_SERVER, or run scripts/setup.sh)";
        assert!(
            std::env::var("PALISADE_REQUIRE_PRIVILEGED").as_deref() != Ok("1"),
            "{msg}, and PALISADE_REQUIRE_PRIVILEGED=1 forbids skipping"
        );
        eprintln!("skipping: {msg}");
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(&bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
    let m = Moto { child, port };
    // wait for it, then create the bucket (moto does not check signatures)
    for _ in 0..300 {
        if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            let req = format!(
                "PUT /palisade-test HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            s.write_all(req.as_bytes()).await.unwrap();
            let mut out = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut s, &mut out)
                .await
                .unwrap();
            let head = String::from_utf8_lossy(&out);
            assert!(head.starts_with("HTTP/1.1 200"), "create bucket: {head}");
            return Some(m);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("moto_server did not start listening on 127.0.0.1:{port}");
}

fn config(port: u16) -> S3Config {
    toml::from_str(&format!(
        "bucket = \"palisade-test\"\nendpoint = \"http://127.0.0.1:{port}\"\nallow_http = true\n\
         access_key_id = \"test\"\nsecret_access_key = \"test-secret\"\nprefix = \"reg\"\n"
    ))
    .unwrap()
}

async fn registry(m: &Moto) -> (Reg, S3Storage) {
    let cfg = config(m.port);
    cfg.validate().unwrap();
    let s = S3Storage::connect(&cfg).await.unwrap();
    let reg = Registry::new(
        s.clone(),
        Limits {
            max_manifest_bytes: 64 * 1024,
            ..Limits::default()
        },
    );
    (reg, s)
}

/// Every key in the bucket.
async fn keys(s: &S3Storage) -> Vec<String> {
    let all: Vec<_> = s.store().list(None).try_collect().await.unwrap();
    all.into_iter().map(|m| m.location.to_string()).collect()
}

/// Pushes `data` in `chunk`-sized PATCHes.
async fn push_chunked(reg: &Reg, repo: &str, data: &[u8], chunk: usize) -> Digest {
    let r = call(
        reg,
        Method::POST,
        &format!("/v2/{repo}/blobs/uploads/"),
        &[],
        b"",
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let mut loc = r.header("location").to_owned();
    for (i, c) in data.chunks(chunk).enumerate() {
        let range = format!("{}-{}", i * chunk, i * chunk + c.len() - 1);
        let r = call(reg, Method::PATCH, &loc, &[("content-range", &range)], c).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
        loc = r.header("location").to_owned();
    }
    let d = Digest::of(data);
    let sep = if loc.contains('?') { '&' } else { '?' };
    let r = call(reg, Method::PUT, &format!("{loc}{sep}digest={d}"), &[], b"").await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    d
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_push_and_pull_a_multi_layer_image_monolithic_chunked_and_ranged() {
    let Some(m) = moto().await else { return };
    let (reg, s) = registry(&m).await;
    let small = pattern(100_000, 1);
    // bigger than one 8 MiB part: several part objects, committed by multipart upload
    let big = pattern(9 * 1024 * 1024 + 123, 2);
    let chunky = pattern(300_000, 3);
    let l1 = push_blob(&reg, "team/app", &small).await;
    let l2 = push_blob(&reg, "team/app", &big).await;
    let l3 = push_chunked(&reg, "team/app", &chunky, 64 * 1024).await;
    let c = push_blob(&reg, "team/app", b"{}").await;
    let man = manifest(
        &c,
        2,
        &[(&l1, small.len()), (&l2, big.len()), (&l3, chunky.len())],
    );
    let r = call(&reg, Method::PUT, "/v2/team/app/manifests/v1", &[MT], &man).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);

    let r = call(&reg, Method::GET, "/v2/team/app/manifests/v1", &[], b"").await;
    assert_eq!((r.status, &r.body[..]), (StatusCode::OK, &man[..]));
    for (d, want) in [(&l1, &small), (&l2, &big), (&l3, &chunky)] {
        let r = call(
            &reg,
            Method::GET,
            &format!("/v2/team/app/blobs/{d}"),
            &[],
            b"",
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.body[..] == want[..], "blob {d} round-trips");
    }
    let r = call(
        &reg,
        Method::GET,
        &format!("/v2/team/app/blobs/{l2}"),
        &[("range", "bytes=8388600-8388619")],
        b"",
    )
    .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&r.body[..], &big[8_388_600..8_388_620]);
    // the blob keys are content addressed; no upload is left behind
    let k = keys(&s).await;
    assert!(
        k.contains(&format!("reg/blobs/sha256/{}", l2.hex())),
        "{k:?}"
    );
    assert!(!k.iter().any(|k| k.starts_with("reg/uploads/")), "{k:?}");
    // a second storage handle (a restarted server) sees the same content and verifies it
    let (reg2, _) = registry(&m).await;
    let r = call(
        &reg2,
        Method::GET,
        &format!("/v2/team/app/blobs/{l3}"),
        &[],
        b"",
    )
    .await;
    assert!(r.status == StatusCode::OK && r.body[..] == chunky[..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_wrong_digest_leaves_nothing_in_the_bucket() {
    let Some(m) = moto().await else { return };
    let (reg, s) = registry(&m).await;
    let claimed = Digest::of(b"what the client claims");
    let r = call(
        &reg,
        Method::POST,
        &format!("/v2/a/blobs/uploads/?digest={claimed}"),
        &[],
        b"something else",
    )
    .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
    );
    // chunked, then a wrong digest at the end
    let r = call(&reg, Method::POST, "/v2/a/blobs/uploads/", &[], b"").await;
    let loc = r.header("location").to_owned();
    let r = call(
        &reg,
        Method::PATCH,
        &loc,
        &[("content-range", "0-4")],
        b"01234",
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let loc = r.header("location").to_owned();
    let sep = if loc.contains('?') { '&' } else { '?' };
    let r = call(
        &reg,
        Method::PUT,
        &format!("{loc}{sep}digest={claimed}"),
        &[],
        b"",
    )
    .await;
    assert_eq!(r.code(), "DIGEST_INVALID");
    let r = call(
        &reg,
        Method::HEAD,
        &format!("/v2/a/blobs/{claimed}"),
        &[],
        b"",
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let k = keys(&s).await;
    assert!(
        !k.iter()
            .any(|k| k.starts_with("reg/blobs/") || k.starts_with("reg/uploads/")),
        "nothing visible or left over: {k:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_blob_altered_in_the_bucket_is_quarantined_not_served() {
    let Some(m) = moto().await else { return };
    let (reg, s) = registry(&m).await;
    let d = push_blob(&reg, "a", b"original bytes").await;
    // first read: verified (cached from the commit)
    let r = call(&reg, Method::GET, &format!("/v2/a/blobs/{d}"), &[], b"").await;
    assert_eq!(&r.body[..], b"original bytes");
    s.store()
        .put(&s.blob_key(&d), PutPayload::from_static(b"tampered bytes"))
        .await
        .unwrap();
    let r = call(&reg, Method::GET, &format!("/v2/a/blobs/{d}"), &[], b"").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(String::from_utf8_lossy(&r.body).contains("failed verification"));
    assert!(!String::from_utf8_lossy(&r.body).contains("tampered"));
    let k = keys(&s).await;
    assert!(
        !k.contains(&format!("reg/blobs/sha256/{}", d.hex())),
        "{k:?}"
    );
    assert!(
        k.iter()
            .any(|k| k.starts_with(&format!("reg/quarantine/sha256-{}-", d.hex()))),
        "{k:?}"
    );
    // pushing it again repairs the repository
    push_blob(&reg, "a", b"original bytes").await;
    let r = call(&reg, Method::GET, &format!("/v2/a/blobs/{d}"), &[], b"").await;
    assert_eq!(&r.body[..], b"original bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_tags_list_delete_catalog_and_garbage_collection() {
    let Some(m) = moto().await else { return };
    let (reg, s) = registry(&m).await;
    let c = push_blob(&reg, "x/y", b"{}").await;
    let l = push_blob(&reg, "x/y", b"layer").await;
    let orphan = push_blob(&reg, "x/y", b"orphan").await;
    let man = manifest(&c, 2, &[(&l, 5)]);
    for t in ["v1", "v2", "latest"] {
        let r = call(
            &reg,
            Method::PUT,
            &format!("/v2/x/y/manifests/{t}"),
            &[MT],
            &man,
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let r = call(&reg, Method::GET, "/v2/x/y/tags/list", &[], b"").await;
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["tags"], serde_json::json!(["latest", "v1", "v2"]));
    let r = call(&reg, Method::GET, "/v2/_catalog", &[], b"").await;
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["repositories"], serde_json::json!(["x/y"]));
    let r = call(&reg, Method::DELETE, "/v2/x/y/manifests/v2", &[], b"").await;
    assert!(r.status.is_success(), "{}", r.status);
    let r = call(&reg, Method::GET, "/v2/x/y/tags/list", &[], b"").await;
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["tags"], serde_json::json!(["latest", "v1"]));
    let r = call(&reg, Method::GET, "/v2/x/y/manifests/v2", &[], b"").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let g = reg.garbage_collect(Duration::ZERO).await.unwrap();
    assert_eq!(g.deleted_blobs, 1, "only the orphan: {g:?}");
    let k = keys(&s).await;
    assert!(
        !k.contains(&format!("reg/blobs/sha256/{}", orphan.hex())),
        "{k:?}"
    );
    for d in [&c, &l] {
        let r = call(&reg, Method::HEAD, &format!("/v2/x/y/blobs/{d}"), &[], b"").await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let r = call(&reg, Method::GET, "/v2/x/y/manifests/latest", &[], b"").await;
    assert_eq!((r.status, &r.body[..]), (StatusCode::OK, &man[..]));
}

#[test]
fn s3_config_is_validated_and_the_secret_never_printed() {
    let bad = |t: &str| {
        toml::from_str::<S3Config>(t)
            .map_err(|e| e.to_string())
            .and_then(|c| c.validate().map_err(|(f, m)| format!("{f}: {m}")))
            .unwrap_err()
    };
    let keys = "access_key_id = \"k\"\nsecret_access_key = \"s3cr3t\"\n";
    assert!(bad(&format!("bucket = \"\"\n{keys}")).contains("storage.s3.bucket"));
    assert!(bad(&format!(
        "bucket = \"b\"\nendpoint = \"http://127.0.0.1:1\"\n{keys}"
    ))
    .contains("allow_http"));
    assert!(bad(&format!("bucket = \"b\"\nendpoint = \"ftp://x\"\n{keys}")).contains("endpoint"));
    assert!(bad(&format!("bucket = \"b\"\nprefix = \"a/../b\"\n{keys}")).contains("prefix"));
    assert!(bad(&format!("bucket = \"b\"\nbogus = 1\n{keys}")).contains("unknown field"));
    let c: S3Config = toml::from_str(&format!("bucket = \"b\"\n{keys}")).unwrap();
    c.validate().unwrap();
    assert!(!format!("{c:?}").contains("s3cr3t"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_failed_chunk_rolls_back_and_an_upload_survives_a_restart() {
    let Some(m) = moto().await else { return };
    let loc = {
        let (reg, _) = registry(&m).await;
        let r = call(&reg, Method::POST, "/v2/a/blobs/uploads/", &[], b"").await;
        let loc = r.header("location").to_owned();
        let r = call(
            &reg,
            Method::PATCH,
            &loc,
            &[("content-range", "0-4")],
            b"01234",
        )
        .await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
        // a chunk shorter than it announced is refused and cut back off the stored parts
        let r = call(
            &reg,
            Method::PATCH,
            &loc,
            &[("content-range", "5-9"), ("content-length", "5")],
            b"567",
        )
        .await;
        assert!(r.status.is_client_error(), "{}", r.status);
        let r = call(&reg, Method::GET, &loc, &[], b"").await;
        assert_eq!(
            (r.status, r.header("range")),
            (StatusCode::NO_CONTENT, "0-4")
        );
        loc
    };
    // a new server process over the same bucket continues the session
    let (reg, s) = registry(&m).await;
    let r = call(&reg, Method::GET, &loc, &[], b"").await;
    assert_eq!(r.header("range"), "0-4");
    let r = call(
        &reg,
        Method::PATCH,
        &loc,
        &[("content-range", "5-9")],
        b"56789",
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let d = Digest::of(b"0123456789");
    let loc = r.header("location").to_owned();
    let sep = if loc.contains('?') { '&' } else { '?' };
    let r = call(
        &reg,
        Method::PUT,
        &format!("{loc}{sep}digest={d}"),
        &[],
        b"",
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = call(&reg, Method::GET, &format!("/v2/a/blobs/{d}"), &[], b"").await;
    assert_eq!(&r.body[..], b"0123456789");
    assert!(!keys(&s).await.iter().any(|k| k.starts_with("reg/uploads/")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_view_gives_gates_verified_content_only() {
    use palisade_registry::gate::RegistryView;
    use palisade_registry::name::RepositoryName;
    let Some(m) = moto().await else { return };
    let (reg, s) = registry(&m).await;
    let c = push_blob(&reg, "x", b"{}").await;
    let l = push_blob(&reg, "x", b"layer").await;
    let man = manifest(&c, 2, &[(&l, 5)]);
    let r = call(&reg, Method::PUT, "/v2/x/manifests/v1", &[MT], &man).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let view = s.view();
    let repo = RepositoryName::parse("x").unwrap();
    let other = RepositoryName::parse("other").unwrap();
    let (v, l2, s2) = (view.clone(), l.clone(), s.clone());
    // gates run on runtime workers and on blocking threads: both must work
    let (tag, blob, foreign, tampered) = tokio::spawn(async move {
        let tag = v.tag(&repo, "v1");
        let blob = v.blob(&repo, &l2, 1024);
        let foreign = v.blob(&other, &l2, 1024);
        s2.store()
            .put(&s2.blob_key(&l2), PutPayload::from_static(b"LAYER"))
            .await
            .unwrap();
        let tampered = tokio::task::spawn_blocking(move || v.blob(&repo, &l2, 1024))
            .await
            .unwrap();
        (tag, blob, foreign, tampered)
    })
    .await
    .unwrap();
    assert_eq!(tag, Some((Digest::of(&man), man.clone())));
    assert_eq!(blob.as_deref(), Some(&b"layer"[..]));
    assert_eq!(foreign, None, "not linked into that repository");
    assert_eq!(tampered, None, "altered content is never handed to a gate");
}

#[test]
fn s3_daemon_refuses_to_start_on_an_unreachable_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = dir.path().join("registry.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:0\"\n[storage]\nroot = \"{}\"\nbackend = \"s3\"\n\
             [storage.s3]\nbucket = \"palisade-test\"\nendpoint = \"http://127.0.0.1:{port}\"\n\
             allow_http = true\naccess_key_id = \"k\"\nsecret_access_key = \"do-not-print\"\n",
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let mut listening = false;
    let e = palisade_registry::daemon::run(&cfg, Default::default(), |_| listening = true)
        .unwrap_err()
        .to_string();
    assert!(!listening, "must fail before listening");
    assert!(e.contains("S3 storage (bucket palisade-test)"), "{e}");
    assert!(!e.contains("do-not-print"), "{e}");
}

/// One HTTP/1.1 request over a fresh connection: (status, body).
fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    extra: &str,
    body: &[u8],
) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&out[..split]).to_lowercase();
    let status = head[9..12].parse().unwrap();
    let mut body = out[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        let (mut plain, mut rest) = (Vec::new(), &body[..]);
        loop {
            let eol = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let n = usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap().trim(), 16)
                .unwrap();
            if n == 0 {
                break;
            }
            plain.extend_from_slice(&rest[eol + 2..eol + 2 + n]);
            rest = &rest[eol + 4 + n..];
        }
        body = plain;
    }
    (status, body)
}

#[test]
fn s3_daemon_serves_over_http_and_stops_on_sigterm() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(m) = rt.block_on(moto()) else { return };
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("registry.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:0\"\n[storage]\nroot = \"{}\"\nbackend = \"s3\"\n\
             [storage.s3]\nbucket = \"palisade-test\"\nendpoint = \"http://127.0.0.1:{}\"\n\
             allow_http = true\naccess_key_id = \"k\"\nsecret_access_key = \"s\"\nprefix = \"d\"\n",
            dir.path().join("state").display(),
            m.port
        ),
    )
    .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let daemon = std::thread::spawn(move || {
        palisade_registry::daemon::run(&cfg, Default::default(), move |a| {
            let _ = tx.send(a);
        })
    });
    let addr = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    // serving (and so past installing its signal handlers) once /v2/ answers
    let mut up = false;
    for _ in 0..100 {
        if std::net::TcpStream::connect(addr).is_ok() && http(addr, "GET", "/v2/", "", b"").0 == 200
        {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(up, "the daemon answers /v2/");
    let layer = pattern(200_000, 9);
    let (l, c) = (Digest::of(&layer), Digest::of(b"{}"));
    for (d, b) in [(&l, &layer[..]), (&c, &b"{}"[..])] {
        let (st, body) = http(
            addr,
            "POST",
            &format!("/v2/demo/blobs/uploads/?digest={d}"),
            "",
            b,
        );
        assert_eq!(st, 201, "{}", String::from_utf8_lossy(&body));
    }
    let man = manifest(&c, 2, &[(&l, layer.len())]);
    let ct = "Content-Type: application/vnd.oci.image.manifest.v1+json\r\n";
    assert_eq!(http(addr, "PUT", "/v2/demo/manifests/v1", ct, &man).0, 201);
    assert_eq!(
        http(addr, "GET", "/v2/demo/manifests/v1", "", b""),
        (200, man)
    );
    assert_eq!(
        http(addr, "GET", &format!("/v2/demo/blobs/{l}"), "", b""),
        (200, layer)
    );
    let keys = rt.block_on(async {
        let s = S3Storage::connect(&config(m.port)).await.unwrap();
        keys(&s).await
    });
    assert!(
        keys.contains(&format!("d/blobs/sha256/{}", l.hex())),
        "{keys:?}"
    );

    rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::TERM)
        .unwrap();
    daemon.join().unwrap().unwrap();
}
