//! `WWW-Authenticate` challenges (RFC 9110 §11.6.1) and Docker token scopes.
//!
//! ```text
//! WWW-Authenticate: Bearer realm="https://auth.example/token",service="registry.example",
//!                   scope="repository:library/busybox:pull",error="insufficient_scope"
//! ```
//!
//! The header comes from the network, so the parser is total: any input gives a (possibly
//! empty) list of challenges, never a panic.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// One authentication challenge: a scheme and its parameters (names lowercased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub(crate) scheme: String,
    pub(crate) params: BTreeMap<String, String>,
}

impl Challenge {
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    pub(crate) fn is(&self, scheme: &str) -> bool {
        self.scheme.eq_ignore_ascii_case(scheme)
    }
}

/// Parses every challenge in one `WWW-Authenticate` header value.
pub(crate) fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut parser = Parser {
        input: header.as_bytes(),
        pos: 0,
    };
    let mut challenges = Vec::new();
    loop {
        parser.skip_separators();
        let Some(scheme) = parser.token() else {
            break;
        };
        let mut challenge = Challenge {
            scheme,
            params: BTreeMap::new(),
        };
        loop {
            parser.skip_whitespace();
            let checkpoint = parser.pos;
            // A token68 (`Basic abc==`) or the next challenge's scheme stops the parameters.
            let Some(name) = parser.token() else {
                break;
            };
            parser.skip_whitespace();
            if !parser.eat(b'=') {
                parser.pos = checkpoint;
                if challenge.params.is_empty() && parser.token68() {
                    continue;
                }
                break;
            }
            parser.skip_whitespace();
            let value = if parser.peek() == Some(b'"') {
                parser.quoted()
            } else {
                parser.token().unwrap_or_default()
            };
            challenge
                .params
                .entry(name.to_ascii_lowercase())
                .or_insert(value);
            parser.skip_whitespace();
            if !parser.eat(b',') {
                break;
            }
        }
        challenges.push(challenge);
        // Skip anything unparsable up to the next comma or the next challenge's scheme.
        while let Some(b) = parser.peek() {
            if b == b',' || is_token_byte(b) {
                break;
            }
            parser.pos += 1;
        }
    }
    challenges
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn skip_separators(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.pos += 1;
        }
    }

    /// RFC 9110 `token`.
    fn token(&mut self) -> Option<String> {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if is_token_byte(b) {
                self.pos += 1;
            } else {
                break;
            }
        }
        (self.pos > start)
            .then(|| String::from_utf8_lossy(&self.input[start..self.pos]).into_owned())
    }

    /// A `token68` (base64-ish blob) after the scheme; consumed and ignored.
    fn token68(&mut self) -> bool {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b) {
                self.pos += 1;
            } else {
                break;
            }
        }
        self.pos > start
    }

    /// A quoted string with backslash escapes; an unterminated one runs to the end.
    fn quoted(&mut self) -> String {
        self.pos += 1; // the opening quote
        let mut out = Vec::new();
        while let Some(b) = self.peek() {
            self.pos += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    if let Some(next) = self.peek() {
                        out.push(next);
                        self.pos += 1;
                    }
                }
                _ => out.push(b),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// An action on a repository, as Docker token scopes name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Action {
    Pull,
    Push,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Self::Pull => "pull",
            Self::Push => "push",
        }
    }
}

/// `repository:<name>:<actions>`: what a token must allow.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Scope {
    repository: String,
    actions: BTreeSet<Action>,
}

impl Scope {
    pub(crate) fn pull(repository: &str) -> Self {
        Self {
            repository: repository.to_owned(),
            actions: BTreeSet::from([Action::Pull]),
        }
    }

    pub(crate) fn push(repository: &str) -> Self {
        Self {
            repository: repository.to_owned(),
            actions: BTreeSet::from([Action::Pull, Action::Push]),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let actions: Vec<&str> = self.actions.iter().map(|a| a.name()).collect();
        write!(f, "repository:{}:{}", self.repository, actions.join(","))
    }
}

/// A set of scope strings as a token request sends them: one per resource, actions merged,
/// sorted. `registry:catalog:*` or other scopes a challenge names are kept as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ScopeSet {
    resources: BTreeMap<String, BTreeSet<String>>,
}

impl ScopeSet {
    pub(crate) fn of(scopes: &[Scope]) -> Self {
        let mut set = Self::default();
        for scope in scopes {
            set.add(&scope.to_string());
        }
        set
    }

