//! The trust policy: which images may be pulled and run, per repository scope.
//!
//! A JSON file (default `/etc/palisade/policy.json`, or `PALISADE_POLICY`, or `--policy`):
//!
//! ```json
//! {
//!   "keyring": "/etc/palisade/keys",
//!   "scopes": {
//!     "registry.example/team/app": {"keys": ["team.pub", "sha256:3f5c…"], "threshold": 2},
//!     "registry.example/team/*":   {"keys": ["/etc/palisade/keys/team.pub"]},
//!     "registry.example/sandbox/*": "insecure-accept-anything",
//!     "local": "accept",
//!     "*": "reject"
//!   }
//! }
//! ```
//!
//! - A scope is an exact `registry/repository`, a glob where `*` matches any run of
//!   characters (`/` included), `*` alone (everything else), or `local`.
//! - The most specific scope wins: an exact name, then the glob with the most literal
//!   characters, then `*`. A registry image no scope matches is rejected.
//! - A requirement is `"reject"`, `"insecure-accept-anything"` (accepted unverified, logged at
//!   every use), or `{"keys": [...], "threshold": N}`: valid signatures by at least N
//!   (default 1) distinct listed keys. A key is a PEM public key file (relative paths are relative to
//!   `keyring`, which defaults to the `keys` directory beside the policy file) or a
//!   fingerprint `sha256:<hex>` of a `*.pub` file in the keyring.
//! - `local` is for images that never came from a registry (imported or loaded into the
//!   store by its owner, who could edit this file as well): `"accept"` (the default when the
//!   scope is absent) or `"reject"`.
//!
//! Any error in the file (bad JSON, an unknown field, a missing or unreadable key, a
//! threshold above the number of keys, a bad scope) refuses the whole policy: nothing is
//! pulled or run on a policy that does not say what it means.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::TrustError;
use crate::keys::{read_small_file, Fingerprint, PublicKey};
use crate::verify::{Requirement, TrustedKey};

/// Where the policy is read from when neither the flag nor `PALISADE_POLICY` names one.
pub const DEFAULT_POLICY_PATH: &str = "/etc/palisade/policy.json";
/// The environment variable naming the policy file.
pub const POLICY_ENV: &str = "PALISADE_POLICY";
/// The scope of images that never came from a registry.
pub const LOCAL_SCOPE: &str = "local";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    keyring: Option<PathBuf>,
    scopes: BTreeMap<String, RequirementFile>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RequirementFile {
    Word(String),
    Keys(KeysFile),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    keys: Vec<String>,
    #[serde(default)]
    threshold: Option<usize>,
}

/// One scope and what it requires.
#[derive(Debug, Clone)]
pub struct Scope {
    /// As written.
    pub pattern: String,
    /// What it asks.
    pub requirement: Requirement,
}

/// A loaded, checked policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Where it came from (`None`: the built-in default).
    pub path: Option<PathBuf>,
    scopes: Vec<Scope>,
    local: Requirement,
}

impl Policy {
    /// The policy used when no policy file exists: local images are accepted, registry
    /// images accepted unverified (`insecure-accept-anything`, logged at every use).
    pub fn permissive_default() -> Self {
        Policy {
            path: None,
            scopes: vec![Scope {
                pattern: "*".into(),
                requirement: Requirement::InsecureAcceptAnything,
            }],
            local: Requirement::AcceptLocal,
        }
    }

