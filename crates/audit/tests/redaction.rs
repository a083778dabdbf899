//! Secrets passed through `Redacted` never reach the log file's bytes.

// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

use palisade_audit::{verify, Actor, AuditLog, Event, Records, Redacted, RegistryAction};
use serde::Serialize;

const TOKEN: &str = "s3cr3t-t0ken-4f9a2c";

#[derive(Serialize)]
struct PresentedCredentials<'a> {
    user: &'a str,
    password: Redacted<String>,
}

#[test]
fn a_token_passed_through_redacted_never_appears_in_the_file() {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("registry.log");
    let mut log = AuditLog::open(&path).unwrap();
    let token = Redacted::new(TOKEN.to_owned());

    // As a field of an escape-hatch event.
    let mut fields = serde_json::Map::new();
    fields.insert("token".into(), token.clone().into());
    fields.insert(
        "credentials".into(),
        serde_json::to_value(PresentedCredentials {
            user: "alice",
            password: token.clone(),
        })
        .unwrap(),
    );
    log.append(Event::Other {
        actor: Actor::user("alice"),
        name: "token_refreshed".into(),
        fields,
    })
    .unwrap();
    // Formatted into a typed event's text.
    log.append(Event::RegistryRequestDenied {
        actor: Actor::user("alice"),
        repository: "team/app".into(),
        action: RegistryAction::Pull,
        remote_addr: "192.0.2.1".parse().unwrap(),
        reason: format!("token {token} expired ({token:?})"),
    })
    .unwrap();
    // Inside an argument vector.
    log.append(Event::ContainerExecuted {
        actor: Actor::current_process(),
        container_id: "db".into(),
        pid: None,
        args: vec!["psql".into(), format!("--password={token}")],
        confinement: palisade_audit::Confinement {
            seccomp: None,
            landlock: palisade_audit::LandlockStatus::Disabled,
            landlock_abi: None,
            capabilities: Vec::new(),
            no_new_privileges: true,
            read_only_rootfs: false,
        },
    })
    .unwrap();

    let bytes = std::fs::read(&path).unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(
        !bytes
            .windows(TOKEN.len())
            .any(|window| window == TOKEN.as_bytes()),
        "token leaked: {text}"
    );
    assert_eq!(text.matches("[redacted]").count(), 5, "{text}");
    assert!(verify(&[&path]).unwrap().intact);
    let reasons: Vec<String> = Records::open(&[&path])
        .filter_map(|record| match record.unwrap().event {
            Event::RegistryRequestDenied { reason, .. } => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(reasons, ["token [redacted] expired ([redacted])"]);
}
