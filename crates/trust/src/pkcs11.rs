//! Keys on PKCS#11 tokens (HSMs, smart cards, YubiKeys, SoftHSM2), named by RFC 7512 URIs as
//! cosign accepts them:
//!
//! ```text
//! pkcs11:token=prod;object=signer?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1234
//! pkcs11:token=prod;object=signer?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/run/pin
//! ```
//!
//! Path attributes (`;`-separated): `token` (label), `serial`, `slot-id`, `object` (key
//! label), `id` (key id, percent-encoded bytes). Query attributes (`&`-separated):
//! `module-path` (the PKCS#11 library), `pin-value`, `pin-source` (a file whose first line is
//! the PIN). Values are percent-decoded.
//!
//! Signing hashes on the host (SHA-256 for P-256, SHA-384 for P-384) and asks the token for
//! plain `CKM_ECDSA` (many tokens lack `CKM_ECDSA_SHA256`); the token's raw `r || s` is
//! re-encoded as the DER signature cosign and OpenSSL expect. Keys generated here are EC
//! P-256, sensitive and not extractable.

use std::fmt;
use std::path::PathBuf;
use std::sync::Mutex;

use cryptoki::context::{CInitializeArgs, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use rand_core::{OsRng, RngCore};
use sha2::Digest as _;
use zeroize::Zeroizing;

use crate::error::TrustError;
use crate::keys::{PublicKey, Signer};

/// DER of the P-256 curve's OID (1.2.840.10045.3.1.7), for `CKA_EC_PARAMS`.
const P256_PARAMS: [u8; 10] = [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];

/// A parsed `pkcs11:` URI.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Pkcs11Uri {
    /// `token=`: the token label.
    pub token: Option<String>,
    /// `serial=`: the token serial number.
    pub serial: Option<String>,
    /// `slot-id=`.
    pub slot_id: Option<u64>,
    /// `object=`: the key label.
    pub object: Option<String>,
    /// `id=`: the key id bytes.
    pub id: Option<Vec<u8>>,
    /// `module-path=`: the PKCS#11 library.
    pub module_path: Option<PathBuf>,
    /// `pin-value=`.
    pin_value: Option<Zeroizing<String>>,
    /// `pin-source=`: a file holding the PIN.
    pub pin_source: Option<PathBuf>,
}

impl fmt::Debug for Pkcs11Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

fn uri_error(reason: impl fmt::Display) -> TrustError {
    TrustError::Pkcs11(format!("bad pkcs11: URI: {reason}"))
}

