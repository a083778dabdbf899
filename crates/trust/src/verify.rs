//! Checking an image's signatures against a requirement: [`verify_image`] → [`Verdict`].
//!
//! Both of cosign's forms are read:
//! - tag form: the manifest at `sha256-<hex>.sig`; each simple-signing layer's payload blob
//!   is fetched and checked against its digest, the signature from the layer's
//!   `dev.cosignproject.cosign/signature` annotation is checked over those exact bytes, and
//!   the payload's `critical.type` and `critical.image.docker-manifest-digest` must be
//!   cosign's type and the image's digest;
//! - referrer form: the referrers API's index for the digest (or, on a registry without it,
//!   the index at the referrers tag `sha256-<hex>`); each Sigstore bundle referrer's manifest
//!   (checked against its digest, its `subject` must be the image) and bundle layer (checked
//!   against its digest); the DSSE signature is checked over the PAE of the exact decoded
//!   payload, which must be an in-toto statement with the image's sha256 among its subjects.
//!
//! A signature counts for the key whose signature check passes; the requirement's threshold
//! counts distinct keys. Problems with single signatures (garbage, another digest, an
//! unknown key) are reported in the verdict and never stop other signatures from counting.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use palisade_image::Digest;
use serde::Serialize;

use crate::error::TrustError;
use crate::formats::{
    pae, referrers_tag, signature_tag, Bundle, Index, Manifest, SimpleSigning, Statement,
    BUNDLE_MEDIA_TYPE, IN_TOTO_PAYLOAD_TYPE, SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE,
    SIMPLE_SIGNING_TYPE,
};
use crate::keys::{Fingerprint, PublicKey};
use crate::source::{SignatureSource, MANIFEST_LIMIT};

/// The most signatures (layers plus referrers) looked at per image.
const MAX_SIGNATURES: usize = 64;
/// The largest payload or bundle read.
const PAYLOAD_LIMIT: u64 = 256 << 10;

/// The image being checked: where it lives and its manifest digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageId {
    /// The registry host (`127.0.0.1:5000`).
    pub registry: String,
    /// The repository within it (`team/app`).
    pub repository: String,
    /// The manifest (or index) digest the signatures must cover.
    pub digest: Digest,
}

impl ImageId {
    /// `registry/repository`, the name policy scopes match.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl std::fmt::Display for ImageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}@{}", self.registry, self.repository, self.digest)
    }
}

/// A key the policy trusts, with the name it is shown by (its file, or its fingerprint).
#[derive(Debug, Clone)]
pub struct TrustedKey {
    /// Shown in messages.
    pub name: String,
    /// The key.
    pub key: PublicKey,
}

impl TrustedKey {
    /// A key shown by `name`.
    pub fn new(name: impl Into<String>, key: PublicKey) -> Self {
        Self {
            name: name.into(),
            key,
        }
    }
}

/// What a policy asks of an image.
#[derive(Debug, Clone)]
pub enum Requirement {
    /// Never accept.
    Reject,
    /// Accept without looking (logged at every use).
    InsecureAcceptAnything,
    /// Accept an image that never came from a registry (the operator's own); only the `local`
    /// scope can say this.
    AcceptLocal,
    /// Accept when valid signatures from at least `threshold` distinct keys of `keys` cover
    /// the digest. Keys given by fingerprint only can match signatures whose bundle carries
    /// the key, which Palisade does not rely on: such entries are listed in `unresolved`.
    Signed {
        /// The trusted keys.
        keys: Vec<TrustedKey>,
        /// How many distinct keys must have signed.
        threshold: usize,
    },
}

/// Which of cosign's forms a signature came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignatureForm {
    /// `sha256-<hex>.sig` with simple-signing layers.
    Tag,
    /// An OCI 1.1 referrer holding a Sigstore bundle.
    Referrer,
}

