//! Signed checkpoints: a signature over the chain's head, written into the chain itself.
//!
//! A hash chain shows edits, but someone who can write the file can also rewrite the whole
//! chain with fresh hashes. A checkpoint record carries a signature, by a key the writer holds
//! and the attacker does not, over the previous record's `seq` and `hash`; with the public key
//! the verifier then knows that every record up to that point is the one the writer wrote.
//!
//! The signed message is the ASCII text
//!
//! ```text
//! palisade-audit-checkpoint-v1\n<seq>\n<hash>\n
//! ```
//!
//! where `<seq>` is the covered record's `seq` in decimal and `<hash>` its 64 lowercase hex
//! digits. With ECDSA P-256 ([`ECDSA_P256_SHA256`]) the message is hashed with SHA-256 and the
//! signature is written as hex of its ASN.1 DER form, so `openssl dgst -sha256 -verify` checks
//! it too.
//!
//! Signing and checking go through the small [`CheckpointSigner`] and [`CheckpointVerifier`]
//! traits, so a key kept elsewhere (a hardware token, the trust crate's key store) can sign
//! without this crate knowing how it is loaded. [`EcdsaP256Signer`] and [`EcdsaP256Verifier`]
//! load PEM files.

use std::fmt;
use std::path::{Path, PathBuf};

use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey};
use sha2::{Digest, Sha256};

use crate::record::RecordHash;

/// The algorithm name written in checkpoint records signed by [`EcdsaP256Signer`].
pub const ECDSA_P256_SHA256: &str = "ecdsa-p256-sha256";

/// The bytes a checkpoint covering the record (`seq`, `hash`) signs.
pub fn checkpoint_message(seq: u64, hash: &RecordHash) -> Vec<u8> {
    format!("palisade-audit-checkpoint-v1\n{seq}\n{hash}\n").into_bytes()
}

/// Something that signs checkpoints: a key the log's writers hold.
pub trait CheckpointSigner: fmt::Debug + Send + Sync {
    /// The key's id, written into each checkpoint (`sha256:<hex of the SPKI DER>`).
    fn key_id(&self) -> &str;
    /// The algorithm name written into each checkpoint, e.g. [`ECDSA_P256_SHA256`].
    fn algorithm(&self) -> &str;
    /// Signs `message` (from [`checkpoint_message`]).
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError>;
}

/// Something that checks checkpoint signatures: the public half of a [`CheckpointSigner`].
pub trait CheckpointVerifier: fmt::Debug {
    /// The key's id, as a signer with the private half writes it.
    fn key_id(&self) -> &str;
    /// The algorithm name this key verifies.
    fn algorithm(&self) -> &str;
    /// Whether `signature` is this key's signature of `message`.
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool;
}

/// A signer failed (a hardware token unplugged, a remote signer down).
#[derive(Debug, thiserror::Error)]
#[error("failed to sign an audit checkpoint: {reason}")]
pub struct SignError {
    /// What went wrong.
    pub reason: String,
}

/// A checkpoint key could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key file does not exist.
    #[error("checkpoint key {path:?} does not exist")]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// The key file could not be read.
    #[error("failed to read checkpoint key {path:?}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The text is not a key of the kind expected.
    #[error("{what} is not {expected}")]
    Invalid {
        /// The file, or "the key text".
        what: String,
        /// What was expected.
        expected: &'static str,
    },
}

/// An ECDSA P-256 private key that signs checkpoints (RFC 6979 deterministic signatures).
pub struct EcdsaP256Signer {
    key: SigningKey,
    key_id: String,
}

impl fmt::Debug for EcdsaP256Signer {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the private key.
        formatter
            .debug_struct("EcdsaP256Signer")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl EcdsaP256Signer {
    /// Loads a P-256 private key from PEM text: PKCS#8 (`BEGIN PRIVATE KEY`, as `openssl
    /// genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256` writes it) or SEC1 (`BEGIN EC
    /// PRIVATE KEY`, as `openssl ecparam -genkey -name prime256v1` writes it).
    pub fn from_pem(text: &str) -> Result<EcdsaP256Signer, KeyError> {
        Self::parse(text, "the key text")
    }

    /// Loads a private key from a PEM file (see [`EcdsaP256Signer::from_pem`]).
    pub fn from_pem_file(path: impl AsRef<Path>) -> Result<EcdsaP256Signer, KeyError> {
        let path = path.as_ref();
        let text = read_key_file(path)?;
        Self::parse(&text, &format!("{path:?}"))
    }

    /// A key from its 32-byte secret scalar (for tests and key derivation).
    pub fn from_secret_bytes(bytes: &[u8; 32]) -> Result<EcdsaP256Signer, KeyError> {
        let key = SigningKey::from_bytes(bytes.into()).map_err(|_| KeyError::Invalid {
            what: "the secret bytes".into(),
            expected: "a P-256 scalar in range",
        })?;
        Ok(Self::from_key(key))
    }

    fn parse(text: &str, what: &str) -> Result<EcdsaP256Signer, KeyError> {
        let key = SigningKey::from_pkcs8_pem(text)
            .ok()
            .or_else(|| {
                p256::SecretKey::from_sec1_pem(text)
                    .ok()
                    .map(SigningKey::from)
            })
            .ok_or_else(|| KeyError::Invalid {
                what: what.to_owned(),
                expected: "a PEM P-256 private key (BEGIN PRIVATE KEY or BEGIN EC PRIVATE KEY)",
            })?;
        Ok(Self::from_key(key))
    }

    fn from_key(key: SigningKey) -> EcdsaP256Signer {
        let key_id = key_id_of(key.verifying_key());
        EcdsaP256Signer { key, key_id }
    }

    /// The matching verifier.
    pub fn verifier(&self) -> EcdsaP256Verifier {
        EcdsaP256Verifier::from_key(*self.key.verifying_key())
    }
}

impl CheckpointSigner for EcdsaP256Signer {
    fn key_id(&self) -> &str {
        &self.key_id
    }

