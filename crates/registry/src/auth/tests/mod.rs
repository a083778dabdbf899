//! Cross-module tests: the authorization matrix, token and login flows, forgery attempts,
//! configuration validation, and a micro benchmark (a smoke run unless PALISADE_AUTH_BENCH is set).

mod bench;
mod config;
mod flows;
mod matrix;

use std::net::IpAddr;

use base64::Engine;

use super::config::TokenAlgorithm;
use super::password::{HashCost, Password};
use super::rule::RuleSpec;
use super::users::UserDb;
use super::{AuthConfig, AuthContext, AuthState, SigningKey};

pub(super) const SERVICE: &str = "registry.test";
pub(super) const REALM: &str = "https://registry.test/token";

/// Users, their roles, and whether they are disabled.
pub(super) const USERS: &[(&str, &[&str], bool)] = &[
    ("alice", &["team-a"], false),
    ("bob", &["team-b-reader"], false),
    ("root", &["admin"], false),
    ("carol", &[], false),
    ("dave", &["team-a", "team-b-reader"], false),
    ("pusher", &["ci-pusher"], false),
    ("eve", &["admin"], true),
];

/// The server shares the context across threads behind an `Arc`.
#[test]
fn context_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<AuthContext>();
    assert_send_sync::<AuthState>();
}

pub(super) fn password_of(user: &str) -> Password {
    Password::new(format!("{user}-password"))
}

pub(super) fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

pub(super) fn client() -> IpAddr {
    IpAddr::from([192, 0, 2, 10])
}

pub(super) fn config(with_tokens: bool) -> AuthConfig {
    let mut value = serde_json::json!({
        "realm": "palisade-test",
        "roles": {
            "team-a": { "rules": [{ "repositories": ["team-a/**"], "actions": ["pull", "push", "delete"] }] },
            "team-b-reader": { "rules": [{ "repositories": ["team-b/*"], "actions": ["pull"] }] },
            "admin": { "rules": [{ "repositories": ["**"], "actions": ["admin"] }] },
            "ci-pusher": { "rules": [{ "repositories": ["team-a/app"], "actions": ["push"] }] }
        },
        "anonymous": { "pull": ["public/**"] },
        "immutable_tags": [{ "repositories": ["**"], "tags": ["v*"] }],
        "login_rate_limit": { "burst": 5, "per_minute": 1 }
    });
    if with_tokens {
        value["token"] = serde_json::json!({
            "realm": REALM,
            "service": SERVICE,
            "issuer": "palisade-test",
            "key_file": "/nonexistent/unused-by-from-parts.pem",
            "algorithm": "es256"
        });
    }
    serde_json::from_value(value).unwrap_or_else(|e| panic!("test config: {e}"))
}

/// A context over an in-memory user database, plus the robot secrets.
pub(super) struct Fixture {
    pub(super) config: AuthConfig,
    pub(super) state: AuthState,
    pub(super) users: UserDb,
    pub(super) key_pem: String,
    pub(super) ctx: AuthContext,
    pub(super) robot_secret: Password,
    pub(super) expired_robot_secret: Password,
    _dir: tempfile::TempDir,
}

impl Fixture {
    pub(super) fn new(with_tokens: bool) -> Fixture {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("users.json");
        let mut users = UserDb::empty(&path).with_hash_cost(HashCost::INSECURE_FOR_TESTS);
        for (name, roles, disabled) in USERS {
            let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
            users
                .add_user(name, &password_of(name), &roles)
                .unwrap_or_else(|e| panic!("{e}"));
            users
                .set_disabled(name, *disabled)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let rule = RuleSpec {
            repositories: vec!["team-a/app".to_owned()],
            actions: vec!["pull".to_owned(), "push".to_owned()],
        }
        .to_rule()
        .unwrap_or_else(|e| panic!("{e}"));
        let now = super::clock::unix_now();
        let robot_secret = users
            .add_robot("ci", std::slice::from_ref(&rule), now + 3600, "team-a CI")
            .unwrap_or_else(|e| panic!("{e}"));
        let expired_robot_secret = users
            .add_robot("old", std::slice::from_ref(&rule), now + 3600, "expired")
            .unwrap_or_else(|e| panic!("{e}"));
        // Expire "old" by editing the file, as time would.
        users.save().unwrap_or_else(|e| panic!("{e}"));
        let mut json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}")))
                .unwrap_or_else(|e| panic!("{e}"));
        json["robots"]["old"]["expires_at"] = serde_json::json!(now - 1);
        std::fs::write(&path, serde_json::to_vec(&json).unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}"));
        let users = UserDb::load(&path)
            .unwrap_or_else(|e| panic!("{e}"))
            .with_hash_cost(HashCost::INSECURE_FOR_TESTS);

        let config = config(with_tokens);
        let state = AuthState::new(&config).unwrap_or_else(|e| panic!("{e}"));
        let key = SigningKey::generate(TokenAlgorithm::Es256);
        let key_pem = key
            .to_pkcs8_pem()
            .unwrap_or_else(|e| panic!("{e}"))
            .to_string();
        let ctx = AuthContext::from_parts(&config, &users, with_tokens.then_some(key), &state)
            .unwrap_or_else(|e| panic!("{e}"));
        Fixture {
            config,
            state,
            users,
            key_pem,
            ctx,
            robot_secret,
            expired_robot_secret,
            _dir: dir,
        }
    }

    /// A new context from the (possibly edited) users and config, same key and state: what a
    /// SIGHUP does.
    pub(super) fn reload(&self) -> AuthContext {
        let key = SigningKey::from_pkcs8_pem(&self.key_pem);
        AuthContext::from_parts(
            &self.config,
            &self.users,
            self.config.token.as_ref().and(key),
            &self.state,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// GET /token with Basic credentials (or anonymous) for `scopes`.
pub(super) fn get_token(
    ctx: &AuthContext,
    credentials: Option<(&str, &str)>,
    scopes: &[&str],
    offline: bool,
) -> Result<super::TokenGrant, super::TokenEndpointError> {
    let mut query: Vec<(String, String)> = vec![("service".into(), SERVICE.into())];
    query.extend(scopes.iter().map(|s| ("scope".to_owned(), (*s).to_owned())));
    if offline {
        query.push(("offline_token".into(), "true".into()));
    }
    let header = credentials.map(|(u, p)| basic(u, p));
    let request = super::TokenRequest::from_get(&query, header.as_deref())?;
    ctx.issue_token(&request, client())
}
