//! The monitor: one process per running container, like conmon.
//!
//! It becomes the child subreaper, runs `palisade-runtime create` with the container's stdout
//! and stderr on pipes it owns (the container's init inherits them), then `start`, and so
//! learns the init's exit status when it dies. Meanwhile it copies the output into `ctr.log`
//! (and, for a foreground `palisade run`, to its own stdout and stderr), forwards the signals
//! it receives to the init, and at the end deletes the runtime's state (and so the cgroup),
//! unmounts the overlay, records the exit code and time, and for `--rm` removes the container.
//!
//! A detached container's monitor is the `palisade` binary re-executed, in a session of its
//! own, with stdin from `/dev/null`; it reports "started" or the start error on its stdout,
//! which the `palisade run -d` or `palisade start` that spawned it reads, and nothing else.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::engine::{Engine, EngineError};
use crate::exit;
use crate::id::ContainerId;
use crate::logs::{LogWriter, Stream};
use crate::record::{now, ContainerRecord, ContainerState, ProcessRef};

/// How long to wait for the output pipes to drain after the init exited.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What the container's stdin is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdinMode {
    /// `/dev/null` (no `-i`).
    Null,
    /// The caller's stdin (foreground `-i`).
    Inherit,
    /// A pipe the monitor holds open and never writes (detached `-i`: the process sees an
    /// open, silent stdin, as with Docker).
    KeepOpen,
}

/// What a detached monitor tells the process that spawned it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartReport {
    /// Whether the container's process was started.
    pub started: bool,
    /// The exit code `palisade` should give when it was not (125, 126 or 127).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    /// Why it was not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The signals a monitor passes on to the container's init.
fn forwarded_signals() -> SigSet {
    let mut set = SigSet::empty();
    for signal in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
    ] {
        set.add(signal);
    }
    set
}

/// Blocks the forwarded signals in this thread and starts a thread that sends each one to the
/// pid in `target` once it is set.
///
/// Call it only after the container's processes exist: a child inherits the signal mask
/// (`std::process::Command` does not reset it, and neither does the runtime before it execs
/// the container's process), so blocking earlier would leave SIGTERM blocked in the
/// container. Other threads must block these signals themselves (see `pump`).
pub fn forward_signals(target: Arc<AtomicI32>) -> Result<(), EngineError> {
    let set = forwarded_signals();
    set.thread_block().map_err(|e| EngineError::Monitor {
        message: format!("failed to block signals: {e}"),
    })?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || loop {
            if let Ok(signal) = set.wait() {
                let pid = target.load(Ordering::SeqCst);
                if pid > 0 {
                    let _ = kill(Pid::from_raw(pid), signal);
                }
            }
        })
        .map_err(|e| EngineError::Monitor {
            message: format!("failed to start the signal thread: {e}"),
        })?;
    Ok(())
}

fn pipe() -> Result<(OwnedFd, OwnedFd), EngineError> {
    nix::unistd::pipe().map_err(|e| EngineError::Monitor {
        message: format!("failed to create a pipe: {e}"),
    })
}

/// Copies one of the container's outputs into the log (and to `tee`).
pub(crate) fn pump(
    source: OwnedFd,
    stream: Stream,
    log: Arc<Mutex<Option<LogWriter>>>,
    tee: bool,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("{stream:?}").to_lowercase())
        .spawn(move || {
            // Signals are for the main thread's forwarder, never for this one.
            let _ = forwarded_signals().thread_block();
            let mut source = File::from(source);
            let mut buf = vec![0u8; 32 << 10];
            let mut warned = false;
            loop {
                let n = match source.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                };
                if tee {
                    // The caller may have closed its output: keep draining regardless.
                    let _ = match stream {
                        Stream::Stdout => {
                            let mut out = io::stdout().lock();
                            out.write_all(&buf[..n]).and_then(|()| out.flush())
                        }
                        Stream::Stderr => io::stderr().lock().write_all(&buf[..n]),
                    };
                }
                if let Ok(mut guard) = log.lock() {
                    if let Some(writer) = guard.as_mut() {
                        if let Err(e) = writer.write(stream, &buf[..n]) {
                            if !warned {
                                tracing::warn!(error = %e, "container output is no longer logged");
                                warned = true;
                            }
                        }
                    }
                }
            }
        })
}

