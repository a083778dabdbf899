//! Container ids (64 hex digits, shown as 12, like Docker's) and names.

use std::fmt;
use std::io::Read;

use serde::{Deserialize, Serialize};

/// Length of the short form `ps` shows.
pub const SHORT_ID_LEN: usize = 12;
/// Longest container name accepted.
pub const MAX_NAME_LEN: usize = 128;

/// A bad id or name.
#[derive(Debug, thiserror::Error)]
pub enum IdError {
    /// Not 64 lowercase hex digits.
    #[error("invalid container id {value:?}: expected 64 lowercase hex digits")]
    InvalidId {
        /// The value.
        value: String,
    },
    /// A name outside `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
    #[error(
        "invalid container name {value:?}: use letters, digits, '_', '.' and '-', starting with \
         a letter or digit, at most {MAX_NAME_LEN} characters"
    )]
    InvalidName {
        /// The value.
        value: String,
    },
    /// The system's random source failed.
    #[error("failed to read random bytes from /dev/urandom")]
    Random {
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// A container id: 64 lowercase hex digits from the system's random source.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ContainerId(String);

impl ContainerId {
    /// A new random id.
    pub fn generate() -> Result<Self, IdError> {
        let mut bytes = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut bytes))
            .map_err(|source| IdError::Random { source })?;
        let id = hex::encode(bytes);
        // Docker avoids ids that look like numbers (the short form would read as a pid).
        if id[..SHORT_ID_LEN].bytes().all(|b| b.is_ascii_digit()) {
            return Self::generate();
        }
        Ok(Self(id))
    }

    /// Parses a full id.
    pub fn parse(value: &str) -> Result<Self, IdError> {
        if Self::is_full_id(value) {
            Ok(Self(value.to_owned()))
        } else {
            Err(IdError::InvalidId {
                value: value.to_owned(),
            })
        }
    }

    /// Whether `value` has the shape of a full id.
    pub fn is_full_id(value: &str) -> bool {
        value.len() == 64
            && value
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }

    /// The full id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 12-digit form.
    pub fn short(&self) -> &str {
        &self.0[..SHORT_ID_LEN]
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ContainerId {
    type Error = IdError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<ContainerId> for String {
    fn from(id: ContainerId) -> String {
        id.0
    }
}

/// A container name: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, unique in a store.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ContainerName(String);

impl ContainerName {
    /// Parses a name (a leading `/`, as Docker prints names, is accepted and dropped).
    pub fn parse(value: &str) -> Result<Self, IdError> {
        let name = value.strip_prefix('/').unwrap_or(value);
        let valid = !name.is_empty()
            && name.len() <= MAX_NAME_LEN
            && name.as_bytes()[0].is_ascii_alphanumeric()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if valid {
            Ok(Self(name.to_owned()))
        } else {
            Err(IdError::InvalidName {
                value: value.to_owned(),
            })
        }
    }

    /// A name like Docker's `adjective_noun`, chosen with the id's bytes as the random source.
    pub fn generate(id: &ContainerId, attempt: usize) -> Self {
        const ADJECTIVES: &[&str] = &[
            "brave", "calm", "clever", "eager", "fierce", "gentle", "happy", "jolly", "keen",
            "lucid", "merry", "nimble", "proud", "quiet", "sharp", "steady", "swift", "tidy",
            "vivid", "wise",
        ];
        const NOUNS: &[&str] = &[
            "badger", "bastion", "beacon", "citadel", "falcon", "gate", "harbor", "keep",
            "lantern", "moat", "otter", "palisade", "rampart", "sentry", "shield", "tower",
            "warden", "watch", "wall", "wren",
        ];
        let bytes = id.as_str().as_bytes();
        let pick = |offset: usize, len: usize| {
            let value = usize::from(bytes[offset % bytes.len()])
                + 256 * usize::from(bytes[(offset + 1) % bytes.len()]);
            value % len
        };
        let adjective = ADJECTIVES[pick(attempt * 4, ADJECTIVES.len())];
        let noun = NOUNS[pick(attempt * 4 + 2, NOUNS.len())];
        if attempt < 8 {
            Self(format!("{adjective}_{noun}"))
        } else {
            Self(format!("{adjective}_{noun}_{}", &id.as_str()[..6]))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ContainerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ContainerName {
    type Error = IdError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<ContainerName> for String {
    fn from(name: ContainerName) -> String {
        name.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_64_hex_with_a_12_digit_short_form() {
        let a = ContainerId::generate().unwrap();
        let b = ContainerId::generate().unwrap();
        assert_ne!(a, b);
        assert!(ContainerId::is_full_id(a.as_str()));
        assert_eq!(a.short().len(), 12);
        assert!(a.as_str().starts_with(a.short()));
        assert!(ContainerId::parse("abc").is_err());
        assert!(ContainerId::parse(&"A".repeat(64)).is_err());
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<ContainerId>(&json).unwrap(), a);
        assert!(serde_json::from_str::<ContainerId>("\"../../etc\"").is_err());
    }

    #[test]
    fn names_follow_dockers_grammar() {
        for good in ["web", "web-1", "a.b_c", "/web", "0abc"] {
            ContainerName::parse(good).unwrap();
        }
        for bad in ["", "-x", ".x", "a/b", "a b", "..", "ü", &"x".repeat(129)] {
            assert!(ContainerName::parse(bad).is_err(), "{bad:?} accepted");
        }
        let id = ContainerId::generate().unwrap();
        for attempt in 0..10 {
            ContainerName::parse(ContainerName::generate(&id, attempt).as_str()).unwrap();
        }
    }
}
