//! Login, token, refresh, robot, reload and forgery flows through [`AuthContext`].

use std::net::IpAddr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::super::token::TokenError;
use super::super::{
    Action, ActionSet, AuthError, AuthMethod, Identity, LoginFailure, Password, Principal, Scope,
    TokenEndpointError, TokenRequest,
};
use super::{basic, client, get_token, Fixture, REALM, SERVICE};

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn pull_push() -> ActionSet {
    ActionSet::of(Action::Pull).with(Action::Push)
}

#[test]
fn basic_login_outcomes() {
    let f = Fixture::new(false);
    let p = f
        .ctx
        .authenticate(Some(&basic("alice", "alice-password")), client())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.method, AuthMethod::Password);
    assert_eq!(p.identity.subject().as_deref(), Some("alice"));
    let fail = |user: &str, pw: &str| {
        f.ctx
            .authenticate(Some(&basic(user, pw)), IpAddr::from([10, 0, 0, 1]))
            .err()
    };
    assert!(matches!(
        fail("alice", "wrong"),
        Some(AuthError::InvalidCredentials {
            failure: LoginFailure::WrongSecret,
            ..
        })
    ));
    assert!(matches!(
        fail("nobody", "x"),
        Some(AuthError::InvalidCredentials {
            failure: LoginFailure::UnknownAccount,
            ..
        })
    ));
    assert!(matches!(
        fail("eve", "eve-password"),
        Some(AuthError::InvalidCredentials {
            failure: LoginFailure::Disabled,
            ..
        })
    ));
    assert!(
        matches!(
            fail("Alice", "alice-password"),
            Some(AuthError::InvalidCredentials { .. })
        ),
        "names are case-exact"
    );
    assert!(matches!(
        f.ctx.authenticate(Some("Basic !!"), client()),
        Err(AuthError::Header(_))
    ));
    assert!(matches!(
        f.ctx.authenticate(Some("Bearer abc.def.ghi"), client()),
        Err(AuthError::BearerDisabled)
    ));
    assert_eq!(
        f.ctx.authenticate(None, client()),
        Ok(Principal::anonymous())
    );
    // Basic-only registries challenge with Basic.
    assert_eq!(
        f.ctx.challenge(&[], None),
        "Basic realm=\"palisade-test\",charset=\"UTF-8\""
    );
}

#[test]
fn failed_logins_are_rate_limited_per_client_even_for_the_right_password() {
    let f = Fixture::new(true);
    let attacker = IpAddr::from([203, 0, 113, 7]);
    for _ in 0..5 {
        let result = f.ctx.authenticate(Some(&basic("alice", "guess")), attacker);
        assert!(matches!(result, Err(AuthError::InvalidCredentials { .. })));
    }
    let limited = f
        .ctx
        .authenticate(Some(&basic("alice", "alice-password")), attacker);
    match limited {
        Err(e @ AuthError::RateLimited { .. }) => assert!(e.is_rate_limited()),
        other => panic!("expected rate limiting, got {other:?}"),
    }
    // The token endpoint is limited too, and maps to 429.
    let query = pairs(&[("service", SERVICE)]);
    let request = TokenRequest::from_get(&query, Some(&basic("alice", "alice-password")))
        .unwrap_or_else(|e| panic!("{e}"));
    let error = f
        .ctx
        .issue_token(&request, attacker)
        .err()
        .unwrap_or_else(|| panic!("not limited"));
    assert_eq!(error.status(), 429);
    // Other clients are unaffected; a reload does not reset the limiter.
    assert!(f
        .ctx
        .authenticate(Some(&basic("alice", "alice-password")), client())
        .is_ok());
    let reloaded = f.reload();
    assert!(matches!(
        reloaded.authenticate(Some(&basic("alice", "alice-password")), attacker),
        Err(AuthError::RateLimited { .. })
    ));
}

