//! Token scopes (`repository:team-a/app:pull,push`, `registry:catalog:*`) as the Docker token
//! spec defines them, parsed defensively.
//!
//! Parsing never fails as a whole: a token request whose scopes are partly malformed still gets
//! a token for the well-formed part (the spec has the server issue a token with whatever access
//! it grants, possibly none). Malformed scopes, unknown resource types, invalid repository names
//! and unknown actions are dropped; the reasons are returned for logging.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::action::{Action, ActionSet};
use super::name::is_valid_repository_name;

/// At most this many scopes are considered per request; the rest are dropped.
pub const MAX_SCOPES: usize = 32;
/// A scope string longer than this is dropped unread.
pub const MAX_SCOPE_LEN: usize = 512;

/// What a scope is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    /// `repository:<name>`: one repository (name validated against the OCI grammar).
    Repository(String),
    /// `registry:catalog`: the repository list.
    Catalog,
}

/// A resource and the actions asked for (in a request) or granted (in a token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// What it is about.
    pub resource: Resource,
    /// The actions. Never empty in a parsed or granted scope.
    pub actions: ActionSet,
}

/// Why one scope string was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// Not `type:name:actions`.
    #[error("malformed scope (expected type:name:actions)")]
    Malformed,
    /// Longer than [`MAX_SCOPE_LEN`].
    #[error("scope longer than {MAX_SCOPE_LEN} bytes")]
    TooLong,
    /// A resource type other than `repository` and `registry`.
    #[error("unknown resource type {0:?}")]
    UnknownType(String),
    /// `registry:<x>` for anything but `catalog`.
    #[error("unknown registry resource {0:?}")]
    UnknownRegistryResource(String),
    /// The repository name breaks the OCI grammar.
    #[error("invalid repository name {0:?}")]
    InvalidName(String),
    /// None of the actions is one we know.
    #[error("no known action in scope")]
    NoKnownAction,
    /// More than [`MAX_SCOPES`] scopes in the request.
    #[error("too many scopes (at most {MAX_SCOPES})")]
    TooMany,
}

impl Scope {
    /// A repository scope.
    pub fn repository(name: impl Into<String>, actions: ActionSet) -> Scope {
        Scope {
            resource: Resource::Repository(name.into()),
            actions,
        }
    }

    /// `registry:catalog:*`.
    pub fn catalog() -> Scope {
        Scope {
            resource: Resource::Catalog,
            actions: ActionSet::of(Action::Admin),
        }
    }

    /// Parse one scope. Unknown actions are ignored; if none is left the scope is refused.
    ///
    /// The resource type may carry a class (`repository(plugin):name:pull`, from the spec);
    /// the class is ignored. The name is everything between the first and the last `:`.
    pub fn parse(text: &str) -> Result<Scope, ScopeError> {
        if text.len() > MAX_SCOPE_LEN {
            return Err(ScopeError::TooLong);
        }
        let (kind, rest) = text.split_once(':').ok_or(ScopeError::Malformed)?;
        let (name, actions) = rest.rsplit_once(':').ok_or(ScopeError::Malformed)?;
        let kind = match kind.split_once('(') {
            Some((base, class))
                if class.ends_with(')') && !class[..class.len() - 1].contains(['(', ')']) =>
            {
                base
            }
            Some(_) => return Err(ScopeError::Malformed),
            None => kind,
        };
        let actions: ActionSet = actions
            .split(',')
            .filter_map(Action::from_scope_name)
            .collect();
        let resource = match kind {
            "repository" => {
                if !is_valid_repository_name(name) {
                    return Err(ScopeError::InvalidName(name.chars().take(64).collect()));
                }
                Resource::Repository(name.to_owned())
            }
            "registry" if name == "catalog" => Resource::Catalog,
            "registry" => {
                return Err(ScopeError::UnknownRegistryResource(
                    name.chars().take(64).collect(),
                ))
            }
            other => return Err(ScopeError::UnknownType(other.chars().take(64).collect())),
        };
        if actions.is_empty() {
            return Err(ScopeError::NoKnownAction);
        }
        let actions = match resource {
            // The catalog has one action, `*`.
            Resource::Catalog if !actions.contains(Action::Admin) => {
                return Err(ScopeError::NoKnownAction)
            }
            Resource::Catalog => ActionSet::of(Action::Admin),
            Resource::Repository(_) => actions,
        };
        Ok(Scope { resource, actions })
    }

