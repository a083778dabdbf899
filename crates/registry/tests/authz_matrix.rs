//! The authorization matrix: every identity (users with different roles, a robot, anonymous,
//! a wrong password) × every repository × every action, through the HTTP layer with the auth
//! library, against an independent table of what each may do. No request gets more.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use palisade_image::digest::Digest;
use palisade_registry::auth::{
    AuthConfig, AuthContext, AuthState, HashCost, Password, RuleSpec, UserDb,
};
use palisade_registry::server::access::AuthAccess;
use palisade_registry::server::{Limits, Registry};
use palisade_registry::storage::fs::FsStorage;

const CONFIG: &str = r#"
users_file = "/dev/null"
catalog = "authenticated"
[roles.admin]
rules = [{ repositories = ["**"], actions = ["admin"] }]
[roles.team-a-rw]
rules = [{ repositories = ["team-a/**"], actions = ["pull", "push", "delete"] }]
[roles.team-a-ro]
rules = [{ repositories = ["team-a/**"], actions = ["pull"] }]
[roles.team-b-push]
rules = [{ repositories = ["team-b/*"], actions = ["push"] }]
[anonymous]
pull = ["public/**"]
[[immutable_tags]]
repositories = ["**"]
tags = ["v*"]
"#;

const REPOS: [&str; 4] = ["team-a/app", "team-b/app", "public/lib", "team-ab/app"];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Act {
    Pull,
    Push,
    Delete,
}

/// The expected policy, written independently of the implementation.
fn expected(who: &str, repo: &str, act: Act) -> bool {
    let team_a = repo.starts_with("team-a/");
    // what anonymous clients may do, every signed-in user and robot may do too
    let public_pull = repo.starts_with("public/") && act == Act::Pull;
    if public_pull && matches!(who, "alice" | "bob" | "carol" | "robot$ci") {
        return true;
    }
    match who {
        "admin" => true,
        "alice" => team_a,
        "bob" => team_a && act == Act::Pull,
        "carol" => repo.starts_with("team-b/") && act == Act::Push,
        "robot$ci" => repo == "team-a/app" && matches!(act, Act::Pull | Act::Push),
        "anonymous" => repo.starts_with("public/") && act == Act::Pull,
        _ => false, // wrong password
    }
}

fn basic(user: &str, pw: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
    )
}

async fn call(
    reg: &Registry<FsStorage>,
    m: Method,
    uri: &str,
    auth: Option<&str>,
    body: &[u8],
) -> (StatusCode, Bytes) {
    call_from(reg, IpAddr::from([127, 0, 0, 1]), m, uri, auth, body).await
}

async fn call_from(
    reg: &Registry<FsStorage>,
    client: IpAddr,
    m: Method,
    uri: &str,
    auth: Option<&str>,
    body: &[u8],
) -> (StatusCode, Bytes) {
    let mut b = Request::builder()
        .method(m)
        .uri(uri)
        .header("content-type", "application/vnd.oci.image.manifest.v1+json");
    if let Some(a) = auth {
        b = b.header("authorization", a);
    }
    let resp = reg
        .handle(
            b.body(Full::new(Bytes::copy_from_slice(body))).unwrap(),
            client,
        )
        .await;
    let s = resp.status();
    (s, resp.into_body().collect().await.unwrap().to_bytes())
}

fn manifest(config: &Digest, note: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.to_string(), "size": 2},
        "layers": [], "annotations": {"note": note},
    }))
    .unwrap()
}

