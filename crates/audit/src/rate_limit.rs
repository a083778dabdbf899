//! Rate limiting for events a remote party can trigger at will (denied registry requests,
//! spoofed packets): at most N events per key per window, then one summary saying how many were
//! dropped, so a flood cannot fill the disk but still leaves a trace.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::error::AuditError;
use crate::event::{Actor, Event};
use crate::log::AuditLog;
use crate::record::Record;

/// The key events are counted under once the limiter tracks as many keys as it may.
pub const OVERFLOW_KEY: &str = "(other keys)";

/// The default bound on tracked keys.
const DEFAULT_MAX_KEYS: usize = 10_000;

/// What to do with one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Write it.
    Admit,
    /// Write the summary (as [`Suppressed::into_event`]) and then the event: the key's previous
    /// window dropped events.
    AdmitAfter(Suppressed),
    /// Drop it; it is counted for the key's summary.
    Suppress,
}

/// How many events of one key a window dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppressed {
    /// The rate-limit key.
    pub key: String,
    /// The kind of the dropped events (the last one's, if they differed).
    pub suppressed_kind: String,
    /// How many were dropped.
    pub count: u64,
}

impl Suppressed {
    /// The [`Event::EventsSuppressed`] to write for it.
    pub fn into_event(self, actor: Actor) -> Event {
        Event::EventsSuppressed {
            actor,
            key: self.key,
            suppressed_kind: self.suppressed_kind,
            count: self.count,
        }
    }
}

#[derive(Debug, Clone)]
struct KeyWindow {
    started: Instant,
    admitted: u32,
    suppressed: u64,
    suppressed_kind: &'static str,
}

impl KeyWindow {
    fn new(now: Instant) -> KeyWindow {
        KeyWindow {
            started: now,
            admitted: 0,
            suppressed: 0,
            suppressed_kind: "",
        }
    }

    fn take_summary(&mut self, key: &str) -> Option<Suppressed> {
        (self.suppressed > 0).then(|| Suppressed {
            key: key.to_owned(),
            suppressed_kind: self.suppressed_kind.to_owned(),
            count: std::mem::take(&mut self.suppressed),
        })
    }
}

/// Admits at most `limit` events per key per window.
///
/// Windows are fixed per key, starting at the key's first event. Memory is bounded: past
/// `max_keys` keys, events of new keys share the [`OVERFLOW_KEY`] window. Time is a parameter
/// so callers (and tests) control it.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    limit: u32,
    window: Duration,
    max_keys: usize,
    keys: HashMap<String, KeyWindow>,
    overflow: Option<KeyWindow>,
    next_drain: Option<Instant>,
}

impl RateLimiter {
    /// At most `limit` events per key per `window`. A `limit` of 0 drops everything and only
    /// writes summaries.
    pub fn new(limit: u32, window: Duration) -> RateLimiter {
        RateLimiter {
            limit,
            window,
            max_keys: DEFAULT_MAX_KEYS,
            keys: HashMap::new(),
            overflow: None,
            next_drain: None,
        }
    }

    /// At most `limit` events per key per second.
    pub fn per_second(limit: u32) -> RateLimiter {
        RateLimiter::new(limit, Duration::from_secs(1))
    }

    /// Tracks at most `max_keys` keys (10 000 by default).
    pub fn with_max_keys(mut self, max_keys: usize) -> RateLimiter {
        self.max_keys = max_keys;
        self
    }

    /// Counts one event of `kind` under `key` at `now` and says what to do with it.
    pub fn admit(&mut self, key: &str, kind: &'static str, now: Instant) -> Admission {
        if !self.keys.contains_key(key) && self.keys.len() >= self.max_keys {
            self.forget_idle(now);
        }
        let tracked = self.keys.contains_key(key) || self.keys.len() < self.max_keys;
        let (window_key, window) = if tracked {
            let window = self
                .keys
                .entry(key.to_owned())
                .or_insert_with(|| KeyWindow::new(now));
            (key, window)
        } else {
            let window = self.overflow.get_or_insert_with(|| KeyWindow::new(now));
            (OVERFLOW_KEY, window)
        };
        let mut summary = None;
        if now.saturating_duration_since(window.started) >= self.window {
            summary = window.take_summary(window_key);
            window.started = now;
            window.admitted = 0;
        }
        if window.admitted < self.limit {
            window.admitted += 1;
            match summary {
                Some(summary) => Admission::AdmitAfter(summary),
                None => Admission::Admit,
            }
        } else {
            // A summary of the previous window (only possible with a limit of 0) is not lost:
            // its count carries into this window's.
            window.suppressed += summary.map_or(0, |summary| summary.count) + 1;
            window.suppressed_kind = kind;
            Admission::Suppress
        }
    }

    /// Summaries of windows that have ended with events dropped, for keys that have gone quiet;
    /// forgets keys idle for a whole window. Call it now and then (a timer, or every event:
    /// it only scans once per window).
    pub fn drain(&mut self, now: Instant) -> Vec<Suppressed> {
        if self.next_drain.is_some_and(|next| now < next) {
            return Vec::new();
        }
        self.next_drain = now.checked_add(self.window);
        let window = self.window;
        let ended = |state: &KeyWindow| now.saturating_duration_since(state.started) >= window;
        let mut summaries = Vec::new();
        self.keys.retain(|key, state| {
            if !ended(state) {
                return true;
            }
            summaries.extend(state.take_summary(key));
            false
        });
        if let Some(state) = self.overflow.as_mut().filter(|state| ended(state)) {
            summaries.extend(state.take_summary(OVERFLOW_KEY));
            self.overflow = None;
        }
        summaries
    }

