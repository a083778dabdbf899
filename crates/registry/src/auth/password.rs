//! Passwords: a zeroizing, redacting wrapper and argon2id hashing in PHC string format.

use std::fmt;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use zeroize::Zeroizing;

/// Shortest password accepted when setting one.
pub const MIN_PASSWORD_LEN: usize = 8;
/// Longest password accepted anywhere (longer ones are refused before hashing, so a client
/// cannot make us hash megabytes).
pub const MAX_PASSWORD_LEN: usize = 1024;

/// A password or other secret string. Zeroed on drop; `Debug` prints `[redacted]`.
#[derive(Clone)]
pub struct Password(Zeroizing<String>);

impl Password {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Password {
        Password(Zeroizing::new(secret.into()))
    }

    /// The secret. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// Why a password could not be hashed or set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Shorter than [`MIN_PASSWORD_LEN`].
    #[error("password too short (at least {MIN_PASSWORD_LEN} characters)")]
    TooShort,
    /// Longer than [`MAX_PASSWORD_LEN`].
    #[error("password too long (at most {MAX_PASSWORD_LEN} bytes)")]
    TooLong,
    /// The hasher failed (bad parameters).
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashCost {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Iterations.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl HashCost {
    /// OWASP's argon2id recommendation (19 MiB, 2 iterations, 1 lane): tens of milliseconds.
    pub const DEFAULT: HashCost = HashCost {
        memory_kib: 19 * 1024,
        iterations: 2,
        parallelism: 1,
    };

    /// Deliberately weak; for tests only (hashes still verify with the normal verifier,
    /// since PHC strings carry their parameters).
    pub const INSECURE_FOR_TESTS: HashCost = HashCost {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    fn argon2(self) -> Result<Argon2<'static>, PasswordError> {
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| PasswordError::Hash(e.to_string()))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

impl Default for HashCost {
    fn default() -> HashCost {
        HashCost::DEFAULT
    }
}

/// Hash a password with argon2id and a random salt; returns the PHC string
/// (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`). Checks the length bounds.
pub fn hash_password(password: &Password, cost: HashCost) -> Result<String, PasswordError> {
    let secret = password.expose();
    if secret.chars().count() < MIN_PASSWORD_LEN {
        return Err(PasswordError::TooShort);
    }
    hash_unchecked(secret, cost)
}

fn hash_unchecked(secret: &str, cost: HashCost) -> Result<String, PasswordError> {
    if secret.len() > MAX_PASSWORD_LEN {
        return Err(PasswordError::TooLong);
    }
    let salt = SaltString::generate(&mut OsRng);
    cost.argon2()?
        .hash_password(secret.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches the PHC string `phc`. Only argon2id hashes are accepted (a
/// stored hash of another algorithm, or garbage, never verifies). The comparison inside the
/// argon2 crate is constant-time.
pub fn verify_password(phc: &str, password: &Password) -> bool {
    if password.expose().len() > MAX_PASSWORD_LEN {
        return false;
    }
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    if hash.algorithm != argon2::ARGON2ID_IDENT {
        return false;
    }
    Argon2::default()
        .verify_password(password.expose().as_bytes(), &hash)
        .is_ok()
}

/// The cost parameters recorded in a PHC string, if it is an argon2id hash.
pub fn hash_cost(phc: &str) -> Option<HashCost> {
    let hash = PasswordHash::new(phc).ok()?;
    if hash.algorithm != argon2::ARGON2ID_IDENT {
        return None;
    }
    let params = Params::try_from(&hash).ok()?;
    Some(HashCost {
        memory_kib: params.m_cost(),
        iterations: params.t_cost(),
        parallelism: params.p_cost(),
    })
}

/// A hash of a random password with `cost`, used to spend the same time on unknown user names
/// as on known ones (so timing does not reveal which names exist).
pub fn decoy_hash(cost: HashCost) -> Result<String, PasswordError> {
    let mut random = [0u8; 24];
    argon2::password_hash::rand_core::RngCore::fill_bytes(&mut OsRng, &mut random);
    let secret = Zeroizing::new(hex::encode(random));
    hash_unchecked(&secret, cost)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let pw = Password::new("correct horse");
        let phc =
            hash_password(&pw, HashCost::INSECURE_FOR_TESTS).unwrap_or_else(|e| panic!("{e}"));
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{phc}");
        assert!(verify_password(&phc, &pw));
        assert!(!verify_password(&phc, &Password::new("correct horsf")));
        assert!(!verify_password(&phc, &Password::new("")));
        assert_eq!(hash_cost(&phc), Some(HashCost::INSECURE_FOR_TESTS));
    }

    #[test]
    fn refuses_bad_lengths_and_foreign_hashes() {
        assert_eq!(
            hash_password(&Password::new("short"), HashCost::INSECURE_FOR_TESTS),
            Err(PasswordError::TooShort)
        );
        assert_eq!(
            hash_password(
                &Password::new("x".repeat(2000)),
                HashCost::INSECURE_FOR_TESTS
            ),
            Err(PasswordError::TooLong)
        );
        assert!(!verify_password("not a hash", &Password::new("whatever1")));
        assert!(!verify_password("", &Password::new("")));
        // An argon2i hash (not argon2id) is not accepted even if it would verify.
        let argon2i = "$argon2i$v=19$m=64,t=1,p=1$c29tZXNhbHQ$ZmFrZWhhc2hmYWtlaGFzaA";
        assert!(!verify_password(argon2i, &Password::new("whatever1")));
    }

    #[test]
    fn debug_redacts() {
        assert_eq!(
            format!("{:?}", Password::new("hunter22")),
            "Password([redacted])"
        );
    }
}
