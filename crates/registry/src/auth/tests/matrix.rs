//! The authorization matrix: identities × repositories × actions, through every way of
//! authenticating (Basic password, Bearer token from the token service, robot token as Basic
//! password, robot Bearer token, anonymous, anonymous token). The expected permissions come
//! from a hand-written oracle that does not use the glob code.

use super::super::{Action, ActionSet, AuthContext, Principal, Resource, Scope};
use super::{basic, client, get_token, password_of, Fixture};

/// (repository, valid per the OCI grammar). Written out by hand: the oracle must not share
/// code with the validator.
const REPOSITORIES: &[(&str, bool)] = &[
    ("team-a", true),
    ("team-a/app", true),
    ("team-a/app/sub", true),
    ("team-a/x1", true),
    ("team-b", true),
    ("team-b/app", true),
    ("team-b/app/sub", true),
    ("public", true),
    ("public/x", true),
    ("public/x/y", true),
    ("team-a-evil/x", true),
    ("team-ab/x", true),
    ("team-a.b/x", true),
    ("team-a_x/app", true),
    ("other/x", true),
    ("x", true),
    ("publicity/x", true),
    ("team-a/../team-b", false),
    ("team-a/..", false),
    ("../team-a/app", false),
    ("team-a//x", false),
    ("Team-A/app", false),
    ("team-a/App", false),
    ("TEAM-A/APP", false),
    ("TEAM-B/APP", false),
    ("/team-a/app", false),
    ("team-a/app/", false),
    ("./team-a/app", false),
    ("team-a/./app", false),
    ("team-a/%2e%2e/team-b", false),
    ("team-a/app%2fx", false),
    ("", false),
    ("team-a\\app", false),
    ("team-a/app\0", false),
    ("team-a/app ", false),
    (" team-a/app", false),
    ("team-a/*", false),
    ("**", false),
    ("public/../team-a/app", false),
    ("public/x/../../team-a/app", false),
    ("team-a/app:latest", false),
    ("team-a/app@sha256", false),
    ("team-a-/x", false),
    ("public//x", false),
];

fn set(actions: &[Action]) -> ActionSet {
    actions.iter().copied().collect()
}

/// What `who` may do on `repo` according to the test policy, written without globs.
fn oracle(who: &str, repo: &str, valid: bool) -> ActionSet {
    if !valid {
        return ActionSet::EMPTY;
    }
    let segments: Vec<&str> = repo.split('/').collect();
    let public = segments[0] == "public";
    let team_a = segments[0] == "team-a";
    let team_b_one_level = segments[0] == "team-b" && segments.len() == 2;
    let rw = set(&[Action::Pull, Action::Push, Action::Delete]);
    let mut actions = if public {
        set(&[Action::Pull])
    } else {
        ActionSet::EMPTY
    };
    let own = match who {
        "root" => ActionSet::ALL,
        "alice" if team_a => rw,
        "bob" if team_b_one_level => set(&[Action::Pull]),
        "dave" if team_a => rw,
        "dave" if team_b_one_level => set(&[Action::Pull]),
        "pusher" if repo == "team-a/app" => set(&[Action::Push]),
        "robot$ci" if repo == "team-a/app" => set(&[Action::Pull, Action::Push]),
        _ => ActionSet::EMPTY,
    };
    actions = actions.union(own);
    actions
}

const ACTIONS: [Action; 4] = [Action::Pull, Action::Push, Action::Delete, Action::Admin];
const ALL_SCOPE_ACTIONS: &str = "pull,push,delete,*";

struct Tally {
    checks: usize,
}

impl Tally {
    fn check(
        &mut self,
        ctx: &AuthContext,
        principal: &Principal,
        who: &str,
        path: &str,
        repo: &str,
        expected: ActionSet,
    ) {
        for action in ACTIONS {
            self.checks += 1;
            let result = ctx.authorize(principal, repo, action);
            assert_eq!(
                result.is_ok(),
                expected.contains(action),
                "{path}: {who} {action} {repo:?}: got {result:?}, expected {expected:?}"
            );
            assert!(
                ctx.authorizer()
                    .allowed_actions(principal, repo)
                    .contains(action)
                    == expected.contains(action),
                "{path}: allowed_actions disagrees for {who} {action} {repo:?}"
            );
        }
    }
}

fn token_principal(ctx: &AuthContext, token: &str) -> Principal {
    ctx.authenticate(Some(&format!("Bearer {token}")), client())
        .unwrap_or_else(|e| panic!("bearer: {e}"))
}

