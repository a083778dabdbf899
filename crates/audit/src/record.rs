//! One line of the log: its canonical bytes, its hash, and how a line is read back.
//!
//! The exact format is specified in the crate documentation; this module is its only
//! implementation, used by the writer, the verifier, the tail recovery and the reader alike.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::event::Event;
use crate::timestamp::Timestamp;

/// The longest line, newline included, that the writer produces and the readers accept.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// A record's SHA-256 chain hash, written as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordHash([u8; 32]);

/// Text that is not 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a record hash is 64 lowercase hex digits, not {text:?}")]
pub struct RecordHashError {
    text: String,
}

impl RecordHash {
    /// The `prev` of a chain's first record: 64 zeros.
    pub const GENESIS: RecordHash = RecordHash([0; 32]);

    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses 64 lowercase hex digits (the only form the log uses, so edits to case show up).
    pub fn parse(text: &str) -> Result<RecordHash, RecordHashError> {
        let fail = || RecordHashError {
            text: text.chars().take(80).collect(),
        };
        if text.len() != 64 || text.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(fail());
        }
        let mut bytes = [0; 32];
        hex::decode_to_slice(text, &mut bytes).map_err(|_| fail())?;
        Ok(RecordHash(bytes))
    }

    fn of(body: &[u8]) -> RecordHash {
        RecordHash(Sha256::digest(body).into())
    }
}

impl fmt::Display for RecordHash {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for RecordHash {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "RecordHash({self})")
    }
}

impl FromStr for RecordHash {
    type Err = RecordHashError;

    fn from_str(text: &str) -> Result<RecordHash, RecordHashError> {
        RecordHash::parse(text)
    }
}

impl Serialize for RecordHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RecordHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RecordHash, D::Error> {
        let text = String::deserialize(deserializer)?;
        RecordHash::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A point in a chain: "the record with this `seq` has this `hash`".
///
/// Ship [`crate::AuditLog::checkpoint`]s off the host (to a collector, a ticket, a TPM-backed
/// store) and pass them to [`crate::verify_with`]: they pin where a chain may start and prove
/// that no records were cut from its end, which the chain alone cannot show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The record's sequence number.
    pub seq: u64,
    /// The record's hash.
    pub hash: RecordHash,
}

/// One audit record as written to and read from the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Position in the chain, from 0 and contiguous across rotated files.
    pub seq: u64,
    /// When it was appended (taken under the file lock, so non-decreasing unless the clock
    /// steps back).
    pub time: Timestamp,
    /// The previous record's hash, or [`RecordHash::GENESIS`] for the first record.
    pub prev: RecordHash,
    /// What happened.
    pub event: Event,
    /// SHA-256 of this record's canonical body.
    pub hash: RecordHash,
}

impl Record {
    /// This record as a [`Checkpoint`].
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            seq: self.seq,
            hash: self.hash,
        }
    }
}

/// A record serialized for appending: the line (with its newline) and its parts.
#[derive(Debug)]
pub(crate) struct EncodedRecord {
    pub(crate) line: Vec<u8>,
    pub(crate) hash: RecordHash,
}

/// Serializes an event's JSON canonically, ready to be placed in a body.
pub(crate) fn canonical_event(event: &Event) -> Result<String, serde_json::Error> {
    let value = serde_json::to_value(event)?;
    let mut out = String::new();
    write_canonical(&value, &mut out);
    Ok(out)
}

/// Builds the line for a record from its parts; `event_json` comes from [`canonical_event`].
pub(crate) fn encode(
    seq: u64,
    time: Timestamp,
    prev: RecordHash,
    event_json: &str,
) -> EncodedRecord {
    let body = canonical_body(seq, &time.to_string(), &prev, event_json);
    let hash = RecordHash::of(body.as_bytes());
    let line = canonical_line(&body, &hash);
    EncodedRecord {
        line: line.into_bytes(),
        hash,
    }
}

/// `{"seq":N,"time":"T","prev":"P","event":E}`: the bytes the hash covers.
fn canonical_body(seq: u64, time: &str, prev: &RecordHash, event_json: &str) -> String {
    format!(r#"{{"seq":{seq},"time":"{time}","prev":"{prev}","event":{event_json}}}"#)
}

/// The body with `,"hash":"H"` before its closing brace, and a newline.
fn canonical_line(body: &str, hash: &RecordHash) -> String {
    let open = &body[..body.len() - 1];
    format!("{open},\"hash\":\"{hash}\"}}\n")
}

/// Writes JSON with object members sorted by key (bytewise), no whitespace, and strings and
/// numbers as `serde_json` writes them. Independent of `serde_json`'s `preserve_order` feature.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (index, (key, member)) in members.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_json_string(key, out);
                out.push(':');
                write_canonical(member, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::String(text) => write_json_string(text, out),
        Value::Number(_) | Value::Bool(_) | Value::Null => out.push_str(&value.to_string()),
    }
}