    /// Reads the policy named by `explicit`, else `PALISADE_POLICY`, else
    /// [`DEFAULT_POLICY_PATH`]. Only the default path may be absent (then
    /// [`Policy::permissive_default`]); a named file must exist.
    pub fn locate(explicit: Option<&Path>) -> Result<Self, TrustError> {
        let named = explicit.map(Path::to_path_buf).or_else(|| {
            std::env::var_os(POLICY_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });
        match named {
            Some(path) => Self::load(&path),
            None => {
                let path = Path::new(DEFAULT_POLICY_PATH);
                if path.exists() {
                    Self::load(path)
                } else {
                    Ok(Self::permissive_default())
                }
            }
        }
    }

    /// Reads and checks a policy file.
    pub fn load(path: &Path) -> Result<Self, TrustError> {
        let bytes = read_small_file(path).map_err(|e| TrustError::Policy {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let keyring_default = path
            .parent()
            .map(|p| p.join("keys"))
            .unwrap_or_else(|| PathBuf::from("keys"));
        Self::parse(&bytes, path, &keyring_default)
    }

    /// Parses policy JSON; `path` is for messages, `keyring_default` is used when the file
    /// names no keyring.
    pub fn parse(bytes: &[u8], path: &Path, keyring_default: &Path) -> Result<Self, TrustError> {
        let error = |reason: String| TrustError::Policy {
            path: path.to_owned(),
            reason,
        };
        let file: PolicyFile = serde_json::from_slice(bytes).map_err(|e| {
            error(format!(
                "{e} (expected {{\"scopes\": {{\"SCOPE\": \"reject\" | \"insecure-accept-anything\" | {{\"keys\": [...], \"threshold\": N}}}}}})"
            ))
        })?;
        let keyring = file.keyring.unwrap_or_else(|| keyring_default.to_owned());
        let mut scopes = Vec::new();
        let mut local = Requirement::AcceptLocal;
        for (pattern, requirement) in file.scopes {
            let at = |reason: String| error(format!("scope {pattern:?}: {reason}"));
            check_pattern(&pattern).map_err(at)?;
            let requirement = match requirement {
                RequirementFile::Word(word) => match word.as_str() {
                    "reject" => Requirement::Reject,
                    "insecure-accept-anything" => Requirement::InsecureAcceptAnything,
                    "accept" if pattern == LOCAL_SCOPE => Requirement::AcceptLocal,
                    "accept" => {
                        return Err(at(
                            "\"accept\" is only for the local scope; say \"insecure-accept-anything\" to accept unsigned registry images".into(),
                        ))
                    }
                    other => {
                        return Err(at(format!(
                            "unknown requirement {other:?}; use \"reject\", \"insecure-accept-anything\" or {{\"keys\": [...]}}"
                        )))
                    }
                },
                RequirementFile::Keys(KeysFile { keys, threshold }) => {
                    if pattern == LOCAL_SCOPE {
                        return Err(at(
                            "local images carry no signatures; use \"accept\" or \"reject\"".into(),
                        ));
                    }
                    if keys.is_empty() {
                        return Err(at("\"keys\" is empty".into()));
                    }
                    let threshold = threshold.unwrap_or(1);
                    if threshold == 0 || threshold > keys.len() {
                        return Err(at(format!(
                            "threshold {threshold} must be between 1 and the {} key(s) listed",
                            keys.len()
                        )));
                    }
                    let mut trusted: Vec<TrustedKey> = Vec::new();
                    for key in &keys {
                        let resolved = resolve_key(key, &keyring).map_err(&at)?;
                        if trusted.iter().any(|t| t.key == resolved.key) {
                            return Err(at(format!(
                                "{key} lists a key already listed; a threshold counts distinct keys"
                            )));
                        }
                        trusted.push(resolved);
                    }
                    Requirement::Signed {
                        keys: trusted,
                        threshold,
                    }
                }
            };
            if pattern == LOCAL_SCOPE {
                local = requirement;
            } else {
                scopes.push(Scope {
                    pattern,
                    requirement,
                });
            }
        }
        Ok(Policy {
            path: Some(path.to_owned()),
            scopes,
            local,
        })
    }

    /// The scope that applies to `name` (`registry/repository`), if any.
    pub fn scope_for(&self, name: &str) -> Option<&Scope> {
        self.scopes
            .iter()
            .filter(|s| glob_matches(&s.pattern, name))
            .max_by_key(|s| specificity(&s.pattern))
    }

    /// The requirement for a registry image named `name`: its scope's, or `Reject` (with
    /// the reason) when no scope matches.
    pub fn requirement_for(&self, name: &str) -> (String, Requirement) {
        match self.scope_for(name) {
            Some(scope) => (scope.pattern.clone(), scope.requirement.clone()),
            None => ("(no scope)".into(), Requirement::Reject),
        }
    }

    /// The requirement for images that never came from a registry.
    pub fn local_requirement(&self) -> &Requirement {
        &self.local
    }

    /// Where the policy came from, for messages.
    pub fn describe(&self) -> String {
        match &self.path {
            Some(path) => path.display().to_string(),
            None => format!("the built-in default (no {DEFAULT_POLICY_PATH})"),
        }
    }
}

fn check_pattern(pattern: &str) -> Result<(), String> {
    if pattern.is_empty() {
        return Err("empty scope".into());
    }
    if pattern.contains("**") {
        return Err("`**` is not a pattern here; a single `*` already matches across `/`".into());
    }
    if pattern
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '[')
    {
        return Err("scopes are registry/repository names with `*` wildcards only".into());
    }
    Ok(())
}

/// Exact names beat globs; among globs, more literal characters win.
fn specificity(pattern: &str) -> (bool, usize) {
    (
        !pattern.contains('*'),
        pattern.chars().filter(|&c| c != '*').count(),
    )
}

/// `*` matches any run of characters, `/` included.
fn glob_matches(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

fn resolve_key(entry: &str, keyring: &Path) -> Result<TrustedKey, String> {
    if entry.starts_with("sha256:") {
        let wanted = Fingerprint::parse(entry)
            .ok_or_else(|| format!("{entry:?} is not a fingerprint (sha256: and 64 hex digits)"))?;
        let listing = std::fs::read_dir(keyring).map_err(|e| {
            format!(
                "key {entry}: the keyring {} cannot be read ({e}); put the key's .pub file there",
                keyring.display()
            )
        })?;
        for file in listing.flatten() {
            let path = file.path();
            if path.extension().and_then(|e| e.to_str()) != Some("pub") {
                continue;
            }
            if let Ok(key) = PublicKey::from_file(&path) {
                if key.fingerprint() == wanted {
                    return Ok(TrustedKey::new(
                        format!("{} ({})", path.display(), wanted.short()),
                        key,
                    ));
                }
            }
        }
        return Err(format!(
            "no .pub file in the keyring {} has fingerprint {entry}",
            keyring.display()
        ));
    }
    let path = Path::new(entry);
    let path = if path.is_absolute() {
        path.to_owned()
    } else {
        keyring.join(path)
    };
    let key = PublicKey::from_file(&path).map_err(|e| format!("key {entry}: {e}"))?;
    Ok(TrustedKey::new(
        format!("{} ({})", path.display(), key.fingerprint().short()),
        key,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{KeyAlgorithm, PrivateKey};

    fn setup() -> (tempfile::TempDir, PrivateKey) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("keys")).unwrap();
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256);
        std::fs::write(dir.path().join("keys/team.pub"), key.public().to_pem()).unwrap();
        (dir, key)
    }

    fn load(dir: &Path, text: &str) -> Result<Policy, TrustError> {
        let path = dir.join("policy.json");
        std::fs::write(&path, text).unwrap();
        Policy::load(&path)
    }

    #[test]
    fn most_specific_scope_wins() {
        let (dir, key) = setup();
        let fp = key.public().fingerprint();
        let policy = load(
            dir.path(),
            &format!(
                r#"{{"scopes": {{
                    "*": "reject",
                    "reg:5000/team/*": {{"keys": ["team.pub"]}},
                    "reg:5000/team/app": {{"keys": ["{fp}"]}},
                    "reg:5000/*/sandbox": "insecure-accept-anything",
                    "local": "reject"
                }}}}"#
            ),
        )
        .unwrap();
        assert_eq!(
            policy.scope_for("reg:5000/team/app").unwrap().pattern,
            "reg:5000/team/app"
        );
        assert_eq!(
            policy.scope_for("reg:5000/team/web").unwrap().pattern,
            "reg:5000/team/*"
        );
        assert_eq!(
            policy.scope_for("reg:5000/team/a/b").unwrap().pattern,
            "reg:5000/team/*"
        );
        assert_eq!(
            policy.scope_for("reg:5000/x/sandbox").unwrap().pattern,
            "reg:5000/*/sandbox"
        );
        assert_eq!(
            policy
                .scope_for("docker.io/library/busybox")
                .unwrap()
                .pattern,
            "*"
        );
        assert!(matches!(policy.local_requirement(), Requirement::Reject));
        match &policy.scope_for("reg:5000/team/app").unwrap().requirement {
            Requirement::Signed { keys, threshold } => {
                assert_eq!(*threshold, 1);
                assert_eq!(keys[0].key, key.public());
            }
            other => panic!("{other:?}"),
        }
        // Without `*`, an unmatched registry image is rejected; local defaults to accept.
        let policy = load(
            dir.path(),
            r#"{"scopes": {"reg:5000/team/*": {"keys": ["team.pub"]}}}"#,
        )
        .unwrap();
        assert!(matches!(
            policy.requirement_for("other/x").1,
            Requirement::Reject
        ));
        assert!(matches!(
            policy.local_requirement(),
            Requirement::AcceptLocal
        ));
    }

    #[test]
    fn errors_refuse_the_whole_file() {
        let (dir, _) = setup();
        for (text, expect) in [
            ("{", "EOF"),
            (r#"{"scopes": {"*": "rejcet"}}"#, "unknown requirement"),
            (r#"{"scopes": {"*": "accept"}}"#, "only for the local scope"),
            (r#"{"scopes": {"a/*": {"keys": []}}}"#, "empty"),
            (
                r#"{"scopes": {"a/*": {"keys": ["team.pub"], "threshold": 2}}}"#,
                "threshold 2",
            ),
            (
                r#"{"scopes": {"a/*": {"keys": ["missing.pub"]}}}"#,
                "missing.pub",
            ),
            (
                r#"{"scopes": {"a/*": {"keys": ["sha256:00"]}}}"#,
                "not a fingerprint",
            ),
            (
                &format!(
                    r#"{{"scopes": {{"a/*": {{"keys": ["sha256:{}"]}}}}}}"#,
                    "0".repeat(64)
                ),
                "no .pub file",
            ),
            (
                r#"{"scopes": {"a/*": {"keys": ["team.pub"], "treshold": 1}}}"#,
                "did not match",
            ),
            (
                r#"{"scopes": {"local": {"keys": ["team.pub"]}}}"#,
                "local images",
            ),
            (r#"{"scopes": {"a/**": "reject"}}"#, "**"),
            (r#"{"scope": {}}"#, "unknown field"),
            (
                r#"{"scopes": {"a/*": {"keys": ["team.pub", "../keys/team.pub"], "threshold": 2}}}"#,
                "already listed",
            ),
        ] {
            let err = load(dir.path(), text).unwrap_err().to_string();
            assert!(err.contains(expect), "{text}: {err}");
            assert!(err.contains("policy.json"), "{err}");
        }
    }

    #[test]
    fn a_named_policy_must_exist() {
        let err = Policy::locate(Some(Path::new("/nonexistent/policy.json"))).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/policy.json"));
    }

    #[test]
    fn globs() {
        assert!(glob_matches("*", "anything/at/all"));
        assert!(glob_matches("a/*/c", "a/b/x/c"));
        assert!(!glob_matches("a/*/c", "a/c"));
        assert!(glob_matches("a*a", "aa"));
        assert!(!glob_matches("a*a", "a"));
        assert!(!glob_matches("reg/team", "reg/team2"));
    }
}
