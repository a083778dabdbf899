//! `palisade audit verify|show|export|seal|rotate`: the audit log from the command line.
//!
//! Without FILE arguments the commands work on the store's streams, `<root>/audit/engine.log`,
//! `<root>/audit/runtime.log` and (when a registry writes one) `<root>/audit/registry.log`,
//! each with its rotated archives (`engine.1.log`, `engine.2.log`, ... oldest first), as
//! independent chains.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use palisade_audit::syslog::SyslogSink;
use palisade_audit::{
    Actor, BreakKind, Checkpoint, CheckpointVerifier, EcdsaP256Verifier, Record, RecordFilter,
    Records, Timestamp, VerifyOptions, VerifyReport,
};

use crate::cli::Format;
use crate::{output, Session, UsageError};

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Check that log files are intact: every line a record, the hash chain unbroken, signed
    /// checkpoints good; exits 1 and names the first damaged line otherwise
    Verify(VerifyArgs),
    /// List records, filtered by time, container, image and kind
    Show(ShowArgs),
    /// Send records to syslog (RFC 5424 over /dev/log) or append them to a file as JSON lines
    Export(ExportArgs),
    /// Append a signed checkpoint over the log's last record now (needs PALISADE_AUDIT_KEY)
    Seal(StreamArgs),
    /// Archive the current log file as <name>.N.log and continue the chain in a fresh one
    Rotate(StreamArgs),
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// Log files of one chain, oldest first (default: the store's engine and runtime logs)
    #[arg(value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,
    /// Public (or private) P-256 key in PEM that checkpoints must be signed with
    #[arg(long, value_name = "PEM", env = "PALISADE_AUDIT_VERIFY_KEY")]
    pub(crate) key: Option<PathBuf>,
    /// The record before the first file's first one, SEQ:HASH (from an earlier verify)
    #[arg(long, value_name = "SEQ:HASH", value_parser = parse_checkpoint)]
    pub(crate) start: Option<Checkpoint>,
    /// A record the files must contain, SEQ:HASH (a head kept off the host): finds a cut end
    #[arg(long, value_name = "SEQ:HASH", value_parser = parse_checkpoint)]
    pub(crate) head: Option<Checkpoint>,
}

#[derive(Debug, Args, Clone)]
pub(crate) struct FilterArgs {
    /// Only records at or after this time: RFC 3339 (2026-01-02T03:04:05Z) or an age (10m, 2h, 1d)
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub(crate) since: Option<Timestamp>,
    /// Only records before this time (same forms as --since)
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub(crate) until: Option<Timestamp>,
    /// Only records about this container (its full id)
    #[arg(long, value_name = "ID")]
    pub(crate) container: Option<String>,
    /// Only records about this image: reference (busybox:latest), repository or digest
    #[arg(long, value_name = "REF")]
    pub(crate) image: Option<String>,
    /// Only records of this kind, e.g. policy_relaxed, seccomp_violation (repeatable)
    #[arg(long, value_name = "KIND")]
    pub(crate) kind: Vec<String>,
}

impl FilterArgs {
    pub(crate) fn filter(&self) -> RecordFilter {
        let mut filter = RecordFilter::new();
        for kind in &self.kind {
            filter = filter.kind(kind.clone());
        }
        if let Some(container) = &self.container {
            filter = filter.container(container.clone());
        }
        if let Some(image) = &self.image {
            filter = filter.image(image.clone());
        }
        if let Some(since) = self.since {
            filter = filter.since(since);
        }
        if let Some(until) = self.until {
            filter = filter.until(until);
        }
        filter
    }
}

#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// Log files to read (default: the store's engine and runtime logs, merged by time)
    #[arg(value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) filter: FilterArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// Log files to read (default: the store's engine and runtime logs, merged by time)
    #[arg(value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,
    /// Send to the syslog daemon's datagram socket at this path
    #[arg(long, value_name = "SOCKET", num_args = 0..=1, default_missing_value = "/dev/log",
          conflicts_with = "output", required_unless_present = "output")]
    pub(crate) syslog: Option<PathBuf>,
    /// Append the records as JSON lines to this file (created 0600 if missing)
    #[arg(long, short = 'o', value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) filter: FilterArgs,
}

#[derive(Debug, Args)]
pub(crate) struct StreamArgs {
    /// Which log: engine, runtime or registry, or a path
    #[arg(value_name = "LOG", default_value = "engine")]
    pub(crate) log: String,
}

pub(crate) fn run(session: &Session, command: AuditCommand) -> anyhow::Result<i32> {
    match command {
        AuditCommand::Verify(args) => verify(session, args),
        AuditCommand::Show(args) => show(session, args),
        AuditCommand::Export(args) => export(session, args),
        AuditCommand::Seal(args) => seal(session, args),
        AuditCommand::Rotate(args) => rotate(session, args),
    }
}

