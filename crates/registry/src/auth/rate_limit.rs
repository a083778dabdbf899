//! Failed-login rate limiting per client: a token bucket per address (IPv6 clients by /64,
//! since one host usually owns a whole /64). Each failed login takes a token; when the bucket
//! is empty, further attempts are refused without checking the password (the server answers
//! 429 `TOO_MANY_REQUESTS`) until it refills. Successful logins cost nothing.
//!
//! The map is bounded: when full, buckets that have refilled completely (they carry no
//! information) are dropped; if none has, the bucket refilled furthest is dropped, so an
//! attacker spraying addresses can at worst reset other addresses' partial buckets, never
//! lock anyone out or grow memory.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::config::RateLimitConfig;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Per-client failed-login limiter. Shared across reloads (`Arc`), so a SIGHUP does not
/// forgive anybody.
#[derive(Debug)]
pub struct LoginRateLimiter {
    burst: f64,
    per_second: f64,
    capacity: usize,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
    hashing: AtomicUsize,
    max_hashing: usize,
}

/// Permission to run one password hash; released on drop.
#[derive(Debug)]
pub struct HashPermit<'a> {
    hashing: &'a AtomicUsize,
}

impl Drop for HashPermit<'_> {
    fn drop(&mut self) {
        self.hashing.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The client must wait before trying again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

impl RetryAfter {
    /// Whole seconds, rounded up, for a `Retry-After` header.
    pub fn seconds(self) -> u64 {
        self.0.as_secs() + u64::from(self.0.subsec_nanos() > 0)
    }
}

/// The key a client is limited under: its address, IPv4-mapped IPv6 as IPv4, other IPv6 by
/// /64 prefix.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl LoginRateLimiter {
    /// A limiter with the configured burst, refill rate and map size.
    pub fn new(config: &RateLimitConfig) -> LoginRateLimiter {
        LoginRateLimiter {
            burst: f64::from(config.burst.max(1)),
            per_second: f64::from(config.per_minute.max(1)) / 60.0,
            capacity: config.tracked_clients.max(1),
            buckets: Mutex::new(HashMap::new()),
            hashing: AtomicUsize::new(0),
            max_hashing: match config.max_concurrent_password_checks {
                0 => 2 * std::thread::available_parallelism().map_or(1, usize::from),
                n => n,
            },
        }
    }

    /// A permit to check one password hash, or `None` when the configured number are
    /// already running (the caller answers 429: queueing would let a flood of bad logins
    /// exhaust CPU and memory).
    pub fn try_begin_hash(&self) -> Option<HashPermit<'_>> {
        let previous = self.hashing.fetch_add(1, Ordering::AcqRel);
        if previous >= self.max_hashing {
            self.hashing.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(HashPermit {
            hashing: &self.hashing,
        })
    }

    fn refilled(&self, bucket: Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        (bucket.tokens + elapsed * self.per_second).min(self.burst)
    }

    /// `Ok` if `client` may attempt a login now, else how long to wait.
    pub fn check(&self, client: IpAddr, now: Instant) -> Result<(), RetryAfter> {
        let buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        match buckets.get(&client_key(client)) {
            Some(bucket) => {
                let tokens = self.refilled(*bucket, now);
                if tokens >= 1.0 {
                    Ok(())
                } else {
                    Err(RetryAfter(Duration::from_secs_f64(
                        (1.0 - tokens) / self.per_second,
                    )))
                }
            }
            None => Ok(()),
        }
    }

    /// Record a failed login from `client`.
    pub fn record_failure(&self, client: IpAddr, now: Instant) {
        let key = client_key(client);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if !buckets.contains_key(&key) && buckets.len() >= self.capacity {
            buckets.retain(|_, b| self.refilled(*b, now) < self.burst);
            if buckets.len() >= self.capacity {
                let fullest = buckets
                    .iter()
                    .max_by(|a, b| {
                        self.refilled(*a.1, now)
                            .total_cmp(&self.refilled(*b.1, now))
                    })
                    .map(|(k, _)| *k);
                if let Some(k) = fullest {
                    buckets.remove(&k);
                }
            }
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        let tokens = self.refilled(*bucket, now);
        *bucket = Bucket {
            tokens: (tokens - 1.0).max(0.0),
            updated: now,
        };
    }

    /// Number of tracked clients.
    pub fn tracked(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(burst: u32, per_minute: u32, tracked: usize) -> LoginRateLimiter {
        LoginRateLimiter::new(&RateLimitConfig {
            burst,
            per_minute,
            tracked_clients: tracked,
            max_concurrent_password_checks: 2,
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn burst_then_refused_then_refills() {
        let l = limiter(3, 60, 100);
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        for _ in 0..3 {
            assert_eq!(l.check(a, t0), Ok(()));
            l.record_failure(a, t0);
        }
        let wait = l
            .check(a, t0)
            .err()
            .unwrap_or_else(|| panic!("should be limited"));
        assert_eq!(wait.seconds(), 1);
        assert_eq!(
            l.check(ip("192.0.2.2"), t0),
            Ok(()),
            "other clients unaffected"
        );
        assert_eq!(
            l.check(a, t0 + Duration::from_secs(1)),
            Ok(()),
            "one token back per second"
        );
    }

    #[test]
    fn ipv6_is_limited_per_64_and_mapped_v4_as_v4() {
        let l = limiter(1, 1, 100);
        let t0 = Instant::now();
        l.record_failure(ip("2001:db8:1:2::1"), t0);
        assert!(l.check(ip("2001:db8:1:2::ffff"), t0).is_err());
        assert!(l.check(ip("2001:db8:1:3::1"), t0).is_ok());
        l.record_failure(ip("::ffff:192.0.2.9"), t0);
        assert!(l.check(ip("192.0.2.9"), t0).is_err());
    }

    #[test]
    fn map_stays_bounded() {
        let l = limiter(5, 1, 16);
        let t0 = Instant::now();
        for i in 0..1000u32 {
            l.record_failure(IpAddr::V4(i.into()), t0);
            assert!(l.tracked() <= 16);
        }
    }

    #[test]
    fn concurrent_hashes_are_capped() {
        let l = limiter(5, 1, 16);
        let first = l.try_begin_hash();
        let second = l.try_begin_hash();
        assert!(first.is_some() && second.is_some());
        assert!(l.try_begin_hash().is_none(), "third refused");
        drop(first);
        assert!(l.try_begin_hash().is_some(), "a permit came back");
        drop(second);
    }
}
