//! Palisade's tamper-evident audit log: typed security events in hash-chained JSON lines, an
//! appender many processes can share, and an offline verifier.
//!
//! ```no_run
//! use palisade_audit::{verify, Actor, AuditLog, Event};
//!
//! let mut log = AuditLog::open("/var/lib/palisade/audit/runtime.log")?;
//! log.append(Event::ContainerStarted {
//!     actor: Actor::current_process(),
//!     container_id: "web-1".into(),
//!     pid: Some(4242),
//! })?;
//! let report = verify(&["/var/lib/palisade/audit/runtime.log"])?;
//! assert!(report.intact);
//! # Ok::<(), palisade_audit::AuditError>(())
//! ```
//!
//! # Record format (version 1)
//!
//! A log file is UTF-8 text, one record per line, each line ending in `\n`:
//!
//! ```text
//! {"seq":0,"time":"2024-05-01T12:00:00.123456789Z","prev":"000…000","event":{…},"hash":"9f2c…"}
//! ```
//!
//! - `seq`: unsigned decimal integer; 0 for the first record ever, then +1 per record,
//!   continuing across rotated files.
//! - `time`: when the record was appended, RFC 3339 in UTC, always in the fixed-width form
//!   `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` (nine fraction digits).
//! - `prev`: the previous record's `hash`; 64 `0`s for `seq` 0. A file that continues a rotated
//!   one starts with a `log_rotated` event whose `prev` is the archived file's last `hash`.
//! - `event`: a JSON object with a string `kind` (see [`Event`]).
//! - `hash`: 64 lowercase hex digits.
//!
//! **What is hashed.** `hash` = SHA-256 of the record's *body*: exactly the line's bytes up to,
//! but not including, `,"hash":`, followed by one `}`. The body is
//! `{"seq":S,"time":"T","prev":"P","event":E}` with no whitespace anywhere, where `E` is the
//! event's canonical JSON: object members sorted by key (bytewise), no whitespace, strings as
//! `serde_json` writes them (UTF-8; only `"`, `\` and U+0000–U+001F escaped, the latter as `\n`,
//! `\t`, `\r`, `\b`, `\f` or `\u00xx`), numbers as `serde_json` writes them. The line is the body
//! with `,"hash":"H"` inserted before its final `}`. So an independent checker needs only a
//! string operation and SHA-256 to check a line's hash; this crate's verifier additionally
//! re-encodes each record from its parsed values and requires the line to equal that byte for
//! byte, so no two different-looking lines can carry the same hash.
//!
//! **Torn lines.** A crash in the middle of a `write` can leave a final line cut short. Nothing
//! is ever rewritten in place: the next append starts its record on a new line and chains it
//! from the last complete record, stepping over the fragment. The verifier reports the fragment
//! as [`BreakKind::Truncated`] at its exact line, keeps checking, and the chain still has to be
//! unbroken around it.
//!
//! # Security properties
//!
//! The chain makes any edit, deletion, reordering or insertion of records detectable, except:
//! records cut from the end of the newest file, and a chain rewritten wholesale with recomputed
//! hashes by someone who can write the file. Ship [`Checkpoint`]s off the host (a collector)
//! and verify against them ([`VerifyOptions`]) to cover those, and/or let writers seal the
//! chain with signed checkpoint records ([`AuditLog::with_checkpoints`], [`checkpoint`]):
//! [`verify_signed`] with the public key then proves every record up to the last good
//! signature, even against someone who rewrote the whole file. Files are created 0600 in 0700
//! directories.
//!
//! Secrets never belong in the log: callers pass tokens and passwords only inside
//! [`Redacted`], which writes `"[redacted]"` wherever it is displayed or serialized.
//!
//! # Recording an event from another crate
//!
//! ```no_run
//! use palisade_audit::{Actor, Decision, Event, LogConfig, SignatureOutcome};
//!
//! // PALISADE_AUDIT_FSYNC / PALISADE_AUDIT_KEY / PALISADE_AUDIT_CHECKPOINT_EVERY apply.
//! let mut log = LogConfig::from_env()?.open("/var/lib/palisade/audit/engine.log")?;
//! log.append(Event::SignatureVerdict {
//!     actor: Actor::current_process(),
//!     reference: "registry.example/app:1.2".into(),
//!     digest: "sha256:…".into(),
//!     verdict: SignatureOutcome::Refused,
//!     decision: Decision::Deny,
//!     key_id: None,
//!     reason: Some("no signature by a trusted key".into()),
//! })?; // an Err here (full disk, ...) must fail the operation being recorded
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

pub mod checkpoint;
pub mod config;
mod error;
mod event;
mod lines;
mod log;
mod query;
mod rate_limit;
mod record;
mod redact;
pub mod rules;
pub mod syslog;
mod tail;
mod timestamp;
mod verify;

pub use checkpoint::{
    CheckpointSigner, CheckpointVerifier, EcdsaP256Signer, EcdsaP256Verifier, KeyError, SignError,
};
pub use config::{ConfigError, LogConfig};
pub use error::AuditError;
pub use event::{
    Actor, Confinement, Decision, Event, IdMapping, LandlockStatus, PolicyOutcome, RegistryAction,
    SeccompSummary, SeverityCounts, SignatureOutcome, SpoofKind, UserNamespace,
};
pub use log::{AuditLog, Durability};
pub use query::{RecordFilter, Records};
pub use rate_limit::{Admission, RateLimiter, Suppressed, OVERFLOW_KEY};
pub use record::{Checkpoint, Record, RecordHash, RecordHashError, MAX_LINE_BYTES};
pub use redact::{Redacted, REDACTED};
pub use rules::{Rule, RuleError, RuleSet};
pub use timestamp::{Timestamp, TimestampError};
pub use verify::{
    verify, verify_signed, verify_with, BreakKind, ChainBreak, FileReport, VerifyOptions,
    VerifyReport,
};
