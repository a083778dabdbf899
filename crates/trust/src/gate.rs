//! Enforcement: the checks `palisade pull`, `palisade run`/`create` (and the registry's pull
//! gate, through [`check_registry_image`] over its own [`SignatureSource`]) make before an
//! image is used, with every verdict written to the audit log.
//!
//! - [`check_registry_image`]: an image about to come from a registry. Its signatures are
//!   verified online and kept in the store's signature cache, and the image's origin
//!   (registry and repository) is remembered by digest.
//! - [`check_stored_image`]: an image in the store, before it runs. An image with a
//!   remembered origin is checked again against the *current* policy for that origin's
//!   scope, offline, from the cached signatures (a key removed from the policy stops it from
//!   running). An image without one never came from a registry: it was imported or loaded by
//!   the store's owner, and the policy's `local` scope decides (accepted unless it says
//!   `"reject"`).

use std::path::{Path, PathBuf};

use palisade_audit::{Actor, AuditLog, Decision as AuditDecision, Event, SignatureOutcome};
use palisade_image::Digest;
use serde::{Deserialize, Serialize};

use crate::error::TrustError;
use crate::policy::{Policy, LOCAL_SCOPE};
use crate::source::{CachedSource, RecordingSource, SignatureSource};
use crate::verify::{verify_image, ImageId, Requirement, Verdict};

/// Palisade's trust records inside an image store: `<store>/trust/signatures/` (the
/// signature cache) and `<store>/trust/origins/<hex>.json` (where a digest was pulled from).
#[derive(Debug, Clone)]
pub struct TrustStore {
    dir: PathBuf,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Origins {
    origins: Vec<Origin>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Origin {
    registry: String,
    repository: String,
}

impl TrustStore {
    /// The records of the store rooted at `store_root`.
    pub fn for_store(store_root: &Path) -> Self {
        Self {
            dir: store_root.join("trust"),
        }
    }

    /// The signature cache.
    pub fn cache(&self) -> CachedSource {
        CachedSource::new(self.dir.join("signatures"))
    }

    fn origins_path(&self, digest: &Digest) -> PathBuf {
        self.dir
            .join("origins")
            .join(format!("{}-{}.json", digest.algorithm(), digest.hex()))
    }

    /// Remembers that `image.digest` came from `image`'s registry and repository.
    pub fn record_origin(&self, image: &ImageId) -> Result<(), TrustError> {
        let path = self.origins_path(&image.digest);
        let mut origins = self.read_origins(&image.digest);
        let origin = Origin {
            registry: image.registry.clone(),
            repository: image.repository.clone(),
        };
        if origins.origins.contains(&origin) {
            return Ok(());
        }
        origins.origins.push(origin);
        let dir = self.dir.join("origins");
        std::fs::create_dir_all(&dir).map_err(|e| TrustError::io(&dir, e))?;
        let bytes = serde_json::to_vec_pretty(&origins)
            .map_err(|e| TrustError::Source(format!("encoding origins: {e}")))?;
        let partial = path.with_extension(format!("partial-{}", std::process::id()));
        std::fs::write(&partial, bytes).map_err(|e| TrustError::io(&partial, e))?;
        std::fs::rename(&partial, &path).map_err(|e| TrustError::io(&path, e))
    }

    /// Where `digest` was pulled from (empty: never pulled, a local image).
    pub fn origins(&self, digest: &Digest) -> Vec<ImageId> {
        self.read_origins(digest)
            .origins
            .into_iter()
            .map(|o| ImageId {
                registry: o.registry,
                repository: o.repository,
                digest: digest.clone(),
            })
            .collect()
    }

    fn read_origins(&self, digest: &Digest) -> Origins {
        let path = self.origins_path(digest);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "unreadable origin record; treating the image as never verified");
                // A damaged record must not turn a pulled image into a trusted local one.
                Origins {
                    origins: vec![Origin {
                        registry: "(unknown)".into(),
                        repository: "(damaged origin record)".into(),
                    }],
                }
            }),
            Err(_) => Origins::default(),
        }
    }
}

/// A policy decision about one image.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// The policy file (or the built-in default).
    pub policy: String,
    /// The scope that applied (`local` for local images).
    pub scope: String,
    /// What verification found.
    pub verdict: Verdict,
}

impl Decision {
    /// The decision as a result: a rejection becomes [`TrustError::Rejected`] naming the
    /// image, the scope, the policy and what is missing.
    pub fn into_result(self) -> Result<Decision, TrustError> {
        if self.verdict.accepted {
            Ok(self)
        } else {
            Err(TrustError::Rejected {
                image: self.verdict.image.to_string(),
                scope: self.scope,
                policy: self.policy,
                reason: self.verdict.reason,
            })
        }
    }
}

/// Where verdicts are recorded.
#[derive(Debug, Clone)]
pub struct Audit {
    path: Option<PathBuf>,
}

impl Audit {
    /// Verdicts go to `path` (created 0600 in a 0700 directory).
    pub fn to(path: impl Into<PathBuf>) -> Self {
        Self {
            path: Some(path.into()),
        }
    }

