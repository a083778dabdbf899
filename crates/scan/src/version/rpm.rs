//! RPM versions, ordered as rpm's `rpmvercmp` and `rpmVersionCompare` order them.
//!
//! Each of epoch, version and release is cut into alternating digit and letter segments
//! (other characters only separate); digits beat letters, `~` sorts before anything (even the
//! end), and `^` sorts after the end but before any further segment.

use std::cmp::Ordering;

/// Orders two version (or release) strings as `rpmvercmp` does.
pub fn rpmvercmp(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (mut one, mut two) = (a.as_bytes(), b.as_bytes());
    let skip = |s: &mut &[u8]| {
        while let Some(&c) = s.first() {
            if c.is_ascii_alphanumeric() || c == b'~' || c == b'^' {
                break;
            }
            *s = &s[1..];
        }
    };
    loop {
        if one.is_empty() && two.is_empty() {
            return Ordering::Equal;
        }
        skip(&mut one);
        skip(&mut two);
        let (c1, c2) = (one.first().copied(), two.first().copied());
        if c1 == Some(b'~') || c2 == Some(b'~') {
            if c1 != Some(b'~') {
                return Ordering::Greater;
            }
            if c2 != Some(b'~') {
                return Ordering::Less;
            }
            one = &one[1..];
            two = &two[1..];
            continue;
        }
        if c1 == Some(b'^') || c2 == Some(b'^') {
            if c1.is_none() {
                return Ordering::Less;
            }
            if c2.is_none() {
                return Ordering::Greater;
            }
            if c1 != Some(b'^') {
                return Ordering::Greater;
            }
            if c2 != Some(b'^') {
                return Ordering::Less;
            }
            one = &one[1..];
            two = &two[1..];
            continue;
        }
        let (Some(first), Some(_)) = (c1, c2) else {
            break;
        };
        let numeric = first.is_ascii_digit();
        let take = |s: &[u8]| {
            let n = s
                .iter()
                .take_while(|c| {
                    if numeric {
                        c.is_ascii_digit()
                    } else {
                        c.is_ascii_alphabetic()
                    }
                })
                .count();
            n
        };
        let (n1, n2) = (take(one), take(two));
        let (mut seg1, mut seg2) = (&one[..n1], &two[..n2]);
        if seg2.is_empty() {
            return if numeric {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        if numeric {
            while seg1.first() == Some(&b'0') {
                seg1 = &seg1[1..];
            }
            while seg2.first() == Some(&b'0') {
                seg2 = &seg2[1..];
            }
            match seg1.len().cmp(&seg2.len()) {
                Ordering::Equal => {}
                other => return other,
            }
        }
        match seg1.cmp(seg2) {
            Ordering::Equal => {}
            other => return other,
        }
        one = &one[n1..];
        two = &two[n2..];
    }
    match (one.is_empty(), two.is_empty()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        _ => Ordering::Greater,
    }
}

/// An `[epoch:]version[-release]` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evr<'a> {
    /// Epoch digits ("" counts as 0).
    pub epoch: &'a str,
    /// Upstream version.
    pub version: &'a str,
    /// Release, if the label has one.
    pub release: Option<&'a str>,
}

impl<'a> Evr<'a> {
    /// Splits an EVR string: the epoch ends at the first `:`, the release starts after the last `-`.
    pub fn parse(s: &'a str) -> Self {
        let (epoch, rest) = match s.split_once(':') {
            Some((e, rest)) if e.bytes().all(|b| b.is_ascii_digit()) => (e, rest),
            _ => ("", s),
        };
        match rest.rfind('-') {
            Some(i) => Self {
                epoch,
                version: &rest[..i],
                release: Some(&rest[i + 1..]),
            },
            None => Self {
                epoch,
                version: rest,
                release: None,
            },
        }
    }
}

fn epoch_value(e: &str) -> u64 {
    e.parse().unwrap_or(0)
}

/// Orders two labels as `rpm.labelCompare` does: epoch numerically, then version, then
/// release when both have one.
pub fn compare_labels(a: &Evr<'_>, b: &Evr<'_>) -> Ordering {
    epoch_value(a.epoch)
        .cmp(&epoch_value(b.epoch))
        .then_with(|| rpmvercmp(a.version, b.version))
        .then_with(|| match (a.release, b.release) {
            (Some(x), Some(y)) => rpmvercmp(x, y),
            _ => Ordering::Equal,
        })
}

/// Orders two `[epoch:]version[-release]` strings.
pub fn compare_evr(a: &str, b: &str) -> Ordering {
    compare_labels(&Evr::parse(a), &Evr::parse(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tilde_and_caret() {
        assert_eq!(rpmvercmp("1.0~rc1", "1.0"), Ordering::Less);
        assert_eq!(rpmvercmp("1.0^git1", "1.0"), Ordering::Greater);
        assert_eq!(rpmvercmp("1.0^git1", "1.0.1"), Ordering::Less);
        assert_eq!(rpmvercmp("1.0a", "1.0.1"), Ordering::Less);
        assert_eq!(rpmvercmp("2.0", "2_0"), Ordering::Equal);
        assert_eq!(compare_evr("1:1.0-1", "2.0-1"), Ordering::Greater);
    }
}
