//! The `signature` gate: a pull is served only when the trust policy accepts the manifest's
//! signatures, verified with `palisade-trust` against the policy's keys (not merely present).
//!
//! The trust crate reads signatures through [`ViewSource`], a
//! [`palisade_trust::SignatureSource`] over the registry's own [`RegistryView`]; the verifier
//! checks every byte it reads against its digest. Policy scopes are `host/repository` names,
//! so the gate is told the registry's public name (`registry_name` in the configuration).
//!
//! Signature artifacts themselves (cosign's `sha256-<hex>.sig` manifests, Sigstore bundle
//! referrers) are unsigned by construction: the gate lets them through, or verification
//! clients could never fetch them. They cannot be run as images: every layer is a signature
//! payload, never a filesystem layer.

use std::path::{Path, PathBuf};

use palisade_image::digest::Digest;
use palisade_trust::formats::{BUNDLE_MEDIA_TYPE, SIMPLE_SIGNING_MEDIA_TYPE};
use palisade_trust::{check_registry_image, Audit, ImageId, Policy, SignatureSource, TrustError};
use serde::Deserialize;

use crate::gate::{Gate, GateContext, GateVerdict, RegistryView};
use crate::name::RepositoryName;

/// Why the signature gate could not be built.
#[derive(Debug, thiserror::Error)]
#[error("signature gate: {error}")]
pub struct SignatureGateError {
    /// The policy file.
    pub path: PathBuf,
    /// What the trust crate said (it names the policy file and the key or scope at fault).
    pub error: TrustError,
}

/// Verifies signatures with the trust policy.
#[derive(Debug)]
pub struct SignatureGate {
    policy: Policy,
    registry_name: String,
}

impl SignatureGate {
    /// Loads the trust policy at `policy_path` (its keys are read now: a missing key file is
    /// an error here, not a denied pull later). `registry_name` is the host (and port) clients
    /// pull from, the first component of the policy's scope names.
    pub fn load(
        policy_path: &Path,
        registry_name: impl Into<String>,
    ) -> Result<Self, SignatureGateError> {
        let policy = Policy::load(policy_path).map_err(|error| SignatureGateError {
            path: policy_path.to_owned(),
            error,
        })?;
        Ok(Self::new(policy, registry_name))
    }

    /// A gate over an already loaded policy.
    pub fn new(policy: Policy, registry_name: impl Into<String>) -> Self {
        Self {
            policy,
            registry_name: registry_name.into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Shape {
    artifact_type: Option<String>,
    #[serde(default)]
    layers: Vec<Layer>,
    config: Option<Layer>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Layer {
    media_type: String,
}

/// Whether `manifest` is a signature artifact: a cosign tag-form signature (every layer is a
/// simple-signing payload) or a Sigstore bundle referrer. Such a manifest holds no filesystem
/// layer, so letting it through lets nobody run unsigned code.
pub fn is_signature_artifact(manifest: &[u8]) -> bool {
    let Ok(m) = serde_json::from_slice::<Shape>(manifest) else {
        return false;
    };
    let bundle = m.artifact_type.as_deref() == Some(BUNDLE_MEDIA_TYPE)
        || m.config.as_ref().map(|c| c.media_type.as_str()) == Some(BUNDLE_MEDIA_TYPE);
    let layers_are = |t: &str| !m.layers.is_empty() && m.layers.iter().all(|l| l.media_type == t);
    layers_are(SIMPLE_SIGNING_MEDIA_TYPE) || (bundle && layers_are(BUNDLE_MEDIA_TYPE))
}

impl Gate for SignatureGate {
    fn name(&self) -> &str {
        "signature"
    }

    fn check(&self, ctx: &GateContext<'_>) -> GateVerdict {
        if is_signature_artifact(ctx.manifest) {
            return GateVerdict::Allow;
        }
        let image = ImageId {
            registry: self.registry_name.clone(),
            repository: ctx.repository.as_str().to_owned(),
            digest: ctx.digest.clone(),
        };
        let source = ViewSource { view: ctx.view };
        let display = format!("{}@{}", image.name(), ctx.digest);
        match check_registry_image(
            &self.policy,
            None,
            &source,
            &image,
            &display,
            &Audit::disabled(),
        ) {
            Ok(d) if d.verdict.accepted => GateVerdict::Allow,
            Ok(d) => GateVerdict::Deny {
                reason: d.verdict.reason,
            },
            Err(e) => GateVerdict::Deny {
                reason: format!("signatures could not be verified: {e}"),
            },
        }
    }
}

/// A [`SignatureSource`] over the registry's own content.
#[derive(Debug)]
pub struct ViewSource<'a> {
    /// The registry's content.
    pub view: &'a dyn RegistryView,
}

impl ViewSource<'_> {
    fn repo(repository: &str) -> Result<RepositoryName, TrustError> {
        RepositoryName::parse(repository)
            .map_err(|e| TrustError::Source(format!("repository {repository:?}: {e}")))
    }
}

impl SignatureSource for ViewSource<'_> {
    fn manifest(&self, repository: &str, reference: &str) -> Result<Option<Vec<u8>>, TrustError> {
        let repo = Self::repo(repository)?;
        if reference.contains(':') {
            let d = Digest::parse(reference)
                .map_err(|e| TrustError::Source(format!("reference {reference:?}: {e}")))?;
            Ok(self.view.manifest(&repo, &d))
        } else {
            Ok(self.view.tag(&repo, reference).map(|(_, bytes)| bytes))
        }
    }

    fn referrers(&self, repository: &str, subject: &Digest) -> Result<Option<Vec<u8>>, TrustError> {
        let repo = Self::repo(repository)?;
        let manifests = self.view.referrers(&repo, subject, None);
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": palisade_trust::formats::OCI_INDEX,
            "manifests": manifests,
        });
        serde_json::to_vec(&index)
            .map(Some)
            .map_err(|e| TrustError::Source(format!("encoding the referrers index: {e}")))
    }

    fn blob(
        &self,
        repository: &str,
        digest: &Digest,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, TrustError> {
        let repo = Self::repo(repository)?;
        Ok(self.view.blob(&repo, digest, limit))
    }
}
