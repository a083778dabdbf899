//! Gates: policy checks a manifest must pass before it is served (`GET`/`HEAD` of a manifest in
//! a repository whose policy names the gate). A failing gate turns the pull into 403 `DENIED`
//! with the gate's reason in the error body.
//!
//! Gates are synchronous (they run on the blocking pool) and see the registry only through a
//! read-only [`RegistryView`], so the trust (signatures) and scan (vulnerabilities) crates can
//! implement [`Gate`] without knowing about HTTP or storage layout:
//!
//! - a signature gate lists the manifest's signatures with [`RegistryView::signature_tag`]
//!   (cosign's `sha256-<hex>.sig` tag) and [`RegistryView::referrers`], reads them with
//!   [`RegistryView::manifest`] and [`RegistryView::blob`], and verifies them against its keys;
//! - the scan gate ([`crate::scan::ScanGate`]) reads the verdict the scan-on-push queue stored.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use palisade_image::digest::Digest;

use crate::glob::Glob;
use crate::manifest::Descriptor;
use crate::name::RepositoryName;

/// A gate's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateVerdict {
    /// The manifest may be served.
    Allow,
    /// It may not; `reason` goes to the client and the audit log.
    Deny {
        /// Why, for a human (`"no valid signature by a configured key"`).
        reason: String,
    },
}

/// What a gate is asked about.
#[derive(Debug)]
pub struct GateContext<'a> {
    /// The repository.
    pub repository: &'a RepositoryName,
    /// The manifest's digest.
    pub digest: &'a Digest,
    /// The manifest's media type.
    pub media_type: &'a str,
    /// The manifest's bytes (verified against `digest`).
    pub manifest: &'a [u8],
    /// Read access to the registry's content.
    pub view: &'a dyn RegistryView,
}

/// A policy check on manifests.
pub trait Gate: Send + Sync + 'static {
    /// The name policies refer to (`signature`, `scan`).
    fn name(&self) -> &str;
    /// Decides. Errors reading content are a `Deny` with the reason (fail closed).
    fn check(&self, ctx: &GateContext<'_>) -> GateVerdict;
}

/// Read-only access to stored content for gates and scanners. Every byte returned has been
/// verified against its digest.
pub trait RegistryView: Send + Sync + std::fmt::Debug {
    /// A manifest of `repository` by digest.
    fn manifest(&self, repository: &RepositoryName, digest: &Digest) -> Option<Vec<u8>>;
    /// The manifest a tag points at, with its digest.
    fn tag(&self, repository: &RepositoryName, tag: &str) -> Option<(Digest, Vec<u8>)>;
    /// Cosign's signature tag for `digest` (`sha256-<hex>.sig`), if pushed.
    fn signature_tag(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Option<(Digest, Vec<u8>)> {
        self.tag(
            repository,
            &format!("{}-{}.sig", digest.algorithm().name(), digest.hex()),
        )
    }
    /// Manifests whose `subject` is `digest` (OCI referrers), optionally of one artifact type.
    fn referrers(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Vec<Descriptor>;
    /// A blob of `repository`, if it is at most `max_bytes` long.
    fn blob(&self, repository: &RepositoryName, digest: &Digest, max_bytes: u64)
        -> Option<Vec<u8>>;
}

/// Repository globs and the gates that apply to them.
type Rule = (Vec<Glob>, Vec<Arc<dyn Gate>>);

/// Which gates apply to which repositories, and the gate implementations.
#[derive(Default)]
pub struct GatePolicy {
    rules: Vec<Rule>,
    cache: Mutex<HashMap<(String, Digest), (Instant, GateVerdict)>>,
    ttl: Duration,
}

impl std::fmt::Debug for GatePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatePolicy")
            .field("rules", &self.rules.len())
            .finish_non_exhaustive()
    }
}

/// A policy names a gate nobody registered.
#[derive(Debug, thiserror::Error)]
#[error("policy names gate {0:?}, which this registry does not have (known: {1})")]
pub struct UnknownGate(pub String, pub String);

impl GatePolicy {
    /// Builds the policy from `(repository globs, gate names)` pairs and the available gates.
    /// Verdicts are cached for `ttl` per repository and digest.
    pub fn new(
        policies: &[(Vec<String>, Vec<String>)],
        gates: &[Arc<dyn Gate>],
        ttl: Duration,
    ) -> Result<Self, UnknownGate> {
        let mut rules = Vec::new();
        for (globs, names) in policies {
            let globs = globs.iter().filter_map(|g| Glob::parse(g).ok()).collect();
            let mut gs = Vec::new();
            for n in names {
                let g = gates.iter().find(|g| g.name() == n).ok_or_else(|| {
                    UnknownGate(
                        n.clone(),
                        gates
                            .iter()
                            .map(|g| g.name().to_owned())
                            .collect::<Vec<_>>()
                            .join(", "),
                    )
                })?;
                gs.push(Arc::clone(g));
            }
            rules.push((globs, gs));
        }
        Ok(Self {
            rules,
            cache: Mutex::new(HashMap::new()),
            ttl,
        })
    }

    /// Whether any gate applies to `repository` (so the server can skip the work otherwise).
    pub fn applies(&self, repository: &RepositoryName) -> bool {
        self.rules
            .iter()
            .any(|(g, _)| g.iter().any(|g| g.matches(repository.as_str())))
    }

    /// Runs every gate that applies; the first `Deny` wins, with the gate's name in the reason.
    pub fn evaluate(&self, ctx: &GateContext<'_>) -> GateVerdict {
        let key = (ctx.repository.as_str().to_owned(), ctx.digest.clone());
        if let Ok(c) = self.cache.lock() {
            if let Some((at, v)) = c.get(&key) {
                if at.elapsed() < self.ttl {
                    return v.clone();
                }
            }
        }
        let mut verdict = GateVerdict::Allow;
        'rules: for (globs, gates) in &self.rules {
            if !globs.iter().any(|g| g.matches(ctx.repository.as_str())) {
                continue;
            }
            for g in gates {
                if let GateVerdict::Deny { reason } = g.check(ctx) {
                    verdict = GateVerdict::Deny {
                        reason: format!("{} gate: {reason}", g.name()),
                    };
                    break 'rules;
                }
            }
        }
        if let Ok(mut c) = self.cache.lock() {
            if c.len() > 65536 {
                c.clear();
            }
            c.insert(key, (Instant::now(), verdict.clone()));
        }
        verdict
    }

    /// Forgets cached verdicts (new scan results, reloaded keys).
    pub fn invalidate(&self) {
        if let Ok(mut c) = self.cache.lock() {
            c.clear();
        }
    }
}