    /// `<store_root>/audit/trust.log`, beside the engine's and the runtime's logs.
    pub fn for_store(store_root: &Path) -> Self {
        Self::to(store_root.join("audit").join("trust.log"))
    }

    /// Records nothing (tests).
    pub fn disabled() -> Self {
        Self { path: None }
    }

    fn record(&self, reference: &str, decision: &Decision, requirement: &Requirement) {
        let verdict = &decision.verdict;
        if matches!(requirement, Requirement::InsecureAcceptAnything) {
            tracing::warn!(
                image = %verdict.image,
                scope = %decision.scope,
                policy = %decision.policy,
                "trust policy: insecure-accept-anything; the image is used WITHOUT signature verification"
            );
        }
        let Some(path) = &self.path else { return };
        let mut log = match AuditLog::open(path) {
            Ok(log) => log,
            Err(e) => {
                tracing::warn!(error = %e, path = %path.display(), "audit log unavailable; the verdict is not recorded");
                return;
            }
        };
        let mut events = Vec::new();
        if matches!(requirement, Requirement::InsecureAcceptAnything) {
            events.push(Event::PolicyRelaxed {
                actor: Actor::current_process(),
                container_id: None,
                image: Some(reference.to_owned()),
                relaxation: "insecure-accept-anything".into(),
                reason: Some(format!(
                    "trust policy {} scope {:?}",
                    decision.policy, decision.scope
                )),
            });
        }
        events.push(Event::SignatureVerdict {
            actor: Actor::current_process(),
            reference: reference.to_owned(),
            digest: verdict.image.digest.to_string(),
            verdict: if verdict.accepted {
                SignatureOutcome::Verified
            } else {
                SignatureOutcome::Refused
            },
            decision: if verdict.accepted {
                AuditDecision::Allow
            } else {
                AuditDecision::Deny
            },
            key_id: verdict
                .matched_keys
                .first()
                .map(ToString::to_string)
                .or_else(|| verdict.missing_keys.first().cloned()),
            reason: Some(format!("scope {}: {}", decision.scope, verdict.reason)),
        });
        for event in events {
            if let Err(e) = log.append(event) {
                tracing::warn!(error = %e, "failed to append to the audit log");
            }
        }
    }
}

/// Checks an image about to be pulled from a registry: the policy's requirement for
/// `image.name()`, verified through `source` (for `palisade pull`, a [`RegistrySource`];
/// for the registry server, its own storage). When `trust` is given, what was read is
/// cached and, if accepted, the image's origin remembered. The verdict is audited.
/// `Err` only when the source could not be read.
///
/// [`RegistrySource`]: crate::RegistrySource
pub fn check_registry_image(
    policy: &Policy,
    trust: Option<&TrustStore>,
    source: &dyn SignatureSource,
    image: &ImageId,
    reference: &str,
    audit: &Audit,
) -> Result<Decision, TrustError> {
    let (scope, requirement) = policy.requirement_for(&image.name());
    let verdict = match trust {
        Some(trust) => {
            let recording = RecordingSource::new(source, trust.cache());
            verify_image(&recording, image, &requirement)?
        }
        None => verify_image(source, image, &requirement)?,
    };
    if let Some(trust) = trust {
        if verdict.accepted {
            trust.record_origin(image)?;
        }
    }
    let decision = Decision {
        policy: policy.describe(),
        scope,
        verdict,
    };
    audit.record(reference, &decision, &requirement);
    Ok(decision)
}

/// Checks an image in the store before it runs, offline (see the module documentation).
/// `name` is the `registry/repository` it is run by, used to pick among several origins.
pub fn check_stored_image(
    policy: &Policy,
    trust: &TrustStore,
    digest: &Digest,
    name: Option<&str>,
    reference: &str,
    audit: &Audit,
) -> Result<Decision, TrustError> {
    let origins = trust.origins(digest);
    let chosen = origins
        .iter()
        .find(|o| Some(o.name().as_str()) == name)
        .or_else(|| origins.first())
        .cloned();
    let (scope, requirement, verdict) = match chosen {
        None => {
            let image = ImageId {
                registry: LOCAL_SCOPE.into(),
                repository: name.unwrap_or("(unnamed)").into(),
                digest: digest.clone(),
            };
            let requirement = policy.local_requirement().clone();
            let mut verdict = verify_image(&trust.cache(), &image, &requirement)?;
            if !verdict.accepted {
                verdict.reason = "the image was not pulled from a registry (imported or loaded locally) and the trust policy's \"local\" scope rejects local images".into();
            }
            (LOCAL_SCOPE.to_owned(), requirement, verdict)
        }
        Some(image) => {
            let (scope, requirement) = policy.requirement_for(&image.name());
            let mut verdict = verify_image(&trust.cache(), &image, &requirement)?;
            if !verdict.accepted && matches!(requirement, Requirement::Signed { .. }) {
                verdict.reason = format!(
                    "{} (checked offline against the signatures cached when it was pulled; `palisade pull {}@{}` fetches them again)",
                    verdict.reason,
                    image.name(),
                    image.digest
                );
            }
            (scope, requirement, verdict)
        }
    };
    let decision = Decision {
        policy: policy.describe(),
        scope,
        verdict,
    };
    audit.record(reference, &decision, &requirement);
    Ok(decision)
}
