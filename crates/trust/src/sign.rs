//! Signing an image in either of cosign's forms: [`sign_image`].

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use palisade_image::distribution::RegistryClient;
use palisade_image::Digest;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::error::TrustError;
use crate::formats::{
    pae, referrers_tag, signature_tag, simple_signing_payload, Bundle, Descriptor, Envelope,
    EnvelopeSignature, Index, Manifest, Statement, StatementSubject, BUNDLE_MEDIA_TYPE,
    EMPTY_MEDIA_TYPE, IN_TOTO_PAYLOAD_TYPE, OCI_INDEX, OCI_MANIFEST, SIGNATURE_ANNOTATION,
    SIGN_PREDICATE_TYPE, SIMPLE_SIGNING_MEDIA_TYPE, STATEMENT_TYPE,
};
use crate::keys::Signer;
use crate::source::{RegistrySource, SignatureSource, MANIFEST_LIMIT};
use crate::verify::{ImageId, SignatureForm};

/// Write access for publishing signatures.
pub trait SignatureSink {
    /// Stores `bytes` as a blob of `repository`; returns its digest.
    fn push_blob(&self, repository: &str, bytes: &[u8]) -> Result<Digest, TrustError>;
    /// Stores a manifest or index under a tag or its digest. Returns whether the store
    /// indexes the manifest's `subject` for the referrers API.
    fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<bool, TrustError>;
}

fn registry_error(e: palisade_image::distribution::DistributionError) -> TrustError {
    TrustError::Source(e.to_string())
}

impl SignatureSink for RegistrySource<'_> {
    fn push_blob(&self, repository: &str, bytes: &[u8]) -> Result<Digest, TrustError> {
        self.client()
            .push_blob_bytes(repository, bytes)
            .map_err(registry_error)
    }

    fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<bool, TrustError> {
        self.client()
            .put_manifest_bytes(repository, reference, media_type, bytes)
            .map(|put| put.subject_indexed)
            .map_err(registry_error)
    }
}

impl<'c> RegistrySource<'c> {
    /// The client.
    pub fn client(&self) -> &'c RegistryClient {
        self.client
    }
}

/// What [`sign_image`] published.
#[derive(Debug, Clone, Serialize)]
pub struct SignReport {
    /// The image signed.
    pub image: ImageId,
    /// The form written.
    pub form: SignatureForm,
    /// Where: the tag (tag form, referrers-tag fallback) or the referrer's digest.
    pub location: String,
    /// The signing key's fingerprint.
    pub key: String,
    /// Whether the registry indexed the referrer itself (referrers API); `false` means the
    /// referrers tag was updated too.
    pub referrers_api: bool,
}

/// Signs `image` with `signer` and publishes the signature through `sink` (reading what is
/// already there through `source`): the tag form appends a layer to `sha256-<hex>.sig`, the
/// referrer form pushes a Sigstore bundle manifest whose `subject` is the image (and updates
/// the referrers tag `sha256-<hex>` when the registry lacks the referrers API).
pub fn sign_image<S: SignatureSource + SignatureSink>(
    store: &S,
    image: &ImageId,
    signer: &dyn Signer,
    annotations: &BTreeMap<String, String>,
    form: SignatureForm,
) -> Result<SignReport, TrustError> {
    let public = signer.public_key()?;
    let (location, referrers_api) = match form {
        SignatureForm::Tag => (sign_tag_form(store, image, signer, annotations)?, false),
        SignatureForm::Referrer => sign_referrer_form(store, image, signer, &public, annotations)?,
    };
    Ok(SignReport {
        image: image.clone(),
        form,
        location,
        key: public.fingerprint().to_string(),
        referrers_api,
    })
}

fn json<T: Serialize>(value: &T) -> Result<Vec<u8>, TrustError> {
    serde_json::to_vec(value).map_err(|e| TrustError::Signature(format!("encoding: {e}")))
}

fn sign_tag_form<S: SignatureSource + SignatureSink>(
    store: &S,
    image: &ImageId,
    signer: &dyn Signer,
    annotations: &BTreeMap<String, String>,
) -> Result<String, TrustError> {
    let payload = simple_signing_payload(&image.name(), &image.digest, annotations);
    let signature = STANDARD.encode(signer.sign(&payload)?);
    let tag = signature_tag(&image.digest);
    let mut layers = match store.manifest(&image.repository, &tag)? {
        Some(bytes) => {
            let existing: Manifest = serde_json::from_slice(&bytes).map_err(|e| {
                TrustError::Signature(format!(
                    "the existing signature manifest {tag} is unreadable ({e}); not overwriting it"
                ))
            })?;
            existing.layers
        }
        None => Vec::new(),
    };
    let mut layer = Descriptor::of(SIMPLE_SIGNING_MEDIA_TYPE, &payload);
    layer
        .annotations
        .insert(SIGNATURE_ANNOTATION.to_owned(), signature);
    if !layers.contains(&layer) {
        layers.push(layer);
    }
    store.push_blob(&image.repository, &payload)?;
    let diff_ids: Vec<&str> = layers.iter().map(|l| l.digest.as_str()).collect();
    let config = json(&serde_json::json!({
        "architecture": "",
        "os": "",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))?;
    store.push_blob(&image.repository, &config)?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.to_owned()),
        artifact_type: None,
        config: Descriptor::of("application/vnd.oci.image.config.v1+json", &config),
        layers,
        subject: None,
        annotations: BTreeMap::new(),
    };
    store.put_manifest(&image.repository, &tag, OCI_MANIFEST, &json(&manifest)?)?;
    Ok(tag)
}

