//! `palisade events`: the audit log's records as they are written, with alert rules.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use palisade_audit::{Actor, LogConfig, Record, RuleSet};

use crate::audit::{audit_dir, row, FilterArgs};
use crate::cli::Format;
use crate::{output, Session};

/// How often followed files are checked for new records.
const POLL: Duration = Duration::from_millis(250);

/// Stream audit events live (like `tail -f` over the engine, runtime and registry logs)
///
/// Prints each new record as it is written (a line of text, or one JSON object per line with
/// --format json), from now on, or from --since. With --rules FILE, a TOML rule file turns
/// patterns into alerts (e.g. more than N denied syscalls in a minute); each alert is written
/// to the engine's audit log (and so printed too). See `palisade_audit::rules` for the format.
#[derive(Debug, Args)]
pub(crate) struct EventsArgs {
    /// Log files to follow (default: the store's engine.log, runtime.log and registry.log)
    #[arg(value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,
    /// Alert rules (TOML: [[rule]] name, kind, container, threshold, window)
    #[arg(long, value_name = "FILE")]
    pub(crate) rules: Option<PathBuf>,
    /// Print what is there and exit instead of following
    #[arg(long)]
    pub(crate) no_follow: bool,
    #[command(flatten)]
    pub(crate) filter: FilterArgs,
}

/// One followed file: where reading stopped and the part of a line not yet complete.
struct Followed {
    path: PathBuf,
    inode: Option<u64>,
    offset: u64,
    partial: Vec<u8>,
}

pub(crate) fn run(session: &Session, args: EventsArgs) -> anyhow::Result<i32> {
    let dir = audit_dir(session)?;
    let files = if args.files.is_empty() {
        vec![
            dir.join("engine.log"),
            dir.join("runtime.log"),
            dir.join("registry.log"),
        ]
    } else {
        args.files.clone()
    };
    let mut rules = match &args.rules {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the rule file {}", path.display()))?;
            Some(RuleSet::from_toml(&text).with_context(|| format!("{}", path.display()))?)
        }
        None => None,
    };
    let alert_log = dir.join("engine.log");
    let from_start = args.filter.since.is_some() || args.no_follow;
    let mut followed: Vec<Followed> = files
        .iter()
        .map(|path| {
            let metadata = std::fs::metadata(path).ok();
            Followed {
                path: path.clone(),
                inode: metadata.as_ref().map(MetadataExt::ino),
                offset: if from_start {
                    0
                } else {
                    metadata.map_or(0, |m| m.len())
                },
                partial: Vec::new(),
            }
        })
        .collect();
    let filter = args.filter.filter();
    let actor = Actor::current_process();
    loop {
        let mut batch: Vec<Record> = Vec::new();
        for file in &mut followed {
            read_new(file, &mut batch);
        }
        batch.sort_by_key(|record| record.time);
        let mut alerts = Vec::new();
        for record in &batch {
            if let Some(rules) = rules.as_mut() {
                alerts.extend(rules.observe(record, &actor));
            }
            if filter.matches(record) {
                print(session, record)?;
            }
        }
        if !alerts.is_empty() {
            let mut log = LogConfig::from_env()?.open(&alert_log)?;
            for alert in alerts {
                let written = log.append(alert).with_context(|| {
                    format!("cannot record an alert in {}", alert_log.display())
                })?;
                // Followed logs show the alert when it is read back; otherwise show it now.
                if args.no_follow || !files.contains(&alert_log) {
                    print(session, &written)?;
                }
            }
        }
        if args.no_follow {
            return Ok(0);
        }
        std::thread::sleep(POLL);
    }
}

fn print(session: &Session, record: &Record) -> anyhow::Result<()> {
    match session.format {
        Format::Json => output::line(serde_json::to_string(record)?),
        Format::Table => output::line(row(record).join("  ")),
    }
}

/// Appends the complete records written to `file` since the last call; follows a rotation
/// (the path now names another file) from that file's start.
fn read_new(file: &mut Followed, out: &mut Vec<Record>) {
    let Ok(metadata) = std::fs::metadata(&file.path) else {
        return;
    };
    if file.inode != Some(metadata.ino()) || metadata.len() < file.offset {
        file.inode = Some(metadata.ino());
        file.offset = 0;
        file.partial.clear();
    }
    if metadata.len() == file.offset {
        return;
    }
    let Ok(mut handle) = File::open(&file.path) else {
        return;
    };
    if handle.seek(SeekFrom::Start(file.offset)).is_err() {
        return;
    }
    let mut bytes = Vec::new();
    let Ok(read) = handle
        .take(metadata.len() - file.offset)
        .read_to_end(&mut bytes)
    else {
        return;
    };
    file.offset += read as u64;
    file.partial.extend_from_slice(&bytes);
    let complete = match file.partial.iter().rposition(|b| *b == b'\n') {
        Some(last) => file.partial.drain(..=last).collect::<Vec<u8>>(),
        None => return,
    };
    for line in complete.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        match serde_json::from_slice::<Record>(line) {
            Ok(record) => out.push(record),
            Err(error) => eprintln!(
                "palisade: {}: skipping a line that is not a record ({error})",
                file.path.display()
            ),
        }
    }
}
