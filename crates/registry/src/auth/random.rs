//! Random secrets from the operating system.

use base64::Engine;
use rand_core::{OsRng, RngCore};

/// 32 random bytes.
pub(crate) fn random_bytes() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

/// 256 random bits as unpadded base64url (43 characters).
pub(crate) fn random_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes())
}
