//! `palisade scan`: what is in an image or a root filesystem and which known vulnerabilities
//! it carries; and the parsing of `scan`/`db`, which take their own `--format` values (sarif,
//! cyclonedx, spdx) and so are parsed before the engine's command line (see [`intercept`]).

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use palisade_image::{ImageReference, LocalImage};
use palisade_scan::db::Database;
use palisade_scan::{formats, Report, Severity};

use crate::db::{DbCommand, DbPath};
use crate::output;

/// Output formats of `scan` and `db`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ScanFormat {
    /// Summary and findings table for people
    Table,
    /// The report as JSON
    Json,
    /// SARIF 2.1.0 (code-scanning dashboards)
    Sarif,
    /// CycloneDX 1.5 SBOM with the vulnerabilities found
    Cyclonedx,
    /// SPDX 2.3 SBOM (inventory only)
    Spdx,
}

/// Palisade's vulnerability scanner and its database.
#[derive(Debug, Parser)]
#[command(name = "palisade", version, max_term_width = 100)]
pub(crate) struct ScanCli {
    /// Image store root [default: /var/lib/palisade as root, $XDG_DATA_HOME/palisade otherwise]
    #[arg(long, global = true, value_name = "DIR", env = "PALISADE_ROOT")]
    root: Option<PathBuf>,
    /// Output format
    #[arg(long, global = true, value_enum, default_value_t = ScanFormat::Table)]
    format: ScanFormat,
    #[command(subcommand)]
    command: ScanTop,
}

#[derive(Debug, Subcommand)]
enum ScanTop {
    /// Scan an image from the local store, or an unpacked root filesystem, for known
    /// vulnerabilities
    ///
    /// Reads the distribution's package database (dpkg, apk), Python, npm and Cargo metadata
    /// and Go / cargo-auditable build information, straight from the image's layers, and
    /// matches every package against the local OSV database (`palisade db import`).
    /// Exit status: 0, or --exit-code N when findings remain after the filters; 1 on error.
    Scan(ScanArgs),
    /// Manage the local vulnerability database
    #[command(subcommand)]
    Db(DbCommand),
}

#[derive(Debug, Args)]
pub(crate) struct ScanArgs {
    /// An image in the local store (name[:tag] or @digest), or a directory holding a root
    /// filesystem
    #[arg(value_name = "IMAGE|DIR")]
    target: String,
    /// Only report these severities (comma separated: CRITICAL,HIGH,MEDIUM,LOW,UNKNOWN)
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    severity: Vec<String>,
    /// Exit with this status when any finding remains after the filters
    #[arg(long, value_name = "N", default_value_t = 0)]
    exit_code: i32,
    /// Leave out vulnerabilities that have no fixed version yet
    #[arg(long)]
    ignore_unfixed: bool,
    /// Check the findings against this vulnerability policy (TOML or JSON) and exit 1 when it
    /// refuses them
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    #[command(flatten)]
    db: DbPath,
}

/// Adds `scan` and `db` to the engine's command for `palisade --help` (they are parsed and
/// run by [`intercept`], never through the engine's parser).
pub(crate) fn augment(command: clap::Command) -> clap::Command {
    ScanTop::augment_subcommands(command)
}

/// If the command line is `palisade [GLOBAL OPTIONS] scan|db ...`, parses and runs it and
/// returns the exit code; otherwise returns `None` and the engine's parser takes over.
pub(crate) fn intercept() -> Option<i32> {
    let args: Vec<OsString> = std::env::args_os().collect();
    let mut i = 1;
    while let Some(a) = args.get(i).and_then(|a| a.to_str()) {
        match a {
            "--root" | "--format" => i += 2,
            _ if a.starts_with("--root=") || a.starts_with("--format=") => i += 1,
            _ => break,
        }
    }
    match args.get(i).and_then(|a| a.to_str()) {
        Some("scan" | "db") => {}
        _ => return None,
    }
    let cli = match ScanCli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return Some(if e.use_stderr() { crate::EXIT_USAGE } else { 0 });
        }
    };
    crate::init_logging();
    let result = match cli.command {
        ScanTop::Scan(args) => scan(cli.root, cli.format, args),
        ScanTop::Db(command) => crate::db::run(cli.format, command),
    };
    Some(crate::exit_code(result))
}

fn parse_severities(words: &[String]) -> anyhow::Result<Vec<Severity>> {
    words
        .iter()
        .filter(|w| !w.trim().is_empty())
        .map(|w| {
            Severity::parse(w).ok_or_else(|| {
                crate::UsageError(format!(
                    "unknown severity {w:?}: use CRITICAL, HIGH, MEDIUM, LOW or UNKNOWN"
                ))
                .into()
            })
        })
        .collect()
}

