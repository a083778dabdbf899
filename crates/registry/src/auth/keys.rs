//! Token signing keys: ES256 (ECDSA P-256) or EdDSA (Ed25519), stored as PKCS#8 PEM.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use p256::pkcs8::LineEnding;
use rand_core::OsRng;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::config::TokenAlgorithm;

/// Why a key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading failed.
    #[error("failed to read token key {path:?}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Creating failed.
    #[error("failed to create token key {path:?}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not a PKCS#8 PEM P-256 or Ed25519 private key.
    #[error("token key {path:?} is not a PKCS#8 PEM P-256 or Ed25519 private key")]
    Parse {
        /// The file.
        path: PathBuf,
    },
    /// The key's algorithm differs from `auth.token.algorithm`.
    #[error("token key {path:?} is a {found} key but auth.token.algorithm is {configured}")]
    AlgorithmMismatch {
        /// The file.
        path: PathBuf,
        /// What the file holds.
        found: &'static str,
        /// What the config says.
        configured: &'static str,
    },
    /// Readable by group or others.
    #[error("token key {path:?} is readable by group or others (mode {mode:o}); run chmod 600")]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// Encoding failed.
    #[error("failed to encode the generated key")]
    Encode,
}

/// The JWS `alg` name of an algorithm.
pub fn jws_algorithm(algorithm: TokenAlgorithm) -> &'static str {
    match algorithm {
        TokenAlgorithm::Es256 => "ES256",
        TokenAlgorithm::Eddsa => "EdDSA",
    }
}

/// A private signing key.
pub enum SigningKey {
    /// ECDSA P-256.
    Es256(p256::ecdsa::SigningKey),
    /// Ed25519.
    EdDsa(ed25519_dalek::SigningKey),
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SigningKey({}, kid {})",
            jws_algorithm(self.algorithm()),
            self.verifying_key().key_id()
        )
    }
}

/// A public verification key (what the registry checks bearer tokens with).
#[derive(Debug, Clone)]
pub enum VerifyingKey {
    /// ECDSA P-256.
    Es256(p256::ecdsa::VerifyingKey),
    /// Ed25519.
    EdDsa(ed25519_dalek::VerifyingKey),
}

impl SigningKey {
    /// A fresh random key.
    pub fn generate(algorithm: TokenAlgorithm) -> SigningKey {
        match algorithm {
            TokenAlgorithm::Es256 => SigningKey::Es256(p256::ecdsa::SigningKey::random(&mut OsRng)),
            TokenAlgorithm::Eddsa => {
                SigningKey::EdDsa(ed25519_dalek::SigningKey::generate(&mut OsRng))
            }
        }
    }

    /// Parse a PKCS#8 PEM private key of either kind.
    pub fn from_pkcs8_pem(pem: &str) -> Option<SigningKey> {
        if let Ok(secret) = <p256::SecretKey as p256::pkcs8::DecodePrivateKey>::from_pkcs8_pem(pem)
        {
            return Some(SigningKey::Es256(p256::ecdsa::SigningKey::from(secret)));
        }
        ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
            .ok()
            .map(SigningKey::EdDsa)
    }

