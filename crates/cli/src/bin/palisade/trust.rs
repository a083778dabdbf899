//! The trust policy where images are used: `palisade pull` and the pull of `run`/`create`
//! check a registry image before downloading it, and `run`/`create` check the stored image
//! again (offline, from the signatures cached at pull) before a container is made from it.
//! See `palisade_trust::policy` for the file and the rule for local images.

use std::path::Path;

use anyhow::Context as _;
use palisade_image::distribution::{
    self, ClientOptions, PullReport, RegistryClient, TransferProgress,
};
use palisade_image::{ImageReference, Store};
use palisade_trust::{
    check_registry_image, check_stored_image, Audit, ImageId, Policy, RegistrySource, Requirement,
    TrustStore,
};

/// The policy from `explicit`, `PALISADE_POLICY` or /etc/palisade/policy.json; a broken
/// policy stops everything.
pub(crate) fn load_policy(explicit: Option<&Path>) -> anyhow::Result<Policy> {
    Policy::locate(explicit)
        .context("refusing to pull or run images until the trust policy is fixed")
}

/// Pulls `reference` if the trust policy accepts it: the digest it resolves to is verified
/// first (nothing is downloaded for a rejected image), then pulled and checked to be the
/// same digest.
pub(crate) fn pull_verified(
    store: &Store,
    reference: &ImageReference,
    options: &ClientOptions,
    progress: &dyn TransferProgress,
) -> anyhow::Result<PullReport> {
    let policy = load_policy(None)?;
    let trust = TrustStore::for_store(store.root());
    let audit = Audit::for_store(store.root());
    let (_, requirement) = policy.requirement_for(&reference.repository());
    let client = RegistryClient::for_reference(reference, options)?;
    let source = RegistrySource::new(&client);
    let image_at = |digest| ImageId {
        registry: reference.domain().to_owned(),
        repository: reference.path().to_owned(),
        digest,
    };
    let mut checked = None;
    if !matches!(requirement, Requirement::InsecureAcceptAnything) {
        let wanted = match (reference.digest(), reference.tag()) {
            (Some(digest), _) => digest.to_string(),
            (None, tag) => tag.unwrap_or("latest").to_owned(),
        };
        let top = client.fetch_manifest(reference.path(), &wanted, reference.digest())?;
        let image = image_at(top.digest.clone());
        check_registry_image(
            &policy,
            Some(&trust),
            &source,
            &image,
            &reference.to_string(),
            &audit,
        )?
        .into_result()?;
        checked = Some(top.digest);
    }
    let report = distribution::pull(store, reference, options, progress)?;
    if checked.as_ref() != Some(&report.digest) {
        // Insecure scopes are recorded here; a tag that moved between the check and the
        // pull is checked again, and untagged when the new digest is refused.
        let decision = check_registry_image(
            &policy,
            Some(&trust),
            &source,
            &image_at(report.digest.clone()),
            &reference.to_string(),
            &audit,
        )?;
        if let Err(e) = decision.into_result() {
            let _ = store.untag(reference);
            return Err(e.into());
        }
    }
    if report.manifest_digest != report.digest {
        // The platform manifest of a multi-platform image stays under the registry scope too
        // (signatures cover the index): run by its own digest, it is checked, never "local".
        trust.record_origin(&image_at(report.manifest_digest.clone()))?;
    }
    Ok(report)
}

/// Checks the stored image `image` (as `run`/`create` name it) against the current policy
/// before a container is made from it. A name the store does not resolve is left to the
/// engine's own error.
pub(crate) fn check_before_run(store: &Store, image: &str) -> anyhow::Result<()> {
    let Ok(reference) = ImageReference::parse(image) else {
        return Ok(());
    };
    let Some(digest) = store.resolve(&reference)? else {
        return Ok(());
    };
    let policy = load_policy(None)?;
    let trust = TrustStore::for_store(store.root());
    let audit = Audit::for_store(store.root());
    check_stored_image(
        &policy,
        &trust,
        &digest,
        Some(&reference.repository()),
        &reference.to_string(),
        &audit,
    )?
    .into_result()
    .with_context(|| format!("refusing to run {reference}"))?;
    Ok(())
}