    /// Appends `event` to `log` if `key` is within its limit, first writing any summaries due
    /// (this key's and, once per window, other quiet keys'). Returns the event's record, or
    /// `None` if it was dropped. Summaries name this process as their actor.
    pub fn append(
        &mut self,
        log: &mut AuditLog,
        key: &str,
        event: Event,
    ) -> Result<Option<Record>, AuditError> {
        let now = Instant::now();
        let admission = self.admit(key, event.kind(), now);
        let mut due = self.drain(now);
        if let Admission::AdmitAfter(summary) = &admission {
            due.push(summary.clone());
        }
        for summary in due {
            log.append(summary.into_event(Actor::current_process()))?;
        }
        match admission {
            Admission::Suppress => Ok(None),
            Admission::Admit | Admission::AdmitAfter(_) => log.append(event).map(Some),
        }
    }

    /// Forgets keys whose window ended without dropping anything.
    fn forget_idle(&mut self, now: Instant) {
        let window = self.window;
        self.keys.retain(|_, state| {
            state.suppressed > 0 || now.saturating_duration_since(state.started) < window
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIND: &str = "registry_request_denied";

    fn suppressed(key: &str, count: u64) -> Suppressed {
        Suppressed {
            key: key.into(),
            suppressed_kind: KIND.into(),
            count,
        }
    }

    #[test]
    fn admits_up_to_the_limit_then_summarizes_in_the_next_window() {
        let start = Instant::now();
        let mut limiter = RateLimiter::per_second(3);
        let outcomes: Vec<Admission> = (0..10).map(|_| limiter.admit("a", KIND, start)).collect();
        assert_eq!(
            &outcomes[..3],
            &[Admission::Admit, Admission::Admit, Admission::Admit]
        );
        assert!(outcomes[3..]
            .iter()
            .all(|outcome| *outcome == Admission::Suppress));
        // Other keys have their own budget.
        assert_eq!(limiter.admit("b", KIND, start), Admission::Admit);
        let later = start + Duration::from_millis(1000);
        assert_eq!(
            limiter.admit("a", KIND, later),
            Admission::AdmitAfter(suppressed("a", 7))
        );
        assert_eq!(limiter.admit("a", KIND, later), Admission::Admit);
    }

    #[test]
    fn drain_reports_quiet_keys_once_and_forgets_them() {
        let start = Instant::now();
        let mut limiter = RateLimiter::per_second(1);
        for _ in 0..4 {
            limiter.admit("a", KIND, start);
        }
        limiter.admit("b", KIND, start);
        assert!(limiter.drain(start).is_empty());
        let later = start + Duration::from_secs(2);
        assert_eq!(limiter.drain(later), vec![suppressed("a", 3)]);
        assert!(limiter.drain(later + Duration::from_secs(5)).is_empty());
        assert!(limiter.keys.is_empty());
    }

    #[test]
    fn memory_stays_bounded_by_max_keys() {
        let start = Instant::now();
        let mut limiter = RateLimiter::per_second(1).with_max_keys(2);
        assert_eq!(limiter.admit("a", KIND, start), Admission::Admit);
        assert_eq!(limiter.admit("b", KIND, start), Admission::Admit);
        // New keys share the overflow window.
        assert_eq!(limiter.admit("c", KIND, start), Admission::Admit);
        assert_eq!(limiter.admit("d", KIND, start), Admission::Suppress);
        assert_eq!(limiter.admit("e", KIND, start), Admission::Suppress);
        assert_eq!(limiter.keys.len(), 2);
        // Once a and b go idle they are forgotten to make room.
        let later = start + Duration::from_secs(1);
        assert_eq!(limiter.admit("f", KIND, later), Admission::Admit);
        assert!(limiter.keys.contains_key("f"));
        assert_eq!(limiter.drain(later), vec![suppressed(OVERFLOW_KEY, 2)]);
    }

    #[test]
    fn a_zero_limit_only_counts() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(0, Duration::from_secs(1));
        assert_eq!(limiter.admit("a", KIND, start), Admission::Suppress);
        assert_eq!(
            limiter.admit("a", KIND, start + Duration::from_secs(1)),
            Admission::Suppress
        );
        assert_eq!(
            limiter.drain(start + Duration::from_secs(2)),
            vec![suppressed("a", 2)]
        );
    }

    #[test]
    fn append_writes_events_and_summaries_to_the_log() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("registry.log");
        let mut log = AuditLog::open(&path).unwrap();
        let mut limiter = RateLimiter::new(2, Duration::from_millis(50));
        let denied = || Event::RegistryRequestDenied {
            actor: Actor::user("mallory"),
            repository: "team/app".into(),
            action: crate::event::RegistryAction::Push,
            remote_addr: "192.0.2.9".parse().unwrap(),
            reason: "no push permission".into(),
        };
        let written = (0..10)
            .filter_map(|_| limiter.append(&mut log, "192.0.2.9", denied()).unwrap())
            .count();
        assert_eq!(written, 2);
        std::thread::sleep(Duration::from_millis(60));
        assert!(limiter
            .append(&mut log, "192.0.2.9", denied())
            .unwrap()
            .is_some());
        let kinds: Vec<&str> = crate::Records::open(&[&path])
            .map(|record| record.unwrap().event.kind())
            .collect();
        assert_eq!(kinds, [KIND, KIND, "events_suppressed", KIND]);
        let summary = crate::Records::open(&[&path]).nth(2).unwrap().unwrap();
        assert!(matches!(
            summary.event,
            Event::EventsSuppressed { count: 8, .. }
        ));
    }
}
