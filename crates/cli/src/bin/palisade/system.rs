//! `palisade system ...`.

use anyhow::Context as _;

use crate::cli::{CheckArgs, Format, SystemCommand};
use crate::output;
use crate::Session;

pub(crate) fn run(session: &Session, command: SystemCommand) -> anyhow::Result<i32> {
    match command {
        SystemCommand::Check(args) => check(session, args),
    }
}

/// Exits 0 when the store is consistent, 1 when problems remain.
fn check(session: &Session, args: CheckArgs) -> anyhow::Result<i32> {
    let store = session.store()?;
    let report = store
        .check(args.repair)
        .context("failed to check the image store")?;
    let engine = crate::container::open_default(session)?
        .check(args.repair)
        .context("failed to check the containers and unpacked layers")?;
    let problems = report.problems.len() + engine.problems.len();
    match session.format {
        Format::Json => {
            // The store's report as before, with the containers' beside it.
            let mut value = serde_json::to_value(&report)?;
            value["containers"] = serde_json::to_value(&engine)?;
            output::json(&value)?
        }
        Format::Table => {
            for problem in &report.repaired {
                output::line(format!("repaired: {problem}"))?;
            }
            for problem in &engine.repaired {
                output::line(format!("repaired: {problem}"))?;
            }
            for problem in &report.problems {
                output::line(format!("problem: {problem}"))?;
            }
            for problem in &engine.problems {
                output::line(format!("problem: {problem}"))?;
            }
            let verdict = match (problems, args.repair) {
                (0, _) => "ok".to_owned(),
                (n, false) => format!("{n} problem(s); run `palisade system check --repair`, then import, load or pull the affected images again"),
                (n, true) => format!("{n} problem(s) left; import, load or pull the affected images again"),
            };
            output::line(format!(
                "checked {} blobs ({}), {} images, {} containers and {} unpacked layers: {verdict}",
                report.blobs_checked,
                output::size(report.bytes_checked),
                report.images_checked,
                engine.containers_checked,
                engine.layers_checked
            ))?;
        }
    }
    Ok(if problems == 0 { 0 } else { 1 })
}
