//! The actions a client can perform on a repository, and sets of them.

use std::fmt;
use std::str::FromStr;

use palisade_audit::RegistryAction;

/// One thing a client may do to a repository.
///
/// `Admin` implies every other action ([`ActionSet::implied`]); the others imply nothing (in
/// particular `push` does not imply `pull`: a `docker push` asks for both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Read manifests, blobs, tags and referrers.
    Pull,
    /// Upload blobs and manifests, mount blobs from elsewhere, move tags.
    Push,
    /// Delete manifests, tags and blobs.
    Delete,
    /// Everything, including what the three above do not cover.
    Admin,
}

impl Action {
    /// Every action, in canonical order.
    pub const ALL: [Action; 4] = [Action::Pull, Action::Push, Action::Delete, Action::Admin];

    /// The canonical name used in configuration files and token claims (`admin` is written
    /// `*` in token scopes and claims, as the Docker token spec does).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
            Action::Admin => "admin",
        }
    }

    /// The name used in token scopes and the `access` claim.
    pub fn scope_name(self) -> &'static str {
        match self {
            Action::Admin => "*",
            other => other.as_str(),
        }
    }

    /// Parse an action as written in a scope or a claim: `pull`, `push`, `delete`, `*` or
    /// `admin`. Anything else (including different case) is `None`.
    pub fn from_scope_name(name: &str) -> Option<Action> {
        match name {
            "pull" => Some(Action::Pull),
            "push" => Some(Action::Push),
            "delete" => Some(Action::Delete),
            "*" | "admin" => Some(Action::Admin),
            _ => None,
        }
    }

    /// The audit crate's view of this action (`admin` is recorded as the push it most resembles
    /// only by the caller; here it maps to `None` so nobody records it by accident as something
    /// else).
    pub fn audit_action(self) -> Option<RegistryAction> {
        match self {
            Action::Pull => Some(RegistryAction::Pull),
            Action::Push => Some(RegistryAction::Push),
            Action::Delete => Some(RegistryAction::Delete),
            Action::Admin => None,
        }
    }

    fn bit(self) -> u8 {
        match self {
            Action::Pull => 1,
            Action::Push => 2,
            Action::Delete => 4,
            Action::Admin => 8,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for an action name that is not one of `pull`, `push`, `delete`, `admin`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown action {0:?} (expected pull, push, delete or admin)")]
pub struct UnknownActionError(pub String);

impl FromStr for Action {
    type Err = UnknownActionError;

    /// Configuration spelling: `pull`, `push`, `delete`, `admin` (exact, lowercase).
    fn from_str(name: &str) -> Result<Action, UnknownActionError> {
        match name {
            "pull" => Ok(Action::Pull),
            "push" => Ok(Action::Push),
            "delete" => Ok(Action::Delete),
            "admin" => Ok(Action::Admin),
            _ => Err(UnknownActionError(name.to_owned())),
        }
    }
}

/// A set of [`Action`]s (a bit set; `Copy`, no allocation).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ActionSet(u8);

impl ActionSet {
    /// No action.
    pub const EMPTY: ActionSet = ActionSet(0);
    /// Every action.
    pub const ALL: ActionSet = ActionSet(0b1111);

    /// The set holding just `action`.
    pub fn of(action: Action) -> ActionSet {
        ActionSet(action.bit())
    }

    /// This set with `action` added.
    #[must_use]
    pub fn with(self, action: Action) -> ActionSet {
        ActionSet(self.0 | action.bit())
    }

    /// Whether `action` is in the set (literally; see [`ActionSet::implied`]).
    pub fn contains(self, action: Action) -> bool {
        self.0 & action.bit() != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Union.
    #[must_use]
    pub fn union(self, other: ActionSet) -> ActionSet {
        ActionSet(self.0 | other.0)
    }

    /// Intersection.
    #[must_use]
    pub fn intersect(self, other: ActionSet) -> ActionSet {
        ActionSet(self.0 & other.0)
    }

    /// The set with implications applied: `admin` brings every action.
    #[must_use]
    pub fn implied(self) -> ActionSet {
        if self.contains(Action::Admin) {
            ActionSet::ALL
        } else {
            self
        }
    }

    /// The actions in canonical order.
    pub fn iter(self) -> impl Iterator<Item = Action> {
        Action::ALL.into_iter().filter(move |a| self.contains(*a))
    }
}

impl FromIterator<Action> for ActionSet {
    fn from_iter<I: IntoIterator<Item = Action>>(iter: I) -> ActionSet {
        iter.into_iter().fold(ActionSet::EMPTY, ActionSet::with)
    }
}

impl fmt::Debug for ActionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl fmt::Display for ActionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for action in self.iter() {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            f.write_str(action.as_str())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_implies_everything_and_nothing_else_implies() {
        assert_eq!(ActionSet::of(Action::Admin).implied(), ActionSet::ALL);
        let push = ActionSet::of(Action::Push).implied();
        assert!(!push.contains(Action::Pull));
        assert!(!push.contains(Action::Delete));
    }

    #[test]
    fn names_are_exact() {
        assert_eq!("pull".parse::<Action>(), Ok(Action::Pull));
        assert!("Pull".parse::<Action>().is_err());
        assert!("*".parse::<Action>().is_err(), "config spells it admin");
        assert_eq!(Action::from_scope_name("*"), Some(Action::Admin));
        assert_eq!(Action::from_scope_name("PUSH"), None);
        assert_eq!(Action::from_scope_name(""), None);
    }

    #[test]
    fn set_operations() {
        let s: ActionSet = [Action::Pull, Action::Delete].into_iter().collect();
        assert_eq!(s.to_string(), "pull,delete");
        assert_eq!(
            s.intersect(ActionSet::of(Action::Pull)),
            ActionSet::of(Action::Pull)
        );
        assert!(s.intersect(ActionSet::of(Action::Push)).is_empty());
    }
}
