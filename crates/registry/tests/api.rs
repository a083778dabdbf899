//! The distribution API end to end through `Registry::handle` (no network): pushes, pulls and
//! the bad inputs a registry must refuse without losing or corrupting anything.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use http::{Method, StatusCode};
use palisade_image::digest::Digest;
use palisade_registry::server::{Limits, Registry};
use palisade_registry::storage::fs::FsStorage;

mod support;
use support::{call, manifest, push_blob, MT};

type Reg = Registry<FsStorage>;

fn registry(root: &std::path::Path) -> Reg {
    Registry::new(
        FsStorage::open(root).unwrap(),
        Limits {
            max_manifest_bytes: 64 * 1024,
            ..Limits::default()
        },
    )
}

#[tokio::test]
async fn push_pull_roundtrip_with_ranges_and_sha512() {
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(dir.path());
    let layer = vec![7u8; 100_000];
    let l = push_blob(&reg, "team-a/app", &layer).await;
    let c = push_blob(&reg, "team-a/app", b"{}").await;
    let m = manifest(&c, 2, &[(&l, layer.len())]);
    let r = call(&reg, Method::PUT, "/v2/team-a/app/manifests/v1", &[MT], &m).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(
        r.header("docker-content-digest"),
        Digest::of(&m).to_string()
    );

    let r = call(&reg, Method::GET, "/v2/team-a/app/manifests/v1", &[], b"").await;
    assert_eq!((r.status, &r.body[..]), (StatusCode::OK, &m[..]));
    assert_eq!(r.header("content-type"), MT.1);
    let r = call(
        &reg,
        Method::GET,
        &format!("/v2/team-a/app/blobs/{l}"),
        &[],
        b"",
    )
    .await;
    assert_eq!(&r.body[..], &layer[..]);
    let r = call(
        &reg,
        Method::GET,
        &format!("/v2/team-a/app/blobs/{l}"),
        &[("range", "bytes=10-19")],
        b"",
    )
    .await;
    assert_eq!((r.status, r.body.len()), (StatusCode::PARTIAL_CONTENT, 10));
    assert_eq!(r.header("content-range"), "bytes 10-19/100000");
    let r = call(
        &reg,
        Method::GET,
        &format!("/v2/team-a/app/blobs/{l}"),
        &[("range", "bytes=200000-")],
        b"",
    )
    .await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    // another repository does not see the blob
    let r = call(
        &reg,
        Method::HEAD,
        &format!("/v2/team-b/app/blobs/{l}"),
        &[],
        b"",
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let d512 = Digest::of_with(palisade_image::digest::DigestAlgorithm::Sha512, b"five12");
    let r = call(
        &reg,
        Method::POST,
        &format!("/v2/team-a/app/blobs/uploads/?digest={d512}"),
        &[],
        b"five12",
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = call(
        &reg,
        Method::GET,
        &format!("/v2/team-a/app/blobs/{d512}"),
        &[],
        b"",
    )
    .await;
    assert_eq!(&r.body[..], b"five12");
}

#[tokio::test]
async fn chunked_upload_refuses_out_of_order_and_keeps_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(dir.path());
    let r = call(&reg, Method::POST, "/v2/a/blobs/uploads/", &[], b"").await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let loc = r.header("location").to_owned();
    let r = call(
        &reg,
        Method::PATCH,
        &loc,
        &[("content-range", "5-9")],
        b"56789",
    )
    .await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    let r = call(
        &reg,
        Method::PATCH,
        &loc,
        &[("content-range", "0-4")],
        b"01234",
    )
    .await;
    assert_eq!((r.status, r.header("range")), (StatusCode::ACCEPTED, "0-4"));
    // a chunk whose length disagrees with its range is refused and rolled back
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
    let r = call(&reg, Method::PUT, &format!("{loc}?digest={d}"), &[], b"").await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = call(&reg, Method::GET, &format!("/v2/a/blobs/{d}"), &[], b"").await;
    assert_eq!(&r.body[..], b"0123456789");
}

#[tokio::test]
async fn wrong_digest_is_refused_and_nothing_becomes_visible() {
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(dir.path());
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
    let r = call(
        &reg,
        Method::HEAD,
        &format!("/v2/a/blobs/{claimed}"),
        &[],
        b"",
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        std::fs::read_dir(dir.path().join("blobs")).unwrap().count(),
        0
    );
    // a monolithic upload shorter than its Content-Length is refused too
    let d = Digest::of(b"abc");
    let r = call(
        &reg,
        Method::POST,
        &format!("/v2/a/blobs/uploads/?digest={d}"),
        &[("content-length", "10")],
        b"abc",
    )
    .await;
    assert!(r.status.is_client_error());
    let r = call(&reg, Method::HEAD, &format!("/v2/a/blobs/{d}"), &[], b"").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_manifests_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(dir.path());
    let c = push_blob(&reg, "a", b"{}").await;
    let missing = Digest::of(b"never pushed");
    let m = manifest(&c, 2, &[(&missing, 12)]);
    let r = call(&reg, Method::PUT, "/v2/a/manifests/v1", &[MT], &m).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "MANIFEST_BLOB_UNKNOWN")
    );
    let big = vec![b' '; 65 * 1024];
    let r = call(&reg, Method::PUT, "/v2/a/manifests/v1", &[MT], &big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    let r = call(&reg, Method::PUT, "/v2/a/manifests/v1", &[MT], b"{not json").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "MANIFEST_INVALID")
    );
    let good = manifest(&c, 2, &[]);
    let r = call(
        &reg,
        Method::PUT,
        &format!("/v2/a/manifests/{}", Digest::of(b"x")),
        &[MT],
        &good,
    )
    .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
    );
    let r = call(&reg, Method::GET, "/v2/a/manifests/v1", &[], b"").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn malformed_names_references_and_digests_are_4xx() {
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(dir.path());
    for (m, uri) in [
        (Method::GET, "/v2/UPPER/manifests/latest"),
        (Method::GET, "/v2/a/../b/manifests/latest"),
        (Method::GET, "/v2/a/manifests/sha256:zz"),
        (Method::GET, "/v2/a/blobs/sha256:1234"),
        (Method::GET, "/v2/a/blobs/md5:abcd"),
        (Method::GET, "/v2/a/referrers/nope"),
        (Method::PUT, "/v2/a/manifests/-bad-"),
        (Method::PATCH, "/v2/a/blobs/uploads/..%2F..%2Fetc"),
        (Method::GET, "/v2/a/tags/list?n=-1"),
        (Method::GET, "/v2/%ff/tags/list"),
        (Method::POST, "/v2/a/blobs/uploads/?digest=sha256:short"),
    ] {
        let r = call(&reg, m.clone(), uri, &[], b"").await;
        assert!(r.status.is_client_error(), "{m} {uri}: {}", r.status);
        assert!(!r.code().is_empty(), "{m} {uri}: no spec error body");
    }
}