fn write_json_string(text: &str, out: &mut String) {
    // Serializing a string through serde_json cannot fail; `Value`'s Display is that writer.
    out.push_str(&Value::String(text.to_owned()).to_string());
}

/// Why a line is not a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LineFault {
    /// The JSON stops before it is complete: a write cut short by a crash.
    Torn,
    /// Anything else: not JSON, not UTF-8, or not the record shape.
    Malformed(String),
}

/// A line that has the record shape, with what it claims and whether its bytes hold up.
#[derive(Debug, Clone)]
pub(crate) struct ParsedLine {
    pub(crate) seq: u64,
    pub(crate) time: Timestamp,
    pub(crate) prev: RecordHash,
    pub(crate) hash: RecordHash,
    pub(crate) kind: String,
    pub(crate) event: Value,
    /// The `hash` field equals SHA-256 of the canonical body rebuilt from the parsed values.
    pub(crate) hash_matches: bool,
    /// The line's bytes are exactly the canonical line rebuilt from the parsed values.
    pub(crate) canonical: bool,
}

impl ParsedLine {
    /// Decodes the typed record; fails for an event this version does not know.
    pub(crate) fn into_record(self) -> Result<Record, serde_json::Error> {
        Ok(Record {
            seq: self.seq,
            time: self.time,
            prev: self.prev,
            event: serde_json::from_value(self.event)?,
            hash: self.hash,
        })
    }
}

