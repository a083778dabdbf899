//! Content digests (`sha256:<64 hex>`, `sha512:<128 hex>`) and streams that hash what passes
//! through them.
//!
//! A [`Digest`] is only ever built from a string that passed strict validation (a supported
//! algorithm, lowercase hex of exactly the right length) or from a hash this module computed, so
//! a `Digest` in hand is always safe to use as a file name under `blobs/<alg>/`.
//!
//! [`VerifyingReader`] is how untrusted bytes are read: it hashes while streaming and fails at
//! end of input (or as soon as the data runs past the expected size) when the bytes are not the
//! ones the digest names. Callers must read it to the end before trusting anything they read.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256, Sha512};

/// The hash algorithms a [`Digest`] may use (the two the OCI image spec registers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DigestAlgorithm {
    /// SHA-256, the default for everything Palisade writes.
    Sha256,
    /// SHA-512.
    Sha512,
}

impl DigestAlgorithm {
    /// The name used in digest strings and as the directory under `blobs/`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Sha512 => "sha512",
        }
    }

    /// The number of hex characters of an encoded digest.
    pub fn hex_len(self) -> usize {
        match self {
            Self::Sha256 => 64,
            Self::Sha512 => 128,
        }
    }

    /// Every supported algorithm.
    pub fn all() -> [DigestAlgorithm; 2] {
        [Self::Sha256, Self::Sha512]
    }

    /// Looks up an algorithm by its name (`sha256`, `sha512`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "sha256" => Some(Self::Sha256),
            "sha512" => Some(Self::Sha512),
            _ => None,
        }
    }
}

impl fmt::Display for DigestAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a string is not a valid digest, or why data did not match one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// No `algorithm:` prefix.
    #[error("invalid digest {input:?}: expected <algorithm>:<hex>")]
    MissingAlgorithm {
        /// The rejected input (cut to 80 characters).
        input: String,
    },
    /// An algorithm other than sha256 or sha512.
    #[error("unsupported digest algorithm {algorithm:?}: only sha256 and sha512 are accepted")]
    UnsupportedAlgorithm {
        /// The rejected algorithm (cut to 80 characters).
        algorithm: String,
    },
    /// The hex part has the wrong length for its algorithm.
    #[error("invalid {algorithm} digest: expected {expected} hex characters, found {found}")]
    BadLength {
        /// The algorithm named by the digest.
        algorithm: DigestAlgorithm,
        /// The length the algorithm needs.
        expected: usize,
        /// The length found.
        found: usize,
    },
    /// The hex part has a character other than `0-9a-f`.
    #[error("invalid {algorithm} digest: {character:?} is not a lowercase hex digit")]
    BadHex {
        /// The algorithm named by the digest.
        algorithm: DigestAlgorithm,
        /// The first offending character.
        character: char,
    },
    /// Data hashed to another digest than the one expected.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    Mismatch {
        /// The digest the data should have had.
        expected: Digest,
        /// The digest the data has.
        actual: Digest,
    },
    /// Data had another length than the one expected.
    #[error("size mismatch for {digest}: expected {expected} bytes, got {actual}{more}", more = if *.exceeded { " or more" } else { "" })]
    SizeMismatch {
        /// The digest the data should have had.
        digest: Digest,
        /// The expected size.
        expected: u64,
        /// The size seen so far.
        actual: u64,
        /// Whether reading stopped early because the data ran past the expected size.
        exceeded: bool,
    },
}

fn shorten(input: &str) -> String {
    input.chars().take(80).collect()
}

/// A validated content digest such as `sha256:e3b0c442...`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: DigestAlgorithm,
    hex: Box<str>,
}

impl Digest {
    /// Parses `algorithm:hex`, accepting only sha256/sha512 with lowercase hex of the exact
    /// length.
    pub fn parse(input: &str) -> Result<Self, DigestError> {
        let (algorithm, hex) =
            input
                .split_once(':')
                .ok_or_else(|| DigestError::MissingAlgorithm {
                    input: shorten(input),
                })?;
        let algorithm = DigestAlgorithm::from_name(algorithm).ok_or_else(|| {
            DigestError::UnsupportedAlgorithm {
                algorithm: shorten(algorithm),
            }
        })?;
        Self::from_parts(algorithm, hex)
    }

    /// Builds a digest from an algorithm and its hex encoding, with the same checks as
    /// [`Digest::parse`].
    pub fn from_parts(algorithm: DigestAlgorithm, hex: &str) -> Result<Self, DigestError> {
        if let Some(character) = hex.chars().find(|c| !matches!(c, '0'..='9' | 'a'..='f')) {
            return Err(DigestError::BadHex {
                algorithm,
                character,
            });
        }
        if hex.len() != algorithm.hex_len() {
            return Err(DigestError::BadLength {
                algorithm,
                expected: algorithm.hex_len(),
                found: hex.len(),
            });
        }
        Ok(Self {
            algorithm,
            hex: hex.into(),
        })
    }