/// One signature found for the image, and what checking it showed.
#[derive(Debug, Clone, Serialize)]
pub struct FoundSignature {
    /// Its form.
    pub form: SignatureForm,
    /// The digest of the payload layer or bundle.
    pub location: String,
    /// The trusted key that verified it, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<Fingerprint>,
    /// That key's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_name: Option<String>,
    /// The repository the signer named (`docker-reference`, or the statement subject's name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// The signer's annotations (`optional` of a simple-signing payload).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, serde_json::Value>,
    /// Why it does not count, when it does not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// The outcome of [`verify_image`].
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// The image.
    pub image: ImageId,
    /// Whether the requirement is met.
    pub accepted: bool,
    /// Every signature looked at.
    pub signatures: Vec<FoundSignature>,
    /// Trusted keys with a valid signature.
    pub matched_keys: Vec<Fingerprint>,
    /// Names of trusted keys without one.
    pub missing_keys: Vec<String>,
    /// One line: why accepted or rejected.
    pub reason: String,
}

/// Checks `image`'s signatures in `source` against `requirement`. Errors are for a source
/// that could not be read (a registry down); everything about the signatures themselves is
/// in the verdict.
pub fn verify_image(
    source: &dyn SignatureSource,
    image: &ImageId,
    requirement: &Requirement,
) -> Result<Verdict, TrustError> {
    let (keys, threshold) = match requirement {
        Requirement::Reject => {
            return Ok(verdict(
                image,
                false,
                Vec::new(),
                Vec::new(),
                "the trust policy rejects every image of this scope".into(),
            ))
        }
        Requirement::InsecureAcceptAnything => {
            return Ok(verdict(
                image,
                true,
                Vec::new(),
                Vec::new(),
                "accepted without verification (insecure-accept-anything)".into(),
            ))
        }
        Requirement::AcceptLocal => {
            return Ok(verdict(
                image,
                true,
                Vec::new(),
                Vec::new(),
                "a local image: trusted as the operator's own".into(),
            ))
        }
        Requirement::Signed { keys, threshold } => (keys, (*threshold).max(1)),
    };
    let mut found = Vec::new();
    tag_form(source, image, keys, &mut found)?;
    referrer_form(source, image, keys, &mut found)?;
    let mut matched: Vec<Fingerprint> = found.iter().filter_map(|s| s.key.clone()).collect();
    matched.sort();
    matched.dedup();
    let missing: Vec<String> = keys
        .iter()
        .filter(|k| !matched.contains(&k.key.fingerprint()))
        .map(|k| k.name.clone())
        .collect();
    let accepted = matched.len() >= threshold;
    let reason = if accepted {
        let names: Vec<&str> = keys
            .iter()
            .filter(|k| matched.contains(&k.key.fingerprint()))
            .map(|k| k.name.as_str())
            .collect();
        format!("signed by {}", names.join(", "))
    } else {
        let problems: Vec<String> = found
            .iter()
            .filter_map(|s| s.problem.as_ref())
            .take(3)
            .cloned()
            .collect();
        let seen = if found.is_empty() {
            "no signatures found".to_owned()
        } else {
            format!(
                "{} signature(s) found, none from a missing key{}",
                found.len(),
                if problems.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", problems.join("; "))
                }
            )
        };
        format!(
            "needs valid signatures from {threshold} of the trusted keys, has {}; missing a signature by {}; {seen}",
            matched.len(),
            missing.join(", "),
        )
    };
    Ok(verdict(image, accepted, found, matched, reason).with_missing(missing))
}

fn verdict(
    image: &ImageId,
    accepted: bool,
    signatures: Vec<FoundSignature>,
    matched_keys: Vec<Fingerprint>,
    reason: String,
) -> Verdict {
    Verdict {
        image: image.clone(),
        accepted,
        signatures,
        matched_keys,
        missing_keys: Vec::new(),
        reason,
    }
}

impl Verdict {
    fn with_missing(mut self, missing: Vec<String>) -> Self {
        self.missing_keys = missing;
        self
    }
}

fn finding(form: SignatureForm, location: String) -> FoundSignature {
    FoundSignature {
        form,
        location,
        key: None,
        key_name: None,
        identity: None,
        annotations: BTreeMap::new(),
        problem: None,
    }
}

/// Fetches a blob and checks it against its descriptor's digest.
fn checked_blob(
    source: &dyn SignatureSource,
    repository: &str,
    digest_text: &str,
    limit: u64,
) -> Result<Result<Vec<u8>, String>, TrustError> {
    let Ok(digest) = Digest::parse(digest_text) else {
        return Ok(Err(format!("bad digest {digest_text:?}")));
    };
    let Some(bytes) = source.blob(repository, &digest, limit)? else {
        return Ok(Err(format!("blob {digest} is missing")));
    };
    if Digest::of_with(digest.algorithm(), &bytes) != digest {
        return Ok(Err(format!("blob {digest} does not match its digest")));
    }
    Ok(Ok(bytes))
}

