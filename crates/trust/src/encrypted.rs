//! cosign's encrypted private key file (`cosign.key`).
//!
//! A PEM block labelled `ENCRYPTED SIGSTORE PRIVATE KEY` (older cosign: `ENCRYPTED COSIGN
//! PRIVATE KEY`) whose body is JSON:
//!
//! ```json
//! {"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":"<base64, 32 bytes>"},
//!  "cipher":{"name":"nacl/secretbox","nonce":"<base64, 24 bytes>"},
//!  "ciphertext":"<base64>"}
//! ```
//!
//! The secretbox key is scrypt(password, salt, N, r, p) → 32 bytes; the plaintext is the
//! PKCS#8 DER of the private key. Byte strings are standard base64 with padding (Go's
//! `[]byte` in JSON). The scrypt parameters are read from the file, within bounds that keep a
//! crafted file from exhausting memory (N ≤ 2^20, r ≤ 32, p ≤ 16).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::XSalsa20Poly1305;
use p256::pkcs8::der::pem::LineEnding;
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::TrustError;
use crate::keys::{pem_block, PrivateKey};

/// The PEM label cosign writes today.
pub const PEM_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
/// The label older cosign versions wrote; still read.
pub const LEGACY_PEM_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";

/// cosign's scrypt cost: N = 2^15, r = 8, p = 1.
const DEFAULT_LOG_N: u8 = 15;
const DEFAULT_R: u32 = 8;
const DEFAULT_P: u32 = 1;
const MAX_LOG_N: u8 = 20;
const MAX_R: u32 = 32;
const MAX_P: u32 = 16;
const SALT_LEN: usize = 32;
const NONCE_LEN: usize = 24;

#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Kdf {
    name: String,
    params: ScryptParams,
    salt: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct ScryptParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

/// Encrypts `key` under `password` in cosign's format, with cosign's scrypt cost.
pub fn encrypt(key: &PrivateKey, password: &[u8]) -> Result<String, TrustError> {
    encrypt_with_cost(key, password, DEFAULT_LOG_N, DEFAULT_R, DEFAULT_P)
}

/// [`encrypt`] with explicit scrypt parameters (N = 2^`log_n`).
pub fn encrypt_with_cost(
    key: &PrivateKey,
    password: &[u8],
    log_n: u8,
    r: u32,
    p: u32,
) -> Result<String, TrustError> {
    let der = key.to_pkcs8_der()?;
    let mut salt = [0u8; SALT_LEN];
    OsRng.fill_bytes(&mut salt);
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    let secret = derive(password, &salt, log_n, r, p, "new key")?;
    let cipher = XSalsa20Poly1305::new(secret.as_slice().into());
    let ciphertext = cipher
        .encrypt((&nonce).into(), der.as_slice())
        .map_err(|_| TrustError::key("new key", "encryption failed"))?;
    let envelope = Envelope {
        kdf: Kdf {
            name: "scrypt".into(),
            params: ScryptParams {
                n: 1u64 << log_n,
                r,
                p,
            },
            salt: STANDARD.encode(salt),
        },
        cipher: Cipher {
            name: "nacl/secretbox".into(),
            nonce: STANDARD.encode(nonce),
        },
        ciphertext: STANDARD.encode(ciphertext),
    };
    let json = serde_json::to_vec(&envelope)
        .map_err(|e| TrustError::key("new key", format!("encoding: {e}")))?;
    p256::pkcs8::der::pem::encode_string(PEM_LABEL, LineEnding::LF, &json)
        .map_err(|e| TrustError::key("new key", format!("PEM encoding: {e}")))
}

/// Opens an encrypted key file's text with `password`. `what` names the key in errors.
pub fn decrypt(text: &str, password: &[u8], what: &str) -> Result<PrivateKey, TrustError> {
    let block = pem_block(text, &[PEM_LABEL, LEGACY_PEM_LABEL]).ok_or_else(|| {
        TrustError::key(
            what,
            format!("no PEM block labelled {PEM_LABEL:?}: not a cosign private key"),
        )
    })?;
    let (_, json) = p256::pkcs8::der::pem::decode_vec(block.as_bytes())
        .map_err(|e| TrustError::key(what, format!("bad PEM: {e}")))?;
    let envelope: Envelope = serde_json::from_slice(&json)
        .map_err(|e| TrustError::key(what, format!("bad key envelope JSON: {e}")))?;
    if envelope.kdf.name != "scrypt" {
        return Err(TrustError::key(
            what,
            format!(
                "key derivation {:?} is not supported (only scrypt)",
                envelope.kdf.name
            ),
        ));
    }
    if envelope.cipher.name != "nacl/secretbox" {
        return Err(TrustError::key(
            what,
            format!(
                "cipher {:?} is not supported (only nacl/secretbox)",
                envelope.cipher.name
            ),
        ));
    }
    let ScryptParams { n, r, p } = envelope.kdf.params;
    if n < 2 || !n.is_power_of_two() {
        return Err(TrustError::key(
            what,
            format!("scrypt N={n} is not a power of two"),
        ));
    }
    let log_n = n.trailing_zeros() as u8;
    if log_n > MAX_LOG_N || r == 0 || r > MAX_R || p == 0 || p > MAX_P {
        return Err(TrustError::key(
            what,
            format!("scrypt parameters N={n} r={r} p={p} are outside the accepted range (N ≤ 2^{MAX_LOG_N}, r ≤ {MAX_R}, p ≤ {MAX_P})"),
        ));
    }
    let salt = decode_field(&envelope.kdf.salt, "salt", what)?;
    let nonce = decode_field(&envelope.cipher.nonce, "nonce", what)?;
    if nonce.len() != NONCE_LEN {
        return Err(TrustError::key(
            what,
            format!("nonce is {} bytes, not {NONCE_LEN}", nonce.len()),
        ));
    }
    let ciphertext = decode_field(&envelope.ciphertext, "ciphertext", what)?;
    let secret = derive(password, &salt, log_n, r, p, what)?;
    let cipher = XSalsa20Poly1305::new(secret.as_slice().into());
    let nonce = crypto_secretbox::Nonce::from_slice(&nonce);
    let der = Zeroizing::new(cipher.decrypt(nonce, ciphertext.as_slice()).map_err(|_| {
        TrustError::WrongPassword {
            what: what.to_owned(),
        }
    })?);
    PrivateKey::from_pkcs8_der(&der).map_err(|_| {
        TrustError::key(
            what,
            "the decrypted key is not an ECDSA P-256, P-384 or Ed25519 PKCS#8 key",
        )
    })
}

