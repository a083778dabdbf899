//! `palisade key`: signing keys in cosign's file formats (and, with `--pkcs11`, on a token).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use palisade_trust::{encrypted, KeyAlgorithm, PrivateKey, PublicKey, Signer};
use serde::Serialize;

use crate::cli::Format;
use crate::output;
use crate::{Session, UsageError};

/// The environment variable holding a private key's password (cosign's name).
pub(crate) const PASSWORD_ENV: &str = "COSIGN_PASSWORD";

/// Manage signing keys (cosign's cosign.key / cosign.pub formats, or PKCS#11 tokens)
#[derive(Debug, Subcommand)]
pub(crate) enum KeyCommand {
    /// Generate a key pair: PREFIX.key (encrypted with the password from COSIGN_PASSWORD, or
    /// asked on the terminal) and PREFIX.pub; with --pkcs11, on the token instead
    Generate(GenerateArgs),
    /// Print the public key (PEM) of a private key file or PKCS#11 key
    ExportPublic(ExportArgs),
    /// Print the fingerprint (sha256 of the SubjectPublicKeyInfo) of public or private keys
    Fingerprint(FingerprintArgs),
}

/// `palisade key generate`.
#[derive(Debug, Args)]
pub(crate) struct GenerateArgs {
    /// Where to write the key pair: PREFIX.key and PREFIX.pub
    #[arg(long, value_name = "PREFIX", default_value = "cosign")]
    output_key_prefix: PathBuf,
    /// The key type: ecdsa-p256 (cosign's default), ecdsa-p384 or ed25519
    #[arg(long = "type", value_name = "TYPE", default_value = "ecdsa-p256")]
    algorithm: KeyAlgorithm,
    /// Generate an ECDSA P-256 key on a PKCS#11 token instead, e.g.
    /// pkcs11:token=prod;object=signer?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/run/pin
    /// (the public key still goes to PREFIX.pub)
    #[arg(long, value_name = "URI")]
    pkcs11: Option<String>,
    /// Overwrite existing files
    #[arg(long)]
    force: bool,
}

/// `palisade key export-public`.
#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// The private key: a cosign.key file or a pkcs11: URI
    #[arg(long, value_name = "KEY|URI", default_value = "cosign.key")]
    key: String,
    /// Write the PEM here instead of standard output
    #[arg(long, value_name = "FILE")]
    output_file: Option<PathBuf>,
}

/// `palisade key fingerprint`.
#[derive(Debug, Args)]
pub(crate) struct FingerprintArgs {
    /// Public key files (PEM), private key files (cosign.key) or pkcs11: URIs
    #[arg(value_name = "KEY", required = true)]
    keys: Vec<String>,
}

pub(crate) fn run(session: &Session, command: KeyCommand) -> anyhow::Result<i32> {
    match command {
        KeyCommand::Generate(args) => generate(session, args),
        KeyCommand::ExportPublic(args) => {
            let public = load_signer(&args.key)?.public_key()?;
            match args.output_file {
                Some(path) => write_new(&path, public.to_pem().as_bytes(), 0o644, true)?,
                None => print!("{}", public.to_pem()),
            }
            Ok(0)
        }
        KeyCommand::Fingerprint(args) => {
            #[derive(Serialize)]
            struct Row {
                key: String,
                algorithm: String,
                fingerprint: String,
            }
            let mut rows = Vec::new();
            for key in &args.keys {
                let public = load_any_public(key)?;
                rows.push(Row {
                    key: key.clone(),
                    algorithm: public.algorithm().to_string(),
                    fingerprint: public.fingerprint().to_string(),
                });
            }
            match session.format {
                Format::Json => output::json(&rows)?,
                Format::Table => {
                    for row in rows {
                        output::line(format_args!(
                            "{}  {}  {}",
                            row.fingerprint, row.algorithm, row.key
                        ))?;
                    }
                }
            }
            Ok(0)
        }
    }
}

