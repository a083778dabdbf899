//! OCI hooks: programs run at fixed points of the lifecycle with the container's state on
//! their stdin, each bounded by its timeout.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;
use serde::Serialize;

use crate::error::{Result, RuntimeError};

/// The state document hooks receive on stdin (the OCI `state` schema).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HookState<'a> {
    pub oci_version: &'a str,
    pub id: &'a str,
    pub status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    pub bundle: &'a std::path::Path,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<&'a std::collections::HashMap<String, String>>,
}

/// Hooks without a timeout may still not hang the runtime forever.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `hooks` in order; the first failure stops the rest (prestart, createRuntime,
/// createContainer, startContainer).
pub fn run_hooks(kind: &'static str, hooks: &[Hook], state: &HookState<'_>) -> Result<()> {
    let input = serde_json::to_vec(state).map_err(|e| RuntimeError::Hook {
        kind,
        path: Default::default(),
        message: e.to_string(),
    })?;
    for hook in hooks {
        run_hook(kind, hook, &input)?;
    }
    Ok(())
}

/// Runs every hook of `hooks` in order, logging each failure as a warning and going on with
/// the rest: the OCI spec's rule for `poststart` and `poststop` hooks. Returns how many
/// failed.
pub fn run_hooks_warn(kind: &'static str, hooks: &[Hook], state: &HookState<'_>) -> usize {
    let input = match serde_json::to_vec(state) {
        Ok(input) => input,
        Err(e) => {
            tracing::warn!(kind, error = %e, "cannot serialise the hook state; hooks not run");
            return hooks.len();
        }
    };
    let mut failed = 0;
    for hook in hooks {
        if let Err(e) = run_hook(kind, hook, &input) {
            tracing::warn!(error = %e, "{kind} hook failed");
            failed += 1;
        }
    }
    failed
}

fn run_hook(kind: &'static str, hook: &Hook, input: &[u8]) -> Result<()> {
    let fail = |message: String| RuntimeError::Hook {
        kind,
        path: hook.path().clone(),
        message,
    };
    let mut command = Command::new(hook.path());
    if let Some(args) = hook.args() {
        if let Some(arg0) = args.first() {
            command.arg0(arg0);
        }
        command.args(args.iter().skip(1));
    }
    command.env_clear();
    for entry in hook.env().as_deref().unwrap_or_default() {
        if let Some((k, v)) = entry.split_once('=') {
            command.env(k, v);
        }
    }
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    let mut child = command
        .spawn()
        .map_err(|e| fail(format!("cannot start: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is not an error.
        let _ = stdin.write_all(input);
    }
    let timeout = hook
        .timeout()
        .map(|t| Duration::from_secs(u64::try_from(t.max(1)).unwrap_or(1)))
        .unwrap_or(DEFAULT_TIMEOUT);
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_micros(200);
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(fail(format!("exited with {status}"))),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!(
                    "timed out after {}s and was killed",
                    timeout.as_secs()
                )));
            }
            Ok(None) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Err(e) => return Err(fail(format!("wait failed: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::HookBuilder;
    use std::path::Path;

    fn state() -> HookState<'static> {
        HookState {
            oci_version: "1.2.0",
            id: "c1",
            status: "created",
            pid: Some(42),
            bundle: Path::new("/b"),
            annotations: None,
        }
    }

    #[test]
    fn hook_gets_state_on_stdin_and_env() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let hook = HookBuilder::default()
            .path("/bin/sh")
            .args(vec![
                "sh".into(),
                "-c".into(),
                format!("cat > {}; echo \"$X\" >> {}", out.display(), out.display()),
            ])
            .env(vec!["X=from-env".into()])
            .build()
            .unwrap();
        run_hooks("prestart", &[hook], &state()).unwrap();
        let text = std::fs::read_to_string(out).unwrap();
        assert!(
            text.contains("\"id\":\"c1\"") && text.contains("\"pid\":42"),
            "{text}"
        );
        assert!(text.contains("from-env"));
    }

    #[test]
    fn failing_and_hanging_hooks_are_errors() {
        let fail = HookBuilder::default().path("/bin/false").build().unwrap();
        let err = run_hooks("poststart", &[fail], &state()).unwrap_err();
        assert!(err.to_string().contains("poststart hook"), "{err}");
        let hang = HookBuilder::default()
            .path("/bin/sleep")
            .args(vec!["sleep".into(), "30".into()])
            .timeout(1i64)
            .build()
            .unwrap();
        let started = Instant::now();
        let err = run_hooks("createRuntime", &[hang], &state()).unwrap_err();
        assert!(err.to_string().contains("timed out"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
        let missing = HookBuilder::default()
            .path("/nonexistent/hook")
            .build()
            .unwrap();
        assert!(run_hooks("prestart", &[missing], &state()).is_err());
    }

    #[test]
    fn warn_mode_runs_the_hooks_after_a_failing_one() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let fail = HookBuilder::default().path("/bin/false").build().unwrap();
        let ok = HookBuilder::default()
            .path("/bin/sh")
            .args(vec![
                "sh".into(),
                "-c".into(),
                format!("echo called >> {}", out.display()),
            ])
            .build()
            .unwrap();
        let failed = run_hooks_warn("poststop", &[fail.clone(), ok, fail], &state());
        assert_eq!(failed, 2);
        assert_eq!(std::fs::read_to_string(out).unwrap(), "called\n");
    }
}
