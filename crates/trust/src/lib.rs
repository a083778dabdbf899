//! Image trust for Palisade: signatures in cosign's formats, signing keys in files and
//! PKCS#11 tokens, and the trust policy that decides which images may run.

#![forbid(unsafe_code)]

pub mod encrypted;
mod error;
pub mod keys;

pub use error::TrustError;
pub use keys::{Fingerprint, KeyAlgorithm, PrivateKey, PublicKey, Signer};
