//! Maven versions, ordered after Maven's `ComparableVersion`: items split on `.`, `-` and
//! digit/letter transitions; numbers compare numerically and beat qualifiers; the known
//! qualifiers order `alpha` < `beta` < `milestone` < `rc` < `snapshot` < release (`""`, `ga`,
//! `final`, `release`) < `sp` < anything else (alphabetically); trailing "null" items
//! (0, release) are ignored, so `1.0` == `1` == `1.0.0-ga`.

use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Number(String),
    Qualifier(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sep {
    Dot,
    Dash,
}

fn qualifier_rank(q: &str) -> (u8, &str) {
    match q {
        "alpha" | "a" => (0, ""),
        "beta" | "b" => (1, ""),
        "milestone" | "m" => (2, ""),
        "rc" | "cr" => (3, ""),
        "snapshot" => (4, ""),
        "" | "ga" | "final" | "release" => (5, ""),
        "sp" => (6, ""),
        other => (7, other),
    }
}

fn is_null(item: &Item) -> bool {
    match item {
        Item::Number(n) => n.trim_start_matches('0').is_empty(),
        Item::Qualifier(q) => qualifier_rank(q).0 == 5,
    }
}

fn tokens(v: &str) -> Vec<(Sep, Item)> {
    let v = v.trim().to_ascii_lowercase();
    let mut out = Vec::new();
    let mut sep = Sep::Dot;
    let mut cur = String::new();
    let push = |out: &mut Vec<(Sep, Item)>, sep: Sep, cur: &mut String| {
        let item = if cur.is_empty() {
            Item::Number("0".into())
        } else if cur.bytes().all(|b| b.is_ascii_digit()) {
            Item::Number(std::mem::take(cur))
        } else {
            // Spelled-out single letters directly followed by a number are shorthands.
            Item::Qualifier(std::mem::take(cur))
        };
        out.push((sep, item));
    };
    for c in v.chars() {
        if c == '.' || c == '-' || c == '_' {
            push(&mut out, sep, &mut cur);
            sep = if c == '.' { Sep::Dot } else { Sep::Dash };
            continue;
        }
        if let Some(last) = cur.chars().last() {
            if last.is_ascii_digit() != c.is_ascii_digit() {
                push(&mut out, sep, &mut cur);
                sep = Sep::Dash;
            }
        }
        cur.push(c);
    }
    push(&mut out, sep, &mut cur);
    // Drop null items at the end of the whole version and before each dash.
    let mut i = out.len();
    while i > 0 {
        i -= 1;
        let at_end = i + 1 == out.len() || out[i + 1].0 == Sep::Dash;
        if i > 0 && at_end && is_null(&out[i].1) {
            out.remove(i);
        }
    }
    out
}

fn compare_item(a: Option<&(Sep, Item)>, b: Option<&(Sep, Item)>) -> Ordering {
    // Weight of (separator, kind): .qualifier < -qualifier < -number < .number
    fn weight(x: &(Sep, Item)) -> u8 {
        match x {
            (Sep::Dot, Item::Qualifier(_)) => 0,
            (Sep::Dash, Item::Qualifier(_)) => 1,
            (Sep::Dash, Item::Number(_)) => 2,
            (Sep::Dot, Item::Number(_)) => 3,
        }
    }
    match (a, b) {
        (None, None) => Ordering::Equal,
        (Some(x), None) => match &x.1 {
            Item::Number(n) => {
                if n.trim_start_matches('0').is_empty() {
                    Ordering::Equal
                } else {
                    Ordering::Greater
                }
            }
            Item::Qualifier(q) => qualifier_rank(q).cmp(&qualifier_rank("")),
        },
        (None, Some(_)) => compare_item(b, a).reverse(),
        (Some(x), Some(y)) => match (&x.1, &y.1) {
            (Item::Number(p), Item::Number(q)) if x.0 == y.0 => {
                let (p, q) = (p.trim_start_matches('0'), q.trim_start_matches('0'));
                p.len().cmp(&q.len()).then_with(|| p.cmp(q))
            }
            (Item::Qualifier(p), Item::Qualifier(q)) if x.0 == y.0 => {
                qualifier_rank(p).cmp(&qualifier_rank(q))
            }
            _ => weight(x).cmp(&weight(y)),
        },
    }
}

/// Orders two Maven versions.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (ta, tb) = (tokens(a), tokens(b));
    for i in 0..ta.len().max(tb.len()) {
        let o = compare_item(ta.get(i), tb.get(i));
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maven_ordering() {
        let order = [
            "1-alpha",
            "1-alpha2",
            "1-beta",
            "1-milestone1",
            "1-rc1",
            "1-snapshot",
            "1",
            "1-sp",
            "1-abc",
            "1.0.1",
            "1.1",
            "1.2-beta-2",
            "1.2",
            "2.0.0",
            "2.13.4.2",
            "10.0",
        ];
        for w in order.windows(2) {
            assert_eq!(compare(w[0], w[1]), Ordering::Less, "{} < {}", w[0], w[1]);
        }
        assert_eq!(compare("1.0", "1"), Ordering::Equal);
        assert_eq!(compare("1.0.0-ga", "1"), Ordering::Equal);
        assert_eq!(compare("1.0.0.Final", "1"), Ordering::Equal);
        assert_eq!(compare("1a1", "1-alpha-1"), Ordering::Equal);
    }
}