fn sign_referrer_form<S: SignatureSource + SignatureSink>(
    store: &S,
    image: &ImageId,
    signer: &dyn Signer,
    public: &crate::keys::PublicKey,
    annotations: &BTreeMap<String, String>,
) -> Result<(String, bool), TrustError> {
    let subject_bytes = store
        .manifest(&image.repository, &image.digest.to_string())?
        .ok_or_else(|| TrustError::Source(format!("{image} is not in the registry")))?;
    if subject_bytes.len() as u64 > MANIFEST_LIMIT
        || Digest::of_with(image.digest.algorithm(), &subject_bytes) != image.digest
    {
        return Err(TrustError::Source(format!(
            "the registry's manifest for {image} does not match its digest"
        )));
    }
    let subject_type = serde_json::from_slice::<serde_json::Value>(&subject_bytes)
        .ok()
        .and_then(|v| {
            v.get("mediaType")
                .and_then(|m| m.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| OCI_MANIFEST.to_owned());
    let statement = Statement {
        kind: STATEMENT_TYPE.to_owned(),
        subject: vec![StatementSubject {
            name: image.name(),
            digest: BTreeMap::from([(
                image.digest.algorithm().to_string(),
                image.digest.hex().to_owned(),
            )]),
        }],
        predicate_type: SIGN_PREDICATE_TYPE.to_owned(),
        predicate: serde_json::json!({}),
    };
    let payload = json(&statement)?;
    let signature = signer.sign(&pae(IN_TOTO_PAYLOAD_TYPE, &payload))?;
    let hint = STANDARD.encode(Sha256::digest(public.spki_der()));
    let bundle = Bundle {
        media_type: BUNDLE_MEDIA_TYPE.to_owned(),
        verification_material: serde_json::json!({
            "publicKey": {"hint": hint},
            "tlogEntries": [],
        }),
        dsse_envelope: Some(Envelope {
            payload: STANDARD.encode(&payload),
            payload_type: IN_TOTO_PAYLOAD_TYPE.to_owned(),
            signatures: vec![EnvelopeSignature {
                sig: STANDARD.encode(signature),
                keyid: String::new(),
            }],
        }),
    };
    let bundle_bytes = json(&bundle)?;
    store.push_blob(&image.repository, &bundle_bytes)?;
    store.push_blob(&image.repository, b"{}")?;
    let mut manifest_annotations = BTreeMap::from([
        (
            "dev.sigstore.bundle.content".to_owned(),
            "dsse-envelope".to_owned(),
        ),
        (
            "dev.sigstore.bundle.predicateType".to_owned(),
            SIGN_PREDICATE_TYPE.to_owned(),
        ),
    ]);
    manifest_annotations.extend(annotations.clone());
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.to_owned()),
        artifact_type: Some(BUNDLE_MEDIA_TYPE.to_owned()),
        config: Descriptor::of(EMPTY_MEDIA_TYPE, b"{}"),
        layers: vec![Descriptor::of(BUNDLE_MEDIA_TYPE, &bundle_bytes)],
        subject: Some(Descriptor {
            media_type: subject_type,
            digest: image.digest.to_string(),
            size: subject_bytes.len() as u64,
            artifact_type: None,
            annotations: BTreeMap::new(),
        }),
        annotations: manifest_annotations.clone(),
    };
    let manifest_bytes = json(&manifest)?;
    let digest = Digest::of(&manifest_bytes);
    let indexed = store.put_manifest(
        &image.repository,
        &digest.to_string(),
        OCI_MANIFEST,
        &manifest_bytes,
    )?;
    if indexed {
        return Ok((digest.to_string(), true));
    }
    // No referrers API: keep the referrers tag's index up to date (OCI distribution 1.1,
    // "referrers tag schema").
    let tag = referrers_tag(&image.digest);
    let mut index = match store.manifest(&image.repository, &tag)? {
        Some(bytes) => serde_json::from_slice::<Index>(&bytes).map_err(|e| {
            TrustError::Signature(format!(
                "the referrers tag {tag} holds no readable index ({e}); not overwriting it"
            ))
        })?,
        None => Index {
            schema_version: 2,
            media_type: Some(OCI_INDEX.to_owned()),
            manifests: Vec::new(),
        },
    };
    let mut entry = Descriptor::of(OCI_MANIFEST, &manifest_bytes);
    entry.artifact_type = Some(BUNDLE_MEDIA_TYPE.to_owned());
    entry.annotations = manifest_annotations;
    if !index.manifests.iter().any(|d| d.digest == entry.digest) {
        index.manifests.push(entry);
    }
    store.put_manifest(&image.repository, &tag, OCI_INDEX, &json(&index)?)?;
    Ok((digest.to_string(), false))
}
