//! Signing and verification keys: ECDSA P-256 (cosign's default), ECDSA P-384 and Ed25519.
//!
//! Public keys travel as PEM `PUBLIC KEY` (SubjectPublicKeyInfo, what `cosign.pub` holds);
//! their fingerprint is `sha256:` + the hex SHA-256 of the SPKI DER. Private keys are PKCS#8
//! inside cosign's encrypted envelope (see [`crate::encrypted`]).
//!
//! Signatures: ECDSA P-256 signs SHA-256 of the message, P-384 SHA-384 (the curve's own hash),
//! both DER-encoded (ASN.1 `SEQUENCE { r, s }`) as cosign and OpenSSL write them; Ed25519 signs
//! the message itself (64 raw bytes).

use std::fmt;

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use p256::pkcs8::der::pem::LineEnding;
use rand_core::OsRng;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::error::TrustError;

/// The key types Palisade signs and verifies with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyAlgorithm {
    /// ECDSA on NIST P-256 with SHA-256 (cosign's default).
    EcdsaP256,
    /// ECDSA on NIST P-384 with SHA-384.
    EcdsaP384,
    /// Ed25519.
    Ed25519,
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyAlgorithm::EcdsaP256 => "ecdsa-p256",
            KeyAlgorithm::EcdsaP384 => "ecdsa-p384",
            KeyAlgorithm::Ed25519 => "ed25519",
        })
    }
}

impl std::str::FromStr for KeyAlgorithm {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "ecdsa-p256" | "p256" | "p-256" => Ok(KeyAlgorithm::EcdsaP256),
            "ecdsa-p384" | "p384" | "p-384" => Ok(KeyAlgorithm::EcdsaP384),
            "ed25519" => Ok(KeyAlgorithm::Ed25519),
            _ => Err(format!(
                "unknown key type {text:?}; use ecdsa-p256, ecdsa-p384 or ed25519"
            )),
        }
    }
}

/// A public key's identity: `sha256:` + hex SHA-256 of its SubjectPublicKeyInfo DER.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// The fingerprint of SPKI DER bytes.
    pub fn of_spki(der: &[u8]) -> Self {
        Fingerprint(format!("sha256:{}", hex::encode(Sha256::digest(der))))
    }

    /// Parses `sha256:<64 hex>` (the hex in any case; stored lowercase).
    pub fn parse(text: &str) -> Option<Self> {
        let hex_part = text.strip_prefix("sha256:")?;
        (hex_part.len() == 64 && hex_part.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Fingerprint(format!("sha256:{}", hex_part.to_ascii_lowercase())))
    }

    /// The text form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 hex digits, for messages.
    pub fn short(&self) -> &str {
        let end = "sha256:".len() + 12;
        self.0.get(..end).unwrap_or(&self.0)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A key that verifies signatures.
#[derive(Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// ECDSA P-256.
    P256(p256::ecdsa::VerifyingKey),
    /// ECDSA P-384.
    P384(p384::ecdsa::VerifyingKey),
    /// Ed25519.
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({} {})", self.algorithm(), self.fingerprint())
    }
}

