//! The `palisade-runtime` binary, driven as a subprocess with runc's command line.
//!
//! The engine never links the runtime's container code: the runtime is the small, audited,
//! privileged part, and it runs with a state root (`--root`) and an audit log of its own.
//! Errors come back the way runc reports them to podman and containerd: JSON lines in the
//! `--log` file, whose last `error` entry says what went wrong.

use std::fs;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The runtime's default state root.
pub const DEFAULT_STATE_ROOT: &str = "/run/palisade";
/// The runtime binary's file name.
pub const RUNTIME_NAME: &str = "palisade-runtime";

/// Failure to find or run the runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeCommandError {
    /// The binary is nowhere to be found.
    #[error("cannot find palisade-runtime next to {beside:?} or on PATH: install it, or pass --runtime PATH (or set PALISADE_RUNTIME)")]
    NotFound {
        /// The directory looked in first.
        beside: PathBuf,
    },
    /// `--runtime` names something that is not an executable file.
    #[error("--runtime {path:?} is not an executable file")]
    NotExecutable {
        /// The path.
        path: PathBuf,
    },
    /// The binary could not be started.
    #[error("failed to run {path:?}")]
    Spawn {
        /// The binary.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A runtime command failed.
    #[error("palisade-runtime {command} failed: {message}")]
    Failed {
        /// The subcommand.
        command: String,
        /// What it said.
        message: String,
    },
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Finds the runtime: `explicit` (from `--runtime` or `PALISADE_RUNTIME`), else next to the
/// running executable, else on `PATH`.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, RuntimeCommandError> {
    if let Some(path) = explicit {
        return if is_executable(path) {
            Ok(path.to_owned())
        } else {
            Err(RuntimeCommandError::NotExecutable {
                path: path.to_owned(),
            })
        };
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_owned))
        .unwrap_or_default();
    let candidate = beside.join(RUNTIME_NAME);
    if is_executable(&candidate) {
        return Ok(candidate);
    }
    // Test binaries live one directory below the runtime (`target/debug/deps`).
    if let Some(parent) = beside.parent() {
        let candidate = parent.join(RUNTIME_NAME);
        if beside.ends_with("deps") && is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(RUNTIME_NAME))
        .find(|p| is_executable(p))
        .ok_or(RuntimeCommandError::NotFound { beside })
}

/// How to call the runtime.
#[derive(Debug, Clone)]
pub struct RuntimeBinary {
    /// The binary.
    pub path: PathBuf,
    /// Its state root (`--root`).
    pub state_root: PathBuf,
    /// Its audit log (`--audit-log`).
    pub audit_log: PathBuf,
}

impl RuntimeBinary {
    /// A command with the global options; `log` receives the runtime's errors as JSON lines.
    pub fn command(&self, log: Option<&Path>) -> Command {
        let mut command = Command::new(&self.path);
        command
            .arg("--root")
            .arg(&self.state_root)
            .arg("--audit-log")
            .arg(&self.audit_log);
        if let Some(log) = log {
            command
                .arg("--log")
                .arg(log)
                .arg("--log-format")
                .arg("json");
        }
        command
    }

    /// Runs a short command (kill, delete) to completion and turns failure into an error.
    pub fn run_simple(&self, args: &[&str]) -> Result<(), RuntimeCommandError> {
        let output = self
            .command(None)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| RuntimeCommandError::Spawn {
                path: self.path.clone(),
                source,
            })?;
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let message = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no message")
            .trim_start_matches("palisade-runtime: ")
            .trim_start_matches("error: ")
            .to_owned();
        Err(RuntimeCommandError::Failed {
            command: args.first().copied().unwrap_or_default().to_owned(),
            message,
        })
    }

    /// Sends `signal` to the container's init (or, with `all`, to all its processes).
    pub fn kill(&self, id: &str, signal: &str, all: bool) -> Result<(), RuntimeCommandError> {
        if all {
            self.run_simple(&["kill", "--all", id, signal])
        } else {
            self.run_simple(&["kill", id, signal])
        }
    }

    /// Deletes the container's runtime state (and its cgroup); a missing one is not an error.
    pub fn delete_force(&self, id: &str) -> Result<(), RuntimeCommandError> {
        self.run_simple(&["delete", "--force", id])
    }

    /// Whether the runtime knows a container with this id.
    pub fn has_state(&self, id: &str) -> bool {
        self.state_root.join(id).exists()
    }
}

/// The message of the last `error` entry in a runtime `--log` file.
pub fn last_error(log: &Path) -> Option<String> {
    let file = fs::File::open(log).ok()?;
    let mut last = None;
    for line in BufReader::new(file).lines().map_while(Result::ok) {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if value["level"]
            .as_str()
            .is_some_and(|l| l.eq_ignore_ascii_case("error"))
        {
            if let Some(msg) = value["msg"].as_str() {
                last = Some(msg.to_owned());
            }
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_error_of_a_runtime_log_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("runtime.log");
        assert_eq!(last_error(&log), None);
        fs::write(
            &log,
            concat!(
                "{\"level\":\"warn\",\"msg\":\"w\"}\n",
                "{\"level\":\"error\",\"msg\":\"first\"}\n",
                "garbage\n",
                "{\"level\":\"ERROR\",\"msg\":\"exec: \\\"x\\\": executable file not found in $PATH\"}\n"
            ),
        )
        .unwrap();
        assert_eq!(
            last_error(&log).unwrap(),
            "exec: \"x\": executable file not found in $PATH"
        );
    }

    #[test]
    fn an_explicit_runtime_must_be_executable() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rt");
        fs::write(&file, "").unwrap();
        assert!(matches!(
            locate(Some(&file)),
            Err(RuntimeCommandError::NotExecutable { .. })
        ));
        assert!(locate(Some(Path::new("/bin/true"))).is_ok());
    }
}
