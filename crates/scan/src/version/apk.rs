//! Alpine package versions, ordered as apk-tools orders them.
//!
//! `digits{.digits}[letter]{_suffix[digits]}[~hash][-rN]`: numeric components compare as
//! numbers (a component after the first with a leading zero compares as a decimal fraction,
//! as apk does), one trailing letter, pre-release suffixes `_alpha` < `_beta` < `_pre` < `_rc`
//! sort before the bare version and post-release ones `_cvs` < `_svn` < `_git` < `_hg` < `_p`
//! after it, and `-rN` is the package revision.

use std::cmp::Ordering;

use super::VersionError;

const SCHEME: &str = "apk";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// A numeric component; `fraction` when it follows a dot and starts with 0.
    Number {
        digits: String,
        fraction: bool,
    },
    Letter(u8),
    /// Suffix rank: negative for pre-release, non-negative for post-release; then its number.
    Suffix(i32, u64),
    Hash(String),
    Revision(u64),
}

/// A parsed apk version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApkVersion {
    tokens: Vec<Token>,
}

const PRE: [&str; 4] = ["alpha", "beta", "pre", "rc"];
const POST: [&str; 5] = ["cvs", "svn", "git", "hg", "p"];

fn digits(s: &[u8]) -> usize {
    s.iter().take_while(|c| c.is_ascii_digit()).count()
}

impl ApkVersion {
    /// Parses a version, rejecting what apk-tools calls invalid.
    pub fn parse(v: &str) -> Result<Self, VersionError> {
        let err = |reason| VersionError::new(SCHEME, v, reason);
        let mut s = v.as_bytes();
        let mut tokens = Vec::new();
        let n = digits(s);
        if n == 0 {
            return Err(err("must start with a digit"));
        }
        tokens.push(Token::Number {
            digits: v[..n].to_owned(),
            fraction: false,
        });
        s = &s[n..];
        while s.first() == Some(&b'.') {
            let n = digits(&s[1..]);
            if n == 0 {
                return Err(err("a dot must be followed by digits"));
            }
            let d = &s[1..=n];
            tokens.push(Token::Number {
                digits: String::from_utf8_lossy(d).into_owned(),
                fraction: d[0] == b'0',
            });
            s = &s[n + 1..];
        }
        if let Some(&c) = s.first() {
            if c.is_ascii_lowercase() {
                tokens.push(Token::Letter(c));
                s = &s[1..];
            }
        }
        while s.first() == Some(&b'_') {
            let rest = &s[1..];
            let (rank, len) =
                if let Some(i) = PRE.iter().position(|p| rest.starts_with(p.as_bytes())) {
                    (i as i32 - PRE.len() as i32, PRE[i].len())
                } else if let Some(i) = POST.iter().position(|p| rest.starts_with(p.as_bytes())) {
                    (i as i32, POST[i].len())
                } else {
                    return Err(err("unknown suffix"));
                };
            let rest = &rest[len..];
            let n = digits(rest);
            let num = std::str::from_utf8(&rest[..n])
                .ok()
                .and_then(|t| t.parse().ok())
                .unwrap_or(0);
            tokens.push(Token::Suffix(rank, num));
            s = &rest[n..];
        }
        if s.first() == Some(&b'~') {
            let n = s[1..].iter().take_while(|c| c.is_ascii_hexdigit()).count();
            tokens.push(Token::Hash(String::from_utf8_lossy(&s[1..=n]).into_owned()));
            s = &s[n + 1..];
        }
        if s.starts_with(b"-r") {
            let n = digits(&s[2..]);
            if n == 0 {
                return Err(err("-r must be followed by digits"));
            }
            let r = std::str::from_utf8(&s[2..2 + n])
                .ok()
                .and_then(|t| t.parse().ok());
            tokens.push(Token::Revision(r.ok_or_else(|| err("revision too large"))?));
            s = &s[2 + n..];
        }
        if !s.is_empty() {
            return Err(err("trailing characters"));
        }
        Ok(Self { tokens })
    }
}