impl PublicKey {
    /// Parses SubjectPublicKeyInfo DER of any supported type.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, TrustError> {
        if let Ok(key) = p256::ecdsa::VerifyingKey::from_public_key_der(der) {
            return Ok(PublicKey::P256(key));
        }
        if let Ok(key) = p384::ecdsa::VerifyingKey::from_public_key_der(der) {
            return Ok(PublicKey::P384(key));
        }
        if let Ok(key) = ed25519_dalek::VerifyingKey::from_public_key_der(der) {
            return Ok(PublicKey::Ed25519(key));
        }
        Err(TrustError::key(
            "public key",
            "not an ECDSA P-256, P-384 or Ed25519 SubjectPublicKeyInfo",
        ))
    }

    /// Parses a PEM `PUBLIC KEY` block (cosign.pub). Text around the block is ignored.
    pub fn from_pem(text: &str) -> Result<Self, TrustError> {
        let block = pem_block(text, &["PUBLIC KEY"])
            .ok_or_else(|| TrustError::key("public key", "no PEM PUBLIC KEY block"))?;
        let (label, der) = p256::pkcs8::der::pem::decode_vec(block.as_bytes())
            .map_err(|e| TrustError::key("public key", format!("bad PEM: {e}")))?;
        if label != "PUBLIC KEY" {
            return Err(TrustError::key(
                "public key",
                format!("PEM label {label:?}"),
            ));
        }
        Self::from_spki_der(&der)
    }

    /// Reads a PEM public key file.
    pub fn from_file(path: &std::path::Path) -> Result<Self, TrustError> {
        let text = read_small_file(path)?;
        let text = String::from_utf8(text)
            .map_err(|_| TrustError::key(path.display().to_string(), "not a PEM text file"))?;
        Self::from_pem(&text).map_err(|e| match e {
            TrustError::Key { reason, .. } => TrustError::key(path.display().to_string(), reason),
            other => other,
        })
    }

    /// The SubjectPublicKeyInfo DER.
    pub fn spki_der(&self) -> Vec<u8> {
        let document = match self {
            PublicKey::P256(key) => key.to_public_key_der(),
            PublicKey::P384(key) => key.to_public_key_der(),
            PublicKey::Ed25519(key) => key.to_public_key_der(),
        };
        // Encoding a valid in-memory key cannot fail; an empty DER would never match anything.
        document.map(|d| d.as_bytes().to_vec()).unwrap_or_default()
    }

    /// The PEM text (`-----BEGIN PUBLIC KEY-----`), as cosign writes cosign.pub.
    pub fn to_pem(&self) -> String {
        p256::pkcs8::der::pem::encode_string("PUBLIC KEY", LineEnding::LF, &self.spki_der())
            .unwrap_or_default()
    }

    /// `sha256:` + hex SHA-256 of the SPKI DER.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of_spki(&self.spki_der())
    }

    /// Which algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        match self {
            PublicKey::P256(_) => KeyAlgorithm::EcdsaP256,
            PublicKey::P384(_) => KeyAlgorithm::EcdsaP384,
            PublicKey::Ed25519(_) => KeyAlgorithm::Ed25519,
        }
    }

    /// Checks `signature` (DER ECDSA, or 64 raw Ed25519 bytes) over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), TrustError> {
        use ed25519_dalek::Verifier as _;
        let bad = |e: &dyn fmt::Display| TrustError::Signature(format!("does not verify: {e}"));
        match self {
            PublicKey::P256(key) => {
                let sig = p256::ecdsa::Signature::from_der(signature).map_err(|e| {
                    TrustError::Signature(format!("not a DER ECDSA signature: {e}"))
                })?;
                p256::ecdsa::signature::Verifier::verify(key, message, &sig).map_err(|e| bad(&e))
            }
            PublicKey::P384(key) => {
                let sig = p384::ecdsa::Signature::from_der(signature).map_err(|e| {
                    TrustError::Signature(format!("not a DER ECDSA signature: {e}"))
                })?;
                p384::ecdsa::signature::Verifier::verify(key, message, &sig).map_err(|e| bad(&e))
            }
            PublicKey::Ed25519(key) => {
                let sig = ed25519_dalek::Signature::from_slice(signature).map_err(|e| {
                    TrustError::Signature(format!("not a 64-byte Ed25519 signature: {e}"))
                })?;
                key.verify(message, &sig).map_err(|e| bad(&e))
            }
        }
    }
}

/// Anything that signs: a key in memory, or a key on a PKCS#11 token.
pub trait Signer: Send + Sync {
    /// The matching public key.
    fn public_key(&self) -> Result<PublicKey, TrustError>;
    /// A signature over `message` in the key type's wire form (DER for ECDSA).
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, TrustError>;
}

/// A private key held in memory (zeroized on drop by the underlying types).
#[derive(Clone)]
pub enum PrivateKey {
    /// ECDSA P-256.
    P256(p256::ecdsa::SigningKey),
    /// ECDSA P-384.
    P384(p384::ecdsa::SigningKey),
    /// Ed25519.
    Ed25519(ed25519_dalek::SigningKey),
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PrivateKey({} {})",
            self.algorithm(),
            self.public().fingerprint()
        )
    }
}

impl PrivateKey {
    /// A fresh key from the operating system's random source.
    pub fn generate(algorithm: KeyAlgorithm) -> Self {
        match algorithm {
            KeyAlgorithm::EcdsaP256 => {
                PrivateKey::P256(p256::ecdsa::SigningKey::random(&mut OsRng))
            }
            KeyAlgorithm::EcdsaP384 => {
                PrivateKey::P384(p384::ecdsa::SigningKey::random(&mut OsRng))
            }
            KeyAlgorithm::Ed25519 => {
                PrivateKey::Ed25519(ed25519_dalek::SigningKey::generate(&mut OsRng))
            }
        }
    }

