//! The policy gate: pulled images are verified and remembered, stored images re-checked
//! offline against the current policy, local images follow the `local` scope, and every
//! verdict reaches the audit log.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use palisade_trust::memory::MemoryRegistry;
use palisade_trust::{
    check_registry_image, check_stored_image, sign_image, Audit, ImageId, KeyAlgorithm, Policy,
    PrivateKey, SignatureForm, TrustError, TrustStore,
};

const MANIFEST: &[u8] = br#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;

fn policy(dir: &Path, text: &str) -> Policy {
    let path = dir.join("policy.json");
    std::fs::write(&path, text).unwrap();
    Policy::load(&path).unwrap()
}

fn audit_kinds(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            format!(
                "{}:{}",
                v["event"]["kind"].as_str().unwrap(),
                v["event"]["verdict"].as_str().unwrap_or("-")
            )
        })
        .collect()
}

#[test]
fn pull_then_run_offline_then_revoke() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256);
    std::fs::write(dir.path().join("keys/team.pub"), key.public().to_pem()).unwrap();
    let registry = MemoryRegistry::new(false);
    let digest = registry.add_image("team/app", "1", MANIFEST);
    let image = ImageId {
        registry: "reg:5000".into(),
        repository: "team/app".into(),
        digest: digest.clone(),
    };
    let strict = policy(
        dir.path(),
        r#"{"scopes": {"reg:5000/team/*": {"keys": ["team.pub"]}, "*": "reject"}}"#,
    );
    let store = dir.path().join("store");
    let trust = TrustStore::for_store(&store);
    let audit_path = store.join("audit/trust.log");
    let audit = Audit::to(&audit_path);

    // Unsigned: rejected, naming the missing key; nothing remembered.
    let decision = check_registry_image(
        &strict,
        Some(&trust),
        &registry,
        &image,
        "reg:5000/team/app:1",
        &audit,
    )
    .unwrap();
    let err = decision.into_result().unwrap_err();
    assert!(matches!(err, TrustError::Rejected { .. }));
    let text = err.to_string();
    assert!(
        text.contains("team.pub") && text.contains("no signatures found"),
        "{text}"
    );
    assert!(trust.origins(&digest).is_empty());

    // Signed: accepted and remembered; then checked again offline from the cache.
    sign_image(
        &registry,
        &image,
        &key,
        &BTreeMap::new(),
        SignatureForm::Tag,
    )
    .unwrap();
    check_registry_image(
        &strict,
        Some(&trust),
        &registry,
        &image,
        "reg:5000/team/app:1",
        &audit,
    )
    .unwrap()
    .into_result()
    .unwrap();
    assert_eq!(trust.origins(&digest), vec![image.clone()]);
    let stored = check_stored_image(
        &strict,
        &trust,
        &digest,
        Some("reg:5000/team/app"),
        "reg:5000/team/app:1",
        &audit,
    )
    .unwrap();
    assert!(stored.verdict.accepted, "{}", stored.verdict.reason);
    assert_eq!(stored.scope, "reg:5000/team/*");

    // The key is revoked (replaced in the keyring): the stored image no longer runs.
    let other = PrivateKey::generate(KeyAlgorithm::EcdsaP256);
    std::fs::write(dir.path().join("keys/team.pub"), other.public().to_pem()).unwrap();
    let revoked = policy(
        dir.path(),
        r#"{"scopes": {"reg:5000/team/*": {"keys": ["team.pub"]}}}"#,
    );
    let err = check_stored_image(
        &revoked,
        &trust,
        &digest,
        None,
        "reg:5000/team/app:1",
        &audit,
    )
    .unwrap()
    .into_result()
    .unwrap_err()
    .to_string();
    assert!(err.contains("offline"), "{err}");

    // Scope switched to reject.
    let reject = policy(dir.path(), r#"{"scopes": {"*": "reject"}}"#);
    assert!(
        !check_stored_image(&reject, &trust, &digest, None, "x", &audit)
            .unwrap()
            .verdict
            .accepted
    );

    assert_eq!(
        audit_kinds(&audit_path),
        vec![
            "signature_verdict:refused",
            "signature_verdict:verified",
            "signature_verdict:verified",
            "signature_verdict:refused",
            "signature_verdict:refused"
        ]
    );
    let report = palisade_audit::verify(&[&audit_path]).unwrap();
    assert!(report.intact);
}

#[test]
fn local_images_follow_the_local_scope_and_insecure_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let trust = TrustStore::for_store(&dir.path().join("store"));
    let audit_path = dir.path().join("audit.log");
    let audit = Audit::to(&audit_path);
    let digest = palisade_image::Digest::of(b"local image");
    // Default policy (no file): local accepted, registry images insecure-accept-anything.
    let default = Policy::permissive_default();
    let d = check_stored_image(
        &default,
        &trust,
        &digest,
        Some("docker.io/library/busybox"),
        "busybox",
        &audit,
    )
    .unwrap();
    assert!(d.verdict.accepted);
    assert_eq!(d.scope, "local");
    let reject_local = policy(
        dir.path(),
        r#"{"scopes": {"local": "reject", "*": "insecure-accept-anything"}}"#,
    );
    let err = check_stored_image(&reject_local, &trust, &digest, None, "busybox", &audit)
        .unwrap()
        .into_result()
        .unwrap_err()
        .to_string();
    assert!(err.contains("local"), "{err}");
    let registry = MemoryRegistry::new(true);
    let image = ImageId {
        registry: "reg".into(),
        repository: "a".into(),
        digest: registry.add_image("a", "1", MANIFEST),
    };
    assert!(
        check_registry_image(
            &reject_local,
            Some(&trust),
            &registry,
            &image,
            "reg/a:1",
            &audit
        )
        .unwrap()
        .verdict
        .accepted
    );
    let kinds = audit_kinds(&audit_path);
    assert_eq!(
        kinds,
        vec![
            "signature_verdict:verified",
            "signature_verdict:refused",
            "policy_relaxed:-",
            "signature_verdict:verified"
        ]
    );
}
