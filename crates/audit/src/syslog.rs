//! Export to syslog: records as RFC 5424 messages, sent to a local syslog daemon's datagram
//! socket (`/dev/log`) for a collector.
//!
//! Facility `authpriv` (10). Severity from the event: `alert` records are ALERT (1), denials
//! WARNING (4), relaxations NOTICE (5), everything else INFO (6). MSGID is the event's kind;
//! structured data `[palisade@32473 seq=".." hash=".." container=".."]` carries what a
//! collector needs to check the record against the chain; MSG is the record as JSON.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::Path;

use crate::event::{Decision, Event};
use crate::record::Record;

/// The `authpriv` facility.
const FACILITY_AUTHPRIV: u8 = 10;
/// Private enterprise number used for the structured-data id (placeholder range for
/// documentation use per RFC 5612).
const SD_ID: &str = "palisade@32473";

/// The syslog severity for a record.
pub fn severity(event: &Event) -> u8 {
    if matches!(event, Event::Alert { .. }) {
        return 1;
    }
    match event.decision() {
        Decision::Deny => 4,
        Decision::Relax => 5,
        Decision::Allow | Decision::Info => 6,
    }
}

/// Formats `record` as one RFC 5424 message from `app` on `hostname`.
pub fn rfc5424(record: &Record, hostname: &str, app: &str) -> String {
    let priority = u16::from(FACILITY_AUTHPRIV) * 8 + u16::from(severity(&record.event));
    let mut data = format!("[{SD_ID} seq=\"{}\" hash=\"{}\"", record.seq, record.hash);
    if let Some(container) = record.event.container_id() {
        data.push_str(&format!(" container=\"{}\"", sd_escape(container)));
    }
    if let Some(image) = record.event.image() {
        data.push_str(&format!(" image=\"{}\"", sd_escape(image)));
    }
    data.push(']');
    let message = serde_json::to_string(record).unwrap_or_default();
    format!(
        "<{priority}>1 {} {} {} {} {} {data} {message}",
        record.time,
        header_field(hostname, 255),
        header_field(app, 48),
        std::process::id(),
        header_field(record.event.kind(), 32),
    )
}

/// A header field: printable ASCII without spaces, at most `limit` characters, `-` if empty.
fn header_field(text: &str, limit: usize) -> String {
    let field: String = text
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(limit)
        .collect();
    if field.is_empty() {
        "-".to_owned()
    } else {
        field
    }
}

/// Escapes `"`, `\` and `]` in a structured-data parameter value.
fn sd_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A connection to a local syslog daemon's datagram socket.
#[derive(Debug)]
pub struct SyslogSink {
    socket: UnixDatagram,
    hostname: String,
    app: String,
}

impl SyslogSink {
    /// Connects to the datagram socket at `path` (normally `/dev/log`).
    pub fn connect(path: impl AsRef<Path>, app: &str) -> io::Result<SyslogSink> {
        let socket = UnixDatagram::unbound()?;
        socket.connect(path)?;
        let hostname = nix::unistd::gethostname()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(SyslogSink {
            socket,
            hostname,
            app: app.to_owned(),
        })
    }

    /// Sends one record; an error means the daemon did not take it.
    pub fn send(&self, record: &Record) -> io::Result<()> {
        let message = rfc5424(record, &self.hostname, &self.app);
        self.socket.send(message.as_bytes()).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Actor;
    use crate::record::RecordHash;
    use crate::timestamp::Timestamp;

    fn record(event: Event) -> Record {
        Record {
            seq: 7,
            time: Timestamp::from_unix(1_700_000_000, 5),
            prev: RecordHash::GENESIS,
            event,
            hash: RecordHash::GENESIS,
        }
    }

    #[test]
    fn messages_follow_rfc5424_with_severity_from_the_decision() {
        let denied = record(Event::LandlockDenied {
            actor: Actor::process(1, "sh"),
            container_id: Some("we\"b]".into()),
            path: None,
            access: "write_file".into(),
            count: None,
        });
        let line = rfc5424(&denied, "host one", "palisade");
        let prefix = "<84>1 2023-11-14T22:13:20.000000005Z hostone palisade ";
        assert!(line.starts_with(prefix), "{line}");
        assert!(line.contains(" landlock_denied [palisade@32473 seq=\"7\" hash=\"000"));
        assert!(line.contains("container=\"we\\\"b\\]\"]"), "{line}");
        let json = &line[line.find("] {").unwrap() + 2..];
        let back: Record = serde_json::from_str(json).unwrap();
        assert_eq!(back, denied);

        let started = record(Event::ContainerStarted {
            actor: Actor::default(),
            container_id: "c".into(),
            pid: None,
        });
        assert!(rfc5424(&started, "", "").starts_with("<86>1 "));
        assert!(rfc5424(&started, "", "").contains(" - - "));
    }

    #[test]
    fn a_sink_delivers_datagrams_to_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let server = UnixDatagram::bind(&path).unwrap();
        let sink = SyslogSink::connect(&path, "palisade").unwrap();
        sink.send(&record(Event::ContainerStarted {
            actor: Actor::default(),
            container_id: "c".into(),
            pid: None,
        }))
        .unwrap();
        let mut buffer = [0u8; 4096];
        let size = server.recv(&mut buffer).unwrap();
        let text = std::str::from_utf8(&buffer[..size]).unwrap();
        assert!(text.starts_with("<86>1 ") && text.contains("container_started"));
        assert!(SyslogSink::connect(dir.path().join("absent"), "p").is_err());
    }
}
