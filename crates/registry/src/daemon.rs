//! `palisade registry serve`: the configured registry as a process. Builds storage, access,
//! gates, TLS and the audit sink from the [`Config`], serves until SIGTERM/SIGINT (finishing
//! requests in flight), and reloads users and policies on SIGHUP (a reload that fails keeps the
//! running configuration and says why).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::audit::AuditSink;
use crate::auth::{AuthContext, AuthState};
use crate::config::Config;
use crate::config::StorageBackend;
use crate::gate::{Gate, GatePolicy, RegistryView};
use crate::scan::{ScanGate, ScanQueue, Scanner, VerdictStore};
use crate::server::access::{Access, AuthAccess, OpenAccess};
use crate::server::{Limits, Registry};
use crate::storage::fs::FsStorage;
use crate::storage::s3::S3Storage;
use crate::storage::Storage;

/// Gates and a scanner supplied by the embedding program (the trust and scan crates).
#[derive(Default)]
pub struct Extensions {
    /// Gates policies may name, besides the built-in `scan`.
    pub gates: Vec<Arc<dyn Gate>>,
    /// The scan-on-push scanner; without one nothing is scanned (and a `scan` gate denies).
    pub scanner: Option<Arc<dyn Scanner>>,
}

/// Why a configured gate or scanner could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ExtensionError {
    /// `[gates.signature]`.
    #[error(transparent)]
    Signature(#[from] crate::signature::SignatureGateError),
    /// `[gates.scan]`.
    #[error(transparent)]
    Scan(#[from] crate::vuln::VulnScannerError),
}

impl Extensions {
    /// The gates and scanner the configuration's `[gates.signature]` and `[gates.scan]` ask
    /// for: the trust policy, advisory database and vulnerability policy are loaded now, so a
    /// missing or invalid file stops the start with its name.
    pub fn from_config(cfg: &Config) -> Result<Self, ExtensionError> {
        let mut ext = Self::default();
        if let Some(s) = &cfg.gates.signature {
            ext.gates
                .push(Arc::new(crate::signature::SignatureGate::load(
                    &s.policy,
                    s.registry_name.clone(),
                )?));
        }
        if let Some(s) = &cfg.gates.scan {
            ext.scanner = Some(Arc::new(crate::vuln::VulnScanner::load(
                &s.database,
                &s.policy,
                s.max_layer_bytes,
            )?));
        }
        Ok(ext)
    }
}

impl std::fmt::Debug for Extensions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extensions")
            .field(
                "gates",
                &self
                    .gates
                    .iter()
                    .map(|g| g.name().to_owned())
                    .collect::<Vec<_>>(),
            )
            .field("scanner", &self.scanner.is_some())
            .finish()
    }
}

