//! Refresh tokens: opaque random strings handed out with `offline_token=true` /
//! `access_type=offline` and redeemed at `POST /token` with `grant_type=refresh_token`.
//!
//! Only SHA-256 digests are stored (the tokens carry 256 random bits, so a fast hash is
//! enough), each with its subject and expiry; lookups go by digest, so timing reveals nothing
//! about a token. A refresh token only identifies its subject: the access it yields is decided
//! again by the current policy at every use (no scope escalation through refresh), and it stops
//! working when it expires, is revoked, the account is removed or disabled, or the password
//! changed after it was issued.
//!
//! The store lives for the whole process (kept across reloads) and, when configured, persists
//! to a JSON file written atomically (mode 0600).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::password::Password;
use super::random::random_token;
use super::users::write_atomically;

/// The prefix of refresh tokens.
pub const REFRESH_TOKEN_PREFIX: &str = "palisade_refresh_";
/// At most this many live refresh tokens per subject; issuing more drops the oldest.
pub const MAX_REFRESH_TOKENS_PER_SUBJECT: usize = 32;
/// At most this many refresh tokens in all; issuing more drops the oldest.
pub const MAX_REFRESH_TOKENS: usize = 100_000;

/// One stored refresh token (digest only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshRecord {
    /// User name or `robot$<name>`.
    pub subject: String,
    /// Unix seconds.
    pub issued_at: u64,
    /// Unix seconds.
    pub expires_at: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshFile {
    version: u32,
    /// Hex SHA-256 → record.
    tokens: HashMap<String, RefreshRecord>,
}