#[tokio::test]
async fn a_blob_altered_on_disk_is_reported_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(dir.path());
    let d = push_blob(&reg, "a", b"original bytes").await;
    let path = dir
        .path()
        .join("blobs/sha256")
        .join(&d.hex()[..2])
        .join(d.hex());
    std::fs::write(&path, b"tampered bytes").unwrap();
    let r = call(&reg, Method::GET, &format!("/v2/a/blobs/{d}"), &[], b"").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(String::from_utf8_lossy(&r.body).contains("failed verification"));
    assert!(!path.exists(), "the corrupt blob is quarantined");
    // pushing it again repairs the repository
    push_blob(&reg, "a", b"original bytes").await;
    let r = call(&reg, Method::GET, &format!("/v2/a/blobs/{d}"), &[], b"").await;
    assert_eq!(&r.body[..], b"original bytes");
}

#[tokio::test]
async fn an_upload_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let loc = {
        let reg = registry(dir.path());
        let r = call(&reg, Method::POST, "/v2/a/blobs/uploads/", &[], b"").await;
        let loc = r.header("location").to_owned();
        call(
            &reg,
            Method::PATCH,
            &loc,
            &[("content-range", "0-2")],
            b"abc",
        )
        .await;
        loc
    }; // the process "dies" here: the in-memory session and running hash are gone
    let reg = registry(dir.path());
    let r = call(&reg, Method::GET, &loc, &[], b"").await;
    assert_eq!(
        (r.status, r.header("range")),
        (StatusCode::NO_CONTENT, "0-2")
    );
    let r = call(
        &reg,
        Method::PATCH,
        &loc,
        &[("content-range", "3-5")],
        b"def",
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let d = Digest::of(b"abcdef");
    let r = call(&reg, Method::PUT, &format!("{loc}?digest={d}"), &[], b"").await;
    assert_eq!(r.status, StatusCode::CREATED);
}

