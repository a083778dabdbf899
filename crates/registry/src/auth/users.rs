//! The user database: users (argon2id hashes, roles) and robot accounts (hashed tokens, rules),
//! in one JSON file written atomically with mode 0600.
//!
//! ```json
//! {
//!   "version": 1,
//!   "users": {
//!     "alice": { "password_hash": "$argon2id$v=19$...", "roles": ["team-a"] }
//!   },
//!   "robots": {
//!     "ci": { "token_sha256": "<hex>", "rules": [{ "repositories": ["team-a/**"], "actions": ["pull", "push"] }],
//!             "created_at": 1764370000, "expires_at": 1772146000, "description": "team-a CI" }
//!   }
//! }
//! ```
//!
//! The CLI (`palisade registry user ...`) edits it inside [`UserDb::update`] (load, change,
//! save under a lock) with [`UserDb::add_user`], [`UserDb::remove_user`], [`UserDb::set_password`],
//! [`UserDb::add_robot`], [`UserDb::save`]; the server reads it with [`UserDb::load`] and
//! reloads on SIGHUP.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::identity::ROBOT_PREFIX;
use super::password::{hash_password, HashCost, Password, PasswordError};
use super::random::random_token;
use super::rule::{Rule, RuleSpec};

/// The file format version this code writes and reads.
pub const USER_DB_VERSION: u32 = 1;
/// Refuse user databases larger than this (it is read whole).
pub const MAX_USER_DB_BYTES: u64 = 16 * 1024 * 1024;
/// The prefix of robot token secrets (so they are recognisable in leaked-secret scans).
pub const ROBOT_TOKEN_PREFIX: &str = "palisade_robot_";

/// One user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRecord {
    /// argon2id PHC string.
    pub password_hash: String,
    /// Role names (must be defined in `[auth.roles]`).
    #[serde(default)]
    pub roles: Vec<String>,
    /// A disabled user cannot authenticate.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
    /// Unix seconds of the last password change; refresh tokens issued earlier stop working.
    #[serde(default)]
    pub password_changed_at: u64,
}

/// One robot account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RobotRecord {
    /// Lower-case hex SHA-256 of the token secret (the secret is high-entropy, so a fast
    /// hash is enough; the secret itself is shown once, at creation).
    pub token_sha256: String,
    /// What the robot may do (nothing else: no roles, no default roles).
    pub rules: Vec<RuleSpec>,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds after which the token no longer works.
    pub expires_at: u64,
    /// Free text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserDbFile {
    version: u32,
    #[serde(default)]
    users: BTreeMap<String, UserRecord>,
    #[serde(default)]
    robots: BTreeMap<String, RobotRecord>,
}