fn percent_decode(text: &str) -> Result<Vec<u8>, TrustError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| uri_error("a % is not followed by two hex digits"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn decode_text(text: &str, name: &str) -> Result<String, TrustError> {
    String::from_utf8(percent_decode(text)?).map_err(|_| uri_error(format!("{name} is not UTF-8")))
}

impl Pkcs11Uri {
    /// Parses a `pkcs11:` URI.
    pub fn parse(uri: &str) -> Result<Self, TrustError> {
        let rest = uri
            .strip_prefix("pkcs11:")
            .ok_or_else(|| uri_error("it must start with pkcs11:"))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut parsed = Pkcs11Uri::default();
        for part in path.split(';').filter(|p| !p.is_empty()) {
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| uri_error(format!("{part:?} is not name=value")))?;
            match name {
                "token" => parsed.token = Some(decode_text(value, name)?),
                "serial" => parsed.serial = Some(decode_text(value, name)?),
                "object" => parsed.object = Some(decode_text(value, name)?),
                "id" => parsed.id = Some(percent_decode(value)?),
                "slot-id" => {
                    parsed.slot_id = Some(
                        value
                            .parse()
                            .map_err(|_| uri_error(format!("slot-id {value:?} is not a number")))?,
                    )
                }
                // Other RFC 7512 attributes narrow the search; Palisade does not need them.
                "manufacturer"
                | "model"
                | "library-manufacturer"
                | "library-description"
                | "library-version"
                | "slot-description"
                | "slot-manufacturer"
                | "type" => {}
                other => return Err(uri_error(format!("unknown attribute {other:?}"))),
            }
        }
        for part in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| uri_error(format!("{part:?} is not name=value")))?;
            match name {
                "module-path" => {
                    parsed.module_path = Some(PathBuf::from(decode_text(value, name)?))
                }
                "pin-value" => parsed.pin_value = Some(Zeroizing::new(decode_text(value, name)?)),
                "pin-source" => {
                    let source = decode_text(value, name)?;
                    let path = source.strip_prefix("file:").unwrap_or(&source);
                    parsed.pin_source = Some(PathBuf::from(path));
                }
                "module-name" => {
                    return Err(uri_error(
                        "module-name is not supported; give the library with module-path=",
                    ))
                }
                other => return Err(uri_error(format!("unknown query attribute {other:?}"))),
            }
        }
        if parsed.module_path.is_none() {
            return Err(uri_error(
                "no module-path= (the token's PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so)",
            ));
        }
        if parsed.object.is_none() && parsed.id.is_none() {
            return Err(uri_error("name the key with object= or id="));
        }
        Ok(parsed)
    }

    /// The URI without its PIN, for messages and logs.
    pub fn redacted(&self) -> String {
        let mut path = Vec::new();
        if let Some(token) = &self.token {
            path.push(format!("token={token}"));
        }
        if let Some(serial) = &self.serial {
            path.push(format!("serial={serial}"));
        }
        if let Some(slot) = self.slot_id {
            path.push(format!("slot-id={slot}"));
        }
        if let Some(object) = &self.object {
            path.push(format!("object={object}"));
        }
        if let Some(id) = &self.id {
            path.push(format!(
                "id={}",
                id.iter().map(|b| format!("%{b:02X}")).collect::<String>()
            ));
        }
        let mut text = format!("pkcs11:{}", path.join(";"));
        if let Some(module) = &self.module_path {
            text.push_str(&format!("?module-path={}", module.display()));
        }
        text
    }

    fn pin(&self) -> Result<AuthPin, TrustError> {
        if let Some(pin) = &self.pin_value {
            return Ok(AuthPin::new(pin.as_str().into()));
        }
        if let Some(path) = &self.pin_source {
            let text =
                Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                    TrustError::Pkcs11(format!("pin-source {}: {e}", path.display()))
                })?);
            let line = text.lines().next().unwrap_or_default();
            return Ok(AuthPin::new(line.into()));
        }
        Err(TrustError::Pkcs11(
            "no PIN: add pin-value= or pin-source= to the pkcs11: URI".into(),
        ))
    }
}

fn ck(what: &str) -> impl Fn(CkError) -> TrustError + '_ {
    move |e| {
        let reason = match &e {
            CkError::Pkcs11(RvError::PinIncorrect, _) => "wrong PIN".to_owned(),
            CkError::Pkcs11(RvError::PinLocked, _) => "the PIN is locked".to_owned(),
            CkError::LibraryLoading(e) => format!("cannot load the PKCS#11 module: {e}"),
            other => other.to_string(),
        };
        TrustError::Pkcs11(format!("{what}: {reason}"))
    }
}

/// A key on a token: signs there, never leaves it.
pub struct Pkcs11Key {
    uri: Pkcs11Uri,
    session: Mutex<Session>,
    private: ObjectHandle,
    public: PublicKey,
    // Kept so the module stays initialized for the session's life.
    _context: Pkcs11,
}

impl fmt::Debug for Pkcs11Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pkcs11Key({}, {:?})", self.uri.redacted(), self.public)
    }
}

fn open_session(uri: &Pkcs11Uri, read_write: bool) -> Result<(Pkcs11, Session), TrustError> {
    let module = uri
        .module_path
        .as_ref()
        .ok_or_else(|| uri_error("no module-path="))?;
    let context = Pkcs11::new(module).map_err(ck("loading the module"))?;
    match context.initialize(CInitializeArgs::OsThreads) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(ck("initializing the module")(e)),
    }
    let slot = find_slot(&context, uri)?;
    let session = if read_write {
        context.open_rw_session(slot)
    } else {
        context.open_ro_session(slot)
    }
    .map_err(ck("opening a session"))?;
    session
        .login(UserType::User, Some(&uri.pin()?))
        .map_err(ck("logging in to the token"))?;
    Ok((context, session))
}

