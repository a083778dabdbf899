//! `palisade sign` and `palisade verify`: cosign-compatible image signatures on a registry.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use palisade_image::distribution::RegistryClient;
use palisade_image::ImageReference;
use palisade_trust::{
    sign_image, verify_image, ImageId, RegistrySource, Requirement, SignatureForm, TrustedKey,
};

use crate::cli::Format;
use crate::output;
use crate::pull::RegistryArgs;
use crate::{Session, UsageError};

/// `palisade sign` arguments.
#[derive(Debug, Args)]
pub(crate) struct SignArgs {
    /// The private key: a cosign.key file (password from COSIGN_PASSWORD or the terminal) or
    /// a pkcs11: URI
    #[arg(long, value_name = "KEY|URI")]
    key: String,
    /// An annotation to sign along (repeatable): -a env=prod
    #[arg(short = 'a', long = "annotation", value_name = "KEY=VALUE")]
    annotations: Vec<String>,
    /// Write cosign's older tag form (sha256-<hex>.sig) instead of an OCI 1.1 referrer with
    /// a Sigstore bundle
    #[arg(long)]
    tag_form: bool,
    #[command(flatten)]
    registry: RegistryArgs,
    /// The image on its registry: registry.example:5000/team/app:1.0 or NAME@sha256:...
    #[arg(value_name = "IMAGE")]
    image: ImageReference,
}

/// `palisade verify` arguments.
#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// A trusted public key (cosign.pub), a private key file or a pkcs11: URI (repeatable);
    /// without --key, the trust policy decides
    #[arg(long, value_name = "PUB")]
    key: Vec<String>,
    /// How many distinct --key keys must have signed
    #[arg(long, default_value_t = 1)]
    threshold: usize,
    /// The trust policy to check against when no --key is given [default: $PALISADE_POLICY
    /// or /etc/palisade/policy.json]
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    #[command(flatten)]
    registry: RegistryArgs,
    /// The image on its registry
    #[arg(value_name = "IMAGE")]
    image: ImageReference,
}

/// Resolves `reference` to the digest the registry serves (the one signatures cover).
fn resolve(client: &RegistryClient, reference: &ImageReference) -> anyhow::Result<ImageId> {
    let wanted = match (reference.digest(), reference.tag()) {
        (Some(digest), _) => digest.to_string(),
        (None, Some(tag)) => tag.to_owned(),
        (None, None) => "latest".to_owned(),
    };
    let fetched = client
        .fetch_manifest(reference.path(), &wanted, reference.digest())
        .with_context(|| format!("failed to resolve {reference}"))?;
    Ok(ImageId {
        registry: reference.domain().to_owned(),
        repository: reference.path().to_owned(),
        digest: fetched.digest,
    })
}

pub(crate) fn sign(session: &Session, args: SignArgs) -> anyhow::Result<i32> {
    let mut annotations = BTreeMap::new();
    for pair in &args.annotations {
        let Some((k, v)) = pair.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            return Err(UsageError(format!("-a {pair:?}: expected KEY=VALUE")).into());
        };
        annotations.insert(k.to_owned(), v.to_owned());
    }
    let signer = crate::key::load_signer(&args.key)?;
    let options = args.registry.client_options()?;
    let client = RegistryClient::for_reference(&args.image, &options)?;
    let image = resolve(&client, &args.image)?;
    let form = if args.tag_form {
        SignatureForm::Tag
    } else {
        SignatureForm::Referrer
    };
    let source = RegistrySource::new(&client);
    let report = sign_image(&source, &image, signer.as_ref(), &annotations, form)
        .with_context(|| format!("failed to sign {image}"))?;
    match session.format {
        Format::Json => output::json(&report)?,
        Format::Table => {
            let how = match (form, report.referrers_api) {
                (SignatureForm::Tag, _) => format!("tag {}", report.location),
                (SignatureForm::Referrer, true) => format!("referrer {}", report.location),
                (SignatureForm::Referrer, false) => format!(
                    "referrer {} (no referrers API: listed under tag {})",
                    report.location,
                    palisade_trust::formats::referrers_tag(&image.digest)
                ),
            };
            output::line(format_args!("Signed {image}"))?;
            output::line(format_args!("Key: {}", report.key))?;
            output::line(format_args!("Signature: {how}"))?;
        }
    }
    Ok(0)
}

pub(crate) fn verify(session: &Session, args: VerifyArgs) -> anyhow::Result<i32> {
    let options = args.registry.client_options()?;
    let client = RegistryClient::for_reference(&args.image, &options)?;
    let (requirement, against) = if args.key.is_empty() {
        let policy = crate::trust::load_policy(args.policy.as_deref())?;
        let image_name = args.image.repository();
        let (scope, requirement) = policy.requirement_for(&image_name);
        (
            requirement,
            format!("trust policy {} scope {scope:?}", policy.describe()),
        )
    } else {
        let mut keys = Vec::new();
        for key in &args.key {
            keys.push(TrustedKey::new(
                key.clone(),
                crate::key::load_any_public(key)?,
            ));
        }
        if args.threshold == 0 || args.threshold > keys.len() {
            return Err(UsageError(format!(
                "--threshold {} must be between 1 and the {} --key given",
                args.threshold,
                keys.len()
            ))
            .into());
        }
        (
            Requirement::Signed {
                keys,
                threshold: args.threshold,
            },
            "the keys given".to_owned(),
        )
    };
    let image = resolve(&client, &args.image)?;
    let verdict = verify_image(&RegistrySource::new(&client), &image, &requirement)
        .with_context(|| format!("failed to read the signatures of {image}"))?;
    match session.format {
        Format::Json => output::json(&verdict)?,
        Format::Table => {
            for sig in &verdict.signatures {
                let form = match sig.form {
                    SignatureForm::Tag => "tag",
                    SignatureForm::Referrer => "referrer",
                };
                match (&sig.key_name, &sig.problem) {
                    (Some(name), None) => {
                        let extra = if sig.annotations.is_empty() {
                            String::new()
                        } else {
                            format!(
                                " {}",
                                serde_json::Value::Object(
                                    sig.annotations.clone().into_iter().collect()
                                )
                            )
                        };
                        output::line(format_args!(
                            "ok    {form:<8} signed by {name} for {}{extra}",
                            printable(sig.identity.as_deref().unwrap_or("?"))
                        ))?
                    }
                    (_, problem) => output::line(format_args!(
                        "fail  {form:<8} {} ({})",
                        sig.location,
                        problem.as_deref().unwrap_or("not by a trusted key")
                    ))?,
                }
            }
        }
    }
    if verdict.accepted {
        if session.format == Format::Table {
            output::line(format_args!(
                "Verified {image} against {against}: {}",
                verdict.reason
            ))?;
        }
        Ok(0)
    } else {
        if session.format == Format::Table {
            eprintln!(
                "palisade: {image} does not verify against {against}: {}",
                verdict.reason
            );
        }
        Ok(crate::EXIT_FAILURE)
    }
}

/// Text from a signature (attacker-controlled) with control characters escaped, so it cannot
/// drive the terminal.
fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}