/// What went wrong with the user database.
#[derive(Debug, thiserror::Error)]
pub enum UserDbError {
    /// Reading failed.
    #[error("failed to read user database {path:?}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Writing failed (the old file is untouched).
    #[error("failed to write user database {path:?}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not valid JSON of the expected shape.
    #[error("user database {path:?} is malformed: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// Larger than [`MAX_USER_DB_BYTES`].
    #[error("user database {path:?} is larger than {MAX_USER_DB_BYTES} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// A version this code does not know.
    #[error("user database {path:?} has version {version}, expected {USER_DB_VERSION}")]
    Version {
        /// The file.
        path: PathBuf,
        /// Its version.
        version: u32,
    },
    /// A bad user or robot name.
    #[error("invalid name {0:?}: use 1-64 characters from a-z 0-9 . _ - starting with a letter or digit")]
    InvalidName(String),
    /// The user exists already.
    #[error("user {0:?} already exists")]
    UserExists(String),
    /// No such user.
    #[error("no user {0:?}")]
    NoSuchUser(String),
    /// The robot exists already.
    #[error("robot {0:?} already exists")]
    RobotExists(String),
    /// No such robot.
    #[error("no robot {0:?}")]
    NoSuchRobot(String),
    /// A record in the file is invalid (bad hash, bad rule, bad name).
    #[error("user database {path:?}: {what}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// A robot rule is invalid.
    #[error("robot rule: {0}")]
    Rule(#[from] super::rule::RuleError),
    /// A robot with no rules.
    #[error("a robot needs at least one rule")]
    NoRules,
    /// The expiry is not in the future.
    #[error("robot expiry must be in the future")]
    Expired,
    /// Setting a password failed.
    #[error(transparent)]
    Password(#[from] PasswordError),
}

/// Whether `name` is a valid user or robot name: `[a-z0-9][a-z0-9._-]{0,63}`. This keeps `:`
/// (the Basic separator) and `$` (the robot prefix) out, and makes names case-exact.
pub fn is_valid_account_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes.iter().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
}

/// Hex SHA-256 of a robot token secret.
pub(crate) fn robot_token_digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The user database, in memory, tied to its file.
#[derive(Debug, Clone)]
pub struct UserDb {
    path: PathBuf,
    file: UserDbFile,
    cost: HashCost,
}

impl UserDb {
    /// Read and check the database at `path`. A missing file is an error (the server wants
    /// to know); the CLI uses [`UserDb::load_or_empty`].
    pub fn load(path: impl AsRef<Path>) -> Result<UserDb, UserDbError> {
        let path = path.as_ref().to_path_buf();
        let read_err = |source| UserDbError::Read {
            path: path.clone(),
            source,
        };
        let file = fs::File::open(&path).map_err(read_err)?;
        let metadata = file.metadata().map_err(read_err)?;
        if metadata.permissions().mode() & 0o077 != 0 {
            // Hashes are offline-attackable; the file should be private. Not fatal (an operator
            // may have reasons), but loud.
            tracing::warn!(
                path = %path.display(),
                mode = format_args!("{:o}", metadata.permissions().mode() & 0o7777),
                "user database is readable by group or others; run chmod 600"
            );
        }
        let len = metadata.len();
        if len > MAX_USER_DB_BYTES {
            return Err(UserDbError::TooLarge { path });
        }
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut std::io::Read::take(file, MAX_USER_DB_BYTES + 1),
            &mut text,
        )
        .map_err(read_err)?;
        let parsed: UserDbFile =
            serde_json::from_str(&text).map_err(|source| UserDbError::Parse {
                path: path.clone(),
                source,
            })?;
        if parsed.version != USER_DB_VERSION {
            return Err(UserDbError::Version {
                path,
                version: parsed.version,
            });
        }
        let invalid = |what: String| UserDbError::Invalid {
            path: path.clone(),
            what,
        };
        for (name, user) in &parsed.users {
            if !is_valid_account_name(name) {
                return Err(invalid(format!("invalid user name {name:?}")));
            }
            if super::password::hash_cost(&user.password_hash).is_none() {
                return Err(invalid(format!(
                    "user {name:?}: password_hash is not an argon2id PHC string"
                )));
            }
        }
        for (name, robot) in &parsed.robots {
            if !is_valid_account_name(name) {
                return Err(invalid(format!("invalid robot name {name:?}")));
            }
            if robot.token_sha256.len() != 64
                || !robot
                    .token_sha256
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            {
                return Err(invalid(format!(
                    "robot {name:?}: token_sha256 is not 64 lower-case hex digits"
                )));
            }
            for (i, rule) in robot.rules.iter().enumerate() {
                rule.to_rule()
                    .map_err(|e| invalid(format!("robot {name:?}: rule {}: {e}", i + 1)))?;
            }
        }
        Ok(UserDb {
            path,
            file: parsed,
            cost: HashCost::DEFAULT,
        })
    }

    /// Like [`UserDb::load`], but a missing file gives an empty database (saved on
    /// [`UserDb::save`]).
    pub fn load_or_empty(path: impl AsRef<Path>) -> Result<UserDb, UserDbError> {
        match UserDb::load(path.as_ref()) {
            Err(UserDbError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Ok(UserDb::empty(path))
            }
            other => other,
        }
    }

    /// An empty database that will be written to `path`.
    pub fn empty(path: impl AsRef<Path>) -> UserDb {
        UserDb {
            path: path.as_ref().to_path_buf(),
            file: UserDbFile {
                version: USER_DB_VERSION,
                ..UserDbFile::default()
            },
            cost: HashCost::DEFAULT,
        }
    }

    /// Use other argon2 costs for passwords set from now on (tests use
    /// [`HashCost::INSECURE_FOR_TESTS`]).
    #[must_use]
    pub fn with_hash_cost(mut self, cost: HashCost) -> UserDb {
        self.cost = cost;
        self
    }

    /// The file this database is read from and saved to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One user.
    pub fn user(&self, name: &str) -> Option<&UserRecord> {
        self.file.users.get(name)
    }

