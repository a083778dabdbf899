//! `palisade pull`, and what pull, push and login share: the registry flags and the progress
//! bars.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::Context as _;
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use palisade_image::distribution::{
    self, BlobKind, BlobOutcome, ClientOptions, CredentialStore, DistributionError,
    TransferProgress,
};
use palisade_image::manifest::PlatformSpec;
use palisade_image::{Digest, ImageReference};

use crate::cli::Format;
use crate::output;
use crate::{Session, UsageError};

/// How to reach registries (pull, push, login).
#[derive(Debug, Args)]
pub(crate) struct RegistryArgs {
    /// Allow plain HTTP and unverified TLS for this registry only: host (every port) or
    /// host:port (repeatable). Every other registry gets verified HTTPS.
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub(crate) insecure_registries: Vec<String>,
    /// Also trust the CA certificates in this PEM file (repeatable); per registry, CAs can go
    /// in ~/.config/palisade/certs.d/HOST/ca.crt
    #[arg(long = "ca-cert", value_name = "FILE")]
    pub(crate) ca_certs: Vec<PathBuf>,
}

impl RegistryArgs {
    /// Client options: these flags, credentials from the auth files, certs.d from the
    /// configuration directory.
    pub(crate) fn client_options(&self) -> anyhow::Result<ClientOptions> {
        for path in &self.ca_certs {
            if !path.is_file() {
                return Err(
                    UsageError(format!("--ca-cert {}: no such file", path.display())).into(),
                );
            }
        }
        for host in &self.insecure_registries {
            if host.is_empty() || host.contains(['/', ' ']) {
                return Err(UsageError(format!(
                    "--insecure-registry {host:?}: expected a host or host:port"
                ))
                .into());
            }
        }
        Ok(ClientOptions {
            insecure_registries: self.insecure_registries.clone(),
            ca_certs: self.ca_certs.clone(),
            config_dir: distribution::default_config_dir().ok(),
            credentials: CredentialStore::from_environment(),
            ..ClientOptions::default()
        })
    }
}

/// `palisade pull` arguments.
#[derive(Debug, Args)]
pub(crate) struct PullArgs {
    /// Print only the image's name, no progress
    #[arg(long, short = 'q')]
    pub(crate) quiet: bool,
    /// The platform to choose from a multi-platform image [default: the host's]
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub(crate) platform: Option<PlatformSpec>,
    #[command(flatten)]
    pub(crate) registry: RegistryArgs,
    /// The image: busybox, registry.example:5000/team/app:1.0, or NAME@sha256:...
    #[arg(value_name = "REF")]
    pub(crate) reference: ImageReference,
}

pub(crate) fn pull(session: &Session, args: PullArgs) -> anyhow::Result<i32> {
    let mut options = args.registry.client_options()?;
    if let Some(platform) = args.platform {
        options.platform = platform;
    }
    let store = session.store()?;
    let bars = TransferBars::new(args.quiet, "pulling");
    let result = crate::trust::pull_verified(&store, &args.reference, &options, &bars);
    let report = result.with_context(|| format!("failed to pull {}", args.reference))?;
    crate::audit::record(
        session,
        palisade_audit::Event::ImagePulled {
            actor: palisade_audit::Actor::current_process(),
            reference: args.reference.to_string(),
            digest: report.digest.to_string(),
        },
    )?;
    crate::scan::gate(session.root.as_deref(), &args.reference.to_string(), true)?;
    match session.format {
        Format::Json => output::json(&report)?,
        Format::Table if args.quiet => output::line(&report.reference)?,
        Format::Table => {
            let fetched = report
                .blobs
                .iter()
                .filter(|b| matches!(b.outcome, BlobOutcome::Downloaded { .. }))
                .count();
            output::line(format_args!(
                "Pulled {} ({fetched} of {} blobs downloaded, {})",
                report.reference,
                report.blobs.len(),
                output::size(report.bytes_downloaded)
            ))?;
            output::line(format_args!("Digest: {}", report.digest))?;
        }
    }
    Ok(0)
}

/// One progress bar per blob on standard error, left in place with the blob's outcome when
/// done; hidden with `--quiet` or when standard error is not a terminal (then finished blobs
/// are listed one per line instead, unless quiet).
#[derive(Debug)]
pub(crate) struct TransferBars {
    multi: MultiProgress,
    bars: Mutex<HashMap<Digest, ProgressBar>>,
    /// Plain lines instead of bars (not a terminal, not quiet).
    lines: bool,
    verb: &'static str,
}

impl TransferBars {
    pub(crate) fn new(quiet: bool, verb: &'static str) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let target = if quiet || !terminal {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        Self {
            multi: MultiProgress::with_draw_target(target),
            bars: Mutex::new(HashMap::new()),
            lines: !quiet && !terminal,
            verb,
        }
    }

    fn bar(&self, digest: &Digest) -> Option<ProgressBar> {
        self.bars
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(digest)
            .cloned()
    }
}

fn outcome_text(outcome: &BlobOutcome) -> String {
    match outcome {
        BlobOutcome::Downloaded { resumed_from: 0 } => "downloaded".to_owned(),
        BlobOutcome::Downloaded { resumed_from } => {
            format!("downloaded (resumed after {})", output::size(*resumed_from))
        }
        BlobOutcome::AlreadyPresent => "already in the store".to_owned(),
        BlobOutcome::Uploaded { .. } => "pushed".to_owned(),
        BlobOutcome::AlreadyExists => "already on the registry".to_owned(),
        BlobOutcome::Mounted { from } => format!("mounted from {from}"),
    }
}

impl TransferProgress for TransferBars {
    fn blob_started(&self, digest: &Digest, kind: BlobKind, size: u64, done: u64) {
        let style = ProgressStyle::with_template(
            "{prefix:.bold} {msg:8} [{bar:30}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        let bar = self.multi.add(ProgressBar::new(size));
        bar.set_style(style);
        bar.set_prefix(digest.short().to_owned());
        bar.set_message(match kind {
            BlobKind::Config => "config",
            BlobKind::Layer => self.verb,
        });
        bar.set_position(done);
        self.bars
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(digest.clone(), bar);
    }

    fn blob_advanced(&self, digest: &Digest, bytes: u64) {
        if let Some(bar) = self.bar(digest) {
            bar.inc(bytes);
        }
    }

    fn blob_finished(&self, digest: &Digest, outcome: &BlobOutcome) {
        let text = outcome_text(outcome);
        if let Some(bar) = self.bar(digest) {
            bar.set_style(
                ProgressStyle::with_template("{prefix:.bold} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.finish_with_message(text.clone());
        }
        if self.lines {
            eprintln!("{}: {text}", digest.short());
        }
    }

    fn blob_failed(&self, digest: &Digest, _error: &DistributionError) {
        if let Some(bar) = self.bar(digest) {
            bar.abandon_with_message("failed");
        }
    }
}
