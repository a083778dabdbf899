//! `palisade db import|info`: the local vulnerability database.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use palisade_scan::db::{self, Database};

use crate::output;
use crate::scan::ScanFormat;

/// Manage the local vulnerability database (OSV advisories)
#[derive(Debug, Subcommand)]
pub(crate) enum DbCommand {
    /// Build the database from OSV records: directories of .json/.yaml files, single record
    /// files, or osv.dev per-ecosystem all.zip exports. The new file replaces the old one
    /// atomically; records that cannot be read are skipped with a warning naming the file.
    Import(ImportArgs),
    /// Show what the database holds: records per ecosystem, newest record, age, size, schema
    Info(InfoArgs),
}

/// Where the database file is.
#[derive(Debug, Args)]
pub(crate) struct DbPath {
    /// The database file [default: /var/lib/palisade/vulndb as root,
    /// $XDG_DATA_HOME/palisade/vulndb otherwise]
    #[arg(long = "db", value_name = "FILE", env = "PALISADE_VULNDB")]
    pub(crate) path: Option<PathBuf>,
}

impl DbPath {
    pub(crate) fn resolve(&self) -> PathBuf {
        self.path.clone().unwrap_or_else(db::default_path)
    }
}

#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// OSV sources: directories, .json/.yaml records, .zip exports
    #[arg(value_name = "DIR|ZIP", required = true)]
    pub(crate) sources: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) db: DbPath,
    /// Print every skipped file, not just the first 20
    #[arg(long)]
    pub(crate) verbose: bool,
}

#[derive(Debug, Args)]
pub(crate) struct InfoArgs {
    #[command(flatten)]
    pub(crate) db: DbPath,
}

pub(crate) fn run(format: ScanFormat, command: DbCommand) -> anyhow::Result<i32> {
    match command {
        DbCommand::Import(args) => import(format, args),
        DbCommand::Info(args) => info(format, args),
    }
}

fn import(format: ScanFormat, args: ImportArgs) -> anyhow::Result<i32> {
    let target = args.db.resolve();
    let started = std::time::Instant::now();
    let report = db::import(&args.sources, &target)
        .with_context(|| format!("cannot import into {}", target.display()))?;
    let shown = if args.verbose {
        report.warnings.len()
    } else {
        report.warnings.len().min(20)
    };
    for w in &report.warnings[..shown] {
        eprintln!("palisade: warning: {w}");
    }
    if report.warnings.len() > shown {
        eprintln!(
            "palisade: warning: … and {} more (use --verbose)",
            report.warnings.len() - shown
        );
    }
    if format == ScanFormat::Json {
        return output::json(&serde_json::json!({
            "path": target, "size": report.size, "meta": report.meta, "warnings": report.warnings,
            "seconds": started.elapsed().as_secs_f64(),
        }))
        .map(|()| 0);
    }
    let m = &report.meta;
    output::line(format!(
        "imported {} records ({} withdrawn and {} informational left out, {} unreadable) into {} ({}) in {:.2}s",
        m.records,
        m.withdrawn,
        m.informational,
        m.malformed,
        target.display(),
        output::size(report.size),
        started.elapsed().as_secs_f64()
    ))?;
    Ok(0)
}

fn info(format: ScanFormat, args: InfoArgs) -> anyhow::Result<i32> {
    let path = args.db.resolve();
    let db = Database::open(&path)?;
    let m = db.meta();
    let age = palisade_audit::Timestamp::parse(&m.newest_modified)
        .ok()
        .map(|t| {
            (palisade_audit::Timestamp::now()
                .unix_seconds()
                .saturating_sub(t.unix_seconds()))
                / 86_400
        });
    if format == ScanFormat::Json {
        return output::json(&serde_json::json!({
            "path": path, "size": db.size(), "packages": db.package_count(), "age_days": age, "meta": m,
        }))
        .map(|()| 0);
    }
    output::line(format!("database:        {}", path.display()))?;
    output::line(format!("schema version:  {}", m.schema))?;
    output::line(format!("size:            {}", output::size(db.size())))?;
    output::line(format!("built:           {}", m.built))?;
    output::line(format!(
        "newest record:   {}{}",
        m.newest_modified,
        age.map(|d| format!(" ({d} days old)")).unwrap_or_default()
    ))?;
    output::line(format!(
        "records:         {} ({} package keys)",
        m.records,
        db.package_count()
    ))?;
    output::line(format!(
        "left out:        {} withdrawn, {} informational, {} unreadable",
        m.withdrawn, m.informational, m.malformed
    ))?;
    let rows: Vec<Vec<String>> = m
        .ecosystems
        .iter()
        .map(|(e, c)| vec![e.clone(), c.advisories.to_string(), c.packages.to_string()])
        .collect();
    output::table(&["ECOSYSTEM", "ADVISORIES", "PACKAGES"], &rows)?;
    Ok(0)
}