    /// Parses a PKCS#8 `PrivateKeyInfo` DER of any supported type.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, TrustError> {
        if let Ok(key) = p256::ecdsa::SigningKey::from_pkcs8_der(der) {
            return Ok(PrivateKey::P256(key));
        }
        if let Ok(key) = p384::ecdsa::SigningKey::from_pkcs8_der(der) {
            return Ok(PrivateKey::P384(key));
        }
        if let Ok(key) = ed25519_dalek::SigningKey::from_pkcs8_der(der) {
            return Ok(PrivateKey::Ed25519(key));
        }
        Err(TrustError::key(
            "private key",
            "not an ECDSA P-256, P-384 or Ed25519 PKCS#8 key",
        ))
    }

    /// The PKCS#8 DER (zeroized when dropped).
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, TrustError> {
        let document = match self {
            PrivateKey::P256(key) => key.to_pkcs8_der(),
            PrivateKey::P384(key) => key.to_pkcs8_der(),
            PrivateKey::Ed25519(key) => key.to_pkcs8_der(),
        }
        .map_err(|e| TrustError::key("private key", format!("PKCS#8 encoding: {e}")))?;
        Ok(Zeroizing::new(document.as_bytes().to_vec()))
    }

    /// Which algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.public().algorithm()
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        match self {
            PrivateKey::P256(key) => PublicKey::P256(*key.verifying_key()),
            PrivateKey::P384(key) => PublicKey::P384(*key.verifying_key()),
            PrivateKey::Ed25519(key) => PublicKey::Ed25519(key.verifying_key()),
        }
    }
}

impl Signer for PrivateKey {
    fn public_key(&self) -> Result<PublicKey, TrustError> {
        Ok(self.public())
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, TrustError> {
        Ok(match self {
            PrivateKey::P256(key) => {
                let sig: p256::ecdsa::Signature =
                    p256::ecdsa::signature::Signer::sign(key, message);
                sig.to_der().as_bytes().to_vec()
            }
            PrivateKey::P384(key) => {
                let sig: p384::ecdsa::Signature =
                    p384::ecdsa::signature::Signer::sign(key, message);
                sig.to_der().as_bytes().to_vec()
            }
            PrivateKey::Ed25519(key) => ed25519_dalek::Signer::sign(key, message)
                .to_bytes()
                .to_vec(),
        })
    }
}

/// The largest key, policy or signature file read.
pub(crate) const MAX_SMALL_FILE: u64 = 1 << 20;

/// Reads a file of at most [`MAX_SMALL_FILE`] bytes.
pub(crate) fn read_small_file(path: &std::path::Path) -> Result<Vec<u8>, TrustError> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|e| TrustError::io(path, e))?;
    let mut bytes = Vec::new();
    file.take(MAX_SMALL_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| TrustError::io(path, e))?;
    if bytes.len() as u64 > MAX_SMALL_FILE {
        return Err(TrustError::key(
            path.display().to_string(),
            "larger than 1 MiB: not a key file",
        ));
    }
    Ok(bytes)
}

/// The first PEM block in `text` whose label is one of `labels`, from BEGIN to END line.
pub(crate) fn pem_block<'t>(text: &'t str, labels: &[&str]) -> Option<&'t str> {
    for label in labels {
        let begin = format!("-----BEGIN {label}-----");
        let end = format!("-----END {label}-----");
        if let Some(start) = text.find(&begin) {
            let rest = &text[start..];
            let stop = rest.find(&end)? + end.len();
            return Some(&rest[..stop]);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_round_trips_and_rejects_other_messages() {
        for algorithm in [
            KeyAlgorithm::EcdsaP256,
            KeyAlgorithm::EcdsaP384,
            KeyAlgorithm::Ed25519,
        ] {
            let key = PrivateKey::generate(algorithm);
            let signature = key.sign(b"payload").unwrap();
            let public = PublicKey::from_pem(&key.public().to_pem()).unwrap();
            assert_eq!(public, key.public());
            assert_eq!(public.algorithm(), algorithm);
            public.verify(b"payload", &signature).unwrap();
            assert!(public.verify(b"payloaD", &signature).is_err());
            let mut bent = signature.clone();
            let last = bent.len() - 1;
            bent[last] ^= 1;
            assert!(public.verify(b"payload", &bent).is_err());
            assert!(public
                .verify(b"payload", &signature[..signature.len() / 2])
                .is_err());
            assert!(public.verify(b"payload", b"").is_err());
            let der = key.to_pkcs8_der().unwrap();
            let again = PrivateKey::from_pkcs8_der(&der).unwrap();
            assert_eq!(again.public(), key.public());
        }
    }

    #[test]
    fn fingerprints_are_sha256_of_spki() {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).public();
        let fp = key.fingerprint();
        assert_eq!(fp, Fingerprint::of_spki(&key.spki_der()));
        assert_eq!(
            Fingerprint::parse(&fp.as_str().to_uppercase().replace("SHA256", "sha256")),
            Some(fp.clone())
        );
        assert!(Fingerprint::parse("sha256:abc").is_none());
        assert!(Fingerprint::parse("md5:00").is_none());
    }

    #[test]
    fn garbage_keys_are_clear_errors() {
        assert!(PublicKey::from_pem("").is_err());
        assert!(PublicKey::from_pem(
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
        )
        .is_err());
        assert!(PublicKey::from_spki_der(&[0x30, 0x03, 0x02, 0x01, 0x00]).is_err());
        assert!(PrivateKey::from_pkcs8_der(b"nonsense").is_err());
    }
}
