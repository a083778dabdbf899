//! A rule: some actions on the repositories some globs match.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::action::{Action, ActionSet};
use super::glob::RepositoryGlob;

/// Grants `actions` on every repository one of `repositories` matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Which repositories.
    pub repositories: Vec<RepositoryGlob>,
    /// What may be done there (before implication: `admin` is expanded when checked).
    pub actions: ActionSet,
}

impl Rule {
    /// The actions this rule grants on `repository` (already validated), with implications.
    pub fn actions_on(&self, repository: &str) -> ActionSet {
        let segments: Vec<&str> = repository.split('/').collect();
        self.actions_on_segments(&segments)
    }

    /// [`Rule::actions_on`] for a name already split at `/`.
    pub fn actions_on_segments(&self, segments: &[&str]) -> ActionSet {
        if self
            .repositories
            .iter()
            .any(|g| g.matches_segments(segments))
        {
            self.actions.implied()
        } else {
            ActionSet::EMPTY
        }
    }
}

/// The union of what `rules` grant on the repository split into `segments`.
pub(crate) fn actions_on(rules: &[Rule], segments: &[&str]) -> ActionSet {
    rules.iter().fold(ActionSet::EMPTY, |acc, r| {
        acc.union(r.actions_on_segments(segments))
    })
}

/// The serialized form of a rule (configuration, user database, robot records).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Repository globs (see [`super::glob`]).
    pub repositories: Vec<String>,
    /// Action names: `pull`, `push`, `delete`, `admin`.
    pub actions: Vec<String>,
}

/// Why a rule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// A bad glob.
    #[error(transparent)]
    Glob(#[from] super::glob::GlobError),
    /// A bad action.
    #[error(transparent)]
    Action(#[from] super::action::UnknownActionError),
    /// No glob.
    #[error("rule lists no repositories")]
    NoRepositories,
    /// No action.
    #[error("rule lists no actions")]
    NoActions,
}

impl RuleSpec {
    /// Validate into a [`Rule`].
    pub fn to_rule(&self) -> Result<Rule, RuleError> {
        if self.repositories.is_empty() {
            return Err(RuleError::NoRepositories);
        }
        if self.actions.is_empty() {
            return Err(RuleError::NoActions);
        }
        let repositories = self
            .repositories
            .iter()
            .map(|g| RepositoryGlob::parse(g))
            .collect::<Result<Vec<_>, _>>()?;
        let actions = self
            .actions
            .iter()
            .map(|a| a.parse::<Action>())
            .collect::<Result<ActionSet, _>>()?;
        Ok(Rule {
            repositories,
            actions,
        })
    }
}

impl From<&Rule> for RuleSpec {
    fn from(rule: &Rule) -> RuleSpec {
        RuleSpec {
            repositories: rule
                .repositories
                .iter()
                .map(|g| g.as_str().to_owned())
                .collect(),
            actions: rule.actions.iter().map(|a| a.as_str().to_owned()).collect(),
        }
    }
}

/// Shared, immutable rules (cheap to clone into an identity).
pub type Rules = Arc<[Rule]>;