/// The first trusted key whose signature check passes.
fn which_key<'k>(
    keys: &'k [TrustedKey],
    message: &[u8],
    signature: &[u8],
) -> Option<&'k TrustedKey> {
    keys.iter()
        .find(|k| k.key.verify(message, signature).is_ok())
}

fn tag_form(
    source: &dyn SignatureSource,
    image: &ImageId,
    keys: &[TrustedKey],
    found: &mut Vec<FoundSignature>,
) -> Result<(), TrustError> {
    let Some(bytes) = source.manifest(&image.repository, &signature_tag(&image.digest))? else {
        return Ok(());
    };
    let manifest: Manifest = match serde_json::from_slice(&bytes) {
        Ok(m) => m,
        Err(e) => {
            let mut f = finding(SignatureForm::Tag, signature_tag(&image.digest));
            f.problem = Some(format!(
                "the signature manifest is not an OCI manifest: {e}"
            ));
            found.push(f);
            return Ok(());
        }
    };
    for layer in manifest.layers.iter().take(MAX_SIGNATURES) {
        if layer.media_type != SIMPLE_SIGNING_MEDIA_TYPE {
            continue;
        }
        let mut f = finding(SignatureForm::Tag, layer.digest.clone());
        if let Err(problem) = check_simple_signing(source, image, keys, layer, &mut f)? {
            f.problem = Some(problem);
        }
        found.push(f);
    }
    Ok(())
}

fn check_simple_signing(
    source: &dyn SignatureSource,
    image: &ImageId,
    keys: &[TrustedKey],
    layer: &crate::formats::Descriptor,
    f: &mut FoundSignature,
) -> Result<Result<(), String>, TrustError> {
    let Some(encoded) = layer.annotations.get(SIGNATURE_ANNOTATION) else {
        return Ok(Err("no signature annotation".into()));
    };
    let Ok(signature) = STANDARD.decode(encoded.trim()) else {
        return Ok(Err("the signature is not base64".into()));
    };
    let payload = match checked_blob(source, &image.repository, &layer.digest, PAYLOAD_LIMIT)? {
        Ok(p) => p,
        Err(problem) => return Ok(Err(problem)),
    };
    let parsed: SimpleSigning = match serde_json::from_slice(&payload) {
        Ok(p) => p,
        Err(e) => return Ok(Err(format!("the payload is not simple-signing JSON: {e}"))),
    };
    f.identity = Some(parsed.critical.identity.docker_reference.clone());
    f.annotations = parsed.optional.clone().unwrap_or_default();
    let Some(key) = which_key(keys, &payload, &signature) else {
        return Ok(Err(
            "not signed by a trusted key (or the signature is damaged)".into(),
        ));
    };
    if parsed.critical.kind != SIMPLE_SIGNING_TYPE {
        return Ok(Err(format!(
            "unknown critical type {:?}",
            parsed.critical.kind
        )));
    }
    if parsed.critical.image.docker_manifest_digest != image.digest.to_string() {
        return Ok(Err(format!(
            "signs another digest ({:?})",
            parsed.critical.image.docker_manifest_digest
        )));
    }
    f.key = Some(key.key.fingerprint());
    f.key_name = Some(key.name.clone());
    Ok(Ok(()))
}

fn referrer_form(
    source: &dyn SignatureSource,
    image: &ImageId,
    keys: &[TrustedKey],
    found: &mut Vec<FoundSignature>,
) -> Result<(), TrustError> {
    let index_bytes = match source.referrers(&image.repository, &image.digest)? {
        Some(bytes) => bytes,
        None => match source.manifest(&image.repository, &referrers_tag(&image.digest))? {
            Some(bytes) => bytes,
            None => return Ok(()),
        },
    };
    let Ok(index) = serde_json::from_slice::<Index>(&index_bytes) else {
        let mut f = finding(SignatureForm::Referrer, referrers_tag(&image.digest));
        f.problem = Some("the referrers index is not an OCI index".into());
        found.push(f);
        return Ok(());
    };
    for entry in index
        .manifests
        .iter()
        .filter(|d| d.artifact_type.as_deref() == Some(BUNDLE_MEDIA_TYPE))
        .take(MAX_SIGNATURES)
    {
        let mut f = finding(SignatureForm::Referrer, entry.digest.clone());
        if let Err(problem) = check_referrer(source, image, keys, &entry.digest, &mut f)? {
            f.problem = Some(problem);
        }
        found.push(f);
    }
    Ok(())
}

