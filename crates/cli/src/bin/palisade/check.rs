//! `palisade check`: the ten threats of THREATS.md, covered / weakened / open, for a
//! container, an OCI bundle, or the flags of a `palisade run`.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::Spec;
use palisade_engine::check::{check, CheckReport, Coverage, EngineFacts, Gate};
use palisade_engine::spec::{build, SpecInputs};
use palisade_engine::users::ResolvedUser;
use palisade_engine::volumes::VolumeSource;

use crate::cli::Format;
use crate::{output, Session, UsageError};

/// Which threats a container's configuration covers
///
/// Give a container (name or id), --bundle DIR (an OCI bundle's config.json), or --run
/// followed by `palisade run` arguments (`palisade check --run -- --privileged busybox`).
/// Exits 0 when the check ran (whatever it found), 1 when it could not, and 3 with
/// --strict when a row of 3-10 is weakened or open.
#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// An OCI bundle directory (its config.json is checked)
    #[arg(long, value_name = "DIR", conflicts_with_all = ["run", "target"])]
    pub(crate) bundle: Option<PathBuf>,
    /// Check what `palisade run ARGS...` would create (write the run arguments after --)
    #[arg(long)]
    pub(crate) run: bool,
    /// Exit 3 if any of rows 3-10 (the container's own confinement) is not covered
    #[arg(long)]
    pub(crate) strict: bool,
    /// A container (name or id); with --run, the `palisade run` arguments
    #[arg(
        value_name = "CONTAINER | RUN-ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub(crate) target: Vec<String>,
}

pub(crate) fn run(session: &Session, args: CheckArgs) -> anyhow::Result<i32> {
    let (subject, spec, facts) = if let Some(bundle) = &args.bundle {
        let path = bundle.join("config.json");
        let text = std::fs::read(&path)
            .with_context(|| format!("cannot read {} (is it an OCI bundle?)", path.display()))?;
        let spec: Spec = serde_json::from_slice(&text)
            .with_context(|| format!("{} is not an OCI runtime config", path.display()))?;
        (
            format!("bundle {}", bundle.display()),
            spec,
            EngineFacts::unknown(),
        )
    } else if args.run {
        let options = crate::container::run_options(&args.target)?;
        (
            format!("palisade run {}", args.target.join(" ")),
            spec_for_run(&options)?,
            engine_facts(&options.image),
        )
    } else if let [container] = args.target.as_slice() {
        let (id, config) = crate::container::container_config(session, container)?;
        if config.is_null() {
            anyhow::bail!("container {container} has no readable config.json; recreate it");
        }
        let spec: Spec = serde_json::from_value(config)
            .with_context(|| format!("container {container}'s config is not an OCI config"))?;
        let image = spec
            .annotations()
            .as_ref()
            .and_then(|a| a.get(palisade_engine::spec::IMAGE_ANNOTATION).cloned())
            .unwrap_or_default();
        let facts = engine_facts(&image);
        (format!("container {id}"), spec, facts)
    } else {
        return Err(UsageError(
            "say what to check: one CONTAINER, --bundle DIR, or --run -- RUN-ARGS (see `palisade check --help`)".into(),
        )
        .into());
    };
    let report = check(&spec, &facts);
    print(session, &subject, &report)?;
    let confined = report
        .threats
        .iter()
        .filter(|row| row.number >= 3)
        .all(|row| row.coverage == Coverage::Covered);
    Ok(if args.strict && !confined { 3 } else { 0 })
}

/// What `palisade run` enforces for `image` beyond its OCI config: the store verifies
/// digests, the trust policy (as `run` would load it) decides signatures.
fn engine_facts(image: &str) -> EngineFacts {
    let mut facts = EngineFacts::current_defaults();
    facts.signatures = signature_gate(image);
    facts.scan = scan_gate();
    facts
}