    fn algorithm(&self) -> &str {
        ECDSA_P256_SHA256
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let signature: Signature = self.key.try_sign(message).map_err(|error| SignError {
            reason: error.to_string(),
        })?;
        Ok(signature.to_der().as_bytes().to_vec())
    }
}

/// An ECDSA P-256 public key that checks checkpoints.
#[derive(Debug, Clone)]
pub struct EcdsaP256Verifier {
    key: VerifyingKey,
    key_id: String,
}

impl EcdsaP256Verifier {
    /// Loads a P-256 public key (`BEGIN PUBLIC KEY`) from PEM text, or takes the public half
    /// of a private key in PEM.
    pub fn from_pem(text: &str) -> Result<EcdsaP256Verifier, KeyError> {
        Self::parse(text, "the key text")
    }

    /// Loads a public (or private) key from a PEM file.
    pub fn from_pem_file(path: impl AsRef<Path>) -> Result<EcdsaP256Verifier, KeyError> {
        let path = path.as_ref();
        let text = read_key_file(path)?;
        Self::parse(&text, &format!("{path:?}"))
    }

    fn parse(text: &str, what: &str) -> Result<EcdsaP256Verifier, KeyError> {
        if let Ok(key) = VerifyingKey::from_public_key_pem(text) {
            return Ok(Self::from_key(key));
        }
        EcdsaP256Signer::parse(text, what)
            .map(|signer| signer.verifier())
            .map_err(|_| KeyError::Invalid {
                what: what.to_owned(),
                expected: "a PEM P-256 public key (BEGIN PUBLIC KEY) or private key",
            })
    }

    fn from_key(key: VerifyingKey) -> EcdsaP256Verifier {
        EcdsaP256Verifier {
            key_id: key_id_of(&key),
            key,
        }
    }

    /// The public key as PEM (`BEGIN PUBLIC KEY`), for handing to verifiers.
    pub fn to_pem(&self) -> String {
        self.key
            .to_public_key_pem(p256::pkcs8::LineEnding::LF)
            .unwrap_or_default()
    }
}

impl CheckpointVerifier for EcdsaP256Verifier {
    fn key_id(&self) -> &str {
        &self.key_id
    }

    fn algorithm(&self) -> &str {
        ECDSA_P256_SHA256
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        Signature::from_der(signature)
            .is_ok_and(|signature| self.key.verify(message, &signature).is_ok())
    }
}

/// `sha256:` and the hex SHA-256 of the key's SubjectPublicKeyInfo DER.
fn key_id_of(key: &VerifyingKey) -> String {
    let der = key
        .to_public_key_der()
        .map(|der| der.as_bytes().to_vec())
        .unwrap_or_else(|_| key.to_encoded_point(false).as_bytes().to_vec());
    format!("sha256:{}", hex::encode(Sha256::digest(der)))
}

fn read_key_file(path: &Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            KeyError::Missing {
                path: path.to_path_buf(),
            }
        } else {
            KeyError::Read {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::pkcs8::EncodePrivateKey;

    fn signer(seed: u8) -> EcdsaP256Signer {
        EcdsaP256Signer::from_secret_bytes(&[seed; 32]).unwrap()
    }

    #[test]
    fn signatures_verify_with_the_matching_key_only() {
        let message = checkpoint_message(7, &RecordHash::GENESIS);
        let signature = signer(1).sign(&message).unwrap();
        let verifier = signer(1).verifier();
        assert!(verifier.verify(&message, &signature));
        assert!(!signer(2).verifier().verify(&message, &signature));
        assert!(!verifier.verify(&checkpoint_message(8, &RecordHash::GENESIS), &signature));
        assert!(!verifier.verify(&message, b"not der"));
        assert_eq!(signer(1).key_id(), verifier.key_id());
        assert_ne!(signer(1).key_id(), signer(2).key_id());
        assert!(verifier.key_id().starts_with("sha256:"));
    }

    #[test]
    fn keys_load_from_pkcs8_and_public_pem_files() {
        let dir = tempfile::tempdir().unwrap();
        let secret = p256::SecretKey::from_bytes(&[3; 32].into()).unwrap();
        let private = dir.path().join("key.pem");
        std::fs::write(
            &private,
            secret
                .to_pkcs8_pem(p256::pkcs8::LineEnding::LF)
                .unwrap()
                .as_bytes(),
        )
        .unwrap();
        let loaded = EcdsaP256Signer::from_pem_file(&private).unwrap();
        assert_eq!(loaded.key_id(), signer(3).key_id());
        let public = dir.path().join("key.pub");
        std::fs::write(&public, loaded.verifier().to_pem()).unwrap();
        let verifier = EcdsaP256Verifier::from_pem_file(&public).unwrap();
        assert_eq!(verifier.key_id(), loaded.key_id());
        // A private key file also gives the verifier.
        assert_eq!(
            EcdsaP256Verifier::from_pem_file(&private).unwrap().key_id(),
            loaded.key_id()
        );
        // A public key is not a signer.
        assert!(matches!(
            EcdsaP256Signer::from_pem_file(&public),
            Err(KeyError::Invalid { .. })
        ));
        assert!(matches!(
            EcdsaP256Verifier::from_pem_file(dir.path().join("absent.pem")),
            Err(KeyError::Missing { .. })
        ));
        assert!(EcdsaP256Verifier::from_pem("-----BEGIN GARBAGE-----").is_err());
        // The Debug form never shows the secret.
        assert!(!format!("{loaded:?}").contains("03030303"));
    }
}