    /// The sha256 digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self::of_with(DigestAlgorithm::Sha256, bytes)
    }

    /// The digest of `bytes` with the given algorithm.
    pub fn of_with(algorithm: DigestAlgorithm, bytes: &[u8]) -> Self {
        let mut hasher = Hasher::new(algorithm);
        hasher.update(bytes);
        hasher.finish()
    }

    /// The algorithm.
    pub fn algorithm(&self) -> DigestAlgorithm {
        self.algorithm
    }

    /// The lowercase hex encoding of the hash.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The first 12 hex characters, as Docker shows image ids.
    pub fn short(&self) -> &str {
        &self.hex[..12]
    }

    /// Whether `bytes` hash to this digest.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        Self::of_with(self.algorithm, bytes) == *self
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl TryFrom<&oci_spec::image::Digest> for Digest {
    type Error = DigestError;

    fn try_from(value: &oci_spec::image::Digest) -> Result<Self, Self::Error> {
        Self::parse(value.as_ref())
    }
}

impl TryFrom<&Digest> for oci_spec::image::Digest {
    type Error = oci_spec::OciSpecError;

    fn try_from(value: &Digest) -> Result<Self, Self::Error> {
        oci_spec::image::Digest::from_str(&value.to_string())
    }
}

/// An incremental hasher for one [`DigestAlgorithm`].
#[derive(Clone, Debug)]
pub struct Hasher {
    state: HasherState,
}

#[derive(Clone, Debug)]
enum HasherState {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    /// A hasher for `algorithm`.
    pub fn new(algorithm: DigestAlgorithm) -> Self {
        let state = match algorithm {
            DigestAlgorithm::Sha256 => HasherState::Sha256(Sha256::new()),
            DigestAlgorithm::Sha512 => HasherState::Sha512(Sha512::new()),
        };
        Self { state }
    }

    /// The algorithm this hasher computes.
    pub fn algorithm(&self) -> DigestAlgorithm {
        match self.state {
            HasherState::Sha256(_) => DigestAlgorithm::Sha256,
            HasherState::Sha512(_) => DigestAlgorithm::Sha512,
        }
    }

    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match &mut self.state {
            HasherState::Sha256(h) => h.update(bytes),
            HasherState::Sha512(h) => h.update(bytes),
        }
    }

    /// The digest of everything fed so far.
    pub fn finish(self) -> Digest {
        let (algorithm, hex) = match self.state {
            HasherState::Sha256(h) => (DigestAlgorithm::Sha256, hex::encode(h.finalize()).into()),
            HasherState::Sha512(h) => (DigestAlgorithm::Sha512, hex::encode(h.finalize()).into()),
        };
        Digest { algorithm, hex }
    }
}

/// A writer that hashes and counts everything written through it to the inner writer.
#[derive(Debug)]
pub struct DigestWriter<W> {
    inner: W,
    hasher: Hasher,
    written: u64,
}

impl<W: Write> DigestWriter<W> {
    /// Hashes with sha256.
    pub fn new(inner: W) -> Self {
        Self::with_algorithm(inner, DigestAlgorithm::Sha256)
    }

    /// Hashes with `algorithm`.
    pub fn with_algorithm(inner: W, algorithm: DigestAlgorithm) -> Self {
        Self {
            inner,
            hasher: Hasher::new(algorithm),
            written: 0,
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The inner writer.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// Returns the inner writer, the digest and the number of bytes written.
    pub fn finish(self) -> (W, Digest, u64) {
        (self.inner, self.hasher.finish(), self.written)
    }
}

impl<W: Write> Write for DigestWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes and counts everything read through it, with no expectation.
#[derive(Debug)]
pub struct DigestReader<R> {
    inner: R,
    hasher: Hasher,
    read: u64,
}

impl<R: Read> DigestReader<R> {
    /// Hashes with `algorithm`.
    pub fn new(inner: R, algorithm: DigestAlgorithm) -> Self {
        Self {
            inner,
            hasher: Hasher::new(algorithm),
            read: 0,
        }
    }

    /// The digest and length of everything read so far.
    pub fn finish(self) -> (Digest, u64) {
        (self.hasher.finish(), self.read)
    }
}

impl<R: Read> Read for DigestReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

/// A reader that checks its data against a digest (and optionally a size) while streaming.
///
/// Reading past `expected_size` fails immediately; at end of input the digest and size are
/// checked and a mismatch is returned as an [`io::ErrorKind::InvalidData`] error whose inner
/// error is a [`DigestError`]. Only a read that returned `Ok(0)` proves the data was right.
#[derive(Debug)]
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Option<Hasher>,
    expected: Digest,
    expected_size: Option<u64>,
    read: u64,
}

impl<R: Read> VerifyingReader<R> {
    /// Checks `inner` against `expected` (and `expected_size` when given).
    pub fn new(inner: R, expected: Digest, expected_size: Option<u64>) -> Self {
        Self {
            inner,
            hasher: Some(Hasher::new(expected.algorithm())),
            expected,
            expected_size,
            read: 0,
        }
    }

