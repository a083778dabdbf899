//! Sign and verify round trips for both cosign forms, every key type, registries with and
//! without the referrers API; tampering with any byte fails; OpenSSL checks our signatures.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use palisade_trust::formats::{referrers_tag, signature_tag, Manifest, SIGNATURE_ANNOTATION};
use palisade_trust::memory::MemoryRegistry;
use palisade_trust::{
    sign_image, verify_image, CachedSource, ImageId, KeyAlgorithm, PrivateKey, RecordingSource,
    Requirement, SignatureForm, TrustedKey,
};

const REPO: &str = "team/app";
const IMAGE_MANIFEST: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;

fn image(registry: &MemoryRegistry) -> ImageId {
    let digest = registry.add_image(REPO, "1.0", IMAGE_MANIFEST);
    ImageId {
        registry: "127.0.0.1:5000".into(),
        repository: REPO.into(),
        digest,
    }
}

fn requirement(keys: &[&PrivateKey], threshold: usize) -> Requirement {
    Requirement::Signed {
        keys: keys
            .iter()
            .enumerate()
            .map(|(i, k)| TrustedKey::new(format!("key{i}"), k.public()))
            .collect(),
        threshold,
    }
}

#[test]
fn every_form_and_key_type_round_trips() {
    for referrers_api in [true, false] {
        for form in [SignatureForm::Tag, SignatureForm::Referrer] {
            for algorithm in [
                KeyAlgorithm::EcdsaP256,
                KeyAlgorithm::EcdsaP384,
                KeyAlgorithm::Ed25519,
            ] {
                let registry = MemoryRegistry::new(referrers_api);
                let image = image(&registry);
                let key = PrivateKey::generate(algorithm);
                let other = PrivateKey::generate(KeyAlgorithm::EcdsaP256);
                let unsigned = verify_image(&registry, &image, &requirement(&[&key], 1)).unwrap();
                assert!(!unsigned.accepted);
                assert!(
                    unsigned.reason.contains("missing a signature by key0"),
                    "{}",
                    unsigned.reason
                );
                let annotations = BTreeMap::from([("env".to_owned(), "prod".to_owned())]);
                let report = sign_image(&registry, &image, &key, &annotations, form).unwrap();
                assert_eq!(
                    report.referrers_api,
                    referrers_api && form == SignatureForm::Referrer
                );
                let verdict = verify_image(&registry, &image, &requirement(&[&key], 1)).unwrap();
                assert!(
                    verdict.accepted,
                    "{form:?} {algorithm} {referrers_api}: {}",
                    verdict.reason
                );
                assert_eq!(verdict.matched_keys, vec![key.public().fingerprint()]);
                let sig = &verdict.signatures[0];
                assert_eq!(sig.form, form);
                assert_eq!(sig.identity.as_deref(), Some("127.0.0.1:5000/team/app"));
                if form == SignatureForm::Tag {
                    assert_eq!(sig.annotations["env"], "prod");
                }
                // Another key, or a revoked (removed) key: not accepted.
                let verdict = verify_image(&registry, &image, &requirement(&[&other], 1)).unwrap();
                assert!(!verdict.accepted);
                assert!(verdict.reason.contains("key0"));
                // Threshold 2 of {key, other} needs both.
                let both = requirement(&[&key, &other], 2);
                assert!(!verify_image(&registry, &image, &both).unwrap().accepted);
                sign_image(&registry, &image, &other, &BTreeMap::new(), form).unwrap();
                let verdict = verify_image(&registry, &image, &both).unwrap();
                assert!(verdict.accepted, "{}", verdict.reason);
                assert_eq!(
                    verdict.signatures.len(),
                    2,
                    "appending keeps earlier signatures"
                );
            }
        }
    }
}

#[test]
fn a_signature_for_another_digest_does_not_count() {
    let registry = MemoryRegistry::new(false);
    let image = image(&registry);
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256);
    let other_digest = registry.add_image(
        REPO,
        "2.0",
        b"{\"schemaVersion\":2,\"config\":{\"digest\":\"x\"}}",
    );
    let other = ImageId {
        digest: other_digest,
        ..image.clone()
    };
    sign_image(
        &registry,
        &other,
        &key,
        &BTreeMap::new(),
        SignatureForm::Tag,
    )
    .unwrap();
    // Copy the other image's valid signature manifest to this image's tag.
    let copied = registry
        .get_manifest(REPO, &signature_tag(&other.digest))
        .unwrap();
    registry.set_manifest(REPO, &signature_tag(&image.digest), copied);
    let verdict = verify_image(&registry, &image, &requirement(&[&key], 1)).unwrap();
    assert!(!verdict.accepted);
    assert!(verdict.signatures[0]
        .problem
        .as_deref()
        .unwrap()
        .contains("signs another digest"));
}