/// Why the registry could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The configuration.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Storage.
    #[error("storage root {path}: {source}")]
    Storage {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The S3 bucket could not be reached or used.
    #[error("S3 storage (bucket {bucket}): {message}; check [storage.s3] endpoint, bucket, region and credentials")]
    S3 { bucket: String, message: String },
    /// Auth setup (users file, token key).
    #[error("auth: {0}")]
    Auth(#[from] crate::auth::AuthSetupError),
    /// Gates.
    #[error(transparent)]
    Gate(#[from] crate::gate::UnknownGate),
    /// TLS material.
    #[error(transparent)]
    Tls(#[from] crate::serve::TlsError),
    /// The audit log.
    #[error("audit log: {0}")]
    Audit(#[from] palisade_audit::AuditError),
    /// Binding or serving.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn build_access(
    cfg: &Config,
    state: Option<&AuthState>,
    audit: &Option<AuditSink>,
) -> Result<Arc<dyn Access>, DaemonError> {
    Ok(match (&cfg.auth, state) {
        (Some(a), Some(state)) => {
            let ctx = AuthContext::load(a, state)?;
            Arc::new(AuthAccess::new(Arc::new(ctx)).with_audit(audit.clone()))
        }
        _ => Arc::new(OpenAccess),
    })
}

fn build_gates(
    cfg: &Config,
    ext: &Extensions,
    verdicts: &VerdictStore,
) -> Result<Arc<GatePolicy>, DaemonError> {
    let mut gates = ext.gates.clone();
    gates.push(Arc::new(ScanGate::new(verdicts.clone())));
    let policies: Vec<(Vec<String>, Vec<String>)> = cfg
        .policies
        .iter()
        .map(|p| (p.repositories.clone(), p.gates.clone()))
        .collect();
    Ok(Arc::new(GatePolicy::new(
        &policies,
        &gates,
        Duration::from_secs(10),
    )?))
}

/// Runs the registry configured by `config_path` until SIGTERM or SIGINT. `ready` is called
/// with the bound address once the listener is up.
pub fn run(
    config_path: &Path,
    ext: Extensions,
    ready: impl FnOnce(std::net::SocketAddr),
) -> Result<(), DaemonError> {
    let cfg = Config::load(config_path)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run_async(config_path.to_path_buf(), cfg, ext, ready))
}

async fn run_async(
    config_path: PathBuf,
    cfg: Config,
    ext: Extensions,
    ready: impl FnOnce(std::net::SocketAddr),
) -> Result<(), DaemonError> {
    let root = cfg.storage.root.clone();
    match (cfg.storage.backend, cfg.storage.s3.clone()) {
        (StorageBackend::S3, Some(s3)) => {
            // local state (scan verdicts) stays under root
            std::fs::create_dir_all(&root).map_err(|source| DaemonError::Storage {
                path: root.clone(),
                source,
            })?;
            let storage = S3Storage::connect(&s3).await.map_err(|e| DaemonError::S3 {
                bucket: s3.bucket.clone(),
                message: e.to_string(),
            })?;
            let view: Arc<dyn RegistryView> = Arc::new(storage.view());
            serve_storage(config_path, cfg, ext, ready, storage, view).await
        }
        _ => {
            let storage = FsStorage::open(&root).map_err(|source| DaemonError::Storage {
                path: root.clone(),
                source,
            })?;
            let view: Arc<dyn RegistryView> = Arc::new(storage.view());
            serve_storage(config_path, cfg, ext, ready, storage, view).await
        }
    }
}

/// Serves `storage` (either backend) as configured.
async fn serve_storage<S: Storage>(
    config_path: PathBuf,
    cfg: Config,
    ext: Extensions,
    ready: impl FnOnce(std::net::SocketAddr),
    storage: S,
    view: Arc<dyn RegistryView>,
) -> Result<(), DaemonError> {
    use tokio::signal::unix::{signal, SignalKind};

    let root = cfg.storage.root.clone();
    let verdicts = VerdictStore::new(&root);
    let audit = cfg.audit_log.as_deref().map(AuditSink::open).transpose()?;
    let state = cfg.auth.as_ref().map(AuthState::new).transpose()?;
    let access = build_access(&cfg, state.as_ref(), &audit)?;
    if cfg.auth.is_none() {
        tracing::warn!(
            "no [auth] section: the registry accepts every request from anyone who can reach it"
        );
    }
    let gates = build_gates(&cfg, &ext, &verdicts)?;
    let tls = match &cfg.tls {
        Some(t) => Some(crate::serve::tls_config(
            &t.cert,
            &t.key,
            t.client_ca.as_deref(),
        )?),
        None => None,
    };
    let limits = Limits {
        max_manifest_bytes: cfg.limits.max_manifest_bytes,
        ..Limits::default()
    };
    let mut registry = Registry::new(storage, limits)
        .with_view(Arc::clone(&view))
        .with_metrics(cfg.metrics);
    if let Some(a) = &audit {
        registry = registry.with_audit(a.clone());
    }
    registry = registry.with_quotas(cfg.quotas.clone());
    let registry = Arc::new(registry);
    if let Some(scanner) = ext.scanner.clone() {
        let policy_for_cb = Arc::clone(&registry);
        let queue = ScanQueue::start(
            Arc::clone(&scanner),
            Arc::clone(&view),
            verdicts.clone(),
            Arc::new(move |_r, _d, _v| policy_for_cb.gates().invalidate()),
        );
        registry.set_scan_queue(queue);
        spawn_rescan_on_database_change(&registry, scanner, cfg.rescan_check_interval());
    }
    registry.set_access(access);
    registry.set_gates(gates);

    let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, tls = cfg.tls.is_some(), auth = cfg.auth.is_some(), "registry listening");
    ready(addr);

    if cfg.gc_interval_seconds > 0 {
        let reg = Arc::clone(&registry);
        let (every, grace) = (
            Duration::from_secs(cfg.gc_interval_seconds),
            Duration::from_secs(cfg.gc_grace_seconds),
        );
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if let Err(e) = reg.garbage_collect(grace).await {
                    tracing::error!(error = %e, "garbage collection failed");
                }
            }
        });
    }

    // SIGHUP: reload users and policies
    let mut hup = signal(SignalKind::hangup())?;
    let reg2 = Arc::clone(&registry);
    let ext_gates = ext.gates.clone();
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let result = Config::load(&config_path)
                .map_err(DaemonError::from)
                .and_then(|new| {
                    let access = build_access(&new, state.as_ref(), &audit)?;
                    let ext = Extensions {
                        gates: ext_gates.clone(),
                        scanner: None,
                    };
                    let gates = build_gates(&new, &ext, &verdicts)?;
                    Ok((access, gates, new.quotas))
                });
            match result {
                Ok((access, gates, quotas)) => {
                    reg2.set_access(access);
                    reg2.set_gates(gates);
                    reg2.set_quotas(quotas);
                    tracing::warn!("configuration reloaded (users, policies, quotas)");
                }
                Err(e) => {
                    tracing::error!(error = %e, "reload failed; keeping the running configuration")
                }
            }
        }
    });

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        tracing::warn!("shutting down: finishing requests in flight");
    };
    crate::serve::serve(
        registry,
        listener,
        tls,
        shutdown,
        Duration::from_secs(cfg.shutdown_grace_seconds),
    )
    .await?;
    Ok(())
}

/// Every `every`, compares the scanner's database version with the last one seen and rescans
/// every stored manifest when it changed (a rebuilt advisory database).
fn spawn_rescan_on_database_change<S: crate::storage::Storage>(
    registry: &Arc<Registry<S>>,
    scanner: Arc<dyn Scanner>,
    every: Option<Duration>,
) {
    let (Some(every), Some(mut seen)) = (every, scanner.database_version()) else {
        return;
    };
    let reg = Arc::clone(registry);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let Some(now) = scanner.database_version() else {
                continue;
            };
            if now == seen {
                continue;
            }
            seen = now;
            match reg.rescan_all().await {
                Ok(n) => tracing::info!(manifests = n, "advisory database changed: rescanning"),
                Err(e) => tracing::error!(error = %e, "advisory database changed, rescan failed"),
            }
        }
    });
}
