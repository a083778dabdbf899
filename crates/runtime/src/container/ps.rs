//! `ps`: the processes of a container.

use std::process::Command;

use super::Container;
use crate::error::{Result, RuntimeError};

/// Output of `ps`: the pids, or `ps(1)`'s table filtered to the container's processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PsOutput {
    Pids(Vec<i32>),
    Table(String),
}

impl Container {
    /// Lists the container's processes; `ps_args` are passed to `ps(1)` (default `-ef`).
    pub fn ps(&self, json: bool, ps_args: &[String]) -> Result<PsOutput> {
        let mut pids = self.require_cgroup()?.pids()?;
        pids.sort_unstable();
        if json {
            return Ok(PsOutput::Pids(pids));
        }
        let args: Vec<String> = if ps_args.is_empty() {
            vec!["-ef".into()]
        } else {
            ps_args.to_vec()
        };
        let out = Command::new("ps")
            .args(&args)
            .output()
            .map_err(|e| RuntimeError::sys("run ps", e))?;
        if !out.status.success() {
            return Err(RuntimeError::Init(format!(
                "ps {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        let header = lines.next().unwrap_or_default();
        let column = header
            .split_whitespace()
            .position(|h| h == "PID")
            .ok_or_else(|| RuntimeError::Init("ps output has no PID column".into()))?;
        let mut table = format!("{header}\n");
        for line in lines {
            let pid = line
                .split_whitespace()
                .nth(column)
                .and_then(|p| p.parse::<i32>().ok());
            if pid.is_some_and(|p| pids.binary_search(&p).is_ok()) {
                table.push_str(line);
                table.push('\n');
            }
        }
        Ok(PsOutput::Table(table))
    }
}