/// Starts the container `id` and watches it until it exits; returns its exit code (or 125,
/// 126, 127 when it could not start). `on_start` hears whether it started.
pub fn run(
    engine: &Engine,
    id: &ContainerId,
    stdin: StdinMode,
    tee: bool,
    signal_target: &Arc<AtomicI32>,
    on_start: &mut dyn FnMut(&StartReport),
) -> Result<i32, EngineError> {
    let records = engine.records();
    let me = ProcessRef::current();
    // Claim the container: only one monitor at a time.
    let claimed = {
        let _lock = records.lock(id)?;
        let mut record = records.load(id)?;
        if record.is_running() {
            None
        } else if record.state == ContainerState::Removing {
            return Err(EngineError::Removing {
                name: record.name.to_string(),
            });
        } else {
            let (unix, text) = now();
            record.state = ContainerState::Running;
            record.monitor = me;
            record.init = None;
            record.exit_code = None;
            record.error = None;
            record.started = Some(text);
            record.started_unix = Some(unix);
            record.finished = None;
            record.finished_unix = None;
            records.save(&record)?;
            Some(record)
        }
    };
    let Some(record) = claimed else {
        let record = records.load(id)?;
        return Err(EngineError::AlreadyRunning {
            name: record.name.to_string(),
        });
    };
    // None until the start is reported; then whether the process started.
    let reported = std::cell::Cell::new(None);
    let mut report = |r: &StartReport| {
        reported.set(Some(r.started));
        on_start(r);
    };
    let outcome = supervise(engine, &record, stdin, tee, signal_target, &mut report);
    if let Err(error) = &outcome {
        if reported.get().is_none() {
            report(&StartReport {
                started: false,
                code: Some(exit::ENGINE_FAILURE),
                message: Some(format!("{error}")),
            });
        }
    }
    let code = match &outcome {
        Ok(code) => Some(*code),
        Err(_) if reported.get() == Some(false) => Some(exit::ENGINE_FAILURE),
        Err(_) => None,
    };
    let finish = finish(engine, &record, code, outcome.as_ref().err());
    match (outcome, finish) {
        (Ok(code), Ok(())) => Ok(code),
        (Ok(_), Err(e)) | (Err(e), Ok(())) => Err(e),
        (Err(e), Err(cleanup)) => {
            tracing::warn!(error = %cleanup, "cleanup after a failed start also failed");
            Err(e)
        }
    }
}