    /// Whether this scope allows `action` on `repository` (admin implies every action).
    pub fn allows(&self, repository: &str, action: Action) -> bool {
        matches!(&self.resource, Resource::Repository(name) if name == repository)
            && self.actions.implied().contains(action)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.resource {
            Resource::Repository(name) => write!(f, "repository:{name}:")?,
            Resource::Catalog => f.write_str("registry:catalog:")?,
        }
        let mut first = true;
        for action in self.actions.iter() {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            f.write_str(action.scope_name())?;
        }
        Ok(())
    }
}

/// The scopes of a token request, parsed: the `scope` query parameter may be repeated
/// (`docker`), and one value may hold several space-separated scopes (OAuth2 form). Scopes for
/// the same resource are merged. Returns the scopes (at most [`MAX_SCOPES`]) and the reasons
/// for what was dropped.
pub fn parse_scopes<'a>(
    values: impl IntoIterator<Item = &'a str>,
) -> (Vec<Scope>, Vec<ScopeError>) {
    let mut scopes: Vec<Scope> = Vec::new();
    let mut dropped = Vec::new();
    let mut seen = 0usize;
    for text in values
        .into_iter()
        .flat_map(|v| v.split(' '))
        .filter(|s| !s.is_empty())
    {
        seen += 1;
        if seen > MAX_SCOPES {
            dropped.push(ScopeError::TooMany);
            break;
        }
        match Scope::parse(text) {
            Ok(scope) => match scopes.iter_mut().find(|s| s.resource == scope.resource) {
                Some(existing) => existing.actions = existing.actions.union(scope.actions),
                None => scopes.push(scope),
            },
            Err(error) => dropped.push(error),
        }
    }
    (scopes, dropped)
}

/// One entry of a token's `access` claim, as the Docker token spec writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessEntry {
    /// `repository` or `registry`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Repository name, or `catalog`.
    pub name: String,
    /// Action names (`pull`, `push`, `delete`, `*`).
    pub actions: Vec<String>,
}

impl From<&Scope> for AccessEntry {
    fn from(scope: &Scope) -> AccessEntry {
        let (kind, name) = match &scope.resource {
            Resource::Repository(name) => ("repository", name.clone()),
            Resource::Catalog => ("registry", "catalog".to_owned()),
        };
        AccessEntry {
            kind: kind.to_owned(),
            name,
            actions: scope
                .actions
                .iter()
                .map(|a| a.scope_name().to_owned())
                .collect(),
        }
    }
}

