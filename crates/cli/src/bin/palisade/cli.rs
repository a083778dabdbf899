//! The `palisade` command line: argument structs only.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use palisade_image::{Digest, ImageReference};

/// Palisade: a daemonless container engine with secure defaults.
///
/// Images live in a content-addressed store (an OCI image layout) that verifies every blob on
/// write and on read. Run `palisade COMMAND --help` for each command's options.
#[derive(Debug, Parser)]
#[command(
    name = "palisade",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub(crate) struct Cli {
    /// Image store root [default: /var/lib/palisade as root, $XDG_DATA_HOME/palisade otherwise]
    #[arg(long, global = true, value_name = "DIR", env = "PALISADE_ROOT")]
    pub(crate) root: Option<PathBuf>,

    /// Output format for listings and reports
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    pub(crate) format: Format,

    #[command(subcommand)]
    pub(crate) command: Command,
}

/// How listings are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Aligned columns for people
    Table,
    /// JSON for programs
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Manage images: import, load, save, tag, list, inspect, remove, prune, history
    #[command(subcommand)]
    Image(ImageCommand),
    /// Check the image store's integrity (and repair it)
    #[command(subcommand)]
    System(SystemCommand),
    /// List images (same as `image ls`)
    Images(LsArgs),
    /// Give an image another name (same as `image tag`)
    Tag(TagArgs),
    /// Remove images (same as `image rm`)
    Rmi(RmArgs),
    /// Load images from an OCI or docker archive (same as `image load`)
    Load(LoadArgs),
    /// Save images to an OCI archive (same as `image save`)
    Save(SaveArgs),
    /// Manage bridge networks: create, ls, inspect, rm
    #[command(subcommand)]
    Network(crate::network::NetworkCommand),
    /// The tamper-evident audit log: verify, show, export (syslog or file), seal, rotate
    #[command(subcommand)]
    Audit(crate::audit::AuditCommand),
    /// Stream audit events live (seccomp denials, OOM kills, relaxations, ...), with alert rules
    Events(crate::events::EventsArgs),
    /// Which of the ten threats (THREATS.md) a container, an OCI bundle or `run` flags cover
    Check(crate::check::CheckArgs),
    /// The container commands (run, create, start, stop, kill, rm, ps, logs, exec, inspect, wait)
    #[command(flatten)]
    Container(crate::container::ContainerCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum ImageCommand {
    /// Create an image from a root filesystem: a directory, or a tar archive (plain or gzip)
    ///
    /// The layer is a deterministic tar of the tree (sorted entries, numeric ownership), so
    /// the same tree gives the same layer digest. The image runs /bin/sh unless --cmd says
    /// otherwise, with PATH set to the usual directories.
    Import(ImportArgs),
    /// Load images from an OCI archive (or a `docker save` archive); every digest is verified
    /// and nothing is tagged if any check fails
    Load(LoadArgs),
    /// Save images, with everything they need, to an OCI archive
    Save(SaveArgs),
    /// Give an image another name: SOURCE and TARGET then point at the same image
    Tag(TagArgs),
    /// List images
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Show an image's manifest, config and layers as JSON
    Inspect(InspectArgs),
    /// Remove images: untag them and delete blobs no other image uses
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Delete every blob no tagged image uses, and leftovers of interrupted writes
    Prune,
    /// Show how an image was built, one line per history entry
    History(HistoryArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum SystemCommand {
    /// Verify every blob's digest and that every image's manifest, config and layers exist;
    /// exits 1 if problems remain
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// The root filesystem: a directory, a .tar or a .tar.gz
    #[arg(value_name = "DIR|TAR")]
    pub(crate) source: PathBuf,
    /// The name to give the image (for example busybox:latest)
    #[arg(value_name = "REF")]
    pub(crate) reference: ImageReference,
    /// Default command: a JSON array (["/bin/echo","hi"]) or words split on spaces
    #[arg(long, value_name = "CMD")]
    pub(crate) cmd: Option<String>,
    /// Entrypoint: a JSON array or words split on spaces
    #[arg(long, value_name = "CMD")]
    pub(crate) entrypoint: Option<String>,
    /// Environment variable for the image, KEY=VALUE (repeatable)
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE")]
    pub(crate) env: Vec<String>,
    /// Working directory of the image's processes
    #[arg(long, short = 'w', value_name = "DIR")]
    pub(crate) workdir: Option<String>,
    /// User the image's processes run as
    #[arg(long, short = 'u', value_name = "USER")]
    pub(crate) user: Option<String>,
    /// Comment recorded in the image's history
    #[arg(long, short = 'm', value_name = "TEXT")]
    pub(crate) message: Option<String>,
    /// A path the image declares as a volume, like Dockerfile VOLUME (repeatable); each
    /// container gets an empty, writable anonymous volume there
    #[arg(long = "volume", value_name = "PATH")]
    pub(crate) volumes: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct LoadArgs {
    /// Archive to read (standard input when absent or "-")
    #[arg(long, short = 'i', value_name = "FILE")]
    pub(crate) input: Option<PathBuf>,
    /// Print nothing but errors
    #[arg(long, short = 'q')]
    pub(crate) quiet: bool,
}

#[derive(Debug, Args)]
pub(crate) struct SaveArgs {
    /// File to write (standard output when absent, unless it is a terminal)
    #[arg(long, short = 'o', value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// Images to save
    #[arg(value_name = "REF", required = true)]
    pub(crate) references: Vec<ImageReference>,
}

#[derive(Debug, Args)]
pub(crate) struct TagArgs {
    /// An existing image
    #[arg(value_name = "SOURCE")]
    pub(crate) source: ImageReference,
    /// The new name
    #[arg(value_name = "TARGET")]
    pub(crate) target: ImageReference,
}

#[derive(Debug, Args)]
pub(crate) struct LsArgs {
    /// Only images of this repository (busybox, localhost:5000/app)
    #[arg(value_name = "REPOSITORY")]
    pub(crate) repository: Option<String>,
    /// Print only manifest digests
    #[arg(long, short = 'q')]
    pub(crate) quiet: bool,
    /// Show full digests
    #[arg(long)]
    pub(crate) no_trunc: bool,
}

#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// Images to inspect
    #[arg(value_name = "REF", required = true)]
    pub(crate) references: Vec<ImageReference>,
}

/// An image named by reference, or by manifest digest (`sha256:...`).
#[derive(Debug, Clone)]
pub(crate) enum ImageSelector {
    Reference(ImageReference),
    Digest(Digest),
}

impl std::str::FromStr for ImageSelector {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.starts_with("sha256:") || s.starts_with("sha512:") {
            return Digest::parse(s)
                .map(Self::Digest)
                .map_err(|e| e.to_string());
        }
        ImageReference::parse(s)
            .map(Self::Reference)
            .map_err(|e| e.to_string())
    }
}

#[derive(Debug, Args)]
pub(crate) struct RmArgs {
    /// Images to remove, by name or by manifest digest (sha256:...)
    #[arg(value_name = "REF", required = true)]
    pub(crate) images: Vec<ImageSelector>,
}

#[derive(Debug, Args)]
pub(crate) struct HistoryArgs {
    /// The image
    #[arg(value_name = "REF")]
    pub(crate) reference: ImageReference,
    /// Do not shorten the CREATED BY column
    #[arg(long)]
    pub(crate) no_trunc: bool,
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Delete corrupt blobs and leftovers of interrupted writes (images that needed them must
    /// then be imported, loaded or pulled again)
    #[arg(long)]
    pub(crate) repair: bool,
}
