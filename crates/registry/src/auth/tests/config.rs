//! Configuration: the documented example parses, and every kind of mistake is refused with a
//! message that says where.

use serde::Deserialize;

use super::super::users::UserDb;
use super::super::{
    AuthConfig, AuthContext, AuthSetupError, AuthState, Authorizer, HashCost, Password,
    TokenAlgorithm,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    auth: AuthConfig,
}

fn parse(text: &str) -> Result<AuthConfig, String> {
    toml::from_str::<File>(text)
        .map(|f| f.auth)
        .map_err(|e| e.to_string())
}

/// The ```toml block of config.rs's module documentation.
fn documented_example() -> String {
    let source = include_str!("../config.rs");
    let mut lines = source
        .lines()
        .skip_while(|l| !l.starts_with("//! ```toml"))
        .skip(1)
        .take_while(|l| !l.starts_with("//! ```"));
    let mut text = String::new();
    for line in &mut lines {
        text.push_str(
            line.trim_start_matches("//!")
                .strip_prefix(' ')
                .unwrap_or(""),
        );
        text.push('\n');
    }
    text
}

#[test]
fn the_documented_example_is_valid() {
    let text = documented_example();
    assert!(text.contains("[auth.token]"), "example not found:\n{text}");
    let config = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    config.validate().unwrap_or_else(|e| panic!("{e}"));
    let authorizer = Authorizer::from_config(&config).unwrap_or_else(|e| panic!("{e}"));
    assert!(authorizer.has_role("team-a"));
    let token = config.token.unwrap_or_else(|| panic!("no token section"));
    assert_eq!(token.algorithm, TokenAlgorithm::Es256);
    assert_eq!(token.ttl_seconds, 300);
    assert_eq!(config.anonymous.pull, vec!["public/**".to_owned()]);
}

#[test]
fn defaults_are_secure() {
    let config = parse("[auth]\n").unwrap_or_else(|e| panic!("{e}"));
    assert!(
        config.anonymous.pull.is_empty(),
        "anonymous access is off by default"
    );
    assert!(config.token.is_none());
    assert_eq!(config.catalog, super::super::CatalogAccess::Admin);
    let authorizer = Authorizer::from_config(&config).unwrap_or_else(|e| panic!("{e}"));
    let anonymous = super::super::Principal::anonymous();
    assert!(authorizer
        .authorize(&anonymous, "library/busybox", super::super::Action::Pull)
        .is_err());
}

#[test]
fn unknown_fields_are_refused() {
    for (text, field) in [
        ("[auth]\nrealms = \"x\"\n", "realms"),
        ("[auth.anonymous]\npush = [\"**\"]\n", "push"),
        ("[auth.roles.a]\nrules = [{ repositories = [\"x\"], actions = [\"pull\"], extra = 1 }]\n", "extra"),
        ("[auth.token]\nrealm = \"r\"\nservice = \"s\"\nkey_file = \"k\"\nalg = \"es256\"\n", "alg"),
        ("[auth]\ncatalog = \"everyone\"\n", "everyone"),
        ("[auth.token]\nrealm = \"r\"\nservice = \"s\"\nkey_file = \"k\"\nalgorithm = \"hs256\"\n", "hs256"),
    ] {
        let error = parse(text).err().unwrap_or_else(|| panic!("accepted: {text}"));
        assert!(error.contains(field), "{error}");
    }
}

fn policy_error(text: &str) -> String {
    let config = parse(text).unwrap_or_else(|e| panic!("{e}"));
    Authorizer::from_config(&config)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_else(|| panic!("accepted: {text}"))
}

#[test]
fn semantic_errors_name_the_place() {
    assert_eq!(
        policy_error("[auth.roles.dev]\nrules = [{ repositories = [\"team-a//x\"], actions = [\"pull\"] }]\n"),
        "auth.roles.dev: rule 1: repository glob \"team-a//x\" has an empty segment"
    );
    assert_eq!(
        policy_error("[auth.roles.dev]\nrules = [{ repositories = [\"a\"], actions = [\"pull\"] }, { repositories = [\"b\"], actions = [\"fly\"] }]\n"),
        "auth.roles.dev: rule 2: unknown action \"fly\" (expected pull, push, delete or admin)"
    );
    assert_eq!(
        policy_error("[auth.roles.dev]\nrules = [{ repositories = [\"a\"], actions = [] }]\n"),
        "auth.roles.dev: rule 1: rule lists no actions"
    );
    assert!(policy_error("[auth.roles.Dev]\nrules = []\n").contains("invalid role name"));
    assert_eq!(
        policy_error("[auth]\ndefault_roles = [\"reader\"]\n[auth.roles.dev]\nrules = []\n"),
        "auth.default_roles: unknown role \"reader\" (defined roles: dev)"
    );
    assert!(policy_error("[auth.anonymous]\npull = [\"Public/*\"]\n")
        .starts_with("auth.anonymous.pull:"));
    assert!(
        policy_error("[[auth.immutable_tags]]\nrepositories = [\"**\"]\ntags = [\"v/1\"]\n")
            .starts_with("auth.immutable_tags[1]")
    );
    assert!(
        policy_error("[[auth.immutable_tags]]\nrepositories = []\ntags = [\"v*\"]\n")
            .contains("needs at least one")
    );
}