impl AccessEntry {
    /// Back to a scope, with the same rules as [`Scope::parse`] (used when reading our own
    /// tokens: an entry we would not have issued is dropped).
    pub fn to_scope(&self) -> Option<Scope> {
        let actions: ActionSet = self
            .actions
            .iter()
            .filter_map(|a| Action::from_scope_name(a))
            .collect();
        if actions.is_empty() {
            return None;
        }
        match (self.kind.as_str(), self.name.as_str()) {
            ("repository", name) if is_valid_repository_name(name) => {
                Some(Scope::repository(name, actions))
            }
            ("registry", "catalog") if actions.contains(Action::Admin) => Some(Scope::catalog()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(actions: &[Action]) -> ActionSet {
        actions.iter().copied().collect()
    }

    #[test]
    fn parses_the_spec_examples() {
        assert_eq!(
            Scope::parse("repository:samalba/my-app:pull,push"),
            Ok(Scope::repository(
                "samalba/my-app",
                set(&[Action::Pull, Action::Push])
            ))
        );
        assert_eq!(Scope::parse("registry:catalog:*"), Ok(Scope::catalog()));
        assert_eq!(
            Scope::parse("repository(plugin):a/b:pull"),
            Ok(Scope::repository("a/b", set(&[Action::Pull])))
        );
        assert_eq!(
            Scope::parse("repository:a:*"),
            Ok(Scope::repository("a", set(&[Action::Admin])))
        );
    }

    #[test]
    fn drops_unknown_actions_and_refuses_bad_scopes() {
        assert_eq!(
            Scope::parse("repository:a:pull,fly,PUSH"),
            Ok(Scope::repository("a", set(&[Action::Pull])))
        );
        assert_eq!(
            Scope::parse("repository:a:fly"),
            Err(ScopeError::NoKnownAction)
        );
        assert_eq!(Scope::parse("repository:a"), Err(ScopeError::Malformed));
        assert_eq!(Scope::parse("nonsense"), Err(ScopeError::Malformed));
        assert!(matches!(
            Scope::parse("repository:a/../b:pull"),
            Err(ScopeError::InvalidName(_))
        ));
        assert!(matches!(
            Scope::parse("repository:A:pull"),
            Err(ScopeError::InvalidName(_))
        ));
        assert!(matches!(
            Scope::parse("repository::pull"),
            Err(ScopeError::InvalidName(_))
        ));
        assert!(matches!(
            Scope::parse("repository:localhost:5000/a:pull"),
            Err(ScopeError::InvalidName(_))
        ));
        assert!(matches!(
            Scope::parse("registry:users:*"),
            Err(ScopeError::UnknownRegistryResource(_))
        ));
        assert_eq!(
            Scope::parse("registry:catalog:pull"),
            Err(ScopeError::NoKnownAction)
        );
        assert!(matches!(
            Scope::parse("blob:a:pull"),
            Err(ScopeError::UnknownType(_))
        ));
        assert_eq!(
            Scope::parse("repository((x)):a:pull"),
            Err(ScopeError::Malformed)
        );
        assert_eq!(Scope::parse(&"a".repeat(600)), Err(ScopeError::TooLong));
    }

    #[test]
    fn merges_repeated_and_space_separated_scopes() {
        let (scopes, dropped) = parse_scopes([
            "repository:a:pull repository:b:push",
            "repository:a:push",
            "bogus",
        ]);
        assert_eq!(
            scopes,
            vec![
                Scope::repository("a", set(&[Action::Pull, Action::Push])),
                Scope::repository("b", set(&[Action::Push])),
            ]
        );
        assert_eq!(dropped, vec![ScopeError::Malformed]);
    }

    #[test]
    fn caps_the_number_of_scopes() {
        let many: Vec<String> = (0..100).map(|i| format!("repository:r{i}:pull")).collect();
        let (scopes, dropped) = parse_scopes(many.iter().map(String::as_str));
        assert_eq!(scopes.len(), MAX_SCOPES);
        assert_eq!(dropped, vec![ScopeError::TooMany]);
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "repository:a/b:pull,push",
            "registry:catalog:*",
            "repository:x:pull,push,delete,*",
        ] {
            let scope = Scope::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(scope.to_string(), text);
            let entry = AccessEntry::from(&scope);
            assert_eq!(entry.to_scope(), Some(scope));
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_output_is_valid(text in ".{0,300}") {
            if let Ok(scope) = Scope::parse(&text) {
                prop_assert!(!scope.actions.is_empty());
                if let Resource::Repository(name) = &scope.resource {
                    prop_assert!(is_valid_repository_name(name));
                }
                let reparsed = Scope::parse(&scope.to_string());
                prop_assert_eq!(reparsed, Ok(scope));
            }
        }

        #[test]
        fn structured_scopes_never_panic(
            kind in "(repository|registry|repo|repository\\([a-z]*\\)|)",
            name in "[a-zA-Z0-9./_:-]{0,40}",
            actions in "[a-z*,]{0,30}",
        ) {
            let text = format!("{kind}:{name}:{actions}");
            let _ = Scope::parse(&text);
            let (scopes, _) = parse_scopes([text.as_str(), text.as_str()]);
            prop_assert!(scopes.len() <= 1);
        }
    }
}