/// Row 2: the vulnerability policy `run` would apply.
fn scan_gate() -> Gate {
    let config = palisade_scan::gate::GateConfig::from_env(None);
    let path = config.policy.display().to_string();
    if !config.policy.exists() {
        return Gate::Off(format!(
            "no vulnerability policy ({path}); images are not scanned"
        ));
    }
    let policy = match palisade_scan::VulnPolicy::load(&config.policy) {
        Ok(policy) => policy,
        Err(e) => {
            return Gate::Enforced(format!(
                "the vulnerability policy is invalid ({e}), so nothing runs"
            ))
        }
    };
    let database = config.database.exists();
    match (database, policy.require_scan) {
        (true, _) | (false, true) => Gate::Enforced(format!(
            "nothing above {:?} runs ({path}{})",
            policy.max_severity,
            if database { "" } else { "; no database: every image is refused" }
        )),
        (false, false) => Gate::Relaxed(format!(
            "{path} is set, but no advisory database is installed (palisade db import): images run unscanned"
        )),
    }
}

/// Row 1: what the trust policy requires of `image`.
fn signature_gate(image: &str) -> Gate {
    use palisade_trust::Requirement;
    let policy = match palisade_trust::Policy::locate(None) {
        Ok(policy) => policy,
        Err(e) => {
            return Gate::Enforced(format!(
                "the trust policy is invalid ({e}), so nothing runs"
            ))
        }
    };
    let source = policy.describe();
    // An image named without a registry host is the store owner's own (scope `local`) unless
    // it was pulled; a name with one is judged by its registry scope.
    let reference = palisade_image::ImageReference::parse(image).ok();
    let explicit_registry = image.split('/').next().is_some_and(|first| {
        image.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost")
    });
    let (scope, requirement) = match reference {
        Some(reference) if explicit_registry => policy.requirement_for(&reference.repository()),
        _ => ("local".to_owned(), policy.local_requirement().clone()),
    };
    match requirement {
        Requirement::Signed { keys, threshold, .. } => Gate::Enforced(format!(
            "{threshold} of {} trusted key(s) for scope {scope} ({source})",
            keys.len()
        )),
        Requirement::Reject => Gate::Enforced(format!("scope {scope} rejects it ({source})")),
        Requirement::InsecureAcceptAnything => Gate::Relaxed(format!(
            "scope {scope} is insecure-accept-anything ({source})"
        )),
        Requirement::AcceptLocal => Gate::Relaxed(format!(
            "a local image, trusted as the store owner's own ({source}; set \"local\": \"reject\" to refuse)"
        )),
    }
}

/// The config `palisade run` would write for `options`, with a placeholder image: security
/// settings do not depend on the image (only the user, which the defaults map anyway).
fn spec_for_run(options: &palisade_engine::ContainerOptions) -> anyhow::Result<Spec> {
    let image: ImageConfiguration = serde_json::from_value(serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
        "config": {"Cmd": ["/bin/sh"]}
    }))?;
    let user = ResolvedUser {
        uid: 0,
        gid: 0,
        additional_gids: Vec::new(),
        home: None,
    };
    let binds: Vec<(PathBuf, String, bool)> = options
        .volumes
        .iter()
        .filter_map(|volume| match &volume.source {
            VolumeSource::Bind(source) => {
                Some((source.clone(), volume.destination.clone(), volume.read_only))
            }
            VolumeSource::Named(_) => None,
        })
        .collect();
    let hook = vec![
        "palisade".to_owned(),
        "container-hook".to_owned(),
        "loopback".to_owned(),
    ];
    let built = build(
        &SpecInputs {
            image: &image,
            image_name: &options.image,
            container_name: "check",
            default_hostname: "check",
            user: &user,
            binds: &binds,
            loopback_hook: &hook,
        },
        options,
    )?;
    Ok(built.spec)
}

fn print(session: &Session, subject: &str, report: &CheckReport) -> anyhow::Result<()> {
    match session.format {
        Format::Json => output::json(&serde_json::json!({
            "subject": subject,
            "threats": report.threats,
        })),
        Format::Table => {
            output::line(format!("{subject}:"))?;
            let rows: Vec<Vec<String>> = report
                .threats
                .iter()
                .map(|row| {
                    vec![
                        row.number.to_string(),
                        row.threat.to_owned(),
                        row.coverage.to_string().to_uppercase(),
                        row.settings.join("; "),
                    ]
                })
                .collect();
            output::table(&["#", "THREAT", "STATUS", "SETTING"], &rows)
        }
    }
}