/// The store's audit directory.
pub(crate) fn audit_dir(session: &Session) -> anyhow::Result<PathBuf> {
    let root = match &session.root {
        Some(root) => root.clone(),
        None => palisade_image::store::default_root()?,
    };
    Ok(root.join("audit"))
}

/// Records `event` in the store's engine log (`PALISADE_AUDIT_*` settings). An error means the
/// event could not be written: the caller reports it as the command's failure.
pub(crate) fn record(session: &Session, event: palisade_audit::Event) -> anyhow::Result<()> {
    let path = audit_dir(session)?.join("engine.log");
    let kind = event.kind();
    palisade_audit::LogConfig::from_env()?
        .open(&path)
        .and_then(|mut log| log.append(event))
        .with_context(|| format!("cannot record {kind} in the audit log {}", path.display()))?;
    Ok(())
}

/// The store's streams: for `engine` and `runtime`, the archives oldest first, then the live
/// file. Streams with no file at all are left out.
pub(crate) fn default_streams(dir: &Path) -> Vec<Vec<PathBuf>> {
    ["engine", "runtime", "registry"]
        .iter()
        .map(|name| stream_files(dir, name))
        .filter(|files| !files.is_empty())
        .collect()
}

/// `<name>.N.log` by increasing N, then `<name>.log`, those that exist.
fn stream_files(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut archives: Vec<(u64, PathBuf)> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let file_name = entry.file_name();
            let number = file_name
                .to_str()?
                .strip_prefix(name)?
                .strip_prefix('.')?
                .strip_suffix(".log")?
                .parse()
                .ok()?;
            Some((number, entry.path()))
        })
        .collect();
    archives.sort();
    let mut files: Vec<PathBuf> = archives.into_iter().map(|(_, path)| path).collect();
    let live = dir.join(format!("{name}.log"));
    if live.exists() {
        files.push(live);
    }
    files
}

fn verify(session: &Session, args: VerifyArgs) -> anyhow::Result<i32> {
    let key = match &args.key {
        Some(path) => Some(EcdsaP256Verifier::from_pem_file(path).map_err(|error| {
            anyhow::anyhow!(
                "{error}: pass the public key the log's writers sign with (the PEM of PALISADE_AUDIT_KEY's public half)"
            )
        })?),
        None => None,
    };
    let streams = if args.files.is_empty() {
        let dir = audit_dir(session)?;
        let streams = default_streams(&dir);
        if streams.is_empty() {
            anyhow::bail!(
                "no audit log in {} (nothing recorded yet, or pass the files to check)",
                dir.display()
            );
        }
        streams
    } else {
        vec![args.files.clone()]
    };
    let options = VerifyOptions {
        start: args.start,
        head: args.head,
    };
    let mut reports = Vec::new();
    for files in &streams {
        let report = palisade_audit::verify_signed(
            files,
            &options,
            key.as_ref().map(|key| key as &dyn CheckpointVerifier),
        )
        .with_context(|| format!("cannot read {}", join(files)))?;
        reports.push((files.clone(), report));
    }
    let intact = reports.iter().all(|(_, report)| report.intact);
    match session.format {
        Format::Json => {
            let value: Vec<_> = reports
                .iter()
                .map(|(files, report)| serde_json::json!({"files": files, "report": report}))
                .collect();
            output::json(&value)?;
        }
        Format::Table => {
            for (files, report) in &reports {
                if streams.len() > 1 {
                    output::line(format!("{}:", join(files)))?;
                }
                for text in describe(report) {
                    output::line(text)?;
                }
            }
        }
    }
    Ok(if intact { 0 } else { 1 })
}

/// A verify report for people: problems as `file:line: what`, then the verdict.
pub(crate) fn describe(report: &VerifyReport) -> Vec<String> {
    let mut lines = Vec::new();
    for problem in &report.problems {
        let what = match problem.kind {
            BreakKind::Edited => "altered",
            BreakKind::Removed => "removed",
            BreakKind::Reordered => "reordered",
            BreakKind::Inserted => "inserted",
            BreakKind::Truncated => "truncated",
            BreakKind::Malformed => "not a record",
            BreakKind::BadCheckpoint => "bad checkpoint",
        };
        lines.push(format!(
            "{}:{}: {what}: {}",
            problem.path.display(),
            problem.line,
            problem.detail
        ));
    }
    if report.problems_not_listed > 0 {
        lines.push(format!(
            "... and {} more problems",
            report.problems_not_listed
        ));
    }
    let checkpoints = match (&report.checkpoint_key, report.checkpoints) {
        (Some(_), _) => format!(
            "{} checkpoints verified{}",
            report.checkpoints_verified,
            if report.unsealed_records > 0 {
                format!(
                    ", {} records after the last one not yet sealed",
                    report.unsealed_records
                )
            } else {
                String::new()
            }
        ),
        (None, 0) => "0 checkpoints".to_owned(),
        (None, n) => format!(
            "{n} checkpoints (signatures not checked: no checkpoint key given; pass --key PEM)"
        ),
    };
    if report.intact {
        let start = if report.from_genesis || report.records == 0 {
            String::new()
        } else {
            format!(
                ", continuing from seq {}",
                report.first_seq.map_or(0, |seq| seq.saturating_sub(1))
            )
        };
        let head = report
            .last_seq
            .zip(report.head)
            .map(|(seq, hash)| format!("; head {seq}:{hash}"))
            .unwrap_or_default();
        lines.push(format!(
            "intact: {} records, {checkpoints}{start}{head}",
            report.records
        ));
    } else {
        let first = report
            .first_break
            .as_ref()
            .map(|problem| format!(" (first at {}:{})", problem.path.display(), problem.line))
            .unwrap_or_default();
        lines.push(format!(
            "NOT intact{first}: {} records verified before the damage, {checkpoints}",
            report.records
        ));
    }
    lines
}

