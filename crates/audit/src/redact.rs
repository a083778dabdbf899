//! A wrapper that keeps secrets out of the audit log and out of any other output.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The text every [`Redacted`] value prints and serializes as.
pub const REDACTED: &str = "[redacted]";

/// A secret (token, password, private key material) that must never be written anywhere.
///
/// `Display`, `Debug` and `Serialize` all produce `"[redacted]"`, whatever `T` holds, so a
/// secret that reaches an audit event, a `format!` or a `tracing` field stays hidden. Callers
/// that handle tokens or passwords keep them in a `Redacted` from the moment they are parsed
/// (it deserializes as the plain `T`, so config and request structs can hold one directly) and
/// only reach the value through [`Redacted::expose_secret`] where it is really needed.
///
/// It deliberately implements neither `PartialEq` nor `Hash`: comparing secrets belongs in a
/// constant-time function next to the code that checks them.
#[derive(Clone, Default)]
pub struct Redacted<T>(T);

impl<T> Redacted<T> {
    /// Wraps a secret.
    pub fn new(secret: T) -> Redacted<T> {
        Redacted(secret)
    }

    /// The secret itself. Never pass the result to a log, an event or an error message.
    pub fn expose_secret(&self) -> &T {
        &self.0
    }

    /// Unwraps the secret. The same warning as [`Redacted::expose_secret`] applies.
    pub fn into_secret(self) -> T {
        self.0
    }
}

impl<T> From<T> for Redacted<T> {
    fn from(secret: T) -> Redacted<T> {
        Redacted(secret)
    }
}

impl<T> fmt::Display for Redacted<T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(REDACTED)
    }
}

impl<T> fmt::Debug for Redacted<T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(REDACTED)
    }
}

impl<T> Serialize for Redacted<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Redacted<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Redacted<T>, D::Error> {
        T::deserialize(deserializer).map(Redacted)
    }
}

impl<T> From<Redacted<T>> for serde_json::Value {
    /// The JSON an audit event holds for a secret: the string `"[redacted]"`, so
    /// `fields.insert("token".into(), Redacted::new(token).into())` is safe.
    fn from(_: Redacted<T>) -> serde_json::Value {
        serde_json::Value::String(REDACTED.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "ghp_very-secret-token";

    #[test]
    fn every_output_form_hides_the_secret() {
        let secret = Redacted::new(TOKEN.to_owned());
        let outputs = [
            secret.to_string(),
            format!("{secret:?}"),
            format!("{secret:#?}"),
            format!("{:?}", Some(&secret)),
            serde_json::to_string(&secret).unwrap(),
            serde_json::Value::from(secret.clone()).to_string(),
        ];
        for output in outputs {
            assert!(!output.contains(TOKEN), "{output}");
            assert!(output.contains(REDACTED), "{output}");
        }
        assert_eq!(secret.expose_secret(), TOKEN);
    }

    #[test]
    fn nested_in_a_serialized_struct_it_stays_hidden() {
        #[derive(Serialize, Deserialize, Debug)]
        struct Credentials {
            user: String,
            password: Redacted<String>,
        }
        let parsed: Credentials =
            serde_json::from_str(&format!(r#"{{"user":"alice","password":"{TOKEN}"}}"#)).unwrap();
        assert_eq!(parsed.password.expose_secret(), TOKEN);
        let written = serde_json::to_string(&parsed).unwrap();
        assert_eq!(written, r#"{"user":"alice","password":"[redacted]"}"#);
        assert!(!format!("{parsed:?}").contains(TOKEN));
    }
}
