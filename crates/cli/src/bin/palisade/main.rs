#![forbid(unsafe_code)]
//! `palisade`: the daemonless engine's command line. Argument structs and output live here;
//! everything else is in `palisade-image`.

mod audit;
mod check;
mod cli;
mod container;
mod db;
mod events;
mod image;
mod key;
mod login;
mod network;
mod output;
mod pull;
mod push;
mod registry;
mod scan;
mod sign;
mod system;
mod trust;

use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Subcommand};

use cli::{Cli, Command, Format, ImageCommand};

/// Exit code for a command that could not run as given (Docker's 125).
const EXIT_USAGE: i32 = 125;
/// Exit code for a command that ran and failed.
const EXIT_FAILURE: i32 = 1;

/// A mistake in how the command was called, found after parsing; exits 125.
#[derive(Debug)]
pub(crate) struct UsageError(pub(crate) String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// What every command needs: where the store is and how to print.
#[derive(Debug)]
pub(crate) struct Session {
    root: Option<PathBuf>,
    pub(crate) format: Format,
}

impl Session {
    pub(crate) fn store(&self) -> anyhow::Result<palisade_image::Store> {
        let root = match &self.root {
            Some(root) => root.clone(),
            None => palisade_image::store::default_root()?,
        };
        image::open_store(&root)
    }
}

fn main() {
    if let Some(code) = scan::intercept() {
        std::process::exit(code);
    }
    let cli = match parse_command_line() {
        Ok(Invocation::Engine(cli)) => cli,
        Ok(Invocation::Registry(session, command)) => {
            init_logging();
            std::process::exit(exit_code(run_registry(&session, command)));
        }
        Err(error) => {
            use clap::error::ErrorKind;
            if !error.use_stderr()
                || error.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            {
                // --help, --version, or a bare `palisade image`: show what was asked for.
                let _ = error.print();
            } else {
                // One line: clap's first line says what is wrong with the arguments.
                let rendered = error.render().to_string();
                let first = rendered.lines().next().unwrap_or("invalid arguments");
                let first = first.strip_prefix("error: ").unwrap_or(first);
                eprintln!("palisade: {first} (see `palisade --help`)");
            }
            std::process::exit(if error.use_stderr() { EXIT_USAGE } else { 0 });
        }
    };
    init_logging();
    let session = Session {
        root: cli.root,
        format: cli.format,
    };
    let result = match cli.command {
        Command::Image(command) => image::run(&session, command),
        Command::System(command) => system::run(&session, command),
        Command::Images(args) => image::run(&session, ImageCommand::Ls(args)),
        Command::Tag(args) => image::run(&session, ImageCommand::Tag(args)),
        Command::Rmi(args) => image::run(&session, ImageCommand::Rm(args)),
        Command::Load(args) => image::run(&session, ImageCommand::Load(args)),
        Command::Save(args) => image::run(&session, ImageCommand::Save(args)),
        Command::Network(command) => network::run(&session, command),
        Command::Container(command) => container::run(&session, command),
        Command::Audit(command) => audit::run(&session, command),
        Command::Check(args) => check::run(&session, args),
        Command::Events(args) => events::run(&session, args),
    };
    std::process::exit(exit_code(result));
}

/// The process's exit code for a command's result: the error reported on one line, 125 for
/// usage errors, 1 for other failures.
fn exit_code(result: anyhow::Result<i32>) -> i32 {
    match result {
        Ok(code) => code,
        Err(error) => {
            report_error(&error);
            if error.downcast_ref::<UsageError>().is_some() {
                EXIT_USAGE
            } else {
                EXIT_FAILURE
            }
        }
    }
}

// The registry commands (pull.rs, push.rs, login.rs), parsed beside `Cli`'s own commands
// with the same global options. (A plain comment: a doc comment here would replace the
// program's own description in `--help`.)
#[derive(Debug, Subcommand)]
enum RegistryCommand {
    /// Pull an image from a registry into the store (verified, resumable)
    Pull(pull::PullArgs),
    /// Push an image from the store to a registry
    Push(push::PushArgs),
    /// Check credentials with a registry and save them (~/.config/palisade/auth.json)
    Login(login::LoginArgs),
    /// Remove the saved credentials for a registry
    Logout(login::LogoutArgs),
    /// Manage signing keys (cosign-compatible files, PKCS#11 tokens)
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Sign an image on its registry (cosign-compatible; verify with `palisade verify` or cosign)
    Sign(sign::SignArgs),
    /// Check an image's signatures on its registry against keys or the trust policy
    Verify(sign::VerifyArgs),
    /// Run Palisade's image registry server and manage its users
    #[command(subcommand)]
    Registry(registry::RegistryServerCommand),
}

/// What the command line asks for.
enum Invocation {
    Engine(Cli),
    Registry(Session, RegistryCommand),
}

/// Parses `Cli` with the registry commands added.
fn parse_command_line() -> Result<Invocation, clap::Error> {
    let matches =
        RegistryCommand::augment_subcommands(scan::augment(Cli::command())).try_get_matches()?;
    if matches
        .subcommand_name()
        .is_some_and(RegistryCommand::has_subcommand)
    {
        let command = RegistryCommand::from_arg_matches(&matches)?;
        let session = Session {
            root: matches.get_one::<PathBuf>("root").cloned(),
            format: matches
                .get_one::<Format>("format")
                .copied()
                .unwrap_or(Format::Table),
        };
        return Ok(Invocation::Registry(session, command));
    }
    Cli::from_arg_matches(&matches).map(Invocation::Engine)
}

fn run_registry(session: &Session, command: RegistryCommand) -> anyhow::Result<i32> {
    match command {
        RegistryCommand::Pull(args) => pull::pull(session, args),
        RegistryCommand::Push(args) => push::push(session, args),
        RegistryCommand::Login(args) => login::login(session, args),
        RegistryCommand::Logout(args) => login::logout(session, args),
        RegistryCommand::Key(command) => key::run(session, command),
        RegistryCommand::Sign(args) => sign::sign(session, args),
        RegistryCommand::Verify(args) => sign::verify(session, args),
        RegistryCommand::Registry(command) => registry::run(session, command),
    }
}

/// Logs go to standard error, filtered by `PALISADE_LOG` (default: warnings).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PALISADE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .init();
}

/// One line: what failed, why, and (when it is not already said) what to do.
pub(crate) fn report_error(error: &anyhow::Error) {
    let mut text = format!("{error:#}").replace('\n', " ");
    if let Some(hint) = hint(error) {
        if !text.contains(hint) {
            text = format!("{text} ({hint})");
        }
    }
    eprintln!("palisade: {text}");
}

fn hint(error: &anyhow::Error) -> Option<&'static str> {
    use palisade_image::archive::ArchiveError;
    for cause in error.chain() {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::PermissionDenied {
                return Some("run as root, or pass --root DIR for a store you own");
            }
            if io.raw_os_error() == Some(28) {
                return Some("free some disk space, run `palisade image prune`, then retry");
            }
        }
        if let Some(
            ArchiveError::Blob { .. }
            | ArchiveError::DiffIdMismatch { .. }
            | ArchiveError::SizeMismatch { .. }
            | ArchiveError::MissingBlob { .. }
            | ArchiveError::MissingFile { .. },
        ) = cause.downcast_ref::<ArchiveError>()
        {
            return Some(
                "the archive is damaged or was altered; nothing was tagged; get a fresh copy",
            );
        }
    }
    None
}
