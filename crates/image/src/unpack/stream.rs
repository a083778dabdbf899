//! The byte stream under the tar reader: compression detected by magic, every byte counted,
//! and the limits enforced as the bytes arrive, so a bomb stops at the limit, not at the disk.
//!
//! The readers record what went wrong (the source failed, the decoder failed, a limit was hit,
//! the stream ended) so that an error the tar crate wraps can still be told apart.

use std::cell::Cell;
use std::io::{self, Read};

use super::report::Compression;
use super::{UnpackError, UnpackOptions};

/// Most bytes the tar reader may consume for one entry's headers: its GNU long name and long
/// link, PAX records (xattrs included) and GNU sparse maps. The tar crate keeps these in memory.
pub(super) const HEADER_LIMIT: u64 = 1 << 20;

/// The compression ratio is only checked past this many uncompressed bytes: small layers of
/// zeros legitimately compress very well.
const RATIO_GRACE_BYTES: u64 = 64 << 20;

/// zstd frames may ask for a window of up to 2^27 bytes (128 MiB), zstd's own default cap.
const ZSTD_WINDOW_LOG_MAX: u32 = 27;

/// The limit a reader stopped at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Limit {
    TotalBytes,
    Ratio,
    Header,
}

/// What the readers saw; shared by reference between them and the extractor.
#[derive(Debug, Default)]
pub(super) struct Counters {
    compressed: Cell<u64>,
    uncompressed: Cell<u64>,
    source_failed: Cell<bool>,
    decoder_failed: Cell<bool>,
    ended: Cell<bool>,
    limit_hit: Cell<Option<Limit>>,
    header_budget: Cell<Option<u64>>,
}

impl Counters {
    /// Bytes read from the source so far.
    pub(super) fn compressed(&self) -> u64 {
        self.compressed.get()
    }

    /// Bytes of the uncompressed stream so far.
    pub(super) fn uncompressed(&self) -> u64 {
        self.uncompressed.get()
    }

    /// Whether the uncompressed stream has reported its end.
    pub(super) fn ended(&self) -> bool {
        self.ended.get()
    }

    /// Starts counting header bytes against [`HEADER_LIMIT`] (call before asking the tar reader
    /// for the next entry).
    pub(super) fn start_header(&self) {
        self.header_budget.set(Some(HEADER_LIMIT));
    }

    /// Stops counting header bytes.
    pub(super) fn end_header(&self) {
        self.header_budget.set(None);
    }

    /// Turns an error from reading the stream into the error the caller should see.
    pub(super) fn classify(&self, error: io::Error, opts: &UnpackOptions) -> UnpackError {
        match self.limit_hit.get() {
            Some(Limit::TotalBytes) => UnpackError::TooLarge {
                limit: opts.max_total_bytes,
            },
            Some(Limit::Ratio) => UnpackError::CompressionRatio {
                limit: opts.max_compression_ratio.unwrap_or_default(),
            },
            Some(Limit::Header) => UnpackError::HeaderTooLarge {
                limit: HEADER_LIMIT,
            },
            None if self.source_failed.get() => UnpackError::Read { source: error },
            None if self.decoder_failed.get() => {
                if error.kind() == io::ErrorKind::UnexpectedEof {
                    UnpackError::Truncated {
                        detail: "the compressed stream ends early",
                    }
                } else {
                    UnpackError::Decompress { source: error }
                }
            }
            None if self.ended.get() => UnpackError::Truncated {
                detail: "the archive ends inside an entry",
            },
            None => UnpackError::MalformedArchive { source: error },
        }
    }
}

/// The caller's reader, counted.
struct Source<'c, R> {
    inner: R,
    counters: &'c Counters,
}

impl<R: Read> Read for Source<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(read) => {
                self.counters
                    .compressed
                    .set(self.counters.compressed.get() + read as u64);
                Ok(read)
            }
            Err(error) => {
                if error.kind() != io::ErrorKind::Interrupted {
                    self.counters.source_failed.set(true);
                }
                Err(error)
            }
        }
    }
}

/// The uncompressed stream the tar reader consumes, with the limits enforced.
pub(super) struct Decoded<'c> {
    inner: Box<dyn Read + 'c>,
    counters: &'c Counters,
    compressed: bool,
    max_total_bytes: u64,
    max_ratio: Option<u64>,
}

impl std::fmt::Debug for Decoded<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoded")
            .field("counters", self.counters)
            .finish_non_exhaustive()
    }
}

impl Decoded<'_> {
    fn stop(&self, limit: Limit) -> io::Error {
        self.counters.limit_hit.set(Some(limit));
        io::Error::other("layer limit reached")
    }
}

impl Read for Decoded<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = match self.inner.read(buf) {
            Ok(read) => read,
            Err(error) => {
                if self.compressed
                    && !self.counters.source_failed.get()
                    && error.kind() != io::ErrorKind::Interrupted
                {
                    self.counters.decoder_failed.set(true);
                }
                return Err(error);
            }
        };
        if read == 0 {
            if !buf.is_empty() {
                self.counters.ended.set(true);
            }
            return Ok(0);
        }
        let total = self.counters.uncompressed.get() + read as u64;
        self.counters.uncompressed.set(total);
        if total > self.max_total_bytes {
            return Err(self.stop(Limit::TotalBytes));
        }
        if let Some(ratio) = self.max_ratio.filter(|_| self.compressed) {
            let allowed = self.counters.compressed.get().saturating_mul(ratio);
            if total > RATIO_GRACE_BYTES && total > allowed {
                return Err(self.stop(Limit::Ratio));
            }
        }
        if let Some(budget) = self.counters.header_budget.get() {
            match budget.checked_sub(read as u64) {
                Some(left) => self.counters.header_budget.set(Some(left)),
                None => return Err(self.stop(Limit::Header)),
            }
        }
        Ok(read)
    }
}

