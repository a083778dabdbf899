//! `palisade image ...`: thin handlers over `palisade-image`.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use palisade_image::archive::{self, SavedImage};
use palisade_image::import::{self, ImportOptions};
use palisade_image::inspect::{self, LocalImage};
use palisade_image::store::RemoveReport;
use palisade_image::{ImageReference, Store};
use serde_json::json;

use crate::cli::{
    Format, HistoryArgs, ImageCommand, ImageSelector, ImportArgs, InspectArgs, LoadArgs, LsArgs,
    RmArgs, SaveArgs, TagArgs,
};
use crate::output;
use crate::{Session, UsageError};

pub(crate) fn run(session: &Session, command: ImageCommand) -> anyhow::Result<i32> {
    match command {
        ImageCommand::Import(args) => import(session, args),
        ImageCommand::Load(args) => load(session, args),
        ImageCommand::Save(args) => save(session, args),
        ImageCommand::Tag(args) => tag(session, args),
        ImageCommand::Ls(args) => ls(session, args),
        ImageCommand::Inspect(args) => inspect(session, args),
        ImageCommand::Rm(args) => rm(session, args),
        ImageCommand::Prune => prune(session),
        ImageCommand::History(args) => history(session, args),
    }
}

/// `["a","b"]` as JSON, or words split on whitespace.
fn command_words(flag: &str, text: Option<String>) -> anyhow::Result<Option<Vec<String>>> {
    let Some(text) = text else {
        return Ok(None);
    };
    let words: Vec<String> = if text.trim_start().starts_with('[') {
        serde_json::from_str(&text)
            .map_err(|e| UsageError(format!("--{flag} is not a JSON array of strings: {e}")))?
    } else {
        text.split_whitespace().map(str::to_owned).collect()
    };
    if words.is_empty() {
        return Err(UsageError(format!("--{flag} is empty")).into());
    }
    Ok(Some(words))
}

fn import(session: &Session, args: ImportArgs) -> anyhow::Result<i32> {
    let options = ImportOptions {
        cmd: command_words("cmd", args.cmd)?,
        entrypoint: command_words("entrypoint", args.entrypoint)?,
        env: args.env,
        working_dir: args.workdir,
        user: args.user,
        comment: args.message,
        volumes: args.volumes,
        ..ImportOptions::default()
    };
    let store = session.store()?;
    let image = import::import(&store, &args.source, &args.reference, &options)
        .with_context(|| format!("failed to import {}", args.source.display()))?;
    match session.format {
        Format::Json => output::json(&image)?,
        Format::Table => output::line(&image.manifest)?,
    }
    Ok(0)
}

fn load(session: &Session, args: LoadArgs) -> anyhow::Result<i32> {
    let store = session.store()?;
    let report = match args.input.as_deref().filter(|p| *p != Path::new("-")) {
        Some(path) => {
            let file = File::open(path)
                .with_context(|| format!("failed to open archive {}", path.display()))?;
            archive::load(&store, io::BufReader::new(file))
                .with_context(|| format!("failed to load {}", path.display()))?
        }
        None => {
            let stdin = io::stdin();
            if stdin.is_terminal() {
                return Err(UsageError(
                    "no archive given: pass -i FILE or pipe the archive to standard input"
                        .to_owned(),
                )
                .into());
            }
            archive::load(&store, stdin.lock()).context("failed to load the archive")?
        }
    };
    if args.quiet {
        return Ok(0);
    }
    match session.format {
        Format::Json => output::json(&report)?,
        Format::Table => {
            for SavedImage { reference, digest } in &report.images {
                match reference {
                    Some(reference) => {
                        output::line(format!("Loaded image: {}", reference.familiar()))?
                    }
                    None => output::line(format!("Loaded image (untagged): {digest}"))?,
                }
            }
        }
    }
    Ok(0)
}