    /// The digest the data must hash to.
    pub fn expected(&self) -> &Digest {
        &self.expected
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// Whether the whole stream was read and matched.
    pub fn is_verified(&self) -> bool {
        self.hasher.is_none()
    }

    /// The inner reader.
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn fail(&self, error: DigestError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, error)
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let Some(hasher) = self.hasher.as_mut() else {
            // Already verified at end of input.
            return Ok(0);
        };
        let n = self.inner.read(buf)?;
        if n > 0 {
            hasher.update(&buf[..n]);
            self.read += n as u64;
            if let Some(expected) = self.expected_size {
                if self.read > expected {
                    return Err(self.fail(DigestError::SizeMismatch {
                        digest: self.expected.clone(),
                        expected,
                        actual: self.read,
                        exceeded: true,
                    }));
                }
            }
            return Ok(n);
        }
        let Some(hasher) = self.hasher.take() else {
            return Ok(0);
        };
        if let Some(expected) = self.expected_size {
            if self.read != expected {
                return Err(self.fail(DigestError::SizeMismatch {
                    digest: self.expected.clone(),
                    expected,
                    actual: self.read,
                    exceeded: false,
                }));
            }
        }
        let actual = hasher.finish();
        if actual != self.expected {
            return Err(self.fail(DigestError::Mismatch {
                expected: self.expected.clone(),
                actual,
            }));
        }
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_displays() {
        let d = Digest::parse(EMPTY).unwrap();
        assert_eq!(d.algorithm(), DigestAlgorithm::Sha256);
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(d.short(), "e3b0c44298fc");
        assert_eq!(Digest::of(b""), d);
        assert!(d.matches(b""));
        let s512 = Digest::of_with(DigestAlgorithm::Sha512, b"abc");
        assert_eq!(s512.hex().len(), 128);
        assert_eq!(Digest::parse(&s512.to_string()).unwrap(), s512);
    }

    #[test]
    fn rejects_bad_digests() {
        let cases = [
            ("", "MissingAlgorithm"),
            (
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                "Missing",
            ),
            ("md5:d41d8cd98f00b204e9800998ecf8427e", "Unsupported"),
            (
                "SHA256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                "Unsupported",
            ),
            (
                "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
                "BadHex",
            ),
            ("sha256:e3b0", "BadLength"),
            (
                "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8555",
                "BadLength",
            ),
            ("sha256:../../../../etc/passwd", "BadHex"),
            (
                "sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                "BadLength",
            ),
            (
                "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85g",
                "BadHex",
            ),
        ];
        for (input, kind) in cases {
            let err = Digest::parse(input).unwrap_err();
            assert!(format!("{err:?}").contains(kind), "{input}: {err:?}");
        }
    }

    #[test]
    fn serde_round_trip_and_rejects() {
        let d = Digest::of(b"x");
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
        assert!(serde_json::from_str::<Digest>("\"sha256:abc\"").is_err());
    }

    #[test]
    fn oci_spec_conversion() {
        let d = Digest::of(b"x");
        let oci = oci_spec::image::Digest::try_from(&d).unwrap();
        assert_eq!(Digest::try_from(&oci).unwrap(), d);
    }

    #[test]
    fn writer_hashes_and_counts() {
        let mut w = DigestWriter::new(Vec::new());
        w.write_all(b"hello ").unwrap();
        w.write_all(b"world").unwrap();
        let (inner, digest, n) = w.finish();
        assert_eq!(inner, b"hello world");
        assert_eq!(n, 11);
        assert_eq!(digest, Digest::of(b"hello world"));
    }

    #[test]
    fn verifying_reader_accepts_good_data() {
        let data = b"some blob".to_vec();
        let mut r = VerifyingReader::new(&data[..], Digest::of(&data), Some(9));
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
        assert!(r.is_verified());
    }

    #[test]
    fn verifying_reader_fails_at_eof_on_wrong_data() {
        let mut r = VerifyingReader::new(&b"tampered"[..], Digest::of(b"original"), None);
        let err = r.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("digest mismatch"), "{err}");
    }

    #[test]
    fn verifying_reader_stops_when_too_long() {
        let data = vec![0u8; 100_000];
        let mut r = VerifyingReader::new(&data[..], Digest::of(&data), Some(10));
        let err = r.read_to_end(&mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("or more"), "{err}");
        let mut short = VerifyingReader::new(&data[..5], Digest::of(&data[..5]), Some(10));
        let err = short.read_to_end(&mut Vec::new()).unwrap_err();
        assert!(
            err.to_string().contains("expected 10 bytes, got 5"),
            "{err}"
        );
    }

    #[test]
    fn digest_reader_hashes() {
        let mut r = DigestReader::new(&b"abc"[..], DigestAlgorithm::Sha512);
        io::copy(&mut r, &mut io::sink()).unwrap();
        let (d, n) = r.finish();
        assert_eq!(n, 3);
        assert_eq!(d, Digest::of_with(DigestAlgorithm::Sha512, b"abc"));
    }
}