fn sign_tag(registry: &MemoryRegistry, image: &ImageId, key: &PrivateKey) -> (Manifest, String) {
    sign_image(registry, image, key, &BTreeMap::new(), SignatureForm::Tag).unwrap();
    let bytes = registry
        .get_manifest(REPO, &signature_tag(&image.digest))
        .unwrap();
    let manifest: Manifest = serde_json::from_slice(&bytes).unwrap();
    let payload_digest = manifest.layers[0].digest.clone();
    (manifest, payload_digest)
}

#[test]
fn one_changed_byte_anywhere_fails_the_tag_form() {
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256);
    let req = requirement(&[&key], 1);
    // The payload: flip each of several bytes (same digest claimed, so the digest check fails;
    // and with the digest "fixed" in the manifest, the signature check fails).
    for position in [0usize, 10, 60, 120] {
        let registry = MemoryRegistry::new(false);
        let image = image(&registry);
        let (mut manifest, payload_digest) = sign_tag(&registry, &image, &key);
        let mut payload = registry.get_blob(REPO, &payload_digest).unwrap();
        let at = position.min(payload.len() - 1);
        payload[at] ^= 0x01;
        registry.set_blob(REPO, &payload_digest, payload.clone());
        assert!(
            !verify_image(&registry, &image, &req).unwrap().accepted,
            "payload byte {at}"
        );
        // Re-point the manifest at the altered payload: now its digest matches, the
        // signature does not.
        let altered = palisade_image::Digest::of(&payload).to_string();
        registry.set_blob(REPO, &altered, payload);
        manifest.layers[0].digest = altered;
        registry.set_manifest(
            REPO,
            &signature_tag(&image.digest),
            serde_json::to_vec(&manifest).unwrap(),
        );
        assert!(
            !verify_image(&registry, &image, &req).unwrap().accepted,
            "re-pointed payload byte {at}"
        );
    }
    // The signature annotation: one changed base64 character, one changed signature byte.
    let registry = MemoryRegistry::new(false);
    let image = image(&registry);
    let (manifest, _) = sign_tag(&registry, &image, &key);
    let annotation = manifest.layers[0].annotations[SIGNATURE_ANNOTATION].clone();
    let mut raw = STANDARD.decode(&annotation).unwrap();
    let last = raw.len() - 3;
    raw[last] ^= 0x01;
    for bad in [
        STANDARD.encode(&raw),
        annotation.replacen('M', "N", 1),
        "garbage!".into(),
        String::new(),
        annotation[..annotation.len() / 2].to_owned(),
    ] {
        let mut m = manifest.clone();
        m.layers[0]
            .annotations
            .insert(SIGNATURE_ANNOTATION.into(), bad.clone());
        registry.set_manifest(
            REPO,
            &signature_tag(&image.digest),
            serde_json::to_vec(&m).unwrap(),
        );
        let verdict = verify_image(&registry, &image, &req).unwrap();
        assert!(!verdict.accepted, "annotation {bad:?}");
        assert!(verdict.signatures[0].problem.is_some());
    }
    // The signature manifest itself: truncated, or garbage.
    let good = serde_json::to_vec(&manifest).unwrap();
    for bad in [
        good[..good.len() - 1].to_vec(),
        b"\x00\xff".to_vec(),
        b"{}".to_vec(),
    ] {
        registry.set_manifest(REPO, &signature_tag(&image.digest), bad);
        assert!(!verify_image(&registry, &image, &req).unwrap().accepted);
    }
    registry.set_manifest(REPO, &signature_tag(&image.digest), good);
    assert!(
        verify_image(&registry, &image, &req).unwrap().accepted,
        "the untouched manifest verifies"
    );
}

#[test]
fn unknown_critical_type_is_refused_even_when_signed() {
    let registry = MemoryRegistry::new(false);
    let image = image(&registry);
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256);
    let (mut manifest, _) = sign_tag(&registry, &image, &key);
    let payload = format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"x"}},"image":{{"docker-manifest-digest":"{}"}},"type":"something else"}},"optional":null}}"#,
        image.digest
    )
    .into_bytes();
    let digest = registry_push(&registry, &payload);
    manifest.layers[0].digest = digest;
    manifest.layers[0].annotations.insert(
        SIGNATURE_ANNOTATION.into(),
        STANDARD.encode(palisade_trust::Signer::sign(&key, &payload).unwrap()),
    );
    registry.set_manifest(
        REPO,
        &signature_tag(&image.digest),
        serde_json::to_vec(&manifest).unwrap(),
    );
    let verdict = verify_image(&registry, &image, &requirement(&[&key], 1)).unwrap();
    assert!(!verdict.accepted);
    assert!(verdict.signatures[0]
        .problem
        .as_deref()
        .unwrap()
        .contains("unknown critical type"));
}