#[test]
fn reload_applies_password_changes_and_removals_at_once() {
    let mut f = Fixture::new(true);
    // Warm the credential cache with the old password.
    assert!(f
        .ctx
        .authenticate(Some(&basic("alice", "alice-password")), client())
        .is_ok());
    assert_eq!(f.ctx.authenticator().cached_credentials(), 1);
    let token = get_token(
        &f.ctx,
        Some(("bob", "bob-password")),
        &["repository:team-b/app:pull"],
        false,
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .response
    .token;
    f.users
        .set_password("alice", &Password::new("brand-new-pw"))
        .unwrap_or_else(|e| panic!("{e}"));
    f.users.remove_user("bob").unwrap_or_else(|e| panic!("{e}"));
    let ctx = f.reload();
    assert!(
        ctx.authenticate(Some(&basic("alice", "alice-password")), client())
            .is_err(),
        "old password"
    );
    assert!(ctx
        .authenticate(Some(&basic("alice", "brand-new-pw")), client())
        .is_ok());
    // Bob's still-unexpired token names a user that no longer exists.
    assert!(matches!(
        ctx.authenticate(Some(&format!("Bearer {token}")), client()),
        Err(AuthError::UnknownSubject(_))
    ));
    let challenge = ctx.challenge_for_error(&AuthError::UnknownSubject("bob".into()), None);
    assert!(
        challenge.ends_with(",error=\"invalid_token\""),
        "{challenge}"
    );
}

#[test]
fn robots_log_in_with_their_token_and_get_only_their_rules() {
    let f = Fixture::new(true);
    let secret = f.robot_secret.expose();
    let p = f
        .ctx
        .authenticate(Some(&basic("robot$ci", secret)), client())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.method, AuthMethod::RobotToken);
    assert!(matches!(&p.identity, Identity::Robot { name, .. } if name == "ci"));
    assert!(f.ctx.authorize(&p, "team-a/app", Action::Push).is_ok());
    assert!(f.ctx.authorize(&p, "team-a/app", Action::Delete).is_err());
    assert!(f.ctx.authorize(&p, "team-a/other", Action::Pull).is_err());
    // Wrong secret, another robot's secret, the expired robot, a robot name as a user.
    for (user, pw) in [
        ("robot$ci", "palisade_robot_wrong"),
        ("robot$ci", f.expired_robot_secret.expose()),
        ("robot$old", f.expired_robot_secret.expose()),
        ("robot$nope", secret),
        ("ci", secret),
    ] {
        assert!(
            f.ctx
                .authenticate(Some(&basic(user, pw)), IpAddr::from([10, 9, 9, 9]))
                .is_err(),
            "{user}"
        );
    }
    // At the token endpoint (password grant): never more than its rules.
    let form = pairs(&[
        ("grant_type", "password"),
        ("username", "robot$ci"),
        ("password", secret),
        ("service", SERVICE),
        ("client_id", "ci"),
        ("scope", "repository:team-a/app:pull,push,delete repository:team-a/other:pull registry:catalog:*"),
    ]);
    let request = TokenRequest::from_form(&form).unwrap_or_else(|e| panic!("{e}"));
    let grant = f
        .ctx
        .issue_token(&request, client())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(grant.subject.as_deref(), Some("robot$ci"));
    assert_eq!(
        grant.granted,
        vec![Scope::repository("team-a/app", pull_push())]
    );
    let bearer = f
        .ctx
        .authenticate(Some(&format!("Bearer {}", grant.response.token)), client())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(f.ctx.authorize(&bearer, "team-a/app", Action::Push).is_ok());
    assert!(f
        .ctx
        .authorize(&bearer, "team-a/app", Action::Delete)
        .is_err());
}

