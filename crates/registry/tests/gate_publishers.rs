//! Gates protect consumers: a signed-in identity that may push to a gated repository reads
//! back what it pushed (to sign it), while readers and anonymous clients stay gated.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use palisade_image::digest::Digest;
use palisade_registry::auth::{AuthConfig, AuthContext, AuthState, HashCost, Password, UserDb};
use palisade_registry::gate::{Gate, GateContext, GatePolicy, GateVerdict};
use palisade_registry::server::access::AuthAccess;
use palisade_registry::server::{Limits, Registry};
use palisade_registry::storage::fs::FsStorage;

const CONFIG: &str = r#"
users_file = "/dev/null"
[roles.publisher]
rules = [{ repositories = ["prod/**"], actions = ["pull", "push"] }]
[roles.reader]
rules = [{ repositories = ["prod/**"], actions = ["pull"] }]
[anonymous]
pull = ["prod/**"]
"#;

/// Denies every manifest, like a signature gate before anything is signed.
#[derive(Debug)]
struct Unsigned;

impl Gate for Unsigned {
    fn name(&self) -> &str {
        "unsigned"
    }
    fn check(&self, _ctx: &GateContext<'_>) -> GateVerdict {
        GateVerdict::Deny {
            reason: "no signatures found".into(),
        }
    }
}

fn basic(user: &str) -> String {
    let raw = format!("{user}:{user}-password");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

async fn call(
    reg: &Registry<FsStorage>,
    method: Method,
    uri: &str,
    auth: Option<&str>,
    body: &[u8],
) -> (StatusCode, String) {
    let mut b = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/vnd.oci.image.manifest.v1+json");
    if let Some(auth) = auth {
        b = b.header("authorization", auth);
    }
    let resp = reg
        .handle(
            b.body(Full::new(Bytes::copy_from_slice(body))).unwrap(),
            IpAddr::from([127, 0, 0, 1]),
        )
        .await;
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn publishers_read_back_what_they_pushed_and_consumers_stay_gated() {
    let dir = tempfile::tempdir().unwrap();
    let config: AuthConfig = toml::from_str(CONFIG).unwrap();
    let mut db =
        UserDb::empty(dir.path().join("users.json")).with_hash_cost(HashCost::INSECURE_FOR_TESTS);
    for user in ["publisher", "reader"] {
        db.add_user(
            user,
            &Password::new(format!("{user}-password")),
            &[user.to_owned()],
        )
        .unwrap();
    }
    let state = AuthState::new(&config).unwrap();
    let ctx = AuthContext::from_parts(&config, &db, None, &state).unwrap();
    let storage = FsStorage::open(dir.path().join("data")).unwrap();
    let view: Arc<dyn palisade_registry::gate::RegistryView> = Arc::new(storage.view());
    let reg = Registry::new(storage, Limits::default()).with_view(view);
    reg.set_access(Arc::new(AuthAccess::new(Arc::new(ctx))));
    let gate: Arc<dyn Gate> = Arc::new(Unsigned);
    let policy = GatePolicy::new(
        &[(vec!["prod/**".into()], vec!["unsigned".into()])],
        &[gate],
        Duration::from_secs(60),
    )
    .unwrap();
    reg.set_gates(Arc::new(policy));

    let publisher = basic("publisher");
    let config_blob = b"{}";
    let cd = Digest::of(config_blob);
    let (s, _) = call(
        &reg,
        Method::POST,
        &format!("/v2/prod/app/blobs/uploads/?digest={cd}"),
        Some(&publisher),
        config_blob,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd.to_string(), "size": 2},
        "layers": [],
    }))
    .unwrap();
    let (s, _) = call(
        &reg,
        Method::PUT,
        "/v2/prod/app/manifests/1",
        Some(&publisher),
        &manifest,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);

    // The publisher reads it back (by tag and by digest), as `palisade sign` must.
    let md = Digest::of(&manifest);
    for reference in ["1".to_owned(), md.to_string()] {
        let uri = format!("/v2/prod/app/manifests/{reference}");
        let (s, body) = call(&reg, Method::GET, &uri, Some(&publisher), b"").await;
        assert_eq!(s, StatusCode::OK, "{body}");
    }
    // A reader and an anonymous client are refused by the gate, with its reason.
    for auth in [Some(basic("reader")), None] {
        let (s, body) = call(
            &reg,
            Method::GET,
            "/v2/prod/app/manifests/1",
            auth.as_deref(),
            b"",
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
        assert!(
            body.contains("DENIED") && body.contains("no signatures found"),
            "{body}"
        );
    }
}
