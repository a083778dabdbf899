//! Repository globs for gate policies: `*` matches one path component (or part of one),
//! `**` any number of components.

/// A parsed glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(Vec<String>);

impl Glob {
    /// Parses `team-a/*`, `prod/**`, `**`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("empty glob".into());
        }
        let parts: Vec<String> = s.split('/').map(str::to_owned).collect();
        for p in &parts {
            if p.is_empty() {
                return Err(format!("{s:?}: empty path component"));
            }
            if p.contains("**") && p != "**" || p.contains("***") {
                return Err(format!("{s:?}: ** must be a whole path component"));
            }
        }
        Ok(Self(parts))
    }

    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        let n: Vec<&str> = name.split('/').collect();
        matches_from(&self.0, &n)
    }
}

fn matches_from(g: &[String], n: &[&str]) -> bool {
    match g.split_first() {
        None => n.is_empty(),
        Some((first, rest)) if first == "**" => (0..=n.len()).any(|k| matches_from(rest, &n[k..])),
        Some((first, rest)) => {
            !n.is_empty()
                && component_matches(first.as_bytes(), n[0].as_bytes())
                && matches_from(rest, &n[1..])
        }
    }
}

fn component_matches(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|k| component_matches(rest, &s[k..])),
        Some((c, rest)) => s.first() == Some(c) && component_matches(rest, &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::Glob;

    #[test]
    fn globs() {
        let g = |s| Glob::parse(s).unwrap();
        assert!(g("team-a/*").matches("team-a/app"));
        assert!(!g("team-a/*").matches("team-a/x/y"));
        assert!(!g("team-a/*").matches("team-ab/app"));
        assert!(g("prod/**").matches("prod/a/b"));
        assert!(g("prod/**").matches("prod"));
        assert!(g("**").matches("anything/at/all"));
        assert!(g("a/app-*").matches("a/app-1"));
        assert!(Glob::parse("a/***").is_err());
        assert!(Glob::parse("a//b").is_err());
    }
}