/// Everything between claiming the container and recording its end.
fn supervise(
    engine: &Engine,
    record: &ContainerRecord,
    stdin: StdinMode,
    tee: bool,
    signal_target: &Arc<AtomicI32>,
    on_start: &mut dyn FnMut(&StartReport),
) -> Result<i32, EngineError> {
    let id = &record.id;
    let dir = engine.paths().container(id);
    let runtime = engine.runtime()?;
    nix::sys::prctl::set_child_subreaper(true).map_err(|e| EngineError::Monitor {
        message: format!("PR_SET_CHILD_SUBREAPER: {e}"),
    })?;
    engine.overlay(record).mount()?;
    let runtime_log = dir.join("runtime.log");
    let pid_file = dir.join("init.pid");
    for stale in [&runtime_log, &pid_file] {
        let _ = fs::remove_file(stale);
    }
    // A leftover runtime container of an earlier run that died with its monitor.
    if runtime.has_state(id.as_str()) {
        let _ = runtime.delete_force(id.as_str());
    }

    let log = Arc::new(Mutex::new(
        match LogWriter::open(&dir.join("ctr.log"), crate::logs::DEFAULT_MAX_SIZE) {
            Ok(writer) => Some(writer),
            Err(e) => {
                tracing::warn!(error = %e, "container output will not be logged");
                None
            }
        },
    ));
    let (out_read, out_write) = pipe()?;
    let (err_read, err_write) = pipe()?;
    let mut held_stdin: Option<OwnedFd> = None;
    let stdin_stdio = match stdin {
        StdinMode::Null => Stdio::null(),
        StdinMode::Inherit => Stdio::inherit(),
        StdinMode::KeepOpen => {
            let (read, write) = pipe()?;
            held_stdin = Some(write);
            Stdio::from(read)
        }
    };
    let spawn_error = |source| {
        EngineError::Runtime(crate::runtime::RuntimeCommandError::Spawn {
            path: runtime.path.clone(),
            source,
        })
    };
    let mut pumps = vec![
        pump(out_read, Stream::Stdout, Arc::clone(&log), tee).map_err(spawn_error)?,
        pump(err_read, Stream::Stderr, Arc::clone(&log), tee).map_err(spawn_error)?,
    ];
    // With a terminal, the container writes to a pty whose master the runtime sends here;
    // the pipes then carry only what the runtime itself prints.
    let mut console = match record.tty {
        true => Some(
            palisade_runtime::console_socket::ConsoleSocket::new(id.as_str()).map_err(|e| {
                EngineError::Monitor {
                    message: format!("failed to create the console socket: {e}"),
                }
            })?,
        ),
        false => None,
    };

    // The seccomp agent must listen before the runtime connects to it.
    let agent = start_seccomp_agent(engine, &dir, id)?;
    // Landlock's kernel records are read from the moment the container's domain is created.
    let landlock =
        crate::landlock_watch::Watcher::start(&engine.paths().engine_audit_log(), id.as_str());
    let mut create = runtime.command(Some(&runtime_log));
    create
        .arg("create")
        .arg("--bundle")
        .arg(dir.join("bundle"))
        .arg("--pid-file")
        .arg(&pid_file);
    if let Some(console) = &console {
        create.arg("--console-socket").arg(console.path());
    }
    create
        .arg(id.as_str())
        .stdin(stdin_stdio)
        .stdout(Stdio::from(out_write))
        .stderr(Stdio::from(err_write));
    let status = create.spawn().and_then(|mut child: Child| child.wait());
    // Our copies of the pipes' write ends go with the command: only the container holds
    // them now, so the pumps see end-of-file when it is gone.
    drop(create);
    let status = status.map_err(spawn_error)?;
    if !status.success() {
        return start_failed(engine, record, &runtime_log, &pumps, on_start, "create");
    }
    let init = fs::read_to_string(&pid_file)
        .ok()
        .and_then(|text| text.trim().parse::<i32>().ok())
        .and_then(ProcessRef::of);
    let Some(init) = init else {
        return start_failed(engine, record, &runtime_log, &pumps, on_start, "create");
    };
    // The pty master: its output is the container's output (the monitor holds it open, so a
    // shell started with -dit waits for input instead of seeing end-of-file).
    if let Some(console) = console.take() {
        // `create` succeeded, so the runtime has already connected and sent it.
        let master = match console.receive(Duration::from_secs(5)) {
            Ok(master) => master,
            Err(e) => {
                let _ = kill(Pid::from_raw(init.pid), Signal::SIGKILL);
                let _ = wait_for(init.pid);
                return Err(EngineError::Monitor {
                    message: format!("no terminal from the runtime: {e}"),
                });
            }
        };
        pumps.push(pump(master, Stream::Stdout, Arc::clone(&log), tee).map_err(spawn_error)?);
    }
    if let Some(watcher) = &landlock {
        watcher.set_init(init.pid);
    }
    engine.records().update(id, |r| r.init = Some(init))?;
    // The container's init exists (with our empty signal mask): from now on our signals are
    // its signals.
    signal_target.store(init.pid, Ordering::SeqCst);
    forward_signals(Arc::clone(signal_target))?;

    let started = runtime
        .command(Some(&runtime_log))
        .arg("start")
        .arg(id.as_str())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(spawn_error)?;
    if !started.success() {
        let _ = kill(Pid::from_raw(init.pid), Signal::SIGKILL);
        let _ = wait_for(init.pid);
        return start_failed(engine, record, &runtime_log, &pumps, on_start, "start");
    }
    on_start(&StartReport {
        started: true,
        code: None,
        message: None,
    });
    let code = wait_for(init.pid)?;
    signal_target.store(0, Ordering::SeqCst);
    if let Some(agent) = agent {
        agent.stop();
    }
    if let Some(watcher) = landlock {
        watcher.stop();
    }
    drop(held_stdin);
    drain(pumps);
    Ok(code)
}