    /// All users, by name.
    pub fn users(&self) -> impl Iterator<Item = (&str, &UserRecord)> {
        self.file.users.iter().map(|(n, u)| (n.as_str(), u))
    }

    /// One robot (name without the `robot$` prefix).
    pub fn robot(&self, name: &str) -> Option<&RobotRecord> {
        self.file.robots.get(name)
    }

    /// All robots, by name.
    pub fn robots(&self) -> impl Iterator<Item = (&str, &RobotRecord)> {
        self.file.robots.iter().map(|(n, r)| (n.as_str(), r))
    }

    /// Add a user. Role names are checked against the policy when the server loads the
    /// database (the CLI may check earlier with [`super::Authorizer::check_role`]).
    pub fn add_user(
        &mut self,
        name: &str,
        password: &Password,
        roles: &[String],
    ) -> Result<(), UserDbError> {
        if !is_valid_account_name(name) {
            return Err(UserDbError::InvalidName(name.to_owned()));
        }
        if self.file.users.contains_key(name) {
            return Err(UserDbError::UserExists(name.to_owned()));
        }
        let password_hash = hash_password(password, self.cost)?;
        self.file.users.insert(
            name.to_owned(),
            UserRecord {
                password_hash,
                roles: roles.to_vec(),
                disabled: false,
                password_changed_at: super::clock::unix_now(),
            },
        );
        Ok(())
    }

    /// Remove a user.
    pub fn remove_user(&mut self, name: &str) -> Result<(), UserDbError> {
        self.file
            .users
            .remove(name)
            .map(drop)
            .ok_or_else(|| UserDbError::NoSuchUser(name.to_owned()))
    }

    /// Change a user's password.
    pub fn set_password(&mut self, name: &str, password: &Password) -> Result<(), UserDbError> {
        let cost = self.cost;
        let user = self
            .file
            .users
            .get_mut(name)
            .ok_or_else(|| UserDbError::NoSuchUser(name.to_owned()))?;
        user.password_hash = hash_password(password, cost)?;
        user.password_changed_at = super::clock::unix_now();
        Ok(())
    }

    /// Replace a user's roles.
    pub fn set_roles(&mut self, name: &str, roles: &[String]) -> Result<(), UserDbError> {
        let user = self
            .file
            .users
            .get_mut(name)
            .ok_or_else(|| UserDbError::NoSuchUser(name.to_owned()))?;
        user.roles = roles.to_vec();
        Ok(())
    }

    /// Enable or disable a user.
    pub fn set_disabled(&mut self, name: &str, disabled: bool) -> Result<(), UserDbError> {
        let user = self
            .file
            .users
            .get_mut(name)
            .ok_or_else(|| UserDbError::NoSuchUser(name.to_owned()))?;
        user.disabled = disabled;
        Ok(())
    }

    /// Create a robot account with `rules`, expiring at `expires_at` (Unix seconds). Returns
    /// the token secret — shown once, stored only as a hash. The robot logs in with user name
    /// `robot$<name>` and the secret as password, via Basic or the token endpoint.
    pub fn add_robot(
        &mut self,
        name: &str,
        rules: &[Rule],
        expires_at: u64,
        description: &str,
    ) -> Result<Password, UserDbError> {
        if !is_valid_account_name(name) {
            return Err(UserDbError::InvalidName(name.to_owned()));
        }
        if self.file.robots.contains_key(name) {
            return Err(UserDbError::RobotExists(name.to_owned()));
        }
        if rules.is_empty() {
            return Err(UserDbError::NoRules);
        }
        let now = super::clock::unix_now();
        if expires_at <= now {
            return Err(UserDbError::Expired);
        }
        let secret = Password::new(format!("{ROBOT_TOKEN_PREFIX}{}", random_token()));
        self.file.robots.insert(
            name.to_owned(),
            RobotRecord {
                token_sha256: robot_token_digest(secret.expose()),
                rules: rules.iter().map(RuleSpec::from).collect(),
                created_at: now,
                expires_at,
                description: description.to_owned(),
            },
        );
        Ok(secret)
    }

    /// Revoke (delete) a robot account.
    pub fn remove_robot(&mut self, name: &str) -> Result<(), UserDbError> {
        let name = name.strip_prefix(ROBOT_PREFIX).unwrap_or(name);
        self.file
            .robots
            .remove(name)
            .map(drop)
            .ok_or_else(|| UserDbError::NoSuchRobot(name.to_owned()))
    }