/// Reads the first bytes of `reader`, picks the decoder they call for, and returns the
/// uncompressed stream.
pub(super) fn open<'c, R: Read + 'c>(
    reader: R,
    counters: &'c Counters,
    opts: &UnpackOptions,
) -> Result<(Compression, Decoded<'c>), UnpackError> {
    let mut source = Source {
        inner: reader,
        counters,
    };
    let mut magic = [0u8; 6];
    let mut len = 0;
    while len < magic.len() {
        match source.read(&mut magic[len..]) {
            Ok(0) => break,
            Ok(read) => len += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => return Err(UnpackError::Read { source }),
        }
    }
    let compression = detect(&magic[..len])?;
    let stream = io::Cursor::new(magic).take(len as u64).chain(source);
    let inner: Box<dyn Read + 'c> = match compression {
        Compression::Uncompressed => Box::new(stream),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(stream)),
        Compression::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::new(stream)
                .map_err(|source| UnpackError::Decompress { source })?;
            decoder
                .window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(|source| UnpackError::Decompress { source })?;
            Box::new(decoder)
        }
    };
    let decoded = Decoded {
        inner,
        counters,
        compressed: compression != Compression::Uncompressed,
        max_total_bytes: opts.max_total_bytes,
        max_ratio: opts.max_compression_ratio,
    };
    Ok((compression, decoded))
}

/// The compression the first bytes announce.
fn detect(magic: &[u8]) -> Result<Compression, UnpackError> {
    const GZIP: &[u8] = &[0x1f, 0x8b];
    const ZSTD: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
    const XZ: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0];
    if magic.starts_with(GZIP) {
        Ok(Compression::Gzip)
    } else if magic.starts_with(ZSTD) {
        Ok(Compression::Zstd)
    } else if magic.starts_with(XZ) {
        Err(UnpackError::UnsupportedCompression { format: "xz" })
    } else if magic.len() >= 4 && magic.starts_with(b"BZh") && (b'1'..=b'9').contains(&magic[3]) {
        Err(UnpackError::UnsupportedCompression { format: "bzip2" })
    } else {
        Ok(Compression::Uncompressed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn detects_by_magic() {
        assert_eq!(detect(&[0x1f, 0x8b, 8, 0]).unwrap(), Compression::Gzip);
        assert_eq!(
            detect(&[0x28, 0xb5, 0x2f, 0xfd, 0]).unwrap(),
            Compression::Zstd
        );
        assert_eq!(detect(b"etc/pa").unwrap(), Compression::Uncompressed);
        assert_eq!(detect(b"").unwrap(), Compression::Uncompressed);
        assert!(matches!(
            detect(&[0xfd, b'7', b'z', b'X', b'Z', 0]),
            Err(UnpackError::UnsupportedCompression { format: "xz" })
        ));
        assert!(matches!(
            detect(b"BZh91AY"),
            Err(UnpackError::UnsupportedCompression { format: "bzip2" })
        ));
    }

    fn read_all(data: &[u8], opts: &UnpackOptions) -> Result<Vec<u8>, UnpackError> {
        let counters = Counters::default();
        let (_, mut decoded) = open(data, &counters, opts)?;
        let mut out = Vec::new();
        decoded
            .read_to_end(&mut out)
            .map_err(|error| counters.classify(error, opts))?;
        Ok(out)
    }

    #[test]
    fn gzip_and_zstd_round_trip() {
        let plain = b"hello layer".repeat(100);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::stream::encode_all(&plain[..], 1).unwrap();
        let opts = UnpackOptions::default();
        assert_eq!(read_all(&gz, &opts).unwrap(), plain);
        assert_eq!(read_all(&zst, &opts).unwrap(), plain);
        assert_eq!(read_all(&plain, &opts).unwrap(), plain);
    }

    #[test]
    fn total_limit_stops_the_stream() {
        let opts = UnpackOptions {
            max_total_bytes: 1000,
            ..UnpackOptions::default()
        };
        let err = read_all(&[b'x'; 5000], &opts).unwrap_err();
        assert!(
            matches!(err, UnpackError::TooLarge { limit: 1000 }),
            "{err:?}"
        );
    }

    #[test]
    fn truncated_compressed_streams_are_reported_as_truncated() {
        let plain = vec![7u8; 100_000];
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::stream::encode_all(&plain[..], 1).unwrap();
        let opts = UnpackOptions::default();
        for data in [
            &gz[..gz.len() - 4],
            &gz[..gz.len() / 2],
            &zst[..zst.len() - 3],
        ] {
            let err = read_all(data, &opts).unwrap_err();
            assert!(matches!(err, UnpackError::Truncated { .. }), "{err:?}");
        }
    }
}
