//! The verified-credential cache: remembers, for a short time, that a user name and password
//! were verified, so repeated Basic requests do not each pay for argon2.
//!
//! Entries are keyed by HMAC-SHA-256(process-random key, user, password): the cache never
//! holds a password or an offline-attackable hash of one (the key lives only in this process's
//! memory), and a lookup's timing depends on a MAC the client cannot compute, not on the
//! password. The cache belongs to one [`super::Authenticator`]; a reload (password changed,
//! user removed) builds a new, empty one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::identity::Identity;
use super::password::Password;
use super::random::random_bytes;

type CacheKey = [u8; 32];

#[derive(Debug)]
struct Entry {
    expires: Instant,
    identity: Identity,
}

/// A bounded, expiring map from credentials (MACed) to the identity they proved.
pub struct CredentialCache {
    /// HMAC state already keyed with 32 random bytes (cloned per lookup: saves the key setup).
    mac: Hmac<Sha256>,
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<CacheKey, Entry>>,
}

impl std::fmt::Debug for CredentialCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialCache")
            .field("ttl", &self.ttl)
            .field("capacity", &self.capacity)
            .field("entries", &self.entries.try_lock().map(|e| e.len()).ok())
            .finish_non_exhaustive()
    }
}

impl CredentialCache {
    /// A cache holding up to `capacity` entries for `ttl` each. `ttl` zero disables it.
    pub fn new(ttl: Duration, capacity: usize) -> CredentialCache {
        let key = zeroize::Zeroizing::new(random_bytes());
        // HMAC takes keys of any length, so this cannot fail; the fallback is never used.
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(&key[..])
            .unwrap_or_else(|_| <Hmac<Sha256> as Mac>::new(&Default::default()));
        CredentialCache {
            mac,
            ttl,
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn mac(&self, username: &str, password: &Password) -> CacheKey {
        let mut mac = self.mac.clone();
        // Length-prefix the user name so ("ab", "c") and ("a", "bc") differ.
        mac.update(&(username.len() as u64).to_be_bytes());
        mac.update(username.as_bytes());
        mac.update(password.expose().as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn enabled(&self) -> bool {
        !self.ttl.is_zero() && self.capacity > 0
    }

    /// The identity these credentials proved within the TTL, if any.
    pub fn lookup(&self, username: &str, password: &Password, now: Instant) -> Option<Identity> {
        if !self.enabled() {
            return None;
        }
        let key = self.mac(username, password);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match entries.get(&key) {
            Some(entry) if entry.expires > now => Some(entry.identity.clone()),
            Some(_) => {
                entries.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Remember that these credentials proved `identity`.
    pub fn insert(&self, username: &str, password: &Password, identity: Identity, now: Instant) {
        if !self.enabled() {
            return;
        }
        let key = self.mac(username, password);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, e| e.expires > now);
            if entries.len() >= self.capacity {
                // Still full of live entries: drop the one closest to expiry.
                if let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, e)| e.expires)
                    .map(|(k, _)| *k)
                {
                    entries.remove(&oldest);
                }
            }
        }
        entries.insert(
            key,
            Entry {
                expires: now + self.ttl,
                identity,
            },
        );
    }

    /// Number of entries (live or not yet swept).
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::authorize::user_identity;

    #[test]
    fn hit_miss_expiry_and_bounds() {
        let cache = CredentialCache::new(Duration::from_secs(60), 2);
        let t0 = Instant::now();
        let alice = user_identity("alice", &[]);
        cache.insert("alice", &Password::new("pw-alice"), alice.clone(), t0);
        assert_eq!(
            cache.lookup("alice", &Password::new("pw-alice"), t0),
            Some(alice.clone())
        );
        assert_eq!(
            cache.lookup("alice", &Password::new("pw-alicf"), t0),
            None,
            "other password"
        );
        assert_eq!(
            cache.lookup("alicepw", &Password::new("-alice"), t0),
            None,
            "other split"
        );
        assert_eq!(
            cache.lookup(
                "alice",
                &Password::new("pw-alice"),
                t0 + Duration::from_secs(61)
            ),
            None,
            "expired"
        );
        for i in 0..10 {
            cache.insert(
                &format!("u{i}"),
                &Password::new("pw"),
                user_identity("u", &[]),
                t0,
            );
            assert!(cache.len() <= 2);
        }
    }

    #[test]
    fn separate_caches_do_not_share_keys() {
        let a = CredentialCache::new(Duration::from_secs(60), 8);
        let b = CredentialCache::new(Duration::from_secs(60), 8);
        let pw = Password::new("pw");
        assert_ne!(a.mac("u", &pw), b.mac("u", &pw));
    }

    #[test]
    fn zero_ttl_disables() {
        let cache = CredentialCache::new(Duration::ZERO, 8);
        let now = Instant::now();
        cache.insert("a", &Password::new("b"), user_identity("a", &[]), now);
        assert!(cache.is_empty());
    }
}