#[test]
fn no_request_gets_more_than_the_policy_allows() {
    let fixture = Fixture::new(true);
    let ctx = &fixture.ctx;
    let mut tally = Tally { checks: 0 };
    let robot_secret = fixture.robot_secret.expose().to_owned();
    // (identity as named by the oracle, Basic user, Basic password); None = anonymous.
    let mut logins: Vec<(String, Option<(String, String)>)> = super::USERS
        .iter()
        .filter(|(_, _, disabled)| !disabled)
        .map(|(name, _, _)| {
            (
                (*name).to_owned(),
                Some(((*name).to_owned(), password_of(name).expose().to_owned())),
            )
        })
        .collect();
    logins.push((
        "robot$ci".to_owned(),
        Some(("robot$ci".to_owned(), robot_secret)),
    ));
    logins.push(("anonymous".to_owned(), None));

    for (who, credentials) in &logins {
        let header = credentials.as_ref().map(|(u, p)| basic(u, p));
        let direct = ctx
            .authenticate(header.as_deref(), client())
            .unwrap_or_else(|e| panic!("{who}: {e}"));
        for (repo, valid) in REPOSITORIES {
            let expected = oracle(who, repo, *valid);
            tally.check(ctx, &direct, who, "basic", repo, expected);

            // Bearer: ask for everything on this repository; the grant must be exactly what the
            // policy allows, and the token must authorize exactly that.
            let scope = format!("repository:{repo}:{ALL_SCOPE_ACTIONS}");
            let creds = credentials.as_ref().map(|(u, p)| (u.as_str(), p.as_str()));
            let grant = get_token(ctx, creds, &[&scope], false)
                .unwrap_or_else(|e| panic!("{who} token: {e}"));
            let granted: ActionSet = grant
                .granted
                .iter()
                .filter(|s| s.resource == Resource::Repository((*repo).to_owned()))
                .fold(ActionSet::EMPTY, |acc, s| acc.union(s.actions));
            assert_eq!(granted, expected, "token grant for {who} on {repo:?}");
            assert!(grant.granted.len() <= 1, "only the requested resource");
            let bearer = token_principal(ctx, &grant.response.token);
            tally.check(ctx, &bearer, who, "bearer", repo, expected);

            // The same token is worth nothing on any other repository.
            for (other, _) in REPOSITORIES.iter().filter(|(o, _)| o != repo).take(6) {
                tally.check(
                    ctx,
                    &bearer,
                    who,
                    "bearer-other-repo",
                    other,
                    ActionSet::EMPTY,
                );
            }

            // Asking for pull only never yields push/delete, even for root.
            let pull_only = format!("repository:{repo}:pull");
            let grant =
                get_token(ctx, creds, &[&pull_only], false).unwrap_or_else(|e| panic!("{e}"));
            let bearer = token_principal(ctx, &grant.response.token);
            tally.check(
                ctx,
                &bearer,
                who,
                "bearer-pull-only",
                repo,
                expected.intersect(set(&[Action::Pull])),
            );
        }
    }
    assert!(tally.checks > 5000, "matrix too small: {}", tally.checks);
}

#[test]
fn bearer_denial_for_missing_scope_is_a_challenge_not_a_403() {
    let fixture = Fixture::new(true);
    let ctx = &fixture.ctx;
    let grant = get_token(
        ctx,
        Some(("alice", "alice-password")),
        &["repository:team-a/app:pull"],
        false,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let bearer = token_principal(ctx, &grant.response.token);
    let denial = ctx
        .authorize(&bearer, "team-a/app", Action::Push)
        .err()
        .unwrap_or_else(|| panic!("push allowed"));
    assert!(denial.challenge);
    let challenge = ctx.challenge_for_denial(&denial);
    assert_eq!(
        challenge,
        format!(
            "Bearer realm=\"{}\",service=\"{}\",scope=\"repository:team-a/app:push\",error=\"insufficient_scope\"",
            super::REALM,
            super::SERVICE
        )
    );
    // A policy denial for an authenticated user is a 403, not a challenge.
    let alice = ctx
        .authenticate(Some(&basic("alice", "alice-password")), client())
        .unwrap_or_else(|e| panic!("{e}"));
    let denial = ctx
        .authorize(&alice, "team-b/app", Action::Pull)
        .err()
        .unwrap_or_else(|| panic!("allowed"));
    assert!(!denial.challenge);
    // Anonymous gets a challenge naming the scope.
    let denial = ctx
        .authorize(&Principal::anonymous(), "team-a/app", Action::Pull)
        .err()
        .unwrap_or_else(|| panic!("allowed"));
    assert!(denial.challenge);
    assert!(ctx
        .challenge_for_denial(&denial)
        .contains("scope=\"repository:team-a/app:pull\""));
}

#[test]
fn multi_scope_requests_grant_each_scope_separately() {
    let fixture = Fixture::new(true);
    let grant = get_token(
        &fixture.ctx,
        Some(("alice", "alice-password")),
        &[
            "repository:team-a/app:pull,push",
            "repository:team-b/app:pull,push",
            "repository:team-a/../team-b/app:pull",
            "registry:catalog:*",
            "repository:public/x:push,pull",
            "repository:team-a/app:fly",
        ],
        false,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        grant.granted,
        vec![
            Scope::repository("team-a/app", set(&[Action::Pull, Action::Push])),
            Scope::repository("public/x", set(&[Action::Pull])),
        ]
    );
    assert_eq!(
        grant.dropped.len(),
        2,
        "the path trick and the unknown action were dropped"
    );
}