fn find_slot(context: &Pkcs11, uri: &Pkcs11Uri) -> Result<Slot, TrustError> {
    let slots = context
        .get_slots_with_token()
        .map_err(ck("listing slots"))?;
    let mut labels = Vec::new();
    for slot in slots {
        if uri.slot_id.is_some_and(|id| slot.id() != id) {
            continue;
        }
        let info = context
            .get_token_info(slot)
            .map_err(ck("reading token information"))?;
        let label = info.label().trim_end().to_owned();
        let serial = info.serial_number().trim_end().to_owned();
        let label_ok = uri.token.as_ref().is_none_or(|t| *t == label);
        let serial_ok = uri.serial.as_ref().is_none_or(|s| *s == serial);
        if label_ok && serial_ok {
            return Ok(slot);
        }
        if !label.is_empty() {
            labels.push(label);
        }
    }
    Err(TrustError::Pkcs11(format!(
        "no token {} in {} (tokens there: {})",
        uri.token
            .as_deref()
            .map(|t| format!("{t:?}"))
            .unwrap_or_else(|| "matching the URI".into()),
        uri.module_path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        if labels.is_empty() {
            "none".to_owned()
        } else {
            labels.join(", ")
        }
    )))
}

fn key_template(uri: &Pkcs11Uri, class: ObjectClass) -> Vec<Attribute> {
    let mut template = vec![Attribute::Class(class)];
    if let Some(label) = &uri.object {
        template.push(Attribute::Label(label.as_bytes().to_vec()));
    }
    if let Some(id) = &uri.id {
        template.push(Attribute::Id(id.clone()));
    }
    template
}

fn find_one(
    session: &Session,
    uri: &Pkcs11Uri,
    class: ObjectClass,
) -> Result<Option<ObjectHandle>, TrustError> {
    let found = session
        .find_objects(&key_template(uri, class))
        .map_err(ck("searching the token"))?;
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.first().copied()),
        n => Err(TrustError::Pkcs11(format!(
            "{n} keys match {}; name one with object= and id=",
            uri.redacted()
        ))),
    }
}

/// The public key of an EC public key object.
fn read_public(session: &Session, handle: ObjectHandle) -> Result<PublicKey, TrustError> {
    let attributes = session
        .get_attributes(handle, &[AttributeType::EcPoint])
        .map_err(ck("reading the public key"))?;
    let Some(Attribute::EcPoint(point)) = attributes.into_iter().next() else {
        return Err(TrustError::Pkcs11(
            "the public key has no EC point (not an EC key?)".into(),
        ));
    };
    // CKA_EC_POINT is a DER OCTET STRING around the SEC1 point (some tokens omit the wrap).
    let sec1 = match point.as_slice() {
        [0x04, len, rest @ ..] if usize::from(*len) == rest.len() => rest,
        [0x04, 0x81, len, rest @ ..] if usize::from(*len) == rest.len() => rest,
        raw => raw,
    };
    if let Ok(key) = p256::ecdsa::VerifyingKey::from_sec1_bytes(sec1) {
        return Ok(PublicKey::P256(key));
    }
    if let Ok(key) = p384::ecdsa::VerifyingKey::from_sec1_bytes(sec1) {
        return Ok(PublicKey::P384(key));
    }
    Err(TrustError::Pkcs11(
        "the token's key is not an EC P-256 or P-384 key".into(),
    ))
}

impl Pkcs11Key {
    /// Opens the existing key the URI names (logging in with its PIN).
    pub fn open(uri: &str) -> Result<Self, TrustError> {
        let uri = Pkcs11Uri::parse(uri)?;
        let (context, session) = open_session(&uri, false)?;
        let private = find_one(&session, &uri, ObjectClass::PRIVATE_KEY)?.ok_or_else(|| {
            TrustError::Pkcs11(format!(
                "no private key {} on the token (create one with `palisade key generate --pkcs11`)",
                uri.redacted()
            ))
        })?;
        let public_handle =
            find_one(&session, &uri, ObjectClass::PUBLIC_KEY)?.ok_or_else(|| {
                TrustError::Pkcs11(format!(
                    "no public key object {} on the token",
                    uri.redacted()
                ))
            })?;
        let public = read_public(&session, public_handle)?;
        Ok(Self {
            uri,
            session: Mutex::new(session),
            private,
            public,
            _context: context,
        })
    }

