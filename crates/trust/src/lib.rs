//! Image trust for Palisade: signatures in cosign's formats, signing keys in files and
//! PKCS#11 tokens, and the trust policy that decides which images may run.
//!
//! - [`keys`]: ECDSA P-256/P-384 and Ed25519 keys, PEM SPKI public keys, fingerprints;
//!   [`encrypted`]: cosign's encrypted private key file.
//! - [`sign_image`] writes cosign's tag form or the OCI 1.1 referrer form (Sigstore bundle);
//!   [`verify_image`] checks both against a [`Requirement`] and returns a [`Verdict`].
//! - [`SignatureSource`] is all verification reads: a registry ([`RegistrySource`]), the
//!   local cache ([`CachedSource`]), or a registry server's own storage.

#![forbid(unsafe_code)]

pub mod encrypted;
mod error;
pub mod formats;
mod gate;
pub mod keys;
pub mod memory;
pub mod pkcs11;
pub mod policy;
mod sign;
mod source;
mod verify;

pub use error::TrustError;
pub use gate::{check_registry_image, check_stored_image, Audit, Decision, TrustStore};
pub use keys::{Fingerprint, KeyAlgorithm, PrivateKey, PublicKey, Signer};
pub use policy::Policy;
pub use sign::{sign_image, SignReport, SignatureSink};
pub use source::{CachedSource, RecordingSource, RegistrySource, SignatureSource};
pub use verify::{
    verify_image, FoundSignature, ImageId, Requirement, SignatureForm, TrustedKey, Verdict,
};
