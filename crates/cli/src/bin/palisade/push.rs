//! `palisade push`.

use anyhow::Context as _;
use clap::Args;
use palisade_image::distribution::{self, BlobOutcome};
use palisade_image::ImageReference;

use crate::cli::Format;
use crate::output;
use crate::pull::{RegistryArgs, TransferBars};
use crate::Session;

/// `palisade push` arguments.
#[derive(Debug, Args)]
pub(crate) struct PushArgs {
    /// Print only the pushed image's name, no progress
    #[arg(long, short = 'q')]
    pub(crate) quiet: bool,
    #[command(flatten)]
    pub(crate) registry: RegistryArgs,
    /// The local image to push
    #[arg(value_name = "REF")]
    pub(crate) source: ImageReference,
    /// Where to push it, such as registry.example:5000/team/app:1.0 [default: REF]
    #[arg(value_name = "DEST")]
    pub(crate) destination: Option<ImageReference>,
}

pub(crate) fn push(session: &Session, args: PushArgs) -> anyhow::Result<i32> {
    let options = args.registry.client_options()?;
    let destination = args.destination.unwrap_or_else(|| args.source.clone());
    let store = session.store()?;
    let bars = TransferBars::new(args.quiet, "pushing");
    let result = distribution::push(&store, &args.source, &destination, &options, &bars);
    let report = result.with_context(|| {
        if destination == args.source {
            format!("failed to push {}", args.source)
        } else {
            format!("failed to push {} to {destination}", args.source)
        }
    })?;
    crate::audit::record(
        session,
        palisade_audit::Event::ImagePushed {
            actor: palisade_audit::Actor::current_process(),
            reference: destination.to_string(),
            digest: report.digest.to_string(),
        },
    )?;
    match session.format {
        Format::Json => output::json(&report)?,
        Format::Table if args.quiet => output::line(&report.destination)?,
        Format::Table => {
            let count =
                |f: fn(&BlobOutcome) -> bool| report.blobs.iter().filter(|b| f(&b.outcome)).count();
            output::line(format_args!(
                "Pushed {} ({} blobs uploaded, {} mounted, {} already there; {})",
                report.destination,
                count(|o| matches!(o, BlobOutcome::Uploaded { .. })),
                count(|o| matches!(o, BlobOutcome::Mounted { .. })),
                count(|o| matches!(o, BlobOutcome::AlreadyExists)),
                output::size(report.bytes_uploaded)
            ))?;
            output::line(format_args!("Digest: {}", report.digest))?;
        }
    }
    Ok(0)
}
