//! Prometheus metrics (`GET /metrics`, text format 0.0.4): requests by method and status,
//! request time, bytes received and sent, uploads in flight, gate denials.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The registry's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    request_micros: AtomicU64,
    /// Blob bytes accepted by uploads.
    pub bytes_received: AtomicU64,
    /// Blob bytes sent by full or ranged reads.
    pub bytes_sent: AtomicU64,
    /// Pulls refused by a gate.
    pub gate_denials: AtomicU64,
    /// Blobs quarantined after failing verification.
    pub quarantined: AtomicU64,
    /// Blobs removed by garbage collection.
    pub gc_deleted: AtomicU64,
}

fn method_label(m: &http::Method) -> &'static str {
    match *m {
        http::Method::GET => "GET",
        http::Method::HEAD => "HEAD",
        http::Method::PUT => "PUT",
        http::Method::POST => "POST",
        http::Method::PATCH => "PATCH",
        http::Method::DELETE => "DELETE",
        _ => "other",
    }
}

impl Metrics {
    /// Counts one finished request.
    pub fn request(&self, method: &http::Method, status: u16, micros: u64) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((method_label(method), status)).or_default() += 1;
        }
        self.request_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut s = String::with_capacity(2048);
        s.push_str("# HELP palisade_registry_requests_total HTTP requests by method and status.\n");
        s.push_str("# TYPE palisade_registry_requests_total counter\n");
        if let Ok(m) = self.requests.lock() {
            for ((method, status), n) in m.iter() {
                let _ = writeln!(
                    s,
                    "palisade_registry_requests_total{{method=\"{method}\",code=\"{status}\"}} {n}"
                );
            }
        }
        let counters = [
            (
                "request_seconds_total",
                "Time spent handling requests.",
                self.request_micros.load(Ordering::Relaxed) as f64 / 1e6,
            ),
            (
                "received_bytes_total",
                "Blob bytes received by uploads.",
                self.bytes_received.load(Ordering::Relaxed) as f64,
            ),
            (
                "sent_bytes_total",
                "Blob bytes sent.",
                self.bytes_sent.load(Ordering::Relaxed) as f64,
            ),
            (
                "gate_denials_total",
                "Pulls refused by a gate.",
                self.gate_denials.load(Ordering::Relaxed) as f64,
            ),
            (
                "quarantined_blobs_total",
                "Blobs quarantined after failing verification.",
                self.quarantined.load(Ordering::Relaxed) as f64,
            ),
            (
                "gc_deleted_blobs_total",
                "Blobs removed by garbage collection.",
                self.gc_deleted.load(Ordering::Relaxed) as f64,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(s, "# HELP palisade_registry_{name} {help}\n# TYPE palisade_registry_{name} counter\npalisade_registry_{name} {v}");
        }
        s
    }
}
