//! Alert rules: patterns over the record stream that become [`Event::Alert`]s.
//!
//! A rule file is TOML with one `[[rule]]` table per rule:
//!
//! ```toml
//! [[rule]]
//! name = "seccomp-burst"          # required, names the alert
//! kind = "seccomp_violation"      # event kind to match; "*" or absent matches every kind
//! container = "web-1"             # optional: only this container
//! decision = "deny"               # optional: allow, deny, relax or info
//! threshold = 10                  # matching events within the window that raise the alert
//! window = "60s"                  # the window: seconds, or with s, m or h
//! ```
//!
//! Events that carry a `count` (aggregated seccomp denials, OOM kills, pids-limit hits) count
//! that many times. Windows are kept per rule and container, by record time; once a rule
//! fires for a container, its window starts afresh. Alerts themselves are never matched.

use std::collections::{BTreeMap, VecDeque};

use serde::Deserialize;

use crate::event::{Actor, Decision, Event};
use crate::record::Record;
use crate::timestamp::Timestamp;

/// A rule file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuleError {
    /// Not TOML, or not the rule shape.
    #[error("the rule file is not valid: {0}")]
    Parse(String),
    /// A rule's value is out of range.
    #[error("rule {rule:?}: {reason}")]
    Invalid {
        /// The rule's name.
        rule: String,
        /// What is wrong.
        reason: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    rule: Vec<RuleText>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleText {
    name: String,
    kind: Option<String>,
    container: Option<String>,
    decision: Option<Decision>,
    threshold: u64,
    window: toml::Value,
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Its name.
    pub name: String,
    /// The kind matched; `None` matches every kind.
    pub kind: Option<String>,
    /// The container matched; `None` matches every container (each has its own window).
    pub container: Option<String>,
    /// The decision matched.
    pub decision: Option<Decision>,
    /// How many matching events within the window raise the alert.
    pub threshold: u64,
    /// The window in seconds.
    pub window_secs: u64,
}

impl Rule {
    fn matches(&self, event: &Event) -> bool {
        !matches!(event, Event::Alert { .. })
            && self.kind.as_deref().is_none_or(|kind| kind == event.kind())
            && self
                .container
                .as_deref()
                .is_none_or(|container| event.container_id() == Some(container))
            && self
                .decision
                .is_none_or(|decision| event.decision() == decision)
    }
}

/// How many times an event counts: its `count`, or 1.
fn weight(event: &Event) -> u64 {
    let count = match event {
        Event::SeccompViolation { count, .. } | Event::OomKilled { count, .. } => *count,
        Event::PidsLimitHit { count, .. } | Event::EventsSuppressed { count, .. } => Some(*count),
        _ => None,
    };
    count.unwrap_or(1).max(1)
}

/// Which window: a rule (by index) and a container.
type WindowKey = (usize, Option<String>);
/// The matches in a window: record time and weight.
type Window = VecDeque<(Timestamp, u64)>;

/// Rules and their windows.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
    /// Per (rule index, container): (time, weight) of matches within the window.
    windows: BTreeMap<WindowKey, Window>,
}

impl RuleSet {
    /// Parses a rule file (see the module documentation).
    pub fn from_toml(text: &str) -> Result<RuleSet, RuleError> {
        let file: RuleFile =
            toml::from_str(text).map_err(|error| RuleError::Parse(error.to_string()))?;
        let mut rules = Vec::new();
        for text in file.rule {
            let invalid = |reason: String| RuleError::Invalid {
                rule: text.name.clone(),
                reason,
            };
            if text.threshold == 0 {
                return Err(invalid("threshold must be at least 1".into()));
            }
            let window_secs = match &text.window {
                toml::Value::Integer(seconds) if *seconds > 0 => *seconds as u64,
                toml::Value::String(window) => parse_window(window).ok_or_else(|| {
                    invalid(format!("window {window:?} is not like 60s, 5m or 1h"))
                })?,
                other => {
                    return Err(invalid(format!(
                        "window {other:?} is not like 60s, 5m or 1h"
                    )))
                }
            };
            rules.push(Rule {
                name: text.name.clone(),
                kind: text.kind.clone().filter(|kind| kind != "*"),
                container: text.container.clone(),
                decision: text.decision,
                threshold: text.threshold,
                window_secs,
            });
        }
        Ok(RuleSet {
            rules,
            windows: BTreeMap::new(),
        })
    }