#[test]
fn refresh_tokens_never_escalate_and_die_with_the_account() {
    let mut f = Fixture::new(true);
    let grant = get_token(
        &f.ctx,
        Some(("alice", "alice-password")),
        &["repository:team-a/app:pull"],
        true,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let refresh = grant
        .response
        .refresh_token
        .clone()
        .unwrap_or_else(|| panic!("no refresh token"));
    let json = serde_json::to_value(&grant.response).unwrap_or_default();
    for field in [
        "token",
        "access_token",
        "expires_in",
        "issued_at",
        "refresh_token",
    ] {
        assert!(json.get(field).is_some(), "{field}");
    }
    let refresh_request = |scope: &str| {
        TokenRequest::from_form(&pairs(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
            ("service", SERVICE),
            ("client_id", "docker"),
            ("scope", scope),
        ]))
        .unwrap_or_else(|e| panic!("{e}"))
    };
    // Escalation attempt: the refresh token was issued with a pull scope; asking for more,
    // and for other teams, gets exactly what alice's policy allows and nothing of team-b.
    let grant = f
        .ctx
        .issue_token(
            &refresh_request("repository:team-a/app:pull,push,* repository:team-b/app:push,pull"),
            client(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    // `*` (admin) is not alice's, so it is dropped; delete was not asked for, so not given.
    assert_eq!(
        grant.granted,
        vec![Scope::repository("team-a/app", pull_push())]
    );
    assert!(grant.response.refresh_token.is_none());
    // Role removed → the same refresh token yields nothing for team-a.
    f.users
        .set_roles("alice", &[])
        .unwrap_or_else(|e| panic!("{e}"));
    let ctx = f.reload();
    let grant = ctx
        .issue_token(&refresh_request("repository:team-a/app:pull"), client())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(grant.granted.is_empty());
    // Password changed after issue → refresh token refused. (Seconds resolution: make the
    // change strictly later than the issue.)
    std::thread::sleep(std::time::Duration::from_millis(1100));
    f.users
        .set_password("alice", &Password::new("another-password"))
        .unwrap_or_else(|e| panic!("{e}"));
    let ctx = f.reload();
    let error = ctx
        .issue_token(&refresh_request("repository:team-a/app:pull"), client())
        .err();
    assert!(
        matches!(error, Some(TokenEndpointError::InvalidRefreshToken)),
        "{error:?}"
    );
    // A made-up refresh token, and an access token used as a refresh token.
    let bogus = TokenRequest::from_form(&pairs(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", "palisade_refresh_x"),
    ]))
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        ctx.issue_token(&bogus, client()),
        Err(TokenEndpointError::InvalidRefreshToken)
    ));
}

#[test]
fn refresh_tokens_can_be_revoked() {
    let f = Fixture::new(true);
    let grant = get_token(&f.ctx, Some(("bob", "bob-password")), &[], true)
        .unwrap_or_else(|e| panic!("{e}"));
    let refresh = grant
        .response
        .refresh_token
        .unwrap_or_else(|| panic!("no refresh token"));
    assert_eq!(
        f.ctx.state().refresh_tokens().revoke_subject("bob").ok(),
        Some(1)
    );
    let request = TokenRequest::from_form(&pairs(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", &refresh),
    ]))
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        f.ctx.issue_token(&request, client()),
        Err(TokenEndpointError::InvalidRefreshToken)
    ));
    // Anonymous offline requests get no refresh token.
    let anonymous = get_token(&f.ctx, None, &["repository:public/x:pull"], true)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(anonymous.response.refresh_token.is_none());
    assert_eq!(anonymous.subject, None);
    assert_eq!(
        anonymous.granted,
        vec![Scope::repository("public/x", ActionSet::of(Action::Pull))]
    );
}

