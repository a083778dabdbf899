//! Error and debug output in the two formats runc's callers read: text on stderr, and JSON
//! lines in the `--log` file (containerd's shim reads the last "error" entry from there).

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

use crate::cli::{GlobalOptions, LogFormat};

struct Sink {
    path: Option<PathBuf>,
    format: LogFormat,
}

static SINK: OnceLock<Sink> = OnceLock::new();

pub(crate) fn init(global: &GlobalOptions) {
    let _ = SINK.set(Sink {
        path: global.log.clone(),
        format: global.log_format,
    });
    let level = if global.debug { "debug" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("PALISADE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    match (&global.log, global.log_format) {
        (Some(path), format) => {
            if let Ok(file) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let writer = std::sync::Mutex::new(file);
                if format == LogFormat::Json {
                    let _ = builder.json().with_writer(writer).try_init();
                } else {
                    let _ = builder.with_ansi(false).with_writer(writer).try_init();
                }
            }
        }
        (None, _) => {
            let _ = builder.with_writer(std::io::stderr).try_init();
        }
    }
}

/// Reports a failed command: one line on stderr, and a JSON entry in the log file.
pub(crate) fn error(e: &anyhow::Error) {
    let message = format!("{e:#}");
    let _ = writeln!(std::io::stderr(), "palisade-runtime: error: {message}");
    let Some(sink) = SINK.get() else { return };
    let Some(path) = &sink.path else { return };
    let time = palisade_runtime::time::rfc3339(std::time::SystemTime::now());
    let line = match sink.format {
        LogFormat::Json => {
            serde_json::json!({ "level": "error", "msg": message, "time": time }).to_string()
        }
        LogFormat::Text => format!("time=\"{time}\" level=error msg={message:?}"),
    };
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(file, "{line}");
    }
}
