//! A micro benchmark (no criterion): `PALISADE_AUTH_BENCH=1 cargo test --release -p
//! palisade-registry -- --nocapture auth_micro_benchmark` prints ns/op for the per-request
//! paths. Without `PALISADE_AUTH_BENCH` (as in CI) each path runs a few times, so the test
//! still proves every measured path succeeds. Timing lives here, never in assertions.

use std::hint::black_box;
use std::time::Instant;

use super::super::config::TokenAlgorithm;
use super::super::scope::parse_scopes;
use super::super::token::TokenSigner;
use super::super::users::UserDb;
use super::super::{Action, AuthContext, HashCost, Password, Scope, SigningKey};
use super::{basic, client, get_token, Fixture};

/// Nanoseconds this thread has spent on a CPU (first field of /proc/thread-self/schedstat):
/// unlike wall time, it does not count time spent waiting for a CPU on a loaded machine.
fn thread_cpu_ns() -> Option<u128> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn measure(name: &str, iterations: u32, mut f: impl FnMut(u32)) {
    // The full count only when benchmarking; a smoke run otherwise.
    let iterations = if std::env::var_os("PALISADE_AUTH_BENCH").is_some() {
        iterations
    } else {
        iterations.div_ceil(1000)
    };
    // Warm up.
    for i in 0..iterations.min(100) {
        f(i);
    }
    let cpu_start = thread_cpu_ns();
    let start = Instant::now();
    for i in 0..iterations {
        f(i);
    }
    let wall = start.elapsed().as_nanos() / u128::from(iterations);
    let cpu = match (cpu_start, thread_cpu_ns()) {
        (Some(a), Some(b)) => format!("{:>12}", (b - a) / u128::from(iterations)),
        _ => format!("{:>12}", "?"),
    };
    println!("{name:<48} {wall:>12} ns/op wall {cpu} ns/op cpu  ({iterations} iterations)");
}

#[test]
fn auth_micro_benchmark() {
    let f = Fixture::new(true);
    let ctx = &f.ctx;
    let header = basic("alice", "alice-password");
    assert!(ctx.authenticate(Some(&header), client()).is_ok());
    measure("basic auth, cached credentials", 200_000, |_| {
        assert!(black_box(
            ctx.authenticate(black_box(Some(&header)), client()).is_ok()
        ));
    });

    let grant = get_token(
        ctx,
        Some(("alice", "alice-password")),
        &["repository:team-a/app:pull,push"],
        false,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let bearer = format!("Bearer {}", grant.response.token);
    measure("bearer auth, verified-token cache hit", 200_000, |_| {
        assert!(black_box(
            ctx.authenticate(black_box(Some(&bearer)), client()).is_ok()
        ));
    });

    let principal = ctx
        .authenticate(Some(&bearer), client())
        .unwrap_or_else(|e| panic!("{e}"));
    measure(
        "authorize (bearer principal, push team-a/app)",
        1_000_000,
        |_| {
            black_box(
                ctx.authorize(&principal, black_box("team-a/app"), Action::Push)
                    .is_ok(),
            );
        },
    );

    measure("scope parse (2 scopes)", 500_000, |_| {
        black_box(parse_scopes(black_box([
            "repository:team-a/app:pull,push repository:library/busybox:pull",
        ])));
    });

    for algorithm in [TokenAlgorithm::Es256, TokenAlgorithm::Eddsa] {
        let signer = TokenSigner::new(SigningKey::generate(algorithm), "palisade", "svc", 300);
        let access = [Scope::repository(
            "team-a/app",
            super::super::ActionSet::of(Action::Pull),
        )];
        let now = super::super::clock::unix_now();
        measure(&format!("token issue ({algorithm:?})"), 2_000, |_| {
            black_box(signer.issue(Some("alice"), &access, now));
        });
        // Distinct tokens, each verified once (warm-up included), so none hits the cache.
        let tokens: Vec<String> = (0..2_100)
            .map(|_| signer.issue(Some("alice"), &access, now).token)
            .collect();
        let verifier = signer.verifier();
        let mut next = tokens.iter();
        measure(
            &format!("token verify, uncached ({algorithm:?})"),
            2_000,
            |_| {
                if let Some(token) = next.next() {
                    assert!(black_box(verifier.verify(token, now).is_ok()));
                }
            },
        );
    }

    // The uncached password path with production argon2 costs.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut users = UserDb::empty(dir.path().join("users.json")).with_hash_cost(HashCost::DEFAULT);
    users
        .add_user(
            "alice",
            &Password::new("alice-password"),
            &["team-a".to_owned()],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let mut config = f.config.clone();
    config.credential_cache.ttl_seconds = 0;
    let uncached = AuthContext::from_parts(
        &config,
        &users,
        SigningKey::from_pkcs8_pem(&f.key_pem),
        &f.state,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    measure(
        "basic auth, uncached (argon2id m=19MiB t=2 p=1)",
        20,
        |_| {
            assert!(black_box(
                uncached.authenticate(Some(&header), client()).is_ok()
            ));
        },
    );
}