#[test]
fn token_and_limit_values_are_checked() {
    let base = "[auth.token]\nrealm = \"https://r/token\"\nservice = \"s\"\nkey_file = \"k.pem\"\n";
    for (extra, expected) in [
        ("ttl_seconds = 5\n", "auth.token.ttl_seconds"),
        (
            "refresh_ttl_seconds = 1\n",
            "auth.token.refresh_ttl_seconds",
        ),
        ("issuer = \"\"\n", "auth.token.issuer"),
    ] {
        let config = parse(&format!("{base}{extra}")).unwrap_or_else(|e| panic!("{e}"));
        let error = config
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_else(|| panic!("accepted {extra}"));
        assert!(error.starts_with(expected), "{error}");
    }
    let config =
        parse("[auth.token]\nrealm = \"https://r/\\\"x\"\nservice = \"s\"\nkey_file = \"k\"\n")
            .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        config.validate().is_err(),
        "quotes would break the challenge header"
    );
    let config = parse("[auth.login_rate_limit]\nburst = 0\n").unwrap_or_else(|e| panic!("{e}"));
    assert!(config.validate().is_err());
    let config =
        parse("[auth.credential_cache]\nttl_seconds = 3600\n").unwrap_or_else(|e| panic!("{e}"));
    assert!(config.validate().is_err());
}

#[test]
fn users_with_unknown_roles_are_refused_at_load() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("users.json");
    let mut users = UserDb::empty(&path).with_hash_cost(HashCost::INSECURE_FOR_TESTS);
    users
        .add_user(
            "alice",
            &Password::new("alice-password"),
            &["ghost".to_owned()],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    users.save().unwrap_or_else(|e| panic!("{e}"));
    let config = parse(&format!(
        "[auth]\nusers_file = {:?}\n[auth.roles.dev]\nrules = [{{ repositories = [\"a\"], actions = [\"pull\"] }}]\n",
        path
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let state = AuthState::new(&config).unwrap_or_else(|e| panic!("{e}"));
    let error = AuthContext::load(&config, &state)
        .err()
        .unwrap_or_else(|| panic!("accepted"));
    assert!(matches!(error, AuthSetupError::Config(_)));
    let message = error.to_string();
    assert!(
        message.contains("user \"alice\"") && message.contains("unknown role \"ghost\""),
        "{message}"
    );
}

#[test]
fn load_creates_the_key_and_reuses_it() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let key = dir.path().join("token-key.pem");
    let users = dir.path().join("users.json");
    UserDb::empty(&users)
        .save()
        .unwrap_or_else(|e| panic!("{e}"));
    let text = format!(
        "[auth]\nusers_file = {users:?}\n[auth.token]\nrealm = \"https://r/token\"\nservice = \"s\"\nkey_file = {key:?}\nalgorithm = \"eddsa\"\nrefresh_file = {:?}\n",
        dir.path().join("refresh.json")
    );
    let config = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    let state = AuthState::new(&config).unwrap_or_else(|e| panic!("{e}"));
    let first = AuthContext::load(&config, &state).unwrap_or_else(|e| panic!("{e}"));
    assert!(key.exists());
    let grant = {
        let request =
            super::super::TokenRequest::from_get(&[], None).unwrap_or_else(|e| panic!("{e}"));
        first
            .issue_token(&request, super::client())
            .unwrap_or_else(|e| panic!("{e}"))
    };
    // A reload reads the same key: earlier tokens still verify.
    let second = AuthContext::load(&config, &state).unwrap_or_else(|e| panic!("{e}"));
    let principal = second
        .authenticate(
            Some(&format!("Bearer {}", grant.response.token)),
            super::client(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(principal.identity.is_anonymous());
    // A missing users file is an error for the server.
    std::fs::remove_file(&users).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        AuthContext::load(&config, &state),
        Err(AuthSetupError::Users(_))
    ));
}