    /// Generates an EC P-256 key pair on the token under the URI's `object=` label (and
    /// `id=`, or a random id), refusing when a key with that name exists.
    pub fn generate(uri: &str) -> Result<Self, TrustError> {
        let mut parsed = Pkcs11Uri::parse(uri)?;
        let (context, session) = open_session(&parsed, true)?;
        if find_one(&session, &parsed, ObjectClass::PRIVATE_KEY)?.is_some() {
            return Err(TrustError::Pkcs11(format!(
                "a key {} already exists on the token; pick another object=",
                parsed.redacted()
            )));
        }
        let id = match &parsed.id {
            Some(id) => id.clone(),
            None => {
                let mut id = vec![0u8; 16];
                OsRng.fill_bytes(&mut id);
                id
            }
        };
        let label = parsed.object.clone().unwrap_or_default().into_bytes();
        let public_template = [
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::KeyType(KeyType::EC),
            Attribute::EcParams(P256_PARAMS.to_vec()),
            Attribute::Verify(true),
            Attribute::Label(label.clone()),
            Attribute::Id(id.clone()),
        ];
        let private_template = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::KeyType(KeyType::EC),
            Attribute::Sign(true),
            Attribute::Label(label),
            Attribute::Id(id.clone()),
        ];
        let (public_handle, private) = session
            .generate_key_pair(
                &Mechanism::EccKeyPairGen,
                &public_template,
                &private_template,
            )
            .map_err(ck("generating an EC P-256 key pair"))?;
        let public = read_public(&session, public_handle)?;
        parsed.id = Some(id);
        Ok(Self {
            uri: parsed,
            session: Mutex::new(session),
            private,
            public,
            _context: context,
        })
    }

    /// The URI, without its PIN.
    pub fn describe(&self) -> String {
        self.uri.redacted()
    }
}

impl Signer for Pkcs11Key {
    fn public_key(&self) -> Result<PublicKey, TrustError> {
        Ok(self.public.clone())
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, TrustError> {
        let digest = match self.public {
            PublicKey::P384(_) => sha2::Sha384::digest(message).to_vec(),
            _ => sha2::Sha256::digest(message).to_vec(),
        };
        let raw = {
            let session = self
                .session
                .lock()
                .map_err(|_| TrustError::Pkcs11("the token session is unusable".into()))?;
            session
                .sign(&Mechanism::Ecdsa, self.private, &digest)
                .map_err(ck("signing on the token"))?
        };
        let der = match self.public {
            PublicKey::P384(_) => {
                p384::ecdsa::Signature::from_slice(&raw).map(|s| s.to_der().as_bytes().to_vec())
            }
            _ => p256::ecdsa::Signature::from_slice(&raw).map(|s| s.to_der().as_bytes().to_vec()),
        }
        .map_err(|_| {
            TrustError::Pkcs11(format!(
                "the token returned a {}-byte ECDSA signature, not r || s",
                raw.len()
            ))
        })?;
        // Never hand out a signature the public key does not accept.
        self.public.verify(message, &der)?;
        Ok(der)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cosign_style_uris() {
        let uri = Pkcs11Uri::parse(
            "pkcs11:token=prod;object=my%20signer;id=%01%02?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=12%334",
        )
        .unwrap();
        assert_eq!(uri.token.as_deref(), Some("prod"));
        assert_eq!(uri.object.as_deref(), Some("my signer"));
        assert_eq!(uri.id.as_deref(), Some(&[1u8, 2][..]));
        assert_eq!(uri.pin_value.as_deref().map(String::as_str), Some("1234"));
        let shown = uri.redacted();
        assert!(!shown.contains("1234") && !shown.contains("pin"), "{shown}");
        let uri =
            Pkcs11Uri::parse("pkcs11:token=t;object=o?module-path=/m.so&pin-source=file:/run/pin")
                .unwrap();
        assert_eq!(uri.pin_source, Some(PathBuf::from("/run/pin")));
        for bad in [
            "pkcs12:token=a",
            "pkcs11:token=a;object=b",
            "pkcs11:token=a?module-path=/m.so",
            "pkcs11:token=a;object=b;bogus=1?module-path=/m.so",
            "pkcs11:token=a;object=%zz?module-path=/m.so",
            "pkcs11:token=a;object=b?module-path=/m.so&what=1",
        ] {
            assert!(Pkcs11Uri::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_missing_module_is_a_clear_error() {
        let err =
            Pkcs11Key::open("pkcs11:token=a;object=b?module-path=/nonexistent/lib.so&pin-value=1")
                .unwrap_err()
                .to_string();
        assert!(err.contains("cannot load the PKCS#11 module"), "{err}");
    }
}