/// Parses one line, without its newline.
pub(crate) fn parse_line(line: &[u8]) -> Result<ParsedLine, LineFault> {
    const START: &[u8] = br#"{"seq":"#;
    let value: Value = serde_json::from_slice(line).map_err(|error| {
        // A torn write is a non-empty prefix of a line this crate wrote.
        let prefix = &line[..line.len().min(START.len())];
        let torn = !line.is_empty() && START.starts_with(prefix);
        if torn && error.classify() == serde_json::error::Category::Eof {
            LineFault::Torn
        } else {
            LineFault::Malformed(format!("not JSON: {error}"))
        }
    })?;
    let malformed = |reason: &str| LineFault::Malformed(reason.to_owned());
    let Value::Object(mut object) = value else {
        return Err(malformed("not a JSON object"));
    };
    if object.len() != 5 {
        return Err(malformed(
            "a record has exactly the members seq, time, prev, event and hash",
        ));
    }
    let seq = object
        .get("seq")
        .and_then(Value::as_u64)
        .ok_or_else(|| malformed("seq is missing or not an unsigned integer"))?;
    let time_text = object
        .get("time")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("time is missing or not a string"))?;
    let time =
        Timestamp::parse(time_text).map_err(|error| LineFault::Malformed(error.to_string()))?;
    let time_text = time_text.to_owned();
    let hash_member = |name: &str| -> Result<RecordHash, LineFault> {
        let text = object
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| LineFault::Malformed(format!("{name} is missing or not a string")))?;
        RecordHash::parse(text).map_err(|error| LineFault::Malformed(format!("{name}: {error}")))
    };
    let prev = hash_member("prev")?;
    let hash = hash_member("hash")?;
    let event = object
        .remove("event")
        .ok_or_else(|| malformed("event is missing"))?;
    let kind = event
        .get("kind")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("event is not an object with a string kind"))?
        .to_owned();

    let mut event_json = String::new();
    write_canonical(&event, &mut event_json);
    let body = canonical_body(seq, &time_text, &prev, &event_json);
    let hash_matches = RecordHash::of(body.as_bytes()) == hash;
    let mut expected = canonical_line(&body, &hash).into_bytes();
    expected.pop();
    let canonical = expected == line && time.to_string() == time_text;
    Ok(ParsedLine {
        seq,
        time,
        prev,
        hash,
        kind,
        event,
        hash_matches,
        canonical,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{examples, Actor};

    fn sample_line(seq: u64, prev: RecordHash) -> EncodedRecord {
        let event = Event::ContainerDeleted {
            actor: Actor::user("root").with_uid(0),
            container_id: "c1".into(),
            force: false,
        };
        encode(
            seq,
            Timestamp::from_unix(1_700_000_000, 42),
            prev,
            &canonical_event(&event).unwrap(),
        )
    }

    #[test]
    fn line_format_is_exactly_as_documented() {
        let record = sample_line(3, RecordHash::GENESIS);
        let line = String::from_utf8(record.line.clone()).unwrap();
        let body = format!(
            r#"{{"seq":3,"time":"2023-11-14T22:13:20.000000042Z","prev":"{}","event":{{"actor":{{"uid":0,"user":"root"}},"container_id":"c1","force":false,"kind":"container_deleted"}}}}"#,
            "0".repeat(64)
        );
        let hash = hex::encode(Sha256::digest(body.as_bytes()));
        assert_eq!(record.hash.to_string(), hash);
        assert_eq!(
            line,
            format!("{},\"hash\":\"{hash}\"}}\n", &body[..body.len() - 1])
        );
    }

    #[test]
    fn every_example_event_parses_back_canonical_and_hash_matching() {
        let mut prev = RecordHash::GENESIS;
        for (seq, event) in examples().into_iter().enumerate() {
            let time = Timestamp::now();
            let encoded = encode(seq as u64, time, prev, &canonical_event(&event).unwrap());
            let (last, line) = encoded.line.split_last().unwrap();
            assert_eq!(*last, b'\n');
            assert!(!line.contains(&b'\n'), "one line per record");
            let parsed = parse_line(line).unwrap();
            assert!(parsed.canonical && parsed.hash_matches, "{event:?}");
            assert_eq!(parsed.kind, event.kind());
            let record = parsed.into_record().unwrap();
            assert_eq!(record.event, event);
            assert_eq!(
                (record.seq, record.time, record.prev),
                (seq as u64, time, prev)
            );
            prev = encoded.hash;
        }
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let value =
            serde_json::json!({"b": {"z": 1, "a": [{"y": 2, "x": "\u{7f}\"\\/"}]}, "a": -1.5});
        let mut out = String::new();
        write_canonical(&value, &mut out);
        assert_eq!(
            out,
            "{\"a\":-1.5,\"b\":{\"a\":[{\"x\":\"\u{7f}\\\"\\\\/\",\"y\":2}],\"z\":1}}"
        );
    }

    #[test]
    fn edits_break_the_hash_or_the_canonical_form() {
        let record = sample_line(0, RecordHash::GENESIS);
        let line = String::from_utf8(record.line[..record.line.len() - 1].to_vec()).unwrap();

        let value_edit = line.replace("\"force\":false", "\"force\":true");
        let parsed = parse_line(value_edit.as_bytes()).unwrap();
        assert!(parsed.canonical && !parsed.hash_matches);

        let spacing_edit = line.replacen(':', ": ", 1);
        let parsed = parse_line(spacing_edit.as_bytes()).unwrap();
        assert!(!parsed.canonical && parsed.hash_matches);

        let escape_edit = line.replace("\"c1\"", "\"\\u00631\"");
        let parsed = parse_line(escape_edit.as_bytes()).unwrap();
        assert!(!parsed.canonical && parsed.hash_matches);
    }

    #[test]
    fn faults_distinguish_torn_from_malformed_lines() {
        let record = sample_line(0, RecordHash::GENESIS);
        for cut in 1..record.line.len() - 1 {
            assert_eq!(
                parse_line(&record.line[..cut]).unwrap_err(),
                LineFault::Torn,
                "cut {cut}"
            );
        }
        for garbage in [
            &b"hello"[..],
            b"[]",
            b"{}",
            b"{\"seq\":1}",
            b"\xff\xfe",
            b"",
            b"  ",
            b"{\"a\":",
        ] {
            let fault = parse_line(garbage).unwrap_err();
            assert!(
                matches!(fault, LineFault::Malformed(_)),
                "{garbage:?}: {fault:?}"
            );
        }
        let upper = String::from_utf8(record.line.clone())
            .unwrap()
            .trim_end()
            .replace(
                &record.hash.to_string(),
                &record.hash.to_string().to_uppercase(),
            );
        assert!(matches!(
            parse_line(upper.as_bytes()),
            Err(LineFault::Malformed(_))
        ));
    }

    #[test]
    fn record_hash_parses_only_lowercase_hex() {
        let text = "0123456789abcdef".repeat(4);
        assert_eq!(RecordHash::parse(&text).unwrap().to_string(), text);
        assert!(RecordHash::parse(&text.to_uppercase()).is_err());
        assert!(RecordHash::parse(&text[1..]).is_err());
        assert!(RecordHash::parse(&"g".repeat(64)).is_err());
        assert_eq!(RecordHash::GENESIS.to_string(), "0".repeat(64));
    }
}
