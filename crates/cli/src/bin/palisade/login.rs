//! `palisade login` and `palisade logout`: credentials in Palisade's auth file
//! (`~/.config/palisade/auth.json`, mode 0600, Docker's format).

use std::io::{self, BufRead, IsTerminal, Read, Write};

use anyhow::Context as _;
use clap::Args;
use palisade_image::distribution::{self, AuthFile, CredentialStore, Credentials, Secret};

use crate::output;
use crate::pull::RegistryArgs;
use crate::{Session, UsageError};

/// `palisade login` arguments.
#[derive(Debug, Args)]
pub(crate) struct LoginArgs {
    /// User name (asked for on the terminal when absent)
    #[arg(long, short = 'u', value_name = "USER")]
    pub(crate) username: Option<String>,
    /// Read the password (or token) from standard input instead of asking on the terminal
    #[arg(long)]
    pub(crate) password_stdin: bool,
    #[command(flatten)]
    pub(crate) registry: RegistryArgs,
    /// The registry: host or host:port (docker.io for Docker Hub)
    #[arg(value_name = "HOST")]
    pub(crate) host: String,
}

/// `palisade logout` arguments.
#[derive(Debug, Args)]
pub(crate) struct LogoutArgs {
    /// The registry: host or host:port
    #[arg(value_name = "HOST")]
    pub(crate) host: String,
}

/// `https://host:5000/` → `host:5000`, checked to be a host name with an optional port.
fn registry_host(text: &str) -> anyhow::Result<String> {
    let host = text.trim();
    let host = host
        .strip_prefix("https://")
        .or_else(|| host.strip_prefix("http://"))
        .unwrap_or(host)
        .trim_end_matches('/');
    let valid = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b));
    if !valid {
        return Err(UsageError(format!(
            "{text:?} is not a registry host (expected host or host:port)"
        ))
        .into());
    }
    Ok(host.to_owned())
}

pub(crate) fn login(_session: &Session, args: LoginArgs) -> anyhow::Result<i32> {
    let host = registry_host(&args.host)?;
    let options = args.registry.client_options()?;
    let stdin = io::stdin();
    let username = match args.username {
        Some(user) => user,
        None if args.password_stdin => {
            return Err(UsageError(
                "--password-stdin needs the user name from --username".to_owned(),
            )
            .into())
        }
        None if stdin.is_terminal() => prompt_line("Username: ")?,
        None => {
            return Err(UsageError(
                "no terminal to ask for the user name: pass --username".to_owned(),
            )
            .into())
        }
    };
    if username.is_empty() || username.contains(':') {
        return Err(
            UsageError("the user name must be non-empty and have no ':'".to_owned()).into(),
        );
    }
    let password = if args.password_stdin {
        let mut text = String::new();
        stdin
            .lock()
            .read_to_string(&mut text)
            .context("failed to read the password from standard input")?;
        Secret::new(text.trim_end_matches(['\n', '\r']))
    } else if stdin.is_terminal() {
        prompt_secret("Password: ")?
    } else {
        return Err(UsageError(
            "no terminal to ask for the password: pipe it in with --password-stdin".to_owned(),
        )
        .into());
    };
    if password.is_empty() {
        return Err(UsageError("the password is empty".to_owned()).into());
    }
    let credentials = Credentials::new(username, password);
    distribution::check_login(&host, &credentials, &options)
        .with_context(|| format!("login to {host} failed"))?;
    let file = AuthFile::default_location()?;
    file.store(&host, &credentials)
        .with_context(|| format!("failed to save the credentials for {host}"))?;
    output::line(format_args!(
        "Login succeeded (credentials saved in {})",
        file.path().display()
    ))?;
    Ok(0)
}

pub(crate) fn logout(_session: &Session, args: LogoutArgs) -> anyhow::Result<i32> {
    let host = registry_host(&args.host)?;
    let file = AuthFile::default_location()?;
    let removed = file.remove(&host)?;
    // Docker's and Podman's files are theirs to change; say when they still log us in.
    for other in CredentialStore::from_environment().files() {
        if other.as_path() == file.path() {
            continue;
        }
        if CredentialStore::none()
            .with_file(other)
            .find(&host, "")
            .is_some()
        {
            eprintln!(
                "palisade: note: {} still holds credentials for {host} (remove them with docker or podman logout)",
                other.display()
            );
        }
    }
    if !removed {
        return Err(distribution::DistributionError::NotLoggedIn {
            host,
            path: file.path().to_owned(),
        }
        .into());
    }
    output::line(format_args!("Removed the credentials for {host}"))?;
    Ok(0)
}

fn prompt_line(prompt: &str) -> anyhow::Result<String> {
    eprint!("{prompt}");
    io::stderr().flush().ok();
    let mut line = String::new();
    io::stdin()
        .lock()
        .read_line(&mut line)
        .context("failed to read from the terminal")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// Restores the terminal's echo when dropped.
struct EchoOff {
    original: rustix::termios::Termios,
}

impl std::fmt::Debug for EchoOff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EchoOff")
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            io::stdin(),
            rustix::termios::OptionalActions::Now,
            &self.original,
        );
    }
}

/// Asks for a secret on the terminal without echoing it.
pub(crate) fn prompt_secret(prompt: &str) -> anyhow::Result<Secret> {
    use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};
    let stdin = io::stdin();
    let original = tcgetattr(&stdin).context("failed to read the terminal's settings")?;
    let mut silent = original.clone();
    silent.local_modes.remove(LocalModes::ECHO);
    silent.local_modes.insert(LocalModes::ECHONL);
    eprint!("{prompt}");
    io::stderr().flush().ok();
    tcsetattr(&stdin, OptionalActions::Now, &silent).context("failed to turn off echo")?;
    let _restore = EchoOff { original };
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("failed to read from the terminal")?;
    Ok(Secret::new(line.trim_end_matches(['\n', '\r'])))
}