/// Why the refresh store failed.
#[derive(Debug, thiserror::Error)]
pub enum RefreshStoreError {
    /// Reading failed.
    #[error("failed to read refresh token file {path:?}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is malformed.
    #[error("refresh token file {path:?} is malformed: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Writing failed.
    #[error("failed to write refresh token file {path:?}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The refresh token store.
#[derive(Debug)]
pub struct RefreshStore {
    path: Option<PathBuf>,
    tokens: Mutex<HashMap<[u8; 32], RefreshRecord>>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl RefreshStore {
    /// A store kept in memory only.
    pub fn in_memory() -> RefreshStore {
        RefreshStore {
            path: None,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// A store persisted at `path` (loaded now if it exists).
    pub fn open(path: &Path) -> Result<RefreshStore, RefreshStoreError> {
        let tokens = match std::fs::read(path) {
            Ok(bytes) => {
                let parse_err = |reason: String| RefreshStoreError::Parse {
                    path: path.to_owned(),
                    reason,
                };
                let file: RefreshFile =
                    serde_json::from_slice(&bytes).map_err(|e| parse_err(e.to_string()))?;
                if file.version != 1 {
                    return Err(parse_err(format!("version {} (expected 1)", file.version)));
                }
                let mut tokens = HashMap::new();
                for (hex_digest, record) in file.tokens {
                    let mut key = [0u8; 32];
                    hex::decode_to_slice(&hex_digest, &mut key)
                        .map_err(|_| parse_err("bad digest".to_owned()))?;
                    tokens.insert(key, record);
                }
                tokens
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(source) => {
                return Err(RefreshStoreError::Read {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        Ok(RefreshStore {
            path: Some(path.to_owned()),
            tokens: Mutex::new(tokens),
        })
    }

    fn persist(&self, tokens: &HashMap<[u8; 32], RefreshRecord>) -> Result<(), RefreshStoreError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let file = RefreshFile {
            version: 1,
            tokens: tokens
                .iter()
                .map(|(k, v)| (hex::encode(k), v.clone()))
                .collect(),
        };
        let bytes = serde_json::to_vec(&file).map_err(|e| RefreshStoreError::Write {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        write_atomically(path, &bytes).map_err(|source| RefreshStoreError::Write {
            path: path.clone(),
            source,
        })
    }

    /// Issue a refresh token for `subject`, valid `ttl` seconds from `now`. Expired tokens are
    /// swept, and the subject's oldest tokens dropped beyond the per-subject limit.
    pub fn issue(&self, subject: &str, now: u64, ttl: u64) -> Result<Password, RefreshStoreError> {
        let token = Password::new(format!("{REFRESH_TOKEN_PREFIX}{}", random_token()));
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens.retain(|_, r| r.expires_at > now);
        let mut mine: Vec<([u8; 32], u64)> = tokens
            .iter()
            .filter(|(_, r)| r.subject == subject)
            .map(|(k, r)| (*k, r.issued_at))
            .collect();
        if mine.len() >= MAX_REFRESH_TOKENS_PER_SUBJECT {
            mine.sort_by_key(|(_, issued)| *issued);
            for (key, _) in mine
                .iter()
                .take(mine.len() + 1 - MAX_REFRESH_TOKENS_PER_SUBJECT)
            {
                tokens.remove(key);
            }
        }
        if tokens.len() >= MAX_REFRESH_TOKENS {
            if let Some(oldest) = tokens
                .iter()
                .min_by_key(|(_, r)| r.issued_at)
                .map(|(k, _)| *k)
            {
                tokens.remove(&oldest);
            }
        }
        tokens.insert(
            digest(token.expose()),
            RefreshRecord {
                subject: subject.to_owned(),
                issued_at: now,
                expires_at: now.saturating_add(ttl),
            },
        );
        self.persist(&tokens)?;
        Ok(token)
    }

    /// The record of a live refresh token, if `token` is one.
    pub fn redeem(&self, token: &Password, now: u64) -> Option<RefreshRecord> {
        if !token.expose().starts_with(REFRESH_TOKEN_PREFIX) || token.expose().len() > 128 {
            return None;
        }
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens
            .get(&digest(token.expose()))
            .filter(|r| r.expires_at > now)
            .cloned()
    }

    /// Revoke one token. Returns whether it existed.
    pub fn revoke(&self, token: &Password) -> Result<bool, RefreshStoreError> {
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let existed = tokens.remove(&digest(token.expose())).is_some();
        if existed {
            self.persist(&tokens)?;
        }
        Ok(existed)
    }

    /// Revoke every token of `subject` (after `palisade registry user rm/passwd`, or on
    /// demand). Returns how many were revoked.
    pub fn revoke_subject(&self, subject: &str) -> Result<usize, RefreshStoreError> {
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let before = tokens.len();
        tokens.retain(|_, r| r.subject != subject);
        let removed = before - tokens.len();
        if removed > 0 {
            self.persist(&tokens)?;
        }
        Ok(removed)
    }

    /// Number of stored tokens.
    pub fn len(&self) -> usize {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_redeem_expire_revoke_persist() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("refresh.json");
        let store = RefreshStore::open(&path).unwrap_or_else(|e| panic!("{e}"));
        let token = store
            .issue("alice", 1000, 100)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(token.expose().starts_with(REFRESH_TOKEN_PREFIX));
        assert_eq!(
            store.redeem(&token, 1050).map(|r| r.subject),
            Some("alice".to_owned())
        );
        assert_eq!(store.redeem(&token, 1100), None, "expired");
        assert_eq!(
            store.redeem(&Password::new(format!("{REFRESH_TOKEN_PREFIX}guess")), 1050),
            None
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!text.contains(token.expose()), "only digests are stored");

        let reopened = RefreshStore::open(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            reopened.redeem(&token, 1050).is_some(),
            "survives a restart"
        );
        assert_eq!(reopened.revoke(&token).ok(), Some(true));
        assert!(reopened.redeem(&token, 1050).is_none());
        assert!(RefreshStore::open(&path)
            .unwrap_or_else(|e| panic!("{e}"))
            .redeem(&token, 1050)
            .is_none());
    }

    #[test]
    fn per_subject_limit_and_subject_revocation() {
        let store = RefreshStore::in_memory();
        let first = store
            .issue("bob", 1, 1000)
            .unwrap_or_else(|e| panic!("{e}"));
        for i in 0..MAX_REFRESH_TOKENS_PER_SUBJECT {
            store
                .issue("bob", 2 + i as u64, 1000)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(store.len(), MAX_REFRESH_TOKENS_PER_SUBJECT);
        assert!(store.redeem(&first, 10).is_none(), "the oldest was dropped");
        let carol = store
            .issue("carol", 5, 1000)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            store.revoke_subject("bob").ok(),
            Some(MAX_REFRESH_TOKENS_PER_SUBJECT)
        );
        assert!(store.redeem(&carol, 10).is_some());
    }

    #[test]
    fn malformed_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("refresh.json");
        std::fs::write(&path, "{\"version\":1,\"tokens\":{\"zz\":{}}}")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(RefreshStore::open(&path).is_err());
    }
}