    /// Load the database at `path` (empty if missing), apply `change`, and save — all under
    /// an exclusive lock on `<path>.lock`, so two concurrent `palisade registry user` commands
    /// cannot lose each other's change. If `change` fails nothing is written.
    pub fn update<T>(
        path: impl AsRef<Path>,
        cost: HashCost,
        change: impl FnOnce(&mut UserDb) -> Result<T, UserDbError>,
    ) -> Result<T, UserDbError> {
        let path = path.as_ref();
        let mut lock_name = path.as_os_str().to_owned();
        lock_name.push(".lock");
        let lock_path = PathBuf::from(lock_name);
        let lock_err = |source| UserDbError::Write {
            path: lock_path.clone(),
            source,
        };
        let lock = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(lock_err)?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| lock_err(e.into()))?;
        let mut db = UserDb::load_or_empty(path)?.with_hash_cost(cost);
        let value = change(&mut db)?;
        db.save()?;
        // The lock is released when `lock` is closed.
        drop(lock);
        Ok(value)
    }

    /// Write the database atomically: a temporary file (mode 0600) in the same directory,
    /// fsync, rename over the old one, fsync the directory. On error the old file is intact.
    pub fn save(&self) -> Result<(), UserDbError> {
        let mut json = serde_json::to_vec_pretty(&self.file).map_err(|e| UserDbError::Write {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        json.push(b'\n');
        write_atomically(&self.path, &json).map_err(|source| UserDbError::Write {
            path: self.path.clone(),
            source,
        })
    }
}

/// Write `bytes` to `path` atomically with mode 0600.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path.file_name().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "path has no file name")
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".tmp-{}", random_token().get(..12).unwrap_or("x")));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        // The mode above is subject to the umask only by removing bits; make it exact.
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::action::{Action, ActionSet};
    use crate::auth::glob::RepositoryGlob;
    use crate::auth::password::verify_password;

    fn db(dir: &tempfile::TempDir) -> UserDb {
        UserDb::empty(dir.path().join("users.json")).with_hash_cost(HashCost::INSECURE_FOR_TESTS)
    }

    #[test]
    fn add_save_load_passwd_remove() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut users = db(&dir);
        users
            .add_user(
                "alice",
                &Password::new("alice-password"),
                &["team-a".to_owned()],
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            users.add_user("alice", &Password::new("another-one"), &[]),
            Err(UserDbError::UserExists(_))
        ));
        users.save().unwrap_or_else(|e| panic!("{e}"));
        let mode = fs::metadata(users.path())
            .unwrap_or_else(|e| panic!("{e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        let mut loaded = UserDb::load(users.path())
            .unwrap_or_else(|e| panic!("{e}"))
            .with_hash_cost(HashCost::INSECURE_FOR_TESTS);
        let alice = loaded
            .user("alice")
            .unwrap_or_else(|| panic!("alice missing"));
        assert!(verify_password(
            &alice.password_hash,
            &Password::new("alice-password")
        ));
        assert_eq!(alice.roles, vec!["team-a".to_owned()]);
        let text = fs::read_to_string(users.path()).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !text.contains("alice-password"),
            "the password itself is never stored"
        );

        loaded
            .set_password("alice", &Password::new("new-password"))
            .unwrap_or_else(|e| panic!("{e}"));
        let alice = loaded
            .user("alice")
            .unwrap_or_else(|| panic!("alice missing"));
        assert!(!verify_password(
            &alice.password_hash,
            &Password::new("alice-password")
        ));
        assert!(verify_password(
            &alice.password_hash,
            &Password::new("new-password")
        ));
        assert!(matches!(
            loaded.set_password("bob", &Password::new("whatever-pw")),
            Err(UserDbError::NoSuchUser(_))
        ));
        loaded
            .remove_user("alice")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            loaded.remove_user("alice"),
            Err(UserDbError::NoSuchUser(_))
        ));
        loaded.save().unwrap_or_else(|e| panic!("{e}"));
        assert!(UserDb::load(users.path())
            .unwrap_or_else(|e| panic!("{e}"))
            .user("alice")
            .is_none());
    }

    #[test]
    fn refuses_bad_names_and_passwords() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut users = db(&dir);
        for bad in ["", "Alice", "robot$x", "a:b", "-a", "a b", &"a".repeat(65)] {
            assert!(
                matches!(
                    users.add_user(bad, &Password::new("long enough"), &[]),
                    Err(UserDbError::InvalidName(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            users.add_user("bob", &Password::new("short"), &[]),
            Err(UserDbError::Password(PasswordError::TooShort))
        ));
        assert!(
            users.user("bob").is_none(),
            "a refused add leaves nothing behind"
        );
    }

    #[test]
    fn bad_files_are_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("users.json");
        assert!(matches!(UserDb::load(&path), Err(UserDbError::Read { .. })));
        assert!(UserDb::load_or_empty(&path).is_ok());
        for (text, what) in [
            ("{", "truncated"),
            (r#"{"version":2}"#, "version"),
            (r#"{"version":1,"extra":1}"#, "unknown field"),
            (
                r#"{"version":1,"users":{"Alice":{"password_hash":"x"}}}"#,
                "bad name",
            ),
            (
                r#"{"version":1,"users":{"alice":{"password_hash":"plain"}}}"#,
                "bad hash",
            ),
            (
                r#"{"version":1,"robots":{"ci":{"token_sha256":"00","rules":[],"created_at":0,"expires_at":0}}}"#,
                "bad digest",
            ),
        ] {
            fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
            assert!(UserDb::load(&path).is_err(), "{what}");
            assert!(
                UserDb::load_or_empty(&path).is_err(),
                "{what}: only a missing file is empty"
            );
            assert_eq!(
                fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}")),
                text
            );
        }
    }

    #[test]
    fn robots_are_stored_hashed_and_revocable() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut users = db(&dir);
        let rule = Rule {
            repositories: vec![RepositoryGlob::parse("team-a/**").unwrap_or_else(|e| panic!("{e}"))],
            actions: ActionSet::of(Action::Push).with(Action::Pull),
        };
        let far = crate::auth::clock::unix_now() + 3600;
        let secret = users
            .add_robot("ci", std::slice::from_ref(&rule), far, "team-a CI")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(secret.expose().starts_with(ROBOT_TOKEN_PREFIX));
        assert!(matches!(
            users.add_robot("ci", std::slice::from_ref(&rule), far, ""),
            Err(UserDbError::RobotExists(_))
        ));
        assert!(matches!(
            users.add_robot("old", std::slice::from_ref(&rule), 1, ""),
            Err(UserDbError::Expired)
        ));
        assert!(matches!(
            users.add_robot("none", &[], far, ""),
            Err(UserDbError::NoRules)
        ));
        users.save().unwrap_or_else(|e| panic!("{e}"));
        let text = fs::read_to_string(users.path()).unwrap_or_else(|e| panic!("{e}"));
        assert!(!text.contains(secret.expose()));
        let loaded = UserDb::load(users.path()).unwrap_or_else(|e| panic!("{e}"));
        let robot = loaded
            .robot("ci")
            .unwrap_or_else(|| panic!("robot missing"));
        assert_eq!(robot.token_sha256, robot_token_digest(secret.expose()));
        assert_eq!(robot.rules[0].to_rule(), Ok(rule));
        users
            .remove_robot("robot$ci")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(users.robot("ci").is_none());
    }

    #[test]
    fn concurrent_updates_do_not_lose_changes() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("users.json");
        std::thread::scope(|scope| {
            for i in 0..8 {
                let path = &path;
                scope.spawn(move || {
                    UserDb::update(path, HashCost::INSECURE_FOR_TESTS, |db| {
                        db.add_user(&format!("user{i}"), &Password::new("long enough"), &[])
                    })
                    .unwrap_or_else(|e| panic!("{e}"));
                });
            }
        });
        let db = UserDb::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(db.users().count(), 8);
        // A failing change writes nothing.
        let result = UserDb::update(&path, HashCost::INSECURE_FOR_TESTS, |db| {
            db.remove_user("ghost")
        });
        assert!(matches!(result, Err(UserDbError::NoSuchUser(_))));
        assert_eq!(
            UserDb::load(&path)
                .unwrap_or_else(|e| panic!("{e}"))
                .users()
                .count(),
            8
        );
    }

    proptest::proptest! {
        #[test]
        fn load_never_panics(text in ".{0,300}") {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let path = dir.path().join("users.json");
            fs::write(&path, &text).unwrap_or_else(|e| panic!("{e}"));
            let _ = UserDb::load(&path);
        }
    }
}
