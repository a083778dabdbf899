//! Property tests over random event sequences: what is written verifies and reads back
//! unchanged, and any single changed byte or deleted line is found at its line.

// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

use std::net::IpAddr;
use std::path::Path;

use palisade_audit::{
    verify, verify_with, Actor, AuditLog, BreakKind, Decision, Event, PolicyOutcome, Record,
    Records, RegistryAction, SeverityCounts, VerifyOptions,
};
use proptest::prelude::*;

/// Any text, control characters and astral planes included.
fn text() -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<char>(), 0..16).prop_map(String::from_iter)
}

fn actor() -> impl Strategy<Value = Actor> {
    (
        proptest::option::of(any::<u32>()),
        proptest::option::of(text()),
        proptest::option::of(any::<u32>()),
        proptest::option::of(text()),
    )
        .prop_map(|(uid, user, pid, process)| Actor {
            uid,
            user,
            pid,
            process,
        })
}

fn address() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(IpAddr::from),
        any::<[u16; 8]>().prop_map(IpAddr::from),
    ]
}

fn decision() -> impl Strategy<Value = Decision> {
    prop_oneof![
        Just(Decision::Allow),
        Just(Decision::Deny),
        Just(Decision::Relax),
        Just(Decision::Info),
    ]
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        text().prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(text(), inner, 0..4)
                .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
        ]
    })
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (actor(), text(), proptest::option::of(any::<u32>())).prop_map(
            |(actor, container_id, pid)| Event::ContainerStarted {
                actor,
                container_id,
                pid
            }
        ),
        (actor(), text(), text(), any::<bool>()).prop_map(|(actor, container_id, signal, all)| {
            Event::ContainerKilled {
                actor,
                container_id,
                signal,
                all,
            }
        }),
        (
            actor(),
            proptest::option::of(text()),
            text(),
            proptest::option::of(text())
        )
            .prop_map(
                |(actor, container_id, relaxation, reason)| Event::PolicyRelaxed {
                    actor,
                    container_id,
                    image: None,
                    relaxation,
                    reason,
                }
            ),
        (actor(), text(), text()).prop_map(|(actor, reference, digest)| Event::ImagePulled {
            actor,
            reference,
            digest
        }),
        (
            actor(),
            text(),
            any::<[u64; 5]>(),
            any::<bool>(),
            decision()
        )
            .prop_map(
                |(actor, reference, counts, passed, decision)| Event::ScanVerdict {
                    actor,
                    digest: reference.clone(),
                    reference,
                    counts: SeverityCounts {
                        critical: counts[0],
                        high: counts[1],
                        medium: counts[2],
                        low: counts[3],
                        unknown: counts[4],
                    },
                    policy: "default".into(),
                    verdict: if passed {
                        PolicyOutcome::Passed
                    } else {
                        PolicyOutcome::Failed
                    },
                    decision,
                }
            ),
        (actor(), text(), address(), text()).prop_map(
            |(actor, repository, remote_addr, reason)| {
                Event::RegistryRequestDenied {
                    actor,
                    repository,
                    action: RegistryAction::Push,
                    remote_addr,
                    reason,
                }
            }
        ),
        (actor(), any::<u32>(), decision()).prop_map(|(actor, syscall_number, decision)| {
            Event::SeccompViolation {
                actor,
                container_id: None,
                syscall_number,
                syscall: None,
                arch: "x86_64".into(),
                action: "log".into(),
                decision,
                count: None,
            }
        }),
        (
            actor(),
            text(),
            proptest::collection::btree_map(text(), json_value(), 0..5)
        )
            .prop_map(|(actor, name, fields)| Event::Other {
                actor,
                name,
                fields: fields.into_iter().collect(),
            }),
    ]
}

fn write(path: &Path, events: &[Event]) -> Vec<Record> {
    let mut log = AuditLog::open(path).unwrap();
    events
        .iter()
        .map(|event| log.append(event.clone()).unwrap())
        .collect()
}

/// Byte offsets where each line starts, and each line's length without its newline.
fn line_spans(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = 0;
    for (index, byte) in bytes.iter().enumerate() {
        if *byte == b'\n' {
            spans.push((start, index - start));
            start = index + 1;
        }
    }
    spans
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn appended_events_verify_and_read_back_unchanged(
        events in proptest::collection::vec(event(), 1..16)
    ) {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("p.log");
        let written = write(&path, &events);
        let report = verify(&[&path]).unwrap();
        prop_assert!(report.intact, "{:#?}", report);
        prop_assert_eq!(report.records, events.len() as u64);
        prop_assert_eq!(report.head, written.last().map(|record| record.hash));
        let read: Vec<Record> = Records::open(&[&path]).map(Result::unwrap).collect();
        prop_assert_eq!(&read, &written);
        let read_events: Vec<Event> = read.into_iter().map(|record| record.event).collect();
        prop_assert_eq!(read_events, events);
    }

    #[test]
    fn any_changed_byte_is_found_on_its_line(
        events in proptest::collection::vec(event(), 1..10),
        line_pick in any::<prop::sample::Index>(),
        byte_pick in any::<prop::sample::Index>(),
        replacement in any::<u8>(),
    ) {
        prop_assume!(replacement != b'\n');
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("p.log");
        write(&path, &events);
        let mut bytes = std::fs::read(&path).unwrap();
        let spans = line_spans(&bytes);
        let line = line_pick.index(spans.len());
        let (start, len) = spans[line];
        let offset = start + byte_pick.index(len);
        prop_assume!(bytes[offset] != replacement);
        bytes[offset] = replacement;
        std::fs::write(&path, &bytes).unwrap();

        let report = verify(&[&path]).unwrap();
        let chain_break = report.first_break.clone().unwrap();
        prop_assert_eq!(chain_break.line, line as u64 + 1, "{:#?}", report);
        prop_assert!(
            matches!(chain_break.kind, BreakKind::Edited | BreakKind::Malformed | BreakKind::Truncated),
            "{:?}", chain_break
        );
    }

    #[test]
    fn deleting_any_line_is_found_there_given_a_checkpoint(
        events in proptest::collection::vec(event(), 2..10),
        line_pick in any::<prop::sample::Index>(),
    ) {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("p.log");
        let written = write(&path, &events);
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        let line = line_pick.index(lines.len());
        lines.remove(line);
        std::fs::write(&path, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();

        let head = written.last().map(Record::checkpoint);
        let report = verify_with(&[&path], &VerifyOptions { start: None, head }).unwrap();
        let chain_break = report.first_break.clone().unwrap();
        prop_assert_eq!(
            (chain_break.line, chain_break.kind),
            (line as u64 + 1, BreakKind::Removed),
            "{:#?}", report
        );
    }
}
