//! Gates on pull: a test signature gate over the read-only view (signature tag and referrers),
//! the scan-on-push queue with a test scanner, and the 403 DENIED a failing gate produces.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use palisade_image::digest::Digest;
use palisade_registry::gate::{Gate, GateContext, GatePolicy, GateVerdict, RegistryView};
use palisade_registry::name::RepositoryName;
use palisade_registry::scan::{ScanGate, ScanQueue, ScanVerdict, Scanner, VerdictStore};
use palisade_registry::server::{Limits, Registry};
use palisade_registry::storage::fs::FsStorage;

type Reg = Registry<FsStorage>;

async fn call(reg: &Reg, method: Method, uri: &str, body: &[u8]) -> (StatusCode, Bytes) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(Full::new(Bytes::copy_from_slice(body)))
        .unwrap();
    let resp = reg.handle(req, IpAddr::from([127, 0, 0, 1])).await;
    let status = resp.status();
    (status, resp.into_body().collect().await.unwrap().to_bytes())
}

/// Allows a manifest when a signature exists for it, either as a cosign tag or as a referrer
/// of artifact type `application/vnd.test.sig` whose single layer blob reads "good".
struct TestSignatureGate;

impl Gate for TestSignatureGate {
    fn name(&self) -> &str {
        "signature"
    }
    fn check(&self, ctx: &GateContext<'_>) -> GateVerdict {
        if ctx.view.signature_tag(ctx.repository, ctx.digest).is_some() {
            return GateVerdict::Allow;
        }
        for r in ctx
            .view
            .referrers(ctx.repository, ctx.digest, Some("application/vnd.test.sig"))
        {
            let m = ctx
                .view
                .manifest(ctx.repository, &Digest::parse(&r.digest).unwrap())
                .unwrap();
            let v: serde_json::Value = serde_json::from_slice(&m).unwrap();
            let layer = Digest::parse(v["layers"][0]["digest"].as_str().unwrap()).unwrap();
            if ctx.view.blob(ctx.repository, &layer, 1024).as_deref() == Some(b"good") {
                return GateVerdict::Allow;
            }
        }
        GateVerdict::Deny {
            reason: "no valid signature".into(),
        }
    }
}

struct TestScanner;

impl Scanner for TestScanner {
    fn scan(
        &self,
        repo: &RepositoryName,
        d: &Digest,
        view: &dyn RegistryView,
    ) -> Result<ScanVerdict, String> {
        let m = view.manifest(repo, d).ok_or("manifest unreadable")?;
        let bad = String::from_utf8_lossy(&m).contains("vulnerable");
        Ok(ScanVerdict {
            passed: !bad,
            summary: if bad {
                "1 critical: CVE-TEST-1".into()
            } else {
                "clean".into()
            },
            scanner: "test".into(),
        })
    }
}

async fn blob(reg: &Reg, repo: &str, data: &[u8]) -> Digest {
    let d = Digest::of(data);
    let (s, _) = call(
        reg,
        Method::POST,
        &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
        data,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    d
}

fn image(config: &Digest, layer: Option<&Digest>, extra: serde_json::Value) -> Vec<u8> {
    let mut v = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.to_string(), "size": 2},
        "layers": layer.map(|l| vec![serde_json::json!({"mediaType": "application/octet-stream", "digest": l.to_string(), "size": 4})]).unwrap_or_default(),
    });
    if let serde_json::Value::Object(m) = extra {
        v.as_object_mut().unwrap().extend(m);
    }
    serde_json::to_vec(&v).unwrap()
}