fn registry_push(registry: &MemoryRegistry, bytes: &[u8]) -> String {
    palisade_trust::SignatureSink::push_blob(registry, REPO, bytes)
        .unwrap()
        .to_string()
}

#[test]
fn one_changed_byte_anywhere_fails_the_referrer_form() {
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256);
    let req = requirement(&[&key], 1);
    let registry = MemoryRegistry::new(false);
    let image = image(&registry);
    let report = sign_image(
        &registry,
        &image,
        &key,
        &BTreeMap::new(),
        SignatureForm::Referrer,
    )
    .unwrap();
    assert!(verify_image(&registry, &image, &req).unwrap().accepted);
    let manifest_bytes = registry.get_manifest(REPO, &report.location).unwrap();
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes).unwrap();
    let bundle_digest = manifest.layers[0].digest.clone();
    let bundle = registry.get_blob(REPO, &bundle_digest).unwrap();
    // Every 7th byte of the bundle, and every 11th of the referrer manifest.
    for at in (0..bundle.len()).step_by(7) {
        let mut bent = bundle.clone();
        bent[at] ^= 0x01;
        registry.set_blob(REPO, &bundle_digest, bent);
        assert!(
            !verify_image(&registry, &image, &req).unwrap().accepted,
            "bundle byte {at}"
        );
    }
    registry.set_blob(REPO, &bundle_digest, bundle.clone());
    for at in (0..manifest_bytes.len()).step_by(11) {
        let mut bent = manifest_bytes.clone();
        bent[at] ^= 0x01;
        registry.set_manifest(REPO, &report.location, bent);
        assert!(
            !verify_image(&registry, &image, &req).unwrap().accepted,
            "manifest byte {at}"
        );
    }
    registry.set_manifest(REPO, &report.location, manifest_bytes.clone());
    // The DSSE payload re-signed? No: a statement about another digest, validly signed.
    let mut value: serde_json::Value = serde_json::from_slice(&bundle).unwrap();
    let payload = STANDARD
        .decode(value["dsseEnvelope"]["payload"].as_str().unwrap())
        .unwrap();
    let other = String::from_utf8(payload)
        .unwrap()
        .replace(image.digest.hex(), &"0".repeat(64));
    let sig = palisade_trust::Signer::sign(
        &key,
        &palisade_trust::formats::pae("application/vnd.in-toto+json", other.as_bytes()),
    )
    .unwrap();
    value["dsseEnvelope"]["payload"] = STANDARD.encode(other.as_bytes()).into();
    value["dsseEnvelope"]["signatures"][0]["sig"] = STANDARD.encode(sig).into();
    registry.set_blob(REPO, &bundle_digest, serde_json::to_vec(&value).unwrap());
    let verdict = verify_image(&registry, &image, &req).unwrap();
    assert!(!verdict.accepted);
    // The index entry still resolves, the referrers tag names it: and the problem is said.
    assert!(registry
        .get_manifest(REPO, &referrers_tag(&image.digest))
        .is_some());
    registry.set_blob(REPO, &bundle_digest, bundle);
    assert!(verify_image(&registry, &image, &req).unwrap().accepted);
}

#[test]
fn the_cache_verifies_offline_and_follows_key_revocation() {
    let registry = MemoryRegistry::new(true);
    let image = image(&registry);
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256);
    sign_image(
        &registry,
        &image,
        &key,
        &BTreeMap::new(),
        SignatureForm::Tag,
    )
    .unwrap();
    sign_image(
        &registry,
        &image,
        &key,
        &BTreeMap::new(),
        SignatureForm::Referrer,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache = CachedSource::new(dir.path());
    let recording = RecordingSource::new(&registry, cache.clone());
    assert!(
        verify_image(&recording, &image, &requirement(&[&key], 1))
            .unwrap()
            .accepted
    );
    let offline = verify_image(&cache, &image, &requirement(&[&key], 1)).unwrap();
    assert!(offline.accepted, "{}", offline.reason);
    assert_eq!(offline.signatures.len(), 2);
    let other = PrivateKey::generate(KeyAlgorithm::EcdsaP256);
    assert!(
        !verify_image(&cache, &image, &requirement(&[&other], 1))
            .unwrap()
            .accepted
    );
    // A damaged cache file loses the signature, never admits anything.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x20;
        std::fs::write(&path, bytes).unwrap();
    }
    assert!(
        !verify_image(&cache, &image, &requirement(&[&key], 1))
            .unwrap()
            .accepted
    );
}