    /// The rules.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Feeds one record; returns the alerts it raises (written by `actor`).
    pub fn observe(&mut self, record: &Record, actor: &Actor) -> Vec<Event> {
        let mut alerts = Vec::new();
        let now = record.time.unix_seconds();
        for (index, rule) in self.rules.iter().enumerate() {
            if !rule.matches(&record.event) {
                continue;
            }
            let container = record.event.container_id().map(str::to_owned);
            let window = self.windows.entry((index, container.clone())).or_default();
            window.push_back((record.time, weight(&record.event)));
            while window
                .front()
                .is_some_and(|(time, _)| time.unix_seconds() + rule.window_secs <= now)
            {
                window.pop_front();
            }
            let count: u64 = window.iter().map(|(_, weight)| weight).sum();
            if count >= rule.threshold {
                window.clear();
                alerts.push(Event::Alert {
                    actor: actor.clone(),
                    rule: rule.name.clone(),
                    container_id: container,
                    matched_kind: record.event.kind().to_owned(),
                    count,
                    window_secs: rule.window_secs,
                    trigger_seq: Some(record.seq),
                });
            }
        }
        alerts
    }
}

/// `60`, `60s`, `5m`, `1h`.
fn parse_window(text: &str) -> Option<u64> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (amount, unit) = text.split_at(split);
    let amount: u64 = amount.parse().ok().filter(|amount| *amount > 0)?;
    match unit {
        "" | "s" => Some(amount),
        "m" => amount.checked_mul(60),
        "h" => amount.checked_mul(3600),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RecordHash;

    fn record(seq: u64, seconds: u64, event: Event) -> Record {
        Record {
            seq,
            time: Timestamp::from_unix(1_700_000_000 + seconds, 0),
            prev: RecordHash::GENESIS,
            event,
            hash: RecordHash::GENESIS,
        }
    }

    fn denial(container: &str, count: u64) -> Event {
        Event::SeccompViolation {
            actor: Actor::process(9, "x"),
            container_id: Some(container.into()),
            syscall_number: 165,
            syscall: Some("mount".into()),
            arch: "x86_64".into(),
            action: "notify_errno".into(),
            decision: Decision::Deny,
            count: Some(count),
        }
    }

    const RULES: &str = r#"
        [[rule]]
        name = "seccomp-burst"
        kind = "seccomp_violation"
        threshold = 5
        window = "60s"

        [[rule]]
        name = "any-oom"
        kind = "oom_killed"
        threshold = 1
        window = 3600
    "#;

    #[test]
    fn counts_within_the_window_per_container_raise_one_alert() {
        let mut rules = RuleSet::from_toml(RULES).unwrap();
        assert_eq!(rules.rules().len(), 2);
        let actor = Actor::user("palisade");
        assert!(rules
            .observe(&record(0, 0, denial("a", 3)), &actor)
            .is_empty());
        // Another container has its own window.
        assert!(rules
            .observe(&record(1, 1, denial("b", 4)), &actor)
            .is_empty());
        let alerts = rules.observe(&record(2, 30, denial("a", 2)), &actor);
        assert_eq!(alerts.len(), 1);
        match &alerts[0] {
            Event::Alert {
                rule,
                container_id,
                count,
                window_secs,
                trigger_seq,
                ..
            } => {
                assert_eq!(rule, "seccomp-burst");
                assert_eq!(container_id.as_deref(), Some("a"));
                assert_eq!((*count, *window_secs, *trigger_seq), (5, 60, Some(2)));
            }
            other => panic!("{other:?}"),
        }
        // The window restarts after an alert; old matches fall out after 60 s.
        assert!(rules
            .observe(&record(3, 31, denial("a", 4)), &actor)
            .is_empty());
        assert!(rules
            .observe(&record(4, 200, denial("b", 1)), &actor)
            .is_empty());
        // Alerts never match, other kinds do not either.
        let alert = alerts[0].clone();
        assert!(rules.observe(&record(5, 201, alert), &actor).is_empty());
        let oom = Event::OomKilled {
            actor: Actor::default(),
            container_id: Some("a".into()),
            memory_limit: None,
            count: None,
        };
        assert_eq!(rules.observe(&record(6, 202, oom), &actor).len(), 1);
    }

    #[test]
    fn bad_rule_files_are_refused_with_the_reason() {
        for (text, expected) in [
            (
                "[[rule]]\nname = 'x'\nthreshold = 0\nwindow = '1m'",
                "threshold must be at least 1",
            ),
            (
                "[[rule]]\nname = 'x'\nthreshold = 1\nwindow = 'soon'",
                "window \"soon\"",
            ),
            (
                "[[rule]]\nname = 'x'\nthreshold = 1\nwindow = '1m'\ncolour = 'red'",
                "unknown field",
            ),
            (
                "[[rule]]\nthreshold = 1\nwindow = '1m'",
                "missing field `name`",
            ),
            ("not toml [", "not valid"),
        ] {
            let error = RuleSet::from_toml(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
        assert_eq!(parse_window("2h"), Some(7200));
        assert_eq!(parse_window("0s"), None);
    }
}