fn check_referrer(
    source: &dyn SignatureSource,
    image: &ImageId,
    keys: &[TrustedKey],
    manifest_digest: &str,
    f: &mut FoundSignature,
) -> Result<Result<(), String>, TrustError> {
    let Ok(digest) = Digest::parse(manifest_digest) else {
        return Ok(Err(format!("bad digest {manifest_digest:?}")));
    };
    let Some(bytes) = source.manifest(&image.repository, &digest.to_string())? else {
        return Ok(Err(format!("referrer manifest {digest} is missing")));
    };
    if bytes.len() as u64 > MANIFEST_LIMIT || Digest::of_with(digest.algorithm(), &bytes) != digest
    {
        return Ok(Err(format!(
            "referrer manifest {digest} does not match its digest"
        )));
    }
    let manifest: Manifest = match serde_json::from_slice(&bytes) {
        Ok(m) => m,
        Err(e) => {
            return Ok(Err(format!(
                "referrer {digest} is not an OCI manifest: {e}"
            )))
        }
    };
    match &manifest.subject {
        Some(subject) if subject.digest == image.digest.to_string() => {}
        _ => return Ok(Err(format!("referrer {digest} is not about this image"))),
    }
    let Some(layer) = manifest
        .layers
        .iter()
        .find(|l| l.media_type == BUNDLE_MEDIA_TYPE)
    else {
        return Ok(Err(format!("referrer {digest} holds no Sigstore bundle")));
    };
    f.location = layer.digest.clone();
    let bundle_bytes = match checked_blob(source, &image.repository, &layer.digest, PAYLOAD_LIMIT)?
    {
        Ok(b) => b,
        Err(problem) => return Ok(Err(problem)),
    };
    let bundle: Bundle = match serde_json::from_slice(&bundle_bytes) {
        Ok(b) => b,
        Err(e) => return Ok(Err(format!("not a Sigstore bundle: {e}"))),
    };
    if !bundle
        .media_type
        .starts_with("application/vnd.dev.sigstore.bundle")
    {
        return Ok(Err(format!(
            "unknown bundle media type {:?}",
            bundle.media_type
        )));
    }
    let Some(envelope) = bundle.dsse_envelope else {
        return Ok(Err("the bundle holds no DSSE envelope".into()));
    };
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Ok(Err(format!(
            "unknown DSSE payload type {:?}",
            envelope.payload_type
        )));
    }
    let Ok(payload) = STANDARD.decode(envelope.payload.trim()) else {
        return Ok(Err("the DSSE payload is not base64".into()));
    };
    let message = pae(&envelope.payload_type, &payload);
    let key = envelope
        .signatures
        .iter()
        .take(MAX_SIGNATURES)
        .find_map(|s| {
            let signature = STANDARD.decode(s.sig.trim()).ok()?;
            which_key(keys, &message, &signature)
        });
    let statement: Statement = match serde_json::from_slice(&payload) {
        Ok(s) => s,
        Err(e) => {
            return Ok(Err(format!(
                "the DSSE payload is not an in-toto statement: {e}"
            )))
        }
    };
    f.identity = statement.subject.first().map(|s| s.name.clone());
    let Some(key) = key else {
        return Ok(Err(
            "not signed by a trusted key (or the signature is damaged)".into(),
        ));
    };
    if !statement.kind.starts_with("https://in-toto.io/Statement/") {
        return Ok(Err(format!("unknown statement type {:?}", statement.kind)));
    }
    let covers = statement.subject.iter().any(|s| {
        s.digest.get(image.digest.algorithm().to_string().as_str())
            == Some(&image.digest.hex().to_owned())
    });
    if !covers {
        return Ok(Err("the statement is about another digest".into()));
    }
    f.key = Some(key.key.fingerprint());
    f.key_name = Some(key.name.clone());
    Ok(Ok(()))
}
