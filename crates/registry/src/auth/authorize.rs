//! The authorization policy: who may do what to which repository. Deny by default.
//!
//! An identity's permissions on a repository are the union of the actions its rules grant there
//! (`admin` implies all):
//! - a user: the rules of its roles plus the configured `default_roles`;
//! - a robot: its own rules only;
//! - anonymous: `pull` on the `[auth.anonymous] pull` globs, nothing else; every identity
//!   also has what anonymous has (public stays readable after login).
//!
//! A bearer token's access is intersected with that: the token never widens the policy, and a
//! policy change (a role removed, a user deleted) takes effect before the token expires.
//!
//! Names that are not valid OCI repository names are refused before any rule is consulted.

use std::collections::HashMap;
use std::sync::Arc;

use super::action::{Action, ActionSet};
use super::config::{AuthConfig, AuthConfigError, CatalogAccess};
use super::glob::{RepositoryGlob, TagPattern};
use super::identity::{Denial, DenialReason, Identity, Principal};
use super::name::is_valid_repository_name;
use super::rule::{actions_on, Rule, Rules};
use super::scope::{Resource, Scope};

#[derive(Debug)]
struct ImmutableTags {
    repositories: Vec<RepositoryGlob>,
    tags: Vec<TagPattern>,
}

/// The compiled policy. Immutable; build a new one on reload and swap the `Arc`.
#[derive(Debug)]
pub struct Authorizer {
    roles: HashMap<String, Rules>,
    default_roles: Vec<String>,
    anonymous: Rules,
    catalog: CatalogAccess,
    immutable: Vec<ImmutableTags>,
}