fn decode_field(text: &str, field: &str, what: &str) -> Result<Vec<u8>, TrustError> {
    STANDARD
        .decode(text.trim())
        .map_err(|e| TrustError::key(what, format!("{field} is not base64: {e}")))
}

fn derive(
    password: &[u8],
    salt: &[u8],
    log_n: u8,
    r: u32,
    p: u32,
    what: &str,
) -> Result<Zeroizing<[u8; 32]>, TrustError> {
    let params = scrypt::Params::new(log_n, r, p, 32)
        .map_err(|e| TrustError::key(what, format!("scrypt parameters: {e}")))?;
    let mut out = Zeroizing::new([0u8; 32]);
    scrypt::scrypt(password, salt, &params, out.as_mut())
        .map_err(|e| TrustError::key(what, format!("scrypt: {e}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyAlgorithm;

    #[test]
    fn round_trip_reads_parameters_from_the_file() {
        for algorithm in [
            KeyAlgorithm::EcdsaP256,
            KeyAlgorithm::EcdsaP384,
            KeyAlgorithm::Ed25519,
        ] {
            let key = PrivateKey::generate(algorithm);
            // A cheap cost for the test: the reader must take N, r, p from the file.
            let text = encrypt_with_cost(&key, b"hunter2", 10, 4, 1).unwrap();
            assert!(text.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"));
            let opened = decrypt(&text, b"hunter2", "test").unwrap();
            assert_eq!(opened.public(), key.public());
            assert!(matches!(
                decrypt(&text, b"hunter3", "test"),
                Err(TrustError::WrongPassword { .. })
            ));
        }
    }

    #[test]
    fn the_envelope_is_cosigns_json() {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256);
        let text = encrypt_with_cost(&key, b"", 10, 8, 1).unwrap();
        let (_, json) = p256::pkcs8::der::pem::decode_vec(text.as_bytes()).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(value["kdf"]["name"], "scrypt");
        assert_eq!(value["kdf"]["params"]["N"], 1024);
        assert_eq!(value["kdf"]["params"]["r"], 8);
        assert_eq!(value["cipher"]["name"], "nacl/secretbox");
        assert_eq!(
            STANDARD
                .decode(value["kdf"]["salt"].as_str().unwrap())
                .unwrap()
                .len(),
            32
        );
        assert_eq!(
            STANDARD
                .decode(value["cipher"]["nonce"].as_str().unwrap())
                .unwrap()
                .len(),
            24
        );
        // The empty password (cosign allows it) works too.
        decrypt(&text, b"", "test").unwrap();
    }

    #[test]
    fn tampered_or_hostile_files_are_refused() {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256);
        let text = encrypt_with_cost(&key, b"pw", 10, 8, 1).unwrap();
        let (_, json) = p256::pkcs8::der::pem::decode_vec(text.as_bytes()).unwrap();
        let mut value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let wrap = |v: &serde_json::Value| {
            p256::pkcs8::der::pem::encode_string(
                PEM_LABEL,
                LineEnding::LF,
                &serde_json::to_vec(v).unwrap(),
            )
            .unwrap()
        };
        // One flipped ciphertext byte: the secretbox tag fails.
        let mut ct = STANDARD
            .decode(value["ciphertext"].as_str().unwrap())
            .unwrap();
        ct[3] ^= 1;
        let mut bent = value.clone();
        bent["ciphertext"] = STANDARD.encode(&ct).into();
        assert!(matches!(
            decrypt(&wrap(&bent), b"pw", "k"),
            Err(TrustError::WrongPassword { .. })
        ));
        // A memory bomb: N = 2^40.
        value["kdf"]["params"]["N"] = (1u64 << 40).into();
        let err = decrypt(&wrap(&value), b"pw", "k").unwrap_err().to_string();
        assert!(err.contains("outside the accepted range"), "{err}");
        value["kdf"]["params"]["N"] = 1000.into();
        assert!(decrypt(&wrap(&value), b"pw", "k")
            .unwrap_err()
            .to_string()
            .contains("power of two"));
        assert!(decrypt("not a key", b"pw", "k")
            .unwrap_err()
            .to_string()
            .contains("not a cosign private key"));
        assert!(decrypt(&wrap(&serde_json::json!({"kdf":1})), b"pw", "k").is_err());
    }
}