#[tokio::test]
async fn concurrent_pushes_of_one_tag_leave_one_valid_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Arc::new(registry(dir.path()));
    let c = push_blob(&reg, "a", b"{}").await;
    let mut tasks = Vec::new();
    let mut expected = Vec::new();
    for i in 0..16 {
        let l = push_blob(&reg, "a", format!("layer {i}").as_bytes()).await;
        let m = manifest(&c, 2, &[(&l, 7)]);
        expected.push(m.clone());
        let reg = Arc::clone(&reg);
        tasks.push(tokio::spawn(async move {
            call(&reg, Method::PUT, "/v2/a/manifests/latest", &[MT], &m)
                .await
                .status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::CREATED);
    }
    let r = call(&reg, Method::GET, "/v2/a/manifests/latest", &[], b"").await;
    assert!(expected.iter().any(|m| m[..] == r.body[..]));
    let r = call(&reg, Method::GET, "/v2/a/tags/list", &[], b"").await;
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["tags"], serde_json::json!(["latest"]));
}

#[tokio::test]
async fn tags_pagination_and_referrers() {
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(dir.path());
    let c = push_blob(&reg, "a", b"{}").await;
    let m = manifest(&c, 2, &[]);
    for t in ["d", "a", "c", "b"] {
        call(
            &reg,
            Method::PUT,
            &format!("/v2/a/manifests/{t}"),
            &[MT],
            &m,
        )
        .await;
    }
    let r = call(&reg, Method::GET, "/v2/a/tags/list?n=2", &[], b"").await;
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["tags"], serde_json::json!(["a", "b"]));
    assert_eq!(
        r.header("link"),
        "</v2/a/tags/list?n=2&last=b>; rel=\"next\""
    );
    let r = call(&reg, Method::GET, "/v2/a/tags/list?n=2&last=b", &[], b"").await;
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["tags"], serde_json::json!(["c", "d"]));
    assert_eq!(r.header("link"), "");

    let subject = Digest::of(&m);
    let sig = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.example.sig",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": c.to_string(), "size": 2},
        "layers": [],
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject.to_string(), "size": m.len()},
    }))
    .unwrap();
    let r = call(
        &reg,
        Method::PUT,
        &format!("/v2/a/manifests/{}", Digest::of(&sig)),
        &[MT],
        &sig,
    )
    .await;
    assert_eq!(r.header("oci-subject"), subject.to_string());
    for (q, n) in [
        ("", 1),
        ("?artifactType=application/vnd.example.sig", 1),
        ("?artifactType=other", 0),
    ] {
        let r = call(
            &reg,
            Method::GET,
            &format!("/v2/a/referrers/{subject}{q}"),
            &[],
            b"",
        )
        .await;
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["manifests"].as_array().unwrap().len(), n, "{q}");
    }
    // deleting the referrer removes it from the list
    call(
        &reg,
        Method::DELETE,
        &format!("/v2/a/manifests/{}", Digest::of(&sig)),
        &[],
        b"",
    )
    .await;
    let r = call(
        &reg,
        Method::GET,
        &format!("/v2/a/referrers/{subject}"),
        &[],
        b"",
    )
    .await;
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["manifests"], serde_json::json!([]));
}