fn cmp_number(a: &str, fa: bool, b: &str, fb: bool) -> Ordering {
    if fa || fb {
        // apk compares a zero-led component as a string (a decimal fraction).
        let (ta, tb) = (a.trim_end_matches('0'), b.trim_end_matches('0'));
        return ta.cmp(tb);
    }
    let (ta, tb) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    ta.len().cmp(&tb.len()).then_with(|| ta.cmp(tb))
}

/// Where a token kind sits when one version runs out of tokens before the other: the longer
/// version is newer unless its next token is a pre-release suffix.
fn tail_weight(t: Option<&Token>) -> Ordering {
    match t {
        None => Ordering::Equal,
        Some(Token::Suffix(rank, _)) if *rank < 0 => Ordering::Less,
        Some(_) => Ordering::Greater,
    }
}

fn kind(t: &Token) -> u8 {
    match t {
        Token::Number { .. } => 0,
        Token::Letter(_) => 1,
        Token::Suffix(..) => 2,
        Token::Hash(_) => 3,
        Token::Revision(_) => 4,
    }
}

impl Ord for ApkVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        let mut i = 0;
        loop {
            let (a, b) = (self.tokens.get(i), other.tokens.get(i));
            match (a, b) {
                (None, None) => return Ordering::Equal,
                (Some(_), None) => return tail_weight(a),
                (None, Some(_)) => return tail_weight(b).reverse(),
                (Some(x), Some(y)) => {
                    let o = match (x, y) {
                        (
                            Token::Number {
                                digits: da,
                                fraction: fa,
                            },
                            Token::Number {
                                digits: db,
                                fraction: fb,
                            },
                        ) => cmp_number(da, *fa, db, *fb),
                        (Token::Letter(p), Token::Letter(q)) => p.cmp(q),
                        (Token::Suffix(r1, n1), Token::Suffix(r2, n2)) => {
                            r1.cmp(r2).then(n1.cmp(n2))
                        }
                        (Token::Hash(_), Token::Hash(_)) => Ordering::Equal,
                        (Token::Revision(p), Token::Revision(q)) => p.cmp(q),
                        // Different kinds at the same position: the version whose token is
                        // "earlier" in the grammar has more detail there and is newer, unless
                        // that detail is a pre-release suffix.
                        _ => {
                            let (kx, ky) = (kind(x), kind(y));
                            if kx < ky {
                                tail_weight(Some(x))
                            } else {
                                tail_weight(Some(y)).reverse()
                            }
                        }
                    };
                    if o != Ordering::Equal {
                        return o;
                    }
                }
            }
            i += 1;
        }
    }
}

impl PartialOrd for ApkVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Orders two apk versions.
pub fn compare(a: &str, b: &str) -> Result<Ordering, VersionError> {
    Ok(ApkVersion::parse(a)?.cmp(&ApkVersion::parse(b)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lt(a: &str, b: &str) {
        assert_eq!(compare(a, b), Ok(Ordering::Less), "{a} < {b}");
        assert_eq!(compare(b, a), Ok(Ordering::Greater), "{b} > {a}");
    }

    #[test]
    fn apk_tools_ordering() {
        // Pairs from apk-tools' test/version.data.
        lt("1.0", "1.1");
        lt("1.0_alpha1", "1.0_beta1");
        lt("1.0_beta1", "1.0_pre1");
        lt("1.0_pre1", "1.0_rc1");
        lt("1.0_rc1", "1.0");
        lt("1.0", "1.0_p1");
        lt("1.0", "1.0a");
        lt("1.0a", "1.0b");
        lt("1.0-r0", "1.0-r1");
        lt("1.0-r9", "1.0-r10");
        lt("1.0", "1.0-r1");
        lt("1.0_rc1-r5", "1.0");
        lt("3.0.10-r0", "3.0.11-r0");
        lt("1.1.1w-r0", "1.1.1w-r1");
        lt("3.1.4-r5", "3.1.4-r6");
        lt("1.01", "1.1");
        lt("2.0_p1", "2.0.1");
        lt("0.3.0_git20220409", "0.3.1");
        assert_eq!(compare("1.0", "1.0"), Ok(Ordering::Equal));
        assert!(compare("1.0_bogus", "1.0").is_err());
        assert!(compare("abc", "1.0").is_err());
    }
}