    /// The key as PKCS#8 PEM (zeroed on drop).
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, KeyError> {
        match self {
            SigningKey::Es256(key) => {
                let secret = p256::SecretKey::from(key.as_nonzero_scalar());
                p256::pkcs8::EncodePrivateKey::to_pkcs8_pem(&secret, LineEnding::LF)
                    .map_err(|_| KeyError::Encode)
            }
            SigningKey::EdDsa(key) => key
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|_| KeyError::Encode),
        }
    }

    /// Load the key at `path`, or generate one of `algorithm` and write it there (mode 0600,
    /// created exclusively: two servers starting at once cannot overwrite each other's key). An
    /// existing key must match `algorithm` and must not be readable by group or others.
    pub fn load_or_generate(
        path: &Path,
        algorithm: TokenAlgorithm,
    ) -> Result<SigningKey, KeyError> {
        match fs::File::open(path) {
            Ok(file) => {
                let mode = file
                    .metadata()
                    .map_err(|source| KeyError::Read {
                        path: path.to_owned(),
                        source,
                    })?
                    .permissions()
                    .mode();
                if mode & 0o077 != 0 {
                    return Err(KeyError::Permissions {
                        path: path.to_owned(),
                        mode: mode & 0o7777,
                    });
                }
                let mut pem = Zeroizing::new(String::new());
                std::io::Read::read_to_string(&mut std::io::Read::take(file, 64 * 1024), &mut pem)
                    .map_err(|source| KeyError::Read {
                        path: path.to_owned(),
                        source,
                    })?;
                let key = SigningKey::from_pkcs8_pem(&pem).ok_or_else(|| KeyError::Parse {
                    path: path.to_owned(),
                })?;
                if key.algorithm() != algorithm {
                    return Err(KeyError::AlgorithmMismatch {
                        path: path.to_owned(),
                        found: jws_algorithm(key.algorithm()),
                        configured: jws_algorithm(algorithm),
                    });
                }
                Ok(key)
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let key = SigningKey::generate(algorithm);
                let pem = key.to_pkcs8_pem()?;
                let write_err = |source| KeyError::Write {
                    path: path.to_owned(),
                    source,
                };
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(write_err)?;
                file.set_permissions(fs::Permissions::from_mode(0o600))
                    .map_err(write_err)?;
                file.write_all(pem.as_bytes()).map_err(write_err)?;
                file.sync_all().map_err(write_err)?;
                Ok(key)
            }
            Err(source) => Err(KeyError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> TokenAlgorithm {
        match self {
            SigningKey::Es256(_) => TokenAlgorithm::Es256,
            SigningKey::EdDsa(_) => TokenAlgorithm::Eddsa,
        }
    }

    /// The public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        match self {
            SigningKey::Es256(key) => VerifyingKey::Es256(*key.verifying_key()),
            SigningKey::EdDsa(key) => VerifyingKey::EdDsa(key.verifying_key()),
        }
    }

    /// Sign `message`; the JWS signature bytes (ES256: 64 bytes `r || s`).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            SigningKey::Es256(key) => {
                let signature: p256::ecdsa::Signature =
                    p256::ecdsa::signature::Signer::sign(key, message);
                signature.to_bytes().to_vec()
            }
            SigningKey::EdDsa(key) => ed25519_dalek::Signer::sign(key, message)
                .to_bytes()
                .to_vec(),
        }
    }
}

impl VerifyingKey {
    /// The key's algorithm.
    pub fn algorithm(&self) -> TokenAlgorithm {
        match self {
            VerifyingKey::Es256(_) => TokenAlgorithm::Es256,
            VerifyingKey::EdDsa(_) => TokenAlgorithm::Eddsa,
        }
    }

    /// The raw public key bytes (SEC1 compressed point, or the 32 Ed25519 bytes).
    pub fn public_bytes(&self) -> Vec<u8> {
        match self {
            VerifyingKey::Es256(key) => key.to_encoded_point(true).as_bytes().to_vec(),
            VerifyingKey::EdDsa(key) => key.to_bytes().to_vec(),
        }
    }

    /// The `kid` header value: 32 hex digits of SHA-256 over the public key bytes.
    pub fn key_id(&self) -> String {
        let digest = Sha256::digest(self.public_bytes());
        hex::encode(&digest[..16])
    }

    /// Whether `signature` is a valid signature of `message` under this key. ES256 needs exactly
    /// 64 bytes; Ed25519 uses strict verification (no small-order keys, canonical `S`).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            VerifyingKey::Es256(key) => {
                let Ok(signature) = p256::ecdsa::Signature::from_slice(signature) else {
                    return false;
                };
                p256::ecdsa::signature::Verifier::verify(key, message, &signature).is_ok()
            }
            VerifyingKey::EdDsa(key) => {
                let Ok(signature) = ed25519_dalek::Signature::from_slice(signature) else {
                    return false;
                };
                key.verify_strict(message, &signature).is_ok()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_store_reload_both_algorithms() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        for algorithm in [TokenAlgorithm::Es256, TokenAlgorithm::Eddsa] {
            let path = dir.path().join(format!("{algorithm:?}.pem"));
            let key =
                SigningKey::load_or_generate(&path, algorithm).unwrap_or_else(|e| panic!("{e}"));
            let mode = fs::metadata(&path)
                .unwrap_or_else(|e| panic!("{e}"))
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
            let again =
                SigningKey::load_or_generate(&path, algorithm).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                key.verifying_key().key_id(),
                again.verifying_key().key_id(),
                "loaded, not regenerated"
            );
            let signature = key.sign(b"message");
            assert!(again.verifying_key().verify(b"message", &signature));
            assert!(!again.verifying_key().verify(b"messagf", &signature));
            let other = match algorithm {
                TokenAlgorithm::Es256 => TokenAlgorithm::Eddsa,
                TokenAlgorithm::Eddsa => TokenAlgorithm::Es256,
            };
            assert!(matches!(
                SigningKey::load_or_generate(&path, other),
                Err(KeyError::AlgorithmMismatch { .. })
            ));
        }
    }

    #[test]
    fn refuses_garbage_and_loose_permissions() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("key.pem");
        fs::write(
            &path,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            SigningKey::load_or_generate(&path, TokenAlgorithm::Es256),
            Err(KeyError::Parse { .. })
        ));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            SigningKey::load_or_generate(&path, TokenAlgorithm::Es256),
            Err(KeyError::Permissions { .. })
        ));
    }
}