fn scan(root: Option<PathBuf>, format: ScanFormat, args: ScanArgs) -> anyhow::Result<i32> {
    let keep = parse_severities(&args.severity)?;
    let policy = match &args.policy {
        Some(p) => Some(palisade_scan::policy::VulnPolicy::load(p)?),
        None => None,
    };
    let dir = PathBuf::from(&args.target);
    let (inventory, target) = if dir.is_dir() {
        (palisade_scan::scan_dir(&dir)?, dir.display().to_string())
    } else {
        let reference: ImageReference = args.target.parse().map_err(|e| {
            crate::UsageError(format!(
                "{:?} is neither a directory nor an image reference: {e}",
                args.target
            ))
        })?;
        let root = match root {
            Some(r) => r,
            None => palisade_image::store::default_root()?,
        };
        let store = crate::image::open_store(&root)?;
        let image = LocalImage::open(&store, &reference, None)
            .with_context(|| format!("no image {reference} in the store: pull or load it first"))?;
        let inventory = palisade_scan::inventory_of_image(&store, &image)
            .with_context(|| format!("cannot read the layers of {reference}"))?;
        (inventory, format!("{reference}@{}", image.manifest_digest))
    };
    for w in &inventory.warnings {
        eprintln!("palisade: warning: {w}");
    }
    if format == ScanFormat::Spdx {
        return output::json(&formats::spdx(&inventory, &target)).map(|()| 0);
    }
    let db_path = args.db.resolve();
    let db = Database::open(&db_path)?;
    let mut report = db.match_inventory(&inventory)?;
    report.target = target.clone();
    let policy_verdict = policy.as_ref().map(|p| p.evaluate(&report));
    if args.ignore_unfixed {
        report.retain_fixed();
    }
    if !keep.is_empty() {
        report.retain_severities(&keep);
    }
    match format {
        ScanFormat::Json => output::json(&report)?,
        ScanFormat::Sarif => output::json(&formats::sarif(&report))?,
        ScanFormat::Cyclonedx => {
            output::json(&formats::cyclonedx(&inventory, Some(&report), &target))?
        }
        ScanFormat::Spdx => {}
        ScanFormat::Table => print_table(&report)?,
    }
    if let Some(v) = &policy_verdict {
        if !v.allowed {
            eprintln!("palisade: {}", v.message());
            return Ok(crate::EXIT_FAILURE);
        }
    }
    Ok(if report.findings.is_empty() {
        0
    } else {
        args.exit_code
    })
}

fn print_table(report: &Report) -> anyhow::Result<()> {
    let c = report.counts();
    let os = report
        .os
        .as_ref()
        .map(|o| {
            if o.pretty_name.is_empty() {
                format!("{} {}", o.id, o.version_id)
            } else {
                o.pretty_name.clone()
            }
        })
        .unwrap_or_else(|| "no distribution detected".into());
    output::line(format!(
        "{} ({os}): {} packages",
        report.target, report.packages
    ))?;
    output::line(format!(
        "Total: {} (CRITICAL: {}, HIGH: {}, MEDIUM: {}, LOW: {}, UNKNOWN: {})",
        report.findings.len(),
        c.critical,
        c.high,
        c.medium,
        c.low,
        c.unknown
    ))?;
    if !report.warnings.is_empty() {
        output::line(format!(
            "Incomplete: {} item(s) could not be read or evaluated (see the warnings above)",
            report.warnings.len()
        ))?;
    }
    if report.findings.is_empty() {
        return Ok(());
    }
    output::line("")?;
    let rows: Vec<Vec<String>> = report
        .findings
        .iter()
        .map(|f| {
            vec![
                f.package.clone(),
                f.id.clone(),
                f.severity.to_string(),
                f.version.clone(),
                if f.fixed.is_empty() {
                    "(none)".into()
                } else {
                    f.fixed.join(", ")
                },
                output::truncate(&f.summary, 60),
            ]
        })
        .collect();
    output::table(
        &[
            "PACKAGE",
            "VULNERABILITY",
            "SEVERITY",
            "INSTALLED",
            "FIXED IN",
            "TITLE",
        ],
        &rows,
    )
}

/// The vulnerability gate before an image is used (pull, run, create): see
/// `palisade_scan::gate` for the policy and database locations and the choices. Prints one
/// note when a policy is set but no database is installed; fails when the image is refused
/// (and, for `untag_refused`, removes the name the pull gave it).
pub(crate) fn gate(
    root: Option<&std::path::Path>,
    image: &str,
    untag_refused: bool,
) -> anyhow::Result<()> {
    use palisade_scan::gate::{self, GateConfig, GateOutcome};
    let config = GateConfig::from_env(None);
    if !config.policy.exists() {
        return Ok(());
    }
    let Ok(reference) = ImageReference::parse(image) else {
        return Ok(());
    };
    let root = match root {
        Some(r) => r.to_path_buf(),
        None => palisade_image::store::default_root()?,
    };
    let config = GateConfig {
        audit_log: Some(palisade_engine::paths::EnginePaths::new(&root).engine_audit_log()),
        reports: Some(root.join("scan-reports")),
        ..config
    };
    let store = crate::image::open_store(&root)?;
    let local = LocalImage::open(&store, &reference, None)
        .with_context(|| format!("no image {reference} in the store"))?;
    match gate::check_image(&store, &local, &reference.to_string(), &config) {
        Ok(GateOutcome::NotScanned(note)) => eprintln!("palisade: note: {note}"),
        Ok(GateOutcome::NoPolicy | GateOutcome::Passed(_)) => {}
        Err(e) => {
            if untag_refused && matches!(e, gate::GateError::Refused(_)) {
                // A refused pull leaves no name behind, so nothing runs it by accident.
                let _ = store.untag(&reference);
            }
            return Err(e.into());
        }
    }
    Ok(())
}