/// Records of the given files, or of the store's streams merged by time, that pass `filter`.
/// Unreadable lines are reported on standard error and skipped.
pub(crate) fn read_records(
    session: &Session,
    files: &[PathBuf],
    filter: &FilterArgs,
) -> anyhow::Result<Vec<Record>> {
    let streams = if files.is_empty() {
        default_streams(&audit_dir(session)?)
    } else {
        files.iter().map(|file| vec![file.clone()]).collect()
    };
    let mut records = Vec::new();
    for files in streams {
        for record in Records::open(&files).matching(filter.filter()) {
            match record {
                Ok(record) => records.push(record),
                Err(error) => eprintln!("palisade: skipping: {error}"),
            }
        }
    }
    records.sort_by_key(|record| record.time);
    Ok(records)
}

fn show(session: &Session, args: ShowArgs) -> anyhow::Result<i32> {
    let records = read_records(session, &args.files, &args.filter)?;
    match session.format {
        Format::Json => output::json(&records)?,
        Format::Table => {
            let rows: Vec<Vec<String>> = records.iter().map(row).collect();
            output::table(
                &["TIME", "SEQ", "KIND", "DECISION", "CONTAINER", "DETAIL"],
                &rows,
            )?;
        }
    }
    Ok(0)
}

/// One table row for a record.
pub(crate) fn row(record: &Record) -> Vec<String> {
    let event = &record.event;
    let decision = serde_json::to_value(event.decision())
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default();
    vec![
        record.time.to_string()[..19].replace('T', " "),
        record.seq.to_string(),
        event.kind().to_owned(),
        decision,
        event
            .container_id()
            .map(|id| output::truncate(id, 12))
            .unwrap_or_else(|| "-".to_owned()),
        detail(event),
    ]
}

/// The fields that matter, as `key=value` words (actor and kind left out).
fn detail(event: &palisade_audit::Event) -> String {
    let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(event) else {
        return String::new();
    };
    let words: Vec<String> = fields
        .iter()
        .filter(|(key, _)| !matches!(key.as_str(), "kind" | "actor" | "container_id"))
        .map(|(key, value)| match value {
            serde_json::Value::String(text) => format!("{key}={}", output::truncate(text, 72)),
            other => format!("{key}={}", output::truncate(&other.to_string(), 72)),
        })
        .collect();
    words.join(" ")
}

fn export(session: &Session, args: ExportArgs) -> anyhow::Result<i32> {
    let records = read_records(session, &args.files, &args.filter)?;
    if let Some(socket) = &args.syslog {
        let sink = SyslogSink::connect(socket, "palisade").with_context(|| {
            format!(
                "cannot connect to the syslog socket {} (is a syslog daemon running? pass --syslog PATH)",
                socket.display()
            )
        })?;
        for record in &records {
            sink.send(record)
                .with_context(|| format!("syslog refused record seq {}", record.seq))?;
        }
        eprintln!(
            "palisade: sent {} records to {}",
            records.len(),
            socket.display()
        );
    } else if let Some(path) = &args.output {
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut file = fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let mut text = String::new();
        for record in &records {
            text.push_str(&serde_json::to_string(record)?);
            text.push('\n');
        }
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_data())
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!(
            "palisade: wrote {} records to {}",
            records.len(),
            path.display()
        );
    }
    Ok(0)
}

/// The live file of a stream named `engine`/`runtime`, or a path.
fn stream_path(session: &Session, log: &str) -> anyhow::Result<PathBuf> {
    Ok(match log {
        "engine" | "runtime" | "registry" => audit_dir(session)?.join(format!("{log}.log")),
        path => PathBuf::from(path),
    })
}

