//! Python package versions (PEP 440), ordered as PyPA `packaging` orders them.

use std::cmp::Ordering;

use super::VersionError;

const SCHEME: &str = "PEP 440";

/// A local version segment: numbers sort after strings, strings compare lowercase.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Local {
    Text(String),
    Number(u64),
}

/// A parsed PEP 440 version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pep440Version {
    epoch: u64,
    release: Vec<u64>,
    /// (0 = a, 1 = b, 2 = rc, number)
    pre: Option<(u8, u64)>,
    post: Option<u64>,
    dev: Option<u64>,
    local: Vec<Local>,
}

struct Cursor<'a> {
    s: &'a [u8],
}

impl Cursor<'_> {
    fn eat_sep(&mut self) -> bool {
        match self.s.first() {
            Some(b'.' | b'-' | b'_') => {
                self.s = &self.s[1..];
                true
            }
            _ => false,
        }
    }
    fn number(&mut self) -> Option<u64> {
        let n = self.s.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        let v = std::str::from_utf8(&self.s[..n]).ok()?.parse().ok();
        self.s = &self.s[n..];
        v
    }
    fn word(&mut self, words: &[&str]) -> bool {
        for w in words {
            if self.s.starts_with(w.as_bytes()) {
                self.s = &self.s[w.len()..];
                return true;
            }
        }
        false
    }
}

impl Pep440Version {
    /// Parses a version with PEP 440's normalisation rules (case, separators, spellings).
    pub fn parse(text: &str) -> Result<Self, VersionError> {
        let err = |reason| VersionError::new(SCHEME, text, reason);
        let lower = text.trim().to_ascii_lowercase();
        let mut c = Cursor {
            s: lower.as_bytes(),
        };
        if c.s.first() == Some(&b'v') {
            c.s = &c.s[1..];
        }
        let first = c.number().ok_or_else(|| err("must start with a number"))?;
        let (epoch, mut release) = if c.s.first() == Some(&b'!') {
            c.s = &c.s[1..];
            (
                first,
                vec![c
                    .number()
                    .ok_or_else(|| err("no release after the epoch"))?],
            )
        } else {
            (0, vec![first])
        };
        while c.s.first() == Some(&b'.') && c.s.get(1).is_some_and(u8::is_ascii_digit) {
            c.s = &c.s[1..];
            release.push(c.number().ok_or_else(|| err("release number too large"))?);
        }
        // Pre-release.
        let mut pre = None;
        {
            let save = c.s;
            c.eat_sep();
            let kind = if c.word(&["alpha", "a"]) {
                Some(0)
            } else if c.word(&["beta", "b"]) {
                Some(1)
            } else if c.word(&["rc", "c", "preview", "pre"]) {
                Some(2)
            } else {
                None
            };
            match kind {
                Some(k) => {
                    c.eat_sep();
                    pre = Some((k, c.number().unwrap_or(0)));
                }
                None => c.s = save,
            }
        }
        // Post-release.
        let mut post = None;
        {
            let save = c.s;
            if c.s.first() == Some(&b'-') && c.s.get(1).is_some_and(u8::is_ascii_digit) {
                c.s = &c.s[1..];
                post = c.number();
            } else {
                c.eat_sep();
                if c.word(&["post", "rev", "r"]) {
                    c.eat_sep();
                    post = Some(c.number().unwrap_or(0));
                } else {
                    c.s = save;
                }
            }
        }
        // Development release.
        let mut dev = None;
        {
            let save = c.s;
            c.eat_sep();
            if c.word(&["dev"]) {
                c.eat_sep();
                dev = Some(c.number().unwrap_or(0));
            } else {
                c.s = save;
            }
        }
        let mut local = Vec::new();
        if c.s.first() == Some(&b'+') {
            c.s = &c.s[1..];
            let rest = std::str::from_utf8(c.s).map_err(|_| err("not ASCII"))?;
            for part in rest.split(['.', '-', '_']) {
                if part.is_empty() || !part.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err(err("bad local version"));
                }
                local.push(match part.parse::<u64>() {
                    Ok(n) if part.bytes().all(|b| b.is_ascii_digit()) => Local::Number(n),
                    _ => Local::Text(part.to_owned()),
                });
            }
            c.s = &[];
        }
        if !c.s.is_empty() {
            return Err(err("trailing characters"));
        }
        Ok(Self {
            epoch,
            release,
            pre,
            post,
            dev,
            local,
        })
    }

    /// Whether this is a pre-release or development release.
    pub fn is_prerelease(&self) -> bool {
        self.pre.is_some() || self.dev.is_some()
    }
}

/// `packaging`'s sort key, with -inf / +inf spelled as enum order.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Bound<T> {
    NegInf,
    Value(T),
    PosInf,
}

impl Ord for Pep440Version {
    fn cmp(&self, other: &Self) -> Ordering {
        fn trimmed(r: &[u64]) -> &[u64] {
            let n = r.iter().rposition(|&x| x != 0).map_or(0, |i| i + 1);
            &r[..n]
        }
        fn key(v: &Pep440Version) -> (Bound<(u8, u64)>, Bound<u64>, Bound<u64>) {
            let pre = match (v.pre, v.post, v.dev) {
                (None, None, Some(_)) => Bound::NegInf,
                (None, _, _) => Bound::PosInf,
                (Some(p), _, _) => Bound::Value(p),
            };
            let post = v.post.map_or(Bound::NegInf, Bound::Value);
            let dev = v.dev.map_or(Bound::PosInf, Bound::Value);
            (pre, post, dev)
        }
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| trimmed(&self.release).cmp(trimmed(&other.release)))
            .then_with(|| key(self).cmp(&key(other)))
            .then_with(|| {
                // No local version sorts before any local version.
                match (self.local.is_empty(), other.local.is_empty()) {
                    (true, true) => Ordering::Equal,
                    (true, false) => Ordering::Less,
                    (false, true) => Ordering::Greater,
                    (false, false) => self.local.cmp(&other.local),
                }
            })
    }
}

impl PartialOrd for Pep440Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Orders two PEP 440 versions.
pub fn compare(a: &str, b: &str) -> Result<Ordering, VersionError> {
    Ok(Pep440Version::parse(a)?.cmp(&Pep440Version::parse(b)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordering() {
        let order = [
            "1.0.dev456",
            "1.0a1",
            "1.0a2.dev456",
            "1.0a12.dev456",
            "1.0a12",
            "1.0b1.dev456",
            "1.0b2",
            "1.0b2.post345.dev456",
            "1.0b2.post345",
            "1.0rc1.dev456",
            "1.0rc1",
            "1.0",
            "1.0+abc.5",
            "1.0+abc.7",
            "1.0+5",
            "1.0.post456.dev34",
            "1.0.post456",
            "1.0.15",
            "1.1.dev1",
        ];
        for w in order.windows(2) {
            assert_eq!(
                compare(w[0], w[1]),
                Ok(Ordering::Less),
                "{} < {}",
                w[0],
                w[1]
            );
        }
        assert_eq!(compare("1.0", "1.0.0"), Ok(Ordering::Equal));
        assert_eq!(compare("1.0-1", "1.0.post1"), Ok(Ordering::Equal));
        assert_eq!(compare("1.0ALPHA", "1.0a0"), Ok(Ordering::Equal));
        assert!(compare("not a version", "1").is_err());
    }
}