fn generate(session: &Session, args: GenerateArgs) -> anyhow::Result<i32> {
    let prefix = args
        .output_key_prefix
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    let public_path = PathBuf::from(format!("{prefix}.pub"));
    #[derive(Serialize)]
    struct Generated {
        private_key: String,
        public_key: String,
        algorithm: String,
        fingerprint: String,
    }
    if public_path.exists() && !args.force {
        return Err(UsageError(format!(
            "{} exists; pass --force to overwrite it, or another --output-key-prefix",
            public_path.display()
        ))
        .into());
    }
    let (private_text, public) = match &args.pkcs11 {
        Some(uri) => {
            let signer = palisade_trust::pkcs11::Pkcs11Key::generate(uri)
                .with_context(|| format!("failed to generate a key on {}", redact_uri(uri)))?;
            (redact_uri(uri), signer.public_key()?)
        }
        None => {
            let private_path = PathBuf::from(format!("{prefix}.key"));
            if private_path.exists() && !args.force {
                return Err(UsageError(format!(
                    "{} exists; pass --force to overwrite it, or another --output-key-prefix",
                    private_path.display()
                ))
                .into());
            }
            let password = password_for_new_key()?;
            let key = PrivateKey::generate(args.algorithm);
            let text = encrypted::encrypt(&key, password.as_bytes())?;
            write_new(&private_path, text.as_bytes(), 0o600, args.force)?;
            (private_path.display().to_string(), key.public())
        }
    };
    write_new(&public_path, public.to_pem().as_bytes(), 0o644, true)?;
    let report = Generated {
        private_key: private_text,
        public_key: public_path.display().to_string(),
        algorithm: public.algorithm().to_string(),
        fingerprint: public.fingerprint().to_string(),
    };
    match session.format {
        Format::Json => output::json(&report)?,
        Format::Table => {
            output::line(format_args!("Private key: {}", report.private_key))?;
            output::line(format_args!("Public key:  {}", report.public_key))?;
            output::line(format_args!(
                "Fingerprint: {} ({})",
                report.fingerprint, report.algorithm
            ))?;
        }
    }
    Ok(0)
}

/// A pkcs11: URI without its PIN, for messages.
pub(crate) fn redact_uri(uri: &str) -> String {
    match palisade_trust::pkcs11::Pkcs11Uri::parse(uri) {
        Ok(parsed) => parsed.redacted(),
        Err(_) => "the pkcs11: URI".to_owned(),
    }
}

fn write_new(path: &Path, bytes: &[u8], mode: u32, overwrite: bool) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).mode(mode);
    if overwrite {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("failed to create {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("failed to write {}", path.display()))
}

fn password_for_new_key() -> anyhow::Result<String> {
    if let Ok(password) = std::env::var(PASSWORD_ENV) {
        return Ok(password);
    }
    if !std::io::stdin().is_terminal() {
        return Err(UsageError(format!(
            "no password for the new key: set {PASSWORD_ENV} (it may be empty) or run on a terminal"
        ))
        .into());
    }
    let first = crate::login::prompt_secret("Password for the new private key: ")?;
    let second = crate::login::prompt_secret("Again: ")?;
    if first.expose() != second.expose() {
        return Err(UsageError("the passwords differ".into()).into());
    }
    Ok(first.expose().to_owned())
}

fn password_for(path: &Path) -> anyhow::Result<String> {
    if let Ok(password) = std::env::var(PASSWORD_ENV) {
        return Ok(password);
    }
    if !std::io::stdin().is_terminal() {
        return Err(UsageError(format!(
            "{} is encrypted: set {PASSWORD_ENV} or run on a terminal",
            path.display()
        ))
        .into());
    }
    Ok(
        crate::login::prompt_secret(&format!("Password for {}: ", path.display()))?
            .expose()
            .to_owned(),
    )
}

/// A signer from `--key`: a `pkcs11:` URI, or a cosign.key file (password from
/// COSIGN_PASSWORD or the terminal).
pub(crate) fn load_signer(key: &str) -> anyhow::Result<Box<dyn Signer>> {
    if key.starts_with("pkcs11:") {
        let signer = palisade_trust::pkcs11::Pkcs11Key::open(key)
            .with_context(|| format!("failed to open {}", redact_uri(key)))?;
        return Ok(Box::new(signer));
    }
    let path = Path::new(key);
    let text = std::fs::read_to_string(path).with_context(|| {
        format!("failed to read the private key {key} (create one with `palisade key generate`)")
    })?;
    let password = password_for(path)?;
    Ok(Box::new(encrypted::decrypt(
        &text,
        password.as_bytes(),
        key,
    )?))
}

/// A public key from a .pub file, a private key file (its public half) or a pkcs11: URI.
pub(crate) fn load_any_public(key: &str) -> anyhow::Result<PublicKey> {
    if key.starts_with("pkcs11:") {
        return Ok(load_signer(key)?.public_key()?);
    }
    let path = Path::new(key);
    let text = std::fs::read_to_string(path).with_context(|| format!("failed to read {key}"))?;
    if text.contains("PRIVATE KEY-----") {
        return Ok(load_signer(key)?.public_key()?);
    }
    Ok(PublicKey::from_file(path)?)
}