#[test]
fn reject_and_insecure_accept_say_so() {
    let registry = MemoryRegistry::new(false);
    let image = image(&registry);
    let verdict = verify_image(&registry, &image, &Requirement::Reject).unwrap();
    assert!(!verdict.accepted);
    assert!(verdict.reason.contains("rejects"));
    let verdict = verify_image(&registry, &image, &Requirement::InsecureAcceptAnything).unwrap();
    assert!(verdict.accepted);
    assert!(verdict.reason.contains("insecure-accept-anything"));
}

/// OpenSSL, an independent implementation, verifies our simple-signing signature with our
/// public key over the payload bytes as stored.
#[test]
fn openssl_verifies_the_tag_form_signature() {
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err()
    {
        eprintln!("skipped: openssl is not installed");
        return;
    }
    for algorithm in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::EcdsaP384] {
        let registry = MemoryRegistry::new(false);
        let image = image(&registry);
        let key = PrivateKey::generate(algorithm);
        let (manifest, payload_digest) = sign_tag(&registry, &image, &key);
        let dir = tempfile::tempdir().unwrap();
        let payload = dir.path().join("payload");
        let sig = dir.path().join("sig.der");
        let public = dir.path().join("cosign.pub");
        std::fs::write(&payload, registry.get_blob(REPO, &payload_digest).unwrap()).unwrap();
        std::fs::write(
            &sig,
            STANDARD
                .decode(&manifest.layers[0].annotations[SIGNATURE_ANNOTATION])
                .unwrap(),
        )
        .unwrap();
        std::fs::write(&public, key.public().to_pem()).unwrap();
        let hash = if algorithm == KeyAlgorithm::EcdsaP256 {
            "-sha256"
        } else {
            "-sha384"
        };
        let check = |file: &std::path::Path| {
            std::process::Command::new("openssl")
                .args(["dgst", hash, "-verify"])
                .arg(&public)
                .arg("-signature")
                .arg(&sig)
                .arg(file)
                .output()
                .unwrap()
        };
        let out = check(&payload);
        assert!(
            out.status.success(),
            "openssl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "Verified OK");
        let mut bent = std::fs::read(&payload).unwrap();
        bent[5] ^= 1;
        let other = dir.path().join("bent");
        std::fs::write(&other, bent).unwrap();
        assert!(
            !check(&other).status.success(),
            "openssl must refuse a changed payload"
        );
    }
}

/// sigstore-js (`@sigstore/verify`, an independent Sigstore implementation) accepts our
/// bundle with our public key, and refuses it with another key. Needs node and a harness
/// outside the repository (a short script over `@sigstore/verify` from npm): set
/// `PALISADE_SIGSTORE_VERIFY_JS=/path/to/verify-bundle.js` (usage: BUNDLE KEY.pub DIGEST_HEX);
/// skipped otherwise, as CI installs no npm packages.
#[test]
fn sigstore_js_verifies_the_bundle() {
    let Some(script) = std::env::var_os("PALISADE_SIGSTORE_VERIFY_JS") else {
        eprintln!("skipped: PALISADE_SIGSTORE_VERIFY_JS is not set");
        return;
    };
    let registry = MemoryRegistry::new(true);
    let image = image(&registry);
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256);
    let other = PrivateKey::generate(KeyAlgorithm::EcdsaP256);
    let report = sign_image(
        &registry,
        &image,
        &key,
        &BTreeMap::new(),
        SignatureForm::Referrer,
    )
    .unwrap();
    let manifest: Manifest =
        serde_json::from_slice(&registry.get_manifest(REPO, &report.location).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle.json");
    std::fs::write(
        &bundle,
        registry.get_blob(REPO, &manifest.layers[0].digest).unwrap(),
    )
    .unwrap();
    let check = |public: &PrivateKey| {
        let path = dir.path().join("key.pub");
        std::fs::write(&path, public.public().to_pem()).unwrap();
        std::process::Command::new("node")
            .arg(&script)
            .arg(&bundle)
            .arg(&path)
            .arg(image.digest.hex())
            .output()
            .unwrap()
    };
    let out = check(&key);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!check(&other).status.success());
}
