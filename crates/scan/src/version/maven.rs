//! Maven versions, ordered exactly as Maven's `ComparableVersion` (3.8) orders them: the
//! version (lower-cased) becomes a list of items split on `.`, with `-` and digit/letter
//! transitions opening a sub-list; numbers compare numerically and beat qualifiers and
//! sub-lists; known qualifiers order `alpha` < `beta` < `milestone` < `rc` < `snapshot` <
//! release (`""`, `ga`, `final`, `release`) < `sp`, unknown ones after them alphabetically
//! (`a1`, `b1`, `m1` are alpha/beta/milestone 1; `cr` is `rc`); trailing "null" items (0,
//! release, empty lists) are dropped, so `1.0` == `1` == `1.0.0-ga`.

use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    /// Digits without leading zeros ("" is zero).
    Int(String),
    /// A qualifier after aliasing.
    Str(String),
    List(Vec<Item>),
}

const QUALIFIERS: [&str; 7] = ["alpha", "beta", "milestone", "rc", "snapshot", "", "sp"];
const RELEASE_INDEX: &str = "5";

fn comparable_qualifier(q: &str) -> String {
    match QUALIFIERS.iter().position(|x| *x == q) {
        Some(i) => i.to_string(),
        None => format!("{}-{q}", QUALIFIERS.len()),
    }
}

fn string_item(value: &str, followed_by_digit: bool) -> Item {
    let v = if followed_by_digit && value.len() == 1 {
        match value {
            "a" => "alpha",
            "b" => "beta",
            "m" => "milestone",
            other => other,
        }
    } else {
        value
    };
    let v = match v {
        "ga" | "final" | "release" => "",
        "cr" => "rc",
        other => other,
    };
    Item::Str(v.to_owned())
}

fn parse_item(is_digit: bool, buf: &str) -> Item {
    if is_digit {
        Item::Int(buf.trim_start_matches('0').to_owned())
    } else {
        string_item(buf, false)
    }
}

impl Item {
    fn is_null(&self) -> bool {
        match self {
            Item::Int(d) => d.is_empty(),
            Item::Str(s) => s.is_empty(),
            Item::List(l) => l.is_empty(),
        }
    }

    /// Compares with another item, `None` standing for "nothing there".
    fn compare(&self, other: Option<&Item>) -> Ordering {
        match (self, other) {
            (Item::Int(d), None) => {
                if d.is_empty() {
                    Ordering::Equal
                } else {
                    Ordering::Greater
                }
            }
            (Item::Int(a), Some(Item::Int(b))) => a.len().cmp(&b.len()).then_with(|| a.cmp(b)),
            (Item::Int(_), Some(_)) => Ordering::Greater,
            (Item::Str(s), None) => comparable_qualifier(s).as_str().cmp(RELEASE_INDEX),
            (Item::Str(_), Some(Item::Int(_))) => Ordering::Less,
            (Item::Str(a), Some(Item::Str(b))) => {
                comparable_qualifier(a).cmp(&comparable_qualifier(b))
            }
            (Item::Str(_), Some(Item::List(_))) => Ordering::Less,
            // The whole list against nothing, not just its first item (MNG-6964).
            (Item::List(l), None) => l
                .iter()
                .map(|i| i.compare(None))
                .find(|o| *o != Ordering::Equal)
                .unwrap_or(Ordering::Equal),
            (Item::List(_), Some(Item::Int(_))) => Ordering::Less,
            (Item::List(_), Some(Item::Str(_))) => Ordering::Greater,
            (Item::List(a), Some(Item::List(b))) => {
                for i in 0..a.len().max(b.len()) {
                    let o = match (a.get(i), b.get(i)) {
                        (None, None) => Ordering::Equal,
                        (None, Some(r)) => r.compare(None).reverse(),
                        (Some(l), r) => l.compare(r),
                    };
                    if o != Ordering::Equal {
                        return o;
                    }
                }
                Ordering::Equal
            }
        }
    }
}

fn normalize(list: &mut Vec<Item>) {
    let mut i = list.len();
    while i > 0 {
        i -= 1;
        if list[i].is_null() {
            list.remove(i);
        } else if !matches!(list[i], Item::List(_)) {
            break;
        }
    }
}

/// Parses a version into Maven's item tree.
fn parse(version: &str) -> Item {
    let v = version.to_lowercase();
    let chars: Vec<char> = v.chars().collect();
    // A stack of lists under construction; each new list is pushed into its parent when closed.
    let mut stack: Vec<Vec<Item>> = vec![Vec::new()];
    let mut is_digit = false;
    let mut start = 0;
    let text = |a: usize, b: usize| chars[a..b].iter().collect::<String>();
    for (i, &c) in chars.iter().enumerate() {
        if c == '.' || c == '-' {
            let item = if i == start {
                Item::Int(String::new())
            } else {
                parse_item(is_digit, &text(start, i))
            };
            if let Some(top) = stack.last_mut() {
                top.push(item);
            }
            start = i + 1;
            if c == '-' {
                stack.push(Vec::new());
            }
        } else if c.is_ascii_digit() {
            if !is_digit && i > start {
                // A qualifier after a dot counts as after a dash: 1.0.0.X1 < 1.0.0-X2.
                if stack.last().is_some_and(|top| !top.is_empty()) {
                    stack.push(Vec::new());
                }
                let item = string_item(&text(start, i), true);
                if let Some(top) = stack.last_mut() {
                    top.push(item);
                }
                start = i;
                stack.push(Vec::new());
            }
            is_digit = true;
        } else {
            if is_digit && i > start {
                let item = parse_item(true, &text(start, i));
                if let Some(top) = stack.last_mut() {
                    top.push(item);
                }
                start = i;
                stack.push(Vec::new());
            }
            is_digit = false;
        }
    }
    if chars.len() > start {
        // A final qualifier after a dot counts as after a dash: 1.0.0.X1 < 1.0.0-X2.
        if !is_digit && stack.last().is_some_and(|top| !top.is_empty()) {
            stack.push(Vec::new());
        }
        let item = parse_item(is_digit, &text(start, chars.len()));
        if let Some(top) = stack.last_mut() {
            top.push(item);
        }
    }
    // Close the lists innermost first, normalising each (as Maven pops its stack).
    while stack.len() > 1 {
        let mut inner = stack.pop().unwrap_or_default();
        normalize(&mut inner);
        if let Some(parent) = stack.last_mut() {
            parent.push(Item::List(inner));
        }
    }
    let mut root = stack.pop().unwrap_or_default();
    normalize(&mut root);
    Item::List(root)
}

/// Orders two Maven versions.
pub fn compare(a: &str, b: &str) -> Ordering {
    parse(a).compare(Some(&parse(b)))
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