/// Starts the seccomp agent when the container's config routes denials to one.
pub(crate) fn start_seccomp_agent(
    engine: &Engine,
    dir: &Path,
    id: &ContainerId,
) -> Result<Option<crate::seccomp_agent::Agent>, EngineError> {
    let config: Option<oci_spec::runtime::Spec> = fs::read(dir.join("bundle").join("config.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    let listener = config
        .as_ref()
        .and_then(|spec| spec.linux().as_ref())
        .and_then(|linux| linux.seccomp().as_ref())
        .and_then(|seccomp| seccomp.listener_path().clone());
    let Some(path) = listener else {
        return Ok(None);
    };
    crate::seccomp_agent::Agent::start(&path, &engine.paths().engine_audit_log(), id.as_str())
        .map(Some)
        .map_err(|e| EngineError::Monitor {
            message: format!("cannot start the seccomp agent at {}: {e}", path.display()),
        })
}

/// Waits (as the subreaper) for `pid`, reaping whatever else exits meanwhile; its exit code,
/// or 128+n for signal n.
fn wait_for(pid: i32) -> Result<i32, EngineError> {
    loop {
        match waitpid(None, None) {
            Ok(WaitStatus::Exited(p, code)) if p.as_raw() == pid => return Ok(code),
            Ok(WaitStatus::Signaled(p, signal, _)) if p.as_raw() == pid => {
                return Ok(128 + signal as i32)
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::ECHILD) => {
                // Not our child after all (we were not its subreaper): poll until it is gone;
                // its status is lost.
                while ProcessRef::of(pid).is_some_and(|p| p.alive()) {
                    std::thread::sleep(Duration::from_millis(100));
                }
                return Err(EngineError::Monitor {
                    message: format!(
                        "the container's init {pid} was not our child; its exit code is unknown"
                    ),
                });
            }
            Err(e) => {
                return Err(EngineError::Monitor {
                    message: format!("waitpid: {e}"),
                })
            }
        }
    }
}

/// Waits for the output threads to see end-of-file, for a while.
pub(crate) fn drain(pumps: Vec<JoinHandle<()>>) {
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    for pump in pumps {
        while !pump.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if pump.is_finished() {
            let _ = pump.join();
        }
    }
}

fn start_failed(
    engine: &Engine,
    record: &ContainerRecord,
    runtime_log: &Path,
    pumps: &[JoinHandle<()>],
    on_start: &mut dyn FnMut(&StartReport),
    step: &str,
) -> Result<i32, EngineError> {
    let message = crate::runtime::last_error(runtime_log).unwrap_or_else(|| {
        format!(
            "palisade-runtime {step} failed (see {})",
            runtime_log.display()
        )
    });
    let code = exit::for_start_error(&message);
    if let Ok(runtime) = engine.runtime() {
        let _ = runtime.delete_force(record.id.as_str());
    }
    // The runtime's own error line went to the container's stderr; let it reach the log.
    let deadline = Instant::now() + Duration::from_millis(500);
    while pumps.iter().any(|p| !p.is_finished()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = engine
        .records()
        .update(&record.id, |r| r.error = Some(message.clone()));
    record_event(
        engine,
        palisade_audit::Event::ContainerStartFailed {
            actor: palisade_audit::Actor::current_process(),
            container_id: record.id.as_str().to_owned(),
            reason: message.clone(),
        },
    );
    on_start(&StartReport {
        started: false,
        code: Some(code),
        message: Some(message),
    });
    Ok(code)
}

/// Appends `event` to the engine's audit log. The container has already started or stopped,
/// so a failure cannot undo anything: it is reported as a warning.
fn record_event(engine: &Engine, event: palisade_audit::Event) {
    let path = engine.paths().engine_audit_log();
    if let Err(error) = crate::audit::open_log(&path).and_then(|mut log| log.append(event)) {
        tracing::warn!(%error, "failed to append to the engine's audit log");
    }
}

/// Records the end of a run and tidies up: runtime state, overlay mount, and for `--rm` the
/// whole container.
fn finish(
    engine: &Engine,
    record: &ContainerRecord,
    code: Option<i32>,
    error: Option<&EngineError>,
) -> Result<(), EngineError> {
    let id = &record.id;
    let mut problems = Vec::new();
    if let Ok(runtime) = engine.runtime() {
        if runtime.has_state(id.as_str()) {
            if let Err(e) = runtime.delete_force(id.as_str()) {
                problems.push(e.to_string());
            }
        }
    }
    if let Err(e) = engine.overlay(record).unmount() {
        problems.push(e.to_string());
    }
    if let Some(code) = code {
        let signal = (code > 128)
            .then(|| Signal::try_from(code - 128).ok())
            .flatten()
            .map(|signal| signal.as_str().to_owned());
        record_event(
            engine,
            palisade_audit::Event::ContainerStopped {
                actor: palisade_audit::Actor::current_process(),
                container_id: id.as_str().to_owned(),
                exit_code: Some(code),
                signal,
            },
        );
    }
    let (unix, text) = now();
    let updated = engine.records().update(id, |r| {
        r.state = ContainerState::Exited;
        r.exit_code = code.or(r.exit_code);
        r.finished = Some(text);
        r.finished_unix = Some(unix);
        r.monitor = None;
        r.init = None;
        if let Some(error) = error {
            r.error = Some(format!("{error}"));
        }
    })?;
    if updated.auto_remove {
        engine.remove_stopped(&updated)?;
    }
    match problems.is_empty() {
        true => Ok(()),
        false => Err(EngineError::Monitor {
            message: problems.join("; "),
        }),
    }
}

/// Spawns a detached monitor with `command` (the `palisade` binary's hidden monitor
/// subcommand) and reads its start report.
pub fn spawn_detached(command: &mut Command, dir: &Path) -> Result<StartReport, EngineError> {
    let stderr = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(dir.join("monitor.log"))
        .map_err(|source| EngineError::Io {
            operation: "open",
            path: dir.join("monitor.log"),
            source,
        })?;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr))
        .spawn()
        .map_err(|e| EngineError::Monitor {
            message: format!("failed to start the monitor: {e}"),
        })?;
    let mut line = String::new();
    if let Some(stdout) = child.stdout.take() {
        let _ = BufReader::new(stdout).read_line(&mut line);
    }
    let report: Option<StartReport> = serde_json::from_str(line.trim()).ok();
    match report {
        Some(report) => {
            // The monitor lives on; it is reparented when we exit. Reap it now if it has
            // already finished so no zombie is left while we run.
            let _ = child.try_wait();
            Ok(report)
        }
        None => {
            let _ = child.wait();
            let log = fs::read_to_string(dir.join("monitor.log")).unwrap_or_default();
            let last = log
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no message")
                .to_owned();
            Err(EngineError::Monitor {
                message: format!("the monitor exited before starting the container: {last}"),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_reports_round_trip() {
        let report = StartReport {
            started: false,
            code: Some(127),
            message: Some("exec: \"x\": executable file not found in $PATH".into()),
        };
        let json = serde_json::to_string(&report).unwrap();
        assert_eq!(serde_json::from_str::<StartReport>(&json).unwrap(), report);
        let ok: StartReport = serde_json::from_str(r#"{"started":true}"#).unwrap();
        assert!(ok.started && ok.code.is_none());
    }
}