#[tokio::test]
async fn signature_gate_denies_unsigned_pulls_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let storage = FsStorage::open(dir.path()).unwrap();
    let view = Arc::new(storage.view());
    let reg = Registry::new(storage, Limits::default()).with_view(view);
    let gates: Vec<Arc<dyn Gate>> = vec![Arc::new(TestSignatureGate)];
    let policy = GatePolicy::new(
        &[(vec!["prod/**".into()], vec!["signature".into()])],
        &gates,
        Duration::ZERO,
    )
    .unwrap();
    reg.set_gates(Arc::new(policy));

    let c = blob(&reg, "prod/app", b"{}").await;
    let m = image(&c, None, serde_json::json!({}));
    let md = Digest::of(&m);
    assert_eq!(
        call(&reg, Method::PUT, "/v2/prod/app/manifests/v1", &m)
            .await
            .0,
        StatusCode::CREATED
    );
    let (s, body) = call(&reg, Method::GET, "/v2/prod/app/manifests/v1", b"").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let e: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(e["errors"][0]["code"], "DENIED");
    assert!(e["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("signature gate: no valid signature"));
    assert_eq!(
        call(
            &reg,
            Method::HEAD,
            &format!("/v2/prod/app/manifests/{md}"),
            b""
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );

    // an ungated repository is unaffected
    let c2 = blob(&reg, "dev/app", b"{}").await;
    let m2 = image(&c2, None, serde_json::json!({}));
    call(&reg, Method::PUT, "/v2/dev/app/manifests/v1", &m2).await;
    assert_eq!(
        call(&reg, Method::GET, "/v2/dev/app/manifests/v1", b"")
            .await
            .0,
        StatusCode::OK
    );

    // a referrer signature with bad content does not help; a good one does
    for (content, expect) in [
        (&b"evil"[..], StatusCode::FORBIDDEN),
        (&b"good"[..], StatusCode::OK),
    ] {
        let l = blob(&reg, "prod/app", content).await;
        let sig = image(
            &c,
            Some(&l),
            serde_json::json!({
                "artifactType": "application/vnd.test.sig",
                "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md.to_string(), "size": m.len()}
            }),
        );
        let (s, _) = call(
            &reg,
            Method::PUT,
            &format!("/v2/prod/app/manifests/{}", Digest::of(&sig)),
            &sig,
        )
        .await;
        assert_eq!(s, StatusCode::CREATED);
        assert_eq!(
            call(&reg, Method::GET, "/v2/prod/app/manifests/v1", b"")
                .await
                .0,
            expect
        );
    }
}

#[tokio::test]
async fn scan_on_push_stores_verdicts_and_the_scan_gate_uses_them() {
    let dir = tempfile::tempdir().unwrap();
    let storage = FsStorage::open(dir.path()).unwrap();
    let view: Arc<dyn RegistryView> = Arc::new(storage.view());
    let store = VerdictStore::new(dir.path());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let queue = ScanQueue::start(
        Arc::new(TestScanner),
        Arc::clone(&view),
        store.clone(),
        Arc::new(move |_r: &RepositoryName, d: &Digest, _v: &ScanVerdict| {
            let _ = tx.send(d.clone());
        }),
    );
    let reg = Registry::new(storage, Limits::default())
        .with_view(view)
        .with_scan_queue(queue);
    let gates: Vec<Arc<dyn Gate>> = vec![Arc::new(ScanGate::new(store.clone()))];
    let policy = GatePolicy::new(
        &[(vec!["**".into()], vec!["scan".into()])],
        &gates,
        Duration::ZERO,
    )
    .unwrap();
    reg.set_gates(Arc::new(policy));

    let c = blob(&reg, "a", b"{}").await;
    for (tag, ann, expect) in [
        ("clean", "fine", StatusCode::OK),
        ("bad", "vulnerable", StatusCode::FORBIDDEN),
    ] {
        let m = image(&c, None, serde_json::json!({"annotations": {"note": ann}}));
        call(&reg, Method::PUT, &format!("/v2/a/manifests/{tag}"), &m).await;
        let scanned = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(scanned, Digest::of(&m));
        assert!(store.get(&scanned).is_some());
        let (s, body) = call(&reg, Method::GET, &format!("/v2/a/manifests/{tag}"), b"").await;
        assert_eq!(s, expect, "{}", String::from_utf8_lossy(&body));
        if expect == StatusCode::FORBIDDEN {
            assert!(String::from_utf8_lossy(&body).contains("CVE-TEST-1"));
        }
    }
    // not yet scanned: denied with a reason saying so
    let m = image(
        &c,
        None,
        serde_json::json!({"annotations": {"note": "new"}}),
    );
    std::fs::create_dir_all(dir.path().join("verdicts")).unwrap();
    let gate = ScanGate::new(VerdictStore::new(dir.path().join("elsewhere")));
    let d = Digest::of(&m);
    let v = gate.check(&GateContext {
        repository: &RepositoryName::parse("a").unwrap(),
        digest: &d,
        media_type: "x",
        manifest: &m,
        view: &*Arc::new(FsStorage::open(dir.path()).unwrap().view()),
    });
    assert!(matches!(v, GateVerdict::Deny { reason } if reason.contains("not scanned")));
}