#[test]
fn forged_expired_and_foreign_tokens_are_refused() {
    let f = Fixture::new(true);
    let now = super::super::clock::unix_now();
    let request = TokenRequest::from_get(
        &pairs(&[
            ("service", SERVICE),
            ("scope", "repository:team-a/app:pull"),
        ]),
        Some(&basic("alice", "alice-password")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // Expired: issued long ago.
    let old = f
        .ctx
        .issue_token_at(&request, client(), now - 10_000)
        .unwrap_or_else(|e| panic!("{e}"));
    let result = f
        .ctx
        .authenticate(Some(&format!("Bearer {}", old.response.token)), client());
    assert_eq!(result, Err(AuthError::InvalidToken(TokenError::Expired)));
    // Not yet valid: issued in the future.
    let future = f
        .ctx
        .issue_token_at(&request, client(), now + 10_000)
        .unwrap_or_else(|e| panic!("{e}"));
    let result = f
        .ctx
        .authenticate(Some(&format!("Bearer {}", future.response.token)), client());
    assert_eq!(
        result,
        Err(AuthError::InvalidToken(TokenError::NotYetValid))
    );

    // Another registry's token (different key, different service) is refused here.
    let other = Fixture::new(true);
    let foreign = get_token(
        &other.ctx,
        Some(("root", "root-password")),
        &["repository:team-a/app:*"],
        false,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let result = f.ctx.authenticate(
        Some(&format!("Bearer {}", foreign.response.token)),
        client(),
    );
    assert!(
        matches!(
            result,
            Err(AuthError::InvalidToken(
                TokenError::Header | TokenError::Signature
            ))
        ),
        "{result:?}"
    );

    // Same key, but minted for another audience.
    let mut config = f.config.clone();
    if let Some(token) = config.token.as_mut() {
        token.service = "other.service".to_owned();
    }
    let key = super::super::SigningKey::from_pkcs8_pem(&f.key_pem);
    let other_aud = super::super::AuthContext::from_parts(&config, &f.users, key, &f.state)
        .unwrap_or_else(|e| panic!("{e}"));
    let request = TokenRequest::from_get(
        &pairs(&[("scope", "repository:team-a/app:pull")]),
        Some(&basic("alice", "alice-password")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let minted = other_aud
        .issue_token(&request, client())
        .unwrap_or_else(|e| panic!("{e}"));
    let result = f
        .ctx
        .authenticate(Some(&format!("Bearer {}", minted.response.token)), client());
    assert_eq!(result, Err(AuthError::InvalidToken(TokenError::Audience)));

    // alg=none with escalated claims.
    let good = get_token(
        &f.ctx,
        Some(("alice", "alice-password")),
        &["repository:team-a/app:pull"],
        false,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let parts: Vec<&str> = good.response.token.split('.').collect();
    let claims = URL_SAFE_NO_PAD.decode(parts[1]).unwrap_or_default();
    let mut claims: serde_json::Value = serde_json::from_slice(&claims).unwrap_or_default();
    claims["sub"] = "root".into();
    claims["access"] =
        serde_json::json!([{"type":"repository","name":"team-b/app","actions":["*"]}]);
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default());
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    for forged in [
        format!("{none_header}.{body}."),
        format!("{none_header}.{body}.{}", parts[2]),
        format!("{}.{body}.{}", parts[0], parts[2]),
    ] {
        let result = f
            .ctx
            .authenticate(Some(&format!("Bearer {forged}")), client());
        assert!(
            matches!(
                result,
                Err(AuthError::InvalidToken(_)) | Err(AuthError::Header(_))
            ),
            "{result:?}"
        );
    }
}

#[test]
fn token_endpoint_refuses_bad_requests() {
    let f = Fixture::new(true);
    let get = |items: &[(&str, &str)], auth: Option<&str>| {
        TokenRequest::from_get(&pairs(items), auth).and_then(|r| f.ctx.issue_token(&r, client()))
    };
    assert!(matches!(
        get(&[("service", "elsewhere")], None),
        Err(TokenEndpointError::WrongService)
    ));
    assert!(matches!(
        get(&[("service", SERVICE), ("service", SERVICE)], None),
        Err(TokenEndpointError::InvalidRequest(_))
    ));
    assert!(matches!(
        get(&[("offline_token", "yes")], None),
        Err(TokenEndpointError::InvalidRequest(_))
    ));
    assert!(matches!(
        get(&[], Some("Bearer a.b.c")),
        Err(TokenEndpointError::InvalidRequest(_))
    ));
    let wrong = get(&[], Some(&basic("alice", "nope")))
        .err()
        .unwrap_or_else(|| panic!("accepted"));
    assert_eq!(
        (wrong.status(), wrong.oauth_error()),
        (401, "invalid_client")
    );
    let form = |items: &[(&str, &str)]| TokenRequest::from_form(&pairs(items)).err();
    assert!(matches!(
        form(&[("grant_type", "client_credentials")]),
        Some(TokenEndpointError::UnsupportedGrantType)
    ));
    assert!(matches!(
        form(&[]),
        Some(TokenEndpointError::InvalidRequest(_))
    ));
    assert!(matches!(
        form(&[("grant_type", "password"), ("username", "alice")]),
        Some(TokenEndpointError::InvalidRequest(_))
    ));
    // Without the token service the endpoint is disabled.
    let basic_only = Fixture::new(false);
    let request = TokenRequest::from_get(&[], None).unwrap_or_else(|e| panic!("{e}"));
    let error = basic_only
        .ctx
        .issue_token(&request, client())
        .err()
        .unwrap_or_else(|| panic!("enabled"));
    assert_eq!(error.status(), 404);
    assert!(f
        .ctx
        .challenge(&[], None)
        .starts_with(&format!("Bearer realm=\"{REALM}\"")));
}

#[test]
fn catalog_access() {
    let f = Fixture::new(true);
    let login = |u: &str| {
        f.ctx
            .authenticate(Some(&basic(u, &format!("{u}-password"))), client())
            .unwrap_or_else(|e| panic!("{e}"))
    };
    assert!(f.ctx.authorizer().may_list_catalog(&login("root")).is_ok());
    assert!(f
        .ctx
        .authorizer()
        .may_list_catalog(&login("alice"))
        .is_err());
    assert!(f
        .ctx
        .authorizer()
        .may_list_catalog(&Principal::anonymous())
        .is_err());
    // Via tokens: only root gets the catalog scope, and a root token without it cannot list.
    let root = get_token(
        &f.ctx,
        Some(("root", "root-password")),
        &["registry:catalog:*"],
        false,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(root.granted, vec![Scope::catalog()]);
    let bearer = f
        .ctx
        .authenticate(Some(&format!("Bearer {}", root.response.token)), client())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(f.ctx.authorizer().may_list_catalog(&bearer).is_ok());
    let alice = get_token(
        &f.ctx,
        Some(("alice", "alice-password")),
        &["registry:catalog:*"],
        false,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(alice.granted.is_empty());
    let no_scope = get_token(&f.ctx, Some(("root", "root-password")), &[], false)
        .unwrap_or_else(|e| panic!("{e}"));
    let bearer = f
        .ctx
        .authenticate(
            Some(&format!("Bearer {}", no_scope.response.token)),
            client(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let denial = f
        .ctx
        .authorizer()
        .may_list_catalog(&bearer)
        .err()
        .unwrap_or_else(|| panic!("listed"));
    assert!(denial.challenge);
    assert!(f
        .ctx
        .challenge_for_denial(&denial)
        .contains("scope=\"registry:catalog:*\""));
    // "authenticated" mode: any login may list; the server filters by may_see_repository.
    let mut config = f.config.clone();
    config.catalog = super::super::CatalogAccess::Authenticated;
    let authorizer =
        super::super::Authorizer::from_config(&config).unwrap_or_else(|e| panic!("{e}"));
    let alice = login("alice");
    assert!(authorizer.may_list_catalog(&alice).is_ok());
    assert!(authorizer
        .may_list_catalog(&Principal::anonymous())
        .is_err());
    assert!(authorizer.may_see_repository(&alice, "team-a/app"));
    assert!(!authorizer.may_see_repository(&alice, "team-b/app"));
    assert!(authorizer.may_see_repository(&alice, "public/x"));
}

#[test]
fn immutable_tags_bind_everyone() {
    let f = Fixture::new(false);
    let root = f
        .ctx
        .authenticate(Some(&basic("root", "root-password")), client())
        .unwrap_or_else(|e| panic!("{e}"));
    let authorizer = f.ctx.authorizer();
    let denial = authorizer
        .may_overwrite_tag(&root, "team-a/app", "v1.2.3")
        .err()
        .unwrap_or_else(|| panic!("overwritable"));
    assert_eq!(
        denial.to_string(),
        "root may not change team-a/app: tag is immutable (pattern \"v*\")"
    );
    assert!(!denial.challenge);
    assert!(authorizer
        .may_overwrite_tag(&root, "team-a/app", "latest")
        .is_ok());
    assert!(
        authorizer
            .may_overwrite_tag(&root, "team-a/app", "V1")
            .is_ok(),
        "tags are case-sensitive"
    );
}

#[test]
fn denials_become_audit_events() {
    let f = Fixture::new(false);
    let alice = f
        .ctx
        .authenticate(Some(&basic("alice", "alice-password")), client())
        .unwrap_or_else(|e| panic!("{e}"));
    let denial = f
        .ctx
        .authorize(&alice, "team-b/app", Action::Push)
        .err()
        .unwrap_or_else(|| panic!("allowed"));
    assert_eq!(
        denial.to_string(),
        "alice may not push team-b/app: not permitted by policy"
    );
    let event = serde_json::to_value(denial.audit_event(client())).unwrap_or_default();
    assert_eq!(event["kind"], "registry_request_denied");
    assert_eq!(event["actor"]["user"], "alice");
    assert_eq!(event["repository"], "team-b/app");
    assert_eq!(event["action"], "push");
    assert_eq!(event["reason"], "not permitted by policy");
    let tricky = f
        .ctx
        .authorize(&alice, "team-a/../team-b/app", Action::Pull)
        .err()
        .unwrap_or_else(|| panic!("allowed"));
    assert_eq!(
        tricky.reason,
        super::super::DenialReason::InvalidRepositoryName
    );
}

#[test]
fn logins_and_grants_become_audit_events_without_secrets() {
    let f = Fixture::new(true);
    let error = f
        .ctx
        .authenticate(Some(&basic("alice", "secret-guess")), client())
        .err()
        .unwrap_or_else(|| panic!("accepted"));
    let event = serde_json::to_string(&error.audit_event(client())).unwrap_or_default();
    assert!(
        event.contains("\"name\":\"registry_login_failed\""),
        "{event}"
    );
    assert!(event.contains("\"user\":\"alice\""), "{event}");
    assert!(event.contains("wrong password or token"), "{event}");
    assert!(!event.contains("secret-guess"), "{event}");
    let grant = get_token(
        &f.ctx,
        Some(("alice", "alice-password")),
        &["repository:team-a/app:pull"],
        true,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let event = serde_json::to_string(&grant.audit_event(client())).unwrap_or_default();
    assert!(event.contains("repository:team-a/app:pull"), "{event}");
    assert!(
        !event.contains(&grant.response.token),
        "the token is not logged"
    );
    let refresh = grant.response.refresh_token.unwrap_or_default();
    assert!(
        !refresh.is_empty() && !event.contains(&refresh),
        "the refresh token is not logged"
    );
}

/// What `docker login` then `docker push` do, step by step.
#[test]
fn docker_login_and_push_sequence() {
    let f = Fixture::new(true);
    // 1. GET /v2/ without credentials: anonymous, and the server challenges (no scope).
    let anonymous = f
        .ctx
        .authenticate(None, client())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(anonymous.identity.is_anonymous());
    assert_eq!(
        f.ctx.challenge(&[], None),
        format!("Bearer realm=\"{REALM}\",service=\"{SERVICE}\"")
    );
    // 2. docker login: GET /token with Basic, account, client_id and offline_token.
    let query = pairs(&[
        ("account", "alice"),
        ("client_id", "docker"),
        ("offline_token", "true"),
        ("service", SERVICE),
    ]);
    let request = TokenRequest::from_get(&query, Some(&basic("alice", "alice-password")))
        .unwrap_or_else(|e| panic!("{e}"));
    let login = f
        .ctx
        .issue_token(&request, client())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(login.granted.is_empty());
    let identity_token = login
        .response
        .refresh_token
        .unwrap_or_else(|| panic!("no refresh token"));
    // 3. docker push: POST /token with the stored identity token for pull,push.
    let form = pairs(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", &identity_token),
        ("service", SERVICE),
        ("client_id", "docker"),
        ("scope", "repository:team-a/app:pull,push"),
    ]);
    let request = TokenRequest::from_form(&form).unwrap_or_else(|e| panic!("{e}"));
    let push = f
        .ctx
        .issue_token(&request, client())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        push.granted,
        vec![Scope::repository("team-a/app", pull_push())]
    );
    // 4. The registry requests carry the bearer token.
    let principal = f
        .ctx
        .authenticate(
            Some(&format!("Bearer {}", push.response.access_token)),
            client(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(principal.method, AuthMethod::Bearer);
    for action in [Action::Pull, Action::Push] {
        assert!(f.ctx.authorize(&principal, "team-a/app", action).is_ok());
    }
    assert!(f
        .ctx
        .authorize(&principal, "team-a/app", Action::Delete)
        .is_err());
}
