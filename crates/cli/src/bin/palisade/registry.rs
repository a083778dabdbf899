//! `palisade registry serve|user`: run Palisade's image registry and manage its users.

use std::io::{self, BufRead, IsTerminal};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use palisade_registry::auth::{Password, UserDb};
use palisade_registry::config::Config;
use palisade_registry::daemon::{self, Extensions};

use crate::{Session, UsageError};

#[derive(Debug, Subcommand)]
pub(crate) enum RegistryServerCommand {
    /// Run the registry server (OCI distribution API) configured by a TOML file
    ///
    /// Serves until SIGTERM or SIGINT, finishing requests in flight; SIGHUP reloads users,
    /// policies and quotas. See docs/registry.md for the configuration file.
    Serve(ServeArgs),
    /// Manage the registry's users (the auth.users_file of the configuration)
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The configuration file (TOML)
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct ConfigArg {
    /// The registry's configuration file (TOML); its auth.users_file is edited
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Add a user; the password is read from standard input (one line)
    Add {
        #[command(flatten)]
        config: ConfigArg,
        /// Roles (names from auth.roles); repeat or separate with commas
        #[arg(long = "role", value_delimiter = ',')]
        roles: Vec<String>,
        /// The user name
        name: String,
    },
    /// Remove a user
    Rm {
        #[command(flatten)]
        config: ConfigArg,
        /// The user name
        name: String,
    },
    /// Change a user's password (read from standard input, one line)
    Passwd {
        #[command(flatten)]
        config: ConfigArg,
        /// The user name
        name: String,
    },
}

pub(crate) fn run(_session: &Session, command: RegistryServerCommand) -> anyhow::Result<i32> {
    match command {
        RegistryServerCommand::Serve(args) => {
            let cfg = Config::load(&args.config)?;
            let ext = Extensions::from_config(&cfg).with_context(|| {
                format!(
                    "fix [gates] in {} (see docs/registry.md)",
                    args.config.display()
                )
            })?;
            daemon::run(&args.config, ext, |addr| {
                eprintln!("palisade registry listening on {addr}");
            })
            .with_context(|| format!("registry configured by {}", args.config.display()))?;
            Ok(0)
        }
        RegistryServerCommand::User(cmd) => user(cmd),
    }
}

fn users_file(config: &Path) -> anyhow::Result<PathBuf> {
    let cfg = Config::load(config)?;
    cfg.auth.and_then(|a| a.users_file).ok_or_else(|| {
        UsageError(format!(
            "{} has no auth.users_file: add one to the [auth] section",
            config.display()
        ))
        .into()
    })
}

fn read_password() -> anyhow::Result<Password> {
    let stdin = io::stdin();
    if stdin.is_terminal() {
        eprint!("Password (input is echoed; pipe it in to avoid that): ");
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let pw = line.trim_end_matches(['\n', '\r']).to_owned();
    if pw.len() < 8 {
        return Err(UsageError("the password must be at least 8 characters".into()).into());
    }
    Ok(Password::new(pw))
}

fn user(cmd: UserCommand) -> anyhow::Result<i32> {
    match cmd {
        UserCommand::Add {
            config,
            roles,
            name,
        } => {
            let path = users_file(&config.config)?;
            let mut db = UserDb::load_or_empty(&path)?;
            let pw = read_password()?;
            db.add_user(&name, &pw, &roles)?;
            db.save()?;
            eprintln!("added user {name}; send SIGHUP to a running registry to load it");
        }
        UserCommand::Rm { config, name } => {
            let path = users_file(&config.config)?;
            let mut db = UserDb::load(&path)?;
            db.remove_user(&name)?;
            db.save()?;
            eprintln!("removed user {name}; send SIGHUP to a running registry to apply it");
        }
        UserCommand::Passwd { config, name } => {
            let path = users_file(&config.config)?;
            let mut db = UserDb::load(&path)?;
            let pw = read_password()?;
            db.set_password(&name, &pw)?;
            db.save()?;
            eprintln!(
                "changed the password of {name}; send SIGHUP to a running registry to apply it"
            );
        }
    }
    Ok(0)
}