#[tokio::test]
async fn no_identity_gets_more_than_its_rules() {
    let dir = tempfile::tempdir().unwrap();
    let config: AuthConfig = toml::from_str(CONFIG).unwrap();
    let mut db =
        UserDb::empty(dir.path().join("users.json")).with_hash_cost(HashCost::INSECURE_FOR_TESTS);
    for (u, role) in [
        ("admin", "admin"),
        ("alice", "team-a-rw"),
        ("bob", "team-a-ro"),
        ("carol", "team-b-push"),
    ] {
        db.add_user(
            u,
            &Password::new(format!("{u}-password")),
            &[role.to_owned()],
        )
        .unwrap();
    }
    let rule = RuleSpec {
        repositories: vec!["team-a/app".into()],
        actions: vec!["pull".into(), "push".into()],
    }
    .to_rule()
    .unwrap();
    let robot_token = db.add_robot("ci", &[rule], u64::MAX / 2, "ci").unwrap();
    let state = AuthState::new(&config).unwrap();
    let ctx = AuthContext::from_parts(&config, &db, None, &state).unwrap();
    let reg = Registry::new(
        FsStorage::open(dir.path().join("data")).unwrap(),
        Limits::default(),
    );
    reg.set_access(Arc::new(AuthAccess::new(Arc::new(ctx))));

    let admin = basic("admin", "admin-password");
    let config_blob = b"{}";
    let cd = Digest::of(config_blob);
    for repo in REPOS {
        let (s, _) = call(
            &reg,
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={cd}"),
            Some(&admin),
            config_blob,
        )
        .await;
        assert_eq!(s, StatusCode::CREATED);
        let (s, _) = call(
            &reg,
            Method::PUT,
            &format!("/v2/{repo}/manifests/latest"),
            Some(&admin),
            &manifest(&cd, "base"),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED);
    }

    let identities: Vec<(&str, Option<String>)> = vec![
        ("admin", Some(admin.clone())),
        ("alice", Some(basic("alice", "alice-password"))),
        ("bob", Some(basic("bob", "bob-password"))),
        ("carol", Some(basic("carol", "carol-password"))),
        ("robot$ci", Some(basic("robot$ci", robot_token.expose()))),
        ("anonymous", None),
        ("mallory", Some(basic("alice", "not-alices-password"))),
    ];
    let mut checked = 0;
    let mut rate_limited = 0;
    for (who, auth) in &identities {
        for repo in REPOS {
            for act in [Act::Pull, Act::Push, Act::Delete] {
                let probes: Vec<(Method, String, Vec<u8>)> = match act {
                    Act::Pull => vec![
                        (Method::GET, format!("/v2/{repo}/manifests/latest"), vec![]),
                        (Method::HEAD, format!("/v2/{repo}/blobs/{cd}"), vec![]),
                        (Method::GET, format!("/v2/{repo}/tags/list"), vec![]),
                        (Method::GET, format!("/v2/{repo}/referrers/{cd}"), vec![]),
                    ],
                    Act::Push => vec![
                        (Method::POST, format!("/v2/{repo}/blobs/uploads/"), vec![]),
                        (
                            Method::PUT,
                            format!("/v2/{repo}/manifests/by-{}", who.replace('$', "-")),
                            manifest(&cd, who),
                        ),
                    ],
                    Act::Delete => vec![
                        (
                            Method::DELETE,
                            format!("/v2/{repo}/blobs/{}", Digest::of(b"absent")),
                            vec![],
                        ),
                        (
                            Method::DELETE,
                            format!("/v2/{repo}/manifests/no-such-tag"),
                            vec![],
                        ),
                    ],
                };
                for (m, uri, body) in probes {
                    // the wrong-password client gets its own address: it ends up rate-limited
                    let client = if *who == "mallory" {
                        IpAddr::from([10, 0, 0, 66])
                    } else {
                        IpAddr::from([127, 0, 0, 1])
                    };
                    let (s, b) =
                        call_from(&reg, client, m.clone(), &uri, auth.as_deref(), &body).await;
                    // 429: the wrong password is rate-limited after a burst of failures
                    let refused = matches!(
                        s,
                        StatusCode::UNAUTHORIZED
                            | StatusCode::FORBIDDEN
                            | StatusCode::TOO_MANY_REQUESTS
                    );
                    if s == StatusCode::TOO_MANY_REQUESTS {
                        rate_limited += 1;
                    }
                    assert_eq!(
                        !refused,
                        expected(who, repo, act),
                        "{who} {act:?} {m} {uri}: {s} {}",
                        String::from_utf8_lossy(&b)
                    );
                    if !refused {
                        assert!(
                            s.is_success() || s == StatusCode::NOT_FOUND,
                            "{who} {m} {uri}: {s}"
                        );
                    }
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, identities.len() * REPOS.len() * 8);
    assert!(
        rate_limited > 0,
        "repeated wrong passwords were never rate-limited"
    );

    // a mount from a repository the client may not pull is not a mount (falls back to 202)
    let alice = basic("alice", "alice-password");
    let (s, _) = call(
        &reg,
        Method::POST,
        &format!("/v2/team-a/app/blobs/uploads/?mount={cd}&from=team-b/app"),
        Some(&alice),
        b"",
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let (s, _) = call(
        &reg,
        Method::POST,
        &format!("/v2/team-a/app/blobs/uploads/?mount={cd}&from=team-a/app"),
        Some(&alice),
        b"",
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);

    // the catalog lists only what the client may pull; anonymous gets none
    let (s, b) = call(
        &reg,
        Method::GET,
        "/v2/_catalog",
        Some(&basic("bob", "bob-password")),
        b"",
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(
        v["repositories"],
        serde_json::json!(["public/lib", "team-a/app"])
    );
    let (s, _) = call(&reg, Method::GET, "/v2/_catalog", None, b"").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // immutable tags: pushed once, never moved or deleted, even by admin
    let (s, _) = call(
        &reg,
        Method::PUT,
        "/v2/team-a/app/manifests/v1",
        Some(&alice),
        &manifest(&cd, "one"),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = call(
        &reg,
        Method::PUT,
        "/v2/team-a/app/manifests/v1",
        Some(&alice),
        &manifest(&cd, "one"),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::CREATED,
        "re-pushing identical content is not a move"
    );
    let (s, _) = call(
        &reg,
        Method::PUT,
        "/v2/team-a/app/manifests/v1",
        Some(&admin),
        &manifest(&cd, "two"),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = call(
        &reg,
        Method::DELETE,
        "/v2/team-a/app/manifests/v1",
        Some(&admin),
        b"",
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // 401s carry a challenge
    let req = Request::builder()
        .uri("/v2/team-a/app/tags/list")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = reg.handle(req, IpAddr::from([127, 0, 0, 1])).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp
        .headers()
        .get("www-authenticate")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("Basic realm="));
}
