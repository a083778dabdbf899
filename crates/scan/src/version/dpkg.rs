//! Debian package versions, ordered exactly as dpkg's `verrevcmp` orders them.
//!
//! `[epoch:]upstream[-revision]`: the epoch compares numerically, then upstream and revision
//! each alternate non-digit runs (letters sort before everything else except `~`, which sorts
//! before even the end of the string) and digit runs (numeric; an empty run counts as 0, so
//! `1.0a` equals `1.0a0`).

use std::cmp::Ordering;

/// A parsed Debian version (borrowed parts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DebVersion<'a> {
    /// The epoch digits ("" when absent, which counts as 0).
    pub epoch: &'a str,
    /// The upstream version.
    pub upstream: &'a str,
    /// The Debian revision ("" when absent).
    pub revision: &'a str,
}

impl<'a> DebVersion<'a> {
    /// Splits a version into epoch, upstream and revision. Never fails: dpkg orders any
    /// string, and so do we.
    pub fn parse(v: &'a str) -> Self {
        let v = v.trim();
        let (epoch, rest) = match v.split_once(':') {
            Some((e, rest)) if e.bytes().all(|b| b.is_ascii_digit()) => (e, rest),
            _ => ("", v),
        };
        let (upstream, revision) = match rest.rfind('-') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        Self {
            epoch,
            upstream,
            revision,
        }
    }
}

/// Orders two Debian versions as `dpkg --compare-versions` does.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (a, b) = (DebVersion::parse(a), DebVersion::parse(b));
    verrevcmp(a.epoch.as_bytes(), b.epoch.as_bytes())
        .then_with(|| verrevcmp(a.upstream.as_bytes(), b.upstream.as_bytes()))
        .then_with(|| verrevcmp(a.revision.as_bytes(), b.revision.as_bytes()))
}

/// The weight of one non-digit character: `~` lowest, then the end of the string, then
/// letters, then everything else.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

fn verrevcmp(mut a: &[u8], mut b: &[u8]) -> Ordering {
    let is_digit = |s: &[u8]| s.first().is_some_and(u8::is_ascii_digit);
    while !a.is_empty() || !b.is_empty() {
        while (!a.is_empty() && !is_digit(a)) || (!b.is_empty() && !is_digit(b)) {
            let ac = order(a.first().copied());
            let bc = order(b.first().copied());
            if ac != bc {
                return ac.cmp(&bc);
            }
            a = a.get(1..).unwrap_or_default();
            b = b.get(1..).unwrap_or_default();
        }
        while a.first() == Some(&b'0') {
            a = &a[1..];
        }
        while b.first() == Some(&b'0') {
            b = &b[1..];
        }
        let mut first_diff = Ordering::Equal;
        while is_digit(a) && is_digit(b) {
            if first_diff == Ordering::Equal {
                first_diff = a[0].cmp(&b[0]);
            }
            a = &a[1..];
            b = &b[1..];
        }
        if is_digit(a) {
            return Ordering::Greater;
        }
        if is_digit(b) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_digit_run_is_zero() {
        assert_eq!(compare("1.0a", "1.0a0"), Ordering::Equal);
        assert_eq!(compare("1.0", "1.0-0"), Ordering::Equal);
    }

    #[test]
    fn tilde_and_epoch() {
        assert_eq!(compare("1.0~rc1", "1.0"), Ordering::Less);
        assert_eq!(compare("1.0~~", "1.0~"), Ordering::Less);
        assert_eq!(compare("1:0.1", "2.0"), Ordering::Greater);
        assert_eq!(compare("1.0+b1", "1.0"), Ordering::Greater);
        assert_eq!(compare("1.0a", "1.0+"), Ordering::Less);
        assert_eq!(compare("2.36-9+deb12u4", "2.36-9+deb12u10"), Ordering::Less);
    }
}