fn is_valid_role_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl Authorizer {
    /// Compile the policy from `[auth]`, refusing bad role names, globs, actions, unknown
    /// default roles and bad immutable-tag patterns.
    pub fn from_config(config: &AuthConfig) -> Result<Authorizer, AuthConfigError> {
        let mut roles = HashMap::new();
        for (name, role) in &config.roles {
            if !is_valid_role_name(name) {
                return Err(AuthConfigError::RoleName(name.clone()));
            }
            let rules = role
                .rules
                .iter()
                .enumerate()
                .map(|(i, spec)| {
                    spec.to_rule().map_err(|source| AuthConfigError::RoleRule {
                        role: name.clone(),
                        index: i + 1,
                        source,
                    })
                })
                .collect::<Result<Vec<Rule>, _>>()?;
            roles.insert(name.clone(), Rules::from(rules));
        }
        let anonymous_globs = config
            .anonymous
            .pull
            .iter()
            .map(|g| RepositoryGlob::parse(g))
            .collect::<Result<Vec<_>, _>>()
            .map_err(AuthConfigError::AnonymousGlob)?;
        let anonymous: Rules = if anonymous_globs.is_empty() {
            Rules::from(Vec::new())
        } else {
            Rules::from(vec![Rule {
                repositories: anonymous_globs,
                actions: ActionSet::of(Action::Pull),
            }])
        };
        let mut immutable = Vec::new();
        for (i, entry) in config.immutable_tags.iter().enumerate() {
            let index = i + 1;
            if entry.repositories.is_empty() || entry.tags.is_empty() {
                return Err(AuthConfigError::ImmutableTagsEmpty(index));
            }
            let err = |source| AuthConfigError::ImmutableTags { index, source };
            immutable.push(ImmutableTags {
                repositories: entry
                    .repositories
                    .iter()
                    .map(|g| RepositoryGlob::parse(g))
                    .collect::<Result<_, _>>()
                    .map_err(err)?,
                tags: entry
                    .tags
                    .iter()
                    .map(|t| TagPattern::parse(t))
                    .collect::<Result<_, _>>()
                    .map_err(err)?,
            });
        }
        let authorizer = Authorizer {
            roles,
            default_roles: config.default_roles.clone(),
            anonymous,
            catalog: config.catalog,
            immutable,
        };
        for role in &config.default_roles {
            authorizer.check_role("auth.default_roles", role)?;
        }
        Ok(authorizer)
    }

    /// Whether `role` is defined.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.contains_key(role)
    }

    /// `Ok` if `role` is defined, else an [`AuthConfigError::UnknownRole`] naming `place`.
    pub fn check_role(&self, place: &str, role: &str) -> Result<(), AuthConfigError> {
        if self.has_role(role) {
            return Ok(());
        }
        let mut defined: Vec<&str> = self.roles.keys().map(String::as_str).collect();
        defined.sort_unstable();
        Err(AuthConfigError::UnknownRole {
            place: place.to_owned(),
            role: role.to_owned(),
            defined: if defined.is_empty() {
                "none".to_owned()
            } else {
                defined.join(", ")
            },
        })
    }

    /// Calls `f` with every rule list that applies to `identity`. Everyone gets the anonymous
    /// rules (logging in never loses access to what is public).
    fn for_each_rule_set(&self, identity: &Identity, mut f: impl FnMut(&[Rule])) {
        f(&self.anonymous);
        match identity {
            Identity::Anonymous => {}
            Identity::Robot { rules, .. } => f(rules),
            Identity::User { roles, .. } => {
                for role in roles.iter().chain(self.default_roles.iter()) {
                    // Unknown roles were refused at load; if one slips through it grants nothing.
                    if let Some(rules) = self.roles.get(role) {
                        f(rules);
                    }
                }
            }
        }
    }

    /// What the policy lets `identity` do on `repository` (implications applied). Empty for
    /// an invalid repository name.
    pub fn policy_actions(&self, identity: &Identity, repository: &str) -> ActionSet {
        if !is_valid_repository_name(repository) {
            return ActionSet::EMPTY;
        }
        let segments: Vec<&str> = repository.split('/').collect();
        let mut actions = ActionSet::EMPTY;
        self.for_each_rule_set(identity, |rules| {
            actions = actions.union(actions_on(rules, &segments))
        });
        actions
    }

    /// What `principal` may do on `repository`: the policy, intersected with the token's
    /// access for bearer principals.
    pub fn allowed_actions(&self, principal: &Principal, repository: &str) -> ActionSet {
        let policy = self.policy_actions(&principal.identity, repository);
        match &principal.token_access {
            None => policy,
            Some(access) => policy.intersect(token_actions(access, repository)),
        }
    }

    /// The per-request check: may `principal` perform `action` on `repository`?
    pub fn authorize(
        &self,
        principal: &Principal,
        repository: &str,
        action: Action,
    ) -> Result<(), Denial> {
        let deny = |reason: DenialReason| {
            let challenge =
                principal.identity.is_anonymous() || reason == DenialReason::InsufficientScope;
            Err(Denial {
                subject: principal.identity.subject(),
                repository: Some(repository.chars().take(300).collect()),
                action: Some(action),
                reason,
                challenge,
            })
        };
        if !is_valid_repository_name(repository) {
            return deny(DenialReason::InvalidRepositoryName);
        }
        if !self
            .policy_actions(&principal.identity, repository)
            .contains(action)
        {
            return deny(DenialReason::NotPermitted);
        }
        if let Some(access) = &principal.token_access {
            if !token_actions(access, repository).contains(action) {
                return deny(DenialReason::InsufficientScope);
            }
        }
        Ok(())
    }

    /// Whether `identity` holds `admin` on every repository (a rule with `admin` and the glob
    /// `**`).
    pub fn is_global_admin(&self, identity: &Identity) -> bool {
        let mut admin = false;
        self.for_each_rule_set(identity, |rules| {
            admin |= rules.iter().any(|r| {
                r.actions.contains(Action::Admin)
                    && r.repositories
                        .iter()
                        .any(RepositoryGlob::matches_everything)
            });
        });
        admin
    }

    /// May `principal` list the catalog? With `catalog = "authenticated"` the server must
    /// still filter the list with [`Authorizer::may_see_repository`].
    pub fn may_list_catalog(&self, principal: &Principal) -> Result<(), Denial> {
        let policy_allows = match self.catalog {
            CatalogAccess::Admin => self.is_global_admin(&principal.identity),
            CatalogAccess::Authenticated => !principal.identity.is_anonymous(),
        };
        let token_allows = principal
            .token_access
            .as_ref()
            .is_none_or(|access| access.iter().any(|s| s.resource == Resource::Catalog));
        if policy_allows && token_allows {
            return Ok(());
        }
        let reason = if policy_allows {
            DenialReason::InsufficientScope
        } else {
            DenialReason::CatalogRestricted
        };
        Err(Denial {
            subject: principal.identity.subject(),
            repository: None,
            action: None,
            challenge: principal.identity.is_anonymous()
                || reason == DenialReason::InsufficientScope,
            reason,
        })
    }

    /// Whether the catalog (or a search) may show `repository` to `principal`: it may pull it.
    /// Uses the policy only, not the token's scopes (a catalog token has no repository scopes).
    pub fn may_see_repository(&self, principal: &Principal, repository: &str) -> bool {
        self.policy_actions(&principal.identity, repository)
            .contains(Action::Pull)
    }

    /// May an existing `tag` of `repository` be moved to another manifest or deleted? The
    /// server calls this only when the tag already exists and would change; push or delete
    /// permission is checked separately with [`Authorizer::authorize`]. Immutability binds
    /// everyone, admins included.
    pub fn may_overwrite_tag(
        &self,
        principal: &Principal,
        repository: &str,
        tag: &str,
    ) -> Result<(), Denial> {
        for rule in &self.immutable {
            if !rule.repositories.iter().any(|g| g.matches(repository)) {
                continue;
            }
            if let Some(pattern) = rule.tags.iter().find(|p| p.matches(tag)) {
                return Err(Denial {
                    subject: principal.identity.subject(),
                    repository: Some(repository.to_owned()),
                    action: None,
                    reason: DenialReason::ImmutableTag {
                        pattern: pattern.as_str().to_owned(),
                    },
                    challenge: false,
                });
            }
        }
        Ok(())
    }

    /// What a token for `identity` may carry: each requested scope intersected with the
    /// policy (never more than asked, never more than allowed); scopes left empty are dropped.
    pub fn grant(&self, identity: &Identity, requested: &[Scope]) -> Vec<Scope> {
        requested
            .iter()
            .filter_map(|scope| {
                let actions = match &scope.resource {
                    Resource::Repository(name) => {
                        scope.actions.intersect(self.policy_actions(identity, name))
                    }
                    Resource::Catalog => {
                        let probe = Principal {
                            identity: identity.clone(),
                            method: super::identity::AuthMethod::Anonymous,
                            token_access: None,
                        };
                        if self.may_list_catalog(&probe).is_ok() {
                            scope.actions
                        } else {
                            ActionSet::EMPTY
                        }
                    }
                };
                (!actions.is_empty()).then(|| Scope {
                    resource: scope.resource.clone(),
                    actions,
                })
            })
            .collect()
    }
}

/// The actions `access` grants on `repository` (implications applied).
fn token_actions(access: &[Scope], repository: &str) -> ActionSet {
    access
        .iter()
        .filter(|s| matches!(&s.resource, Resource::Repository(name) if name == repository))
        .fold(ActionSet::EMPTY, |acc, s| acc.union(s.actions.implied()))
}

/// A convenience for tests and callers that build identities by hand.
pub fn user_identity(name: &str, roles: &[&str]) -> Identity {
    Identity::User {
        name: name.to_owned(),
        roles: roles
            .iter()
            .map(|r| (*r).to_owned())
            .collect::<Vec<_>>()
            .into(),
    }
}

/// Shared handle type the server swaps on reload.
pub type SharedAuthorizer = Arc<Authorizer>;