    /// Adds `type:name:a,b` (a name may itself contain `:`, as in `host:5000/repo`).
    pub(crate) fn add(&mut self, scope: &str) {
        let Some((resource, actions)) = scope.rsplit_once(':') else {
            return;
        };
        if !resource.contains(':') {
            return;
        }
        let entry = self.resources.entry(resource.to_owned()).or_default();
        entry.extend(
            actions
                .split(',')
                .filter(|a| !a.is_empty())
                .map(str::to_owned),
        );
    }

    /// Adds every space-separated scope of a challenge's `scope` parameter.
    pub(crate) fn add_all(&mut self, scopes: &str) {
        for scope in scopes.split_whitespace() {
            self.add(scope);
        }
    }

    pub(crate) fn union(&self, other: &Self) -> Self {
        let mut out = self.clone();
        for (resource, actions) in &other.resources {
            out.resources
                .entry(resource.clone())
                .or_default()
                .extend(actions.iter().cloned());
        }
        out
    }

    /// Whether a token granted for `self` covers everything in `wanted`.
    pub(crate) fn covers(&self, wanted: &Self) -> bool {
        wanted.resources.iter().all(|(resource, actions)| {
            self.resources
                .get(resource)
                .is_some_and(|granted| actions.is_subset(granted))
        })
    }

    /// The scope strings, for the token request's `scope` parameters.
    pub(crate) fn strings(&self) -> Vec<String> {
        self.resources
            .iter()
            .map(|(resource, actions)| {
                let actions: Vec<&str> = actions.iter().map(String::as_str).collect();
                format!("{resource}:{}", actions.join(","))
            })
            .collect()
    }

    /// A key for the token cache.
    pub(crate) fn key(&self) -> String {
        self.strings().join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_docker_bearer_challenge() {
        let header = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull",error="insufficient_scope""#;
        let challenges = parse_challenges(header);
        assert_eq!(challenges.len(), 1);
        let c = &challenges[0];
        assert!(c.is("bearer"));
        assert_eq!(c.param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c.param("service"), Some("registry.docker.io"));
        assert_eq!(c.param("scope"), Some("repository:library/busybox:pull"));
        assert_eq!(c.param("error"), Some("insufficient_scope"));
    }

    #[test]
    fn parses_basic_several_and_odd_spacing() {
        let challenges =
            parse_challenges(r#"Basic realm="Registry Realm", Bearer realm = "x\"y" , service=s"#);
        assert_eq!(challenges.len(), 2);
        assert!(challenges[0].is("Basic"));
        assert_eq!(challenges[0].param("realm"), Some("Registry Realm"));
        assert_eq!(challenges[1].param("realm"), Some("x\"y"));
        assert_eq!(challenges[1].param("service"), Some("s"));
        let token68 = parse_challenges("Negotiate abc==, Basic realm=r");
        assert_eq!(token68.len(), 2);
        assert_eq!(token68[1].param("realm"), Some("r"));
    }

    #[test]
    fn scopes_merge_and_cover() {
        let pull = ScopeSet::of(&[Scope::pull("a/b")]);
        let push = ScopeSet::of(&[Scope::push("a/b")]);
        assert_eq!(push.strings(), ["repository:a/b:pull,push"]);
        assert!(push.covers(&pull));
        assert!(!pull.covers(&push));
        let mount = ScopeSet::of(&[Scope::push("dst"), Scope::pull("src")]);
        assert_eq!(mount.key(), "repository:dst:pull,push repository:src:pull");
        let mut from_challenge = ScopeSet::default();
        from_challenge.add_all("repository:localhost:5000/x:pull registry:catalog:*");
        assert_eq!(
            from_challenge.strings(),
            ["registry:catalog:*", "repository:localhost:5000/x:pull"]
        );
        assert!(pull.union(&push).covers(&push));
        assert_eq!(ScopeSet::default().key(), "");
    }

    proptest! {
        #[test]
        fn parser_is_total(input in ".{0,200}") {
            let _ = parse_challenges(&input);
        }

        #[test]
        fn parser_is_total_on_header_like_bytes(input in r#"[A-Za-z =,"\\\t]{0,100}"#) {
            for c in parse_challenges(&input) {
                prop_assert!(!c.scheme.is_empty());
            }
        }

        #[test]
        fn quoted_values_round_trip(realm in r#"[ -~]{0,40}"#, service in "[a-z0-9.:-]{1,20}") {
            let escaped = realm.replace('\\', "\\\\").replace('"', "\\\"");
            let header = format!(r#"Bearer realm="{escaped}",service="{service}""#);
            let parsed = parse_challenges(&header);
            prop_assert_eq!(parsed.len(), 1);
            prop_assert_eq!(parsed[0].param("realm"), Some(realm.as_str()));
            prop_assert_eq!(parsed[0].param("service"), Some(service.as_str()));
        }
    }
}