#[tokio::test]
async fn garbage_collection_keeps_referenced_content_and_is_safe_with_concurrent_pushes() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Arc::new(registry(dir.path()));
    let c = push_blob(&reg, "x", b"{}").await;
    let l = push_blob(&reg, "x", b"layer").await;
    let orphan = push_blob(&reg, "x", b"orphan").await;
    let m = manifest(&c, 2, &[(&l, 5)]);
    call(&reg, Method::PUT, "/v2/x/manifests/v1", &[MT], &m).await;

    let r = reg
        .garbage_collect(std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(r.deleted_blobs, 1, "{r:?}");
    for (d, status) in [
        (&c, StatusCode::OK),
        (&l, StatusCode::OK),
        (&orphan, StatusCode::NOT_FOUND),
    ] {
        assert_eq!(
            call(&reg, Method::HEAD, &format!("/v2/x/blobs/{d}"), &[], b"")
                .await
                .status,
            status
        );
    }
    call(
        &reg,
        Method::DELETE,
        &format!("/v2/x/manifests/{}", Digest::of(&m)),
        &[],
        b"",
    )
    .await;
    let r = reg
        .garbage_collect(std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(r.deleted_blobs, 3, "config, layer and manifest: {r:?}");

    // pushes running while collections run (with a grace period, as configured in practice)
    let mut tasks = Vec::new();
    for i in 0..12 {
        let reg = Arc::clone(&reg);
        tasks.push(tokio::spawn(async move {
            let l = push_blob(&reg, "y", format!("layer {i}").as_bytes()).await;
            let c = push_blob(&reg, "y", b"{}").await;
            let m = manifest(&c, 2, &[(&l, 7)]);
            let r = call(
                &reg,
                Method::PUT,
                &format!("/v2/y/manifests/t{i}"),
                &[MT],
                &m,
            )
            .await;
            assert_eq!(r.status, StatusCode::CREATED);
        }));
    }
    for _ in 0..5 {
        reg.garbage_collect(std::time::Duration::from_secs(60))
            .await
            .unwrap();
        tokio::task::yield_now().await;
    }
    for t in tasks {
        t.await.unwrap();
    }
    reg.garbage_collect(std::time::Duration::ZERO)
        .await
        .unwrap();
    for i in 0..12 {
        let r = call(
            &reg,
            Method::GET,
            &format!("/v2/y/manifests/t{i}"),
            &[],
            b"",
        )
        .await;
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        let layer = v["layers"][0]["digest"].as_str().unwrap();
        let r = call(&reg, Method::GET, &format!("/v2/y/blobs/{layer}"), &[], b"").await;
        assert_eq!(&r.body[..], format!("layer {i}").as_bytes());
    }
}

#[tokio::test]
async fn namespace_quota_is_a_clear_4xx_and_repository_deletion_works() {
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(dir.path()).with_quotas([("q".to_owned(), 100u64)].into_iter().collect());
    push_blob(&reg, "q/a", &[1u8; 60]).await;
    let big = [2u8; 60];
    let d = Digest::of(&big);
    let r = call(
        &reg,
        Method::POST,
        &format!("/v2/q/b/blobs/uploads/?digest={d}"),
        &[],
        &big,
    )
    .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::FORBIDDEN, "DENIED")
    );
    assert!(String::from_utf8_lossy(&r.body).contains("quota exceeded for namespace q"));
    assert_eq!(
        call(&reg, Method::HEAD, &format!("/v2/q/b/blobs/{d}"), &[], b"")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // other namespaces are unaffected
    push_blob(&reg, "other/a", &big).await;

    let c = push_blob(&reg, "q/a", b"{}").await;
    let r = call(
        &reg,
        Method::PUT,
        "/v2/q/a/manifests/v1",
        &[MT],
        &manifest(&c, 2, &[]),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "the manifest does not fit the quota either"
    );
    let r = call(
        &reg,
        Method::DELETE,
        "/v2/_palisade/repositories/q/a",
        &[],
        b"",
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::ACCEPTED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(
        call(&reg, Method::HEAD, &format!("/v2/q/a/blobs/{c}"), &[], b"")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(
            &reg,
            Method::DELETE,
            "/v2/_palisade/repositories/q/a",
            &[],
            b""
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    // the space is free again once collected
    reg.garbage_collect(std::time::Duration::ZERO)
        .await
        .unwrap();
    let r = call(
        &reg,
        Method::POST,
        &format!("/v2/q/b/blobs/uploads/?digest={d}"),
        &[],
        &big,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
}

#[tokio::test]
async fn metrics_count_requests() {
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(dir.path()).with_metrics(true);
    call(&reg, Method::GET, "/v2/", &[], b"").await;
    call(&reg, Method::GET, "/v2/nope/manifests/x", &[], b"").await;
    let r = call(&reg, Method::GET, "/metrics", &[], b"").await;
    let text = String::from_utf8_lossy(&r.body);
    assert!(
        text.contains("palisade_registry_requests_total{method=\"GET\",code=\"200\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("palisade_registry_requests_total{method=\"GET\",code=\"404\"} 1"),
        "{text}"
    );
}