/// A temporary file beside `target`, renamed over it once complete.
fn temporary_beside(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map_or_else(|| "archive".into(), |n| n.to_string_lossy().into_owned());
    target.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

fn save(session: &Session, args: SaveArgs) -> anyhow::Result<i32> {
    let store = session.store()?;
    let Some(target) = args.output else {
        let stdout = io::stdout();
        if stdout.is_terminal() {
            return Err(UsageError(
                "refusing to write an archive to a terminal: pass -o FILE or redirect standard output"
                    .to_owned(),
            )
            .into());
        }
        let (mut out, _) = archive::save(&store, &args.references, BufWriter::new(stdout.lock()))
            .context("failed to save images")?;
        out.flush().context("failed to write to standard output")?;
        return Ok(0);
    };
    let temporary = temporary_beside(&target);
    let result = (|| -> anyhow::Result<()> {
        let file = File::create(&temporary)
            .with_context(|| format!("failed to create {}", temporary.display()))?;
        let (out, _) = archive::save(&store, &args.references, BufWriter::new(file))
            .context("failed to save images")?;
        let file = out
            .into_inner()
            .map_err(io::IntoInnerError::into_error)
            .with_context(|| format!("failed to write {}", temporary.display()))?;
        file.sync_all()
            .with_context(|| format!("failed to write {}", temporary.display()))?;
        std::fs::rename(&temporary, &target)
            .with_context(|| format!("failed to write {}", target.display()))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result?;
    Ok(0)
}

fn tag(session: &Session, args: TagArgs) -> anyhow::Result<i32> {
    let store = session.store()?;
    let digest = store.resolve_required(&args.source)?;
    store.tag(&args.target, &digest).with_context(|| {
        format!(
            "failed to tag {} as {}",
            args.source.familiar(),
            args.target.familiar()
        )
    })?;
    Ok(0)
}

fn ls(session: &Session, args: LsArgs) -> anyhow::Result<i32> {
    let filter = match &args.repository {
        Some(text) => Some(
            ImageReference::parse(text)
                .map_err(|e| UsageError(format!("invalid repository {text:?}: {e}")))?
                .repository(),
        ),
        None => None,
    };
    let store = session.store()?;
    let images: Vec<_> = inspect::summaries(&store)?
        .into_iter()
        .filter(|s| {
            filter
                .as_ref()
                .is_none_or(|repo| s.reference.repository() == *repo)
        })
        .collect();
    if args.quiet {
        let mut seen = std::collections::BTreeSet::new();
        for image in &images {
            if seen.insert(image.digest.clone()) {
                output::line(&image.digest)?;
            }
        }
        return Ok(0);
    }
    match session.format {
        Format::Json => output::json(&images)?,
        Format::Table => {
            let rows: Vec<Vec<String>> = images
                .iter()
                .map(|image| {
                    vec![
                        image.repository.clone(),
                        image.tag.clone().unwrap_or_else(|| "<none>".to_owned()),
                        if args.no_trunc {
                            image.digest.to_string()
                        } else {
                            image.digest.short().to_owned()
                        },
                        image.size.map_or_else(|| "N/A".to_owned(), output::size),
                        match &image.problem {
                            Some(_) => "broken (run `palisade system check`)".to_owned(),
                            None => output::age(image.created_unix),
                        },
                    ]
                })
                .collect();
            output::table(&["REPOSITORY", "TAG", "DIGEST", "SIZE", "CREATED"], &rows)?;
        }
    }
    Ok(0)
}

fn inspect(session: &Session, args: InspectArgs) -> anyhow::Result<i32> {
    let store = session.store()?;
    let mut documents = Vec::new();
    for reference in &args.references {
        let image = LocalImage::open(&store, reference, None)?;
        let raw =
            |bytes: &[u8]| serde_json::from_slice::<serde_json::Value>(bytes).unwrap_or_default();
        documents.push(json!({
            "reference": image.reference,
            "digest": image.digest,
            "manifest_digest": image.manifest_digest,
            "config_digest": image.config_digest,
            "size": image.size(),
            "created": image.config.created(),
            "platform": image.platform().to_string(),
            "layers": image.layers,
            "manifest": raw(&image.manifest_bytes),
            "config": raw(&image.config_bytes),
        }));
    }
    output::json(&documents)?;
    Ok(0)
}

fn print_removal(report: &RemoveReport) -> anyhow::Result<()> {
    for reference in &report.untagged {
        output::line(format!("Untagged: {}", reference.familiar()))?;
    }
    for digest in &report.pruned.removed_blobs {
        output::line(format!("Deleted: {digest}"))?;
    }
    Ok(())
}

fn rm(session: &Session, args: RmArgs) -> anyhow::Result<i32> {
    let store = session.store()?;
    let mut failed = false;
    let mut reports = Vec::new();
    for image in &args.images {
        let result = match image {
            ImageSelector::Reference(reference) => store
                .remove_image(reference)
                .with_context(|| format!("failed to remove {}", reference.familiar())),
            ImageSelector::Digest(digest) => store
                .remove_image_by_digest(digest)
                .with_context(|| format!("failed to remove {digest}")),
        };
        match result {
            Ok(report) => {
                if session.format == Format::Table {
                    print_removal(&report)?;
                }
                reports.push(report);
            }
            Err(error) => {
                crate::report_error(&error);
                failed = true;
            }
        }
    }
    if session.format == Format::Json {
        output::json(&reports)?;
    }
    Ok(i32::from(failed))
}

fn prune(session: &Session) -> anyhow::Result<i32> {
    let store = session.store()?;
    let report = store.prune().context("failed to prune the store")?;
    // Then the unpacked layers no remaining image and no container uses.
    let layers = crate::container::open_default(session)?
        .prune_layers()
        .context("failed to prune unpacked layers")?;
    match session.format {
        Format::Json => output::json(&serde_json::json!({
            "removed_blobs": report.removed_blobs,
            "removed_layers": layers.removed,
            "bytes_freed": report.bytes_freed + layers.bytes_freed,
        }))?,
        Format::Table => {
            for digest in &report.removed_blobs {
                output::line(format!("Deleted: {digest}"))?;
            }
            for layer in &layers.removed {
                output::line(format!("Deleted unpacked layer: {layer}"))?;
            }
            output::line(format!(
                "Total reclaimed space: {}",
                output::size(report.bytes_freed + layers.bytes_freed)
            ))?;
        }
    }
    Ok(0)
}

fn history(session: &Session, args: HistoryArgs) -> anyhow::Result<i32> {
    let store = session.store()?;
    let image = LocalImage::open(&store, &args.reference, None)?;
    let mut entries = image.history();
    entries.reverse(); // newest first, as Docker prints it
    match session.format {
        Format::Json => output::json(&entries)?,
        Format::Table => {
            let rows: Vec<Vec<String>> = entries
                .iter()
                .map(|entry| {
                    let created_by = entry.created_by.clone().unwrap_or_default();
                    vec![
                        output::age(entry.created_unix),
                        if args.no_trunc {
                            created_by
                        } else {
                            output::truncate(&created_by, 45)
                        },
                        output::size(entry.size),
                        entry.comment.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            output::table(&["CREATED", "CREATED BY", "SIZE", "COMMENT"], &rows)?;
        }
    }
    Ok(0)
}

/// Opens the store at `root`.
pub(crate) fn open_store(root: &Path) -> anyhow::Result<Store> {
    Store::open(root).with_context(|| format!("cannot open the image store at {}", root.display()))
}