fn seal(session: &Session, args: StreamArgs) -> anyhow::Result<i32> {
    let path = stream_path(session, &args.log)?;
    let config = palisade_audit::LogConfig::from_env()?;
    if config.signer.is_none() {
        return Err(UsageError(format!(
            "no checkpoint key: set {} to the PEM P-256 private key the log's writers sign with",
            palisade_audit::config::ENV_KEY
        ))
        .into());
    }
    let mut log = config.open(&path)?;
    match log.seal()? {
        Some(record) => output::line(format!(
            "sealed {} at seq {}: checkpoint {}:{}",
            path.display(),
            record.event_covers().unwrap_or_default(),
            record.seq,
            record.hash
        ))?,
        None => output::line(format!("{} is empty: nothing to seal", path.display()))?,
    }
    Ok(0)
}

fn rotate(session: &Session, args: StreamArgs) -> anyhow::Result<i32> {
    let path = stream_path(session, &args.log)?;
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let stem = path
        .file_stem()
        .and_then(|stem| stem.to_str())
        .unwrap_or("audit")
        .to_owned();
    let next = stream_files(&dir, &stem)
        .iter()
        .filter_map(|file| {
            file.file_name()?
                .to_str()?
                .strip_prefix(&stem)?
                .strip_prefix('.')?
                .strip_suffix(".log")?
                .parse::<u64>()
                .ok()
        })
        .max()
        .map_or(1, |n| n + 1);
    let archive = dir.join(format!("{stem}.{next}.log"));
    let mut log = palisade_audit::LogConfig::from_env()?.open(&path)?;
    let record = log.rotate(&archive, Actor::current_process())?;
    output::line(format!(
        "archived {} as {}; the chain continues at seq {}",
        path.display(),
        archive.display(),
        record.seq
    ))?;
    Ok(0)
}

/// Extension for the checkpoint a `seal` wrote.
trait CoveredSeq {
    fn event_covers(&self) -> Option<u64>;
}

impl CoveredSeq for Record {
    fn event_covers(&self) -> Option<u64> {
        match &self.event {
            palisade_audit::Event::Checkpoint { covers_seq, .. } => Some(*covers_seq),
            _ => None,
        }
    }
}

fn join(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|file| file.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `SEQ:HASH`.
fn parse_checkpoint(text: &str) -> Result<Checkpoint, String> {
    let (seq, hash) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?} is not SEQ:HASH"))?;
    Ok(Checkpoint {
        seq: seq
            .parse()
            .map_err(|_| format!("{seq:?} is not a sequence number"))?,
        hash: hash.parse().map_err(|error| format!("{error}"))?,
    })
}

/// RFC 3339, or an age like `90s`, `10m`, `2h`, `1d` before now.
pub(crate) fn parse_time(text: &str) -> Result<Timestamp, String> {
    if let Ok(time) = Timestamp::parse(text) {
        return Ok(time);
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (amount, unit) = text.split_at(split);
    let amount: u64 = amount.parse().map_err(|_| bad_time(text))?;
    let seconds = match unit {
        "s" => amount,
        "m" => amount * 60,
        "h" => amount * 3600,
        "d" => amount * 86_400,
        _ => return Err(bad_time(text)),
    };
    let now = Timestamp::now().to_system_time();
    let then = now
        .checked_sub(Duration::from_secs(seconds))
        .ok_or_else(|| bad_time(text))?;
    Ok(Timestamp::from_system_time(then))
}

fn bad_time(text: &str) -> String {
    format!("{text:?} is neither RFC 3339 (2026-01-02T03:04:05Z) nor an age (90s, 10m, 2h, 1d)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_rfc3339_or_ages() {
        assert_eq!(
            parse_time("2024-05-01T12:00:00Z").unwrap(),
            Timestamp::from_unix(1_714_564_800, 0)
        );
        let ten_minutes_ago = parse_time("10m").unwrap().unix_seconds();
        let now = Timestamp::now().unix_seconds();
        assert!((now - ten_minutes_ago).abs_diff(600) <= 2);
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("5w").is_err());
    }

    #[test]
    fn streams_are_archives_by_number_then_the_live_file() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "engine.log",
            "engine.10.log",
            "engine.2.log",
            "engine.x.log",
            "runtime.log",
        ] {
            fs::write(dir.path().join(name), b"").unwrap();
        }
        let streams = default_streams(dir.path());
        let names: Vec<Vec<String>> = streams
            .iter()
            .map(|files| {
                files
                    .iter()
                    .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
                    .collect()
            })
            .collect();
        assert_eq!(
            names,
            vec![
                vec!["engine.2.log", "engine.10.log", "engine.log"],
                vec!["runtime.log"]
            ]
        );
        assert!(parse_checkpoint("3:abc").is_err());
        assert!(parse_checkpoint(&format!("3:{}", "0".repeat(64))).is_ok());
    }
}
