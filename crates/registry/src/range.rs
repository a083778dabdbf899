//! `Content-Range` of upload chunks and `Range` of blob reads.

/// An inclusive byte range `start-end` of a chunk (`Content-Range: <start>-<end>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRange {
    /// First byte offset.
    pub start: u64,
    /// Last byte offset (inclusive).
    pub end: u64,
}

impl ChunkRange {
    /// Parses `<start>-<end>` (also accepting a `bytes ` or `bytes=` prefix and a `/<total>`
    /// suffix, which some clients send). `end` must not be before `start`.
    pub fn parse(input: &str) -> Option<Self> {
        let s = input.trim();
        let s = s
            .strip_prefix("bytes=")
            .or_else(|| s.strip_prefix("bytes "))
            .unwrap_or(s);
        let s = s.split_once('/').map_or(s, |(r, _)| r);
        let (a, b) = s.split_once('-')?;
        let start = parse_u64(a)?;
        let end = parse_u64(b)?;
        (end >= start).then_some(Self { start, end })
    }

    /// The number of bytes the range covers.
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    /// Never empty (`end >= start`); present for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// A blob read range, resolved against the blob's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `[start, end]` inclusive, within the blob.
    Satisfiable { start: u64, end: u64 },
    /// Outside the blob.
    Unsatisfiable,
}

/// Parses a `Range: bytes=a-b | a- | -n` header against a blob of `size` bytes. `None` when the
/// header is not a single byte range we understand (the whole blob is served then, as RFC 9110
/// allows).
pub fn parse_range(header: &str, size: u64) -> Option<ByteRange> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.trim().split_once('-')?;
    let r = if a.is_empty() {
        let n = parse_u64(b)?;
        if n == 0 || size == 0 {
            ByteRange::Unsatisfiable
        } else {
            ByteRange::Satisfiable {
                start: size.saturating_sub(n),
                end: size - 1,
            }
        }
    } else {
        let start = parse_u64(a)?;
        let end = if b.is_empty() {
            u64::MAX
        } else {
            parse_u64(b)?
        };
        if end < start {
            return None;
        }
        if start >= size {
            ByteRange::Unsatisfiable
        } else {
            ByteRange::Satisfiable {
                start,
                end: end.min(size - 1),
            }
        }
    };
    Some(r)
}

fn parse_u64(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_ranges() {
        assert_eq!(
            ChunkRange::parse("0-9"),
            Some(ChunkRange { start: 0, end: 9 })
        );
        assert_eq!(
            ChunkRange::parse("bytes 10-19/*").map(|r| r.len()),
            Some(10)
        );
        for bad in [
            "",
            "-",
            "5-4",
            "a-b",
            "1-",
            "-1",
            "+1-2",
            "99999999999999999999-1",
        ] {
            assert_eq!(ChunkRange::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn read_ranges() {
        use ByteRange::*;
        assert_eq!(
            parse_range("bytes=0-9", 100),
            Some(Satisfiable { start: 0, end: 9 })
        );
        assert_eq!(
            parse_range("bytes=90-", 100),
            Some(Satisfiable { start: 90, end: 99 })
        );
        assert_eq!(
            parse_range("bytes=-10", 100),
            Some(Satisfiable { start: 90, end: 99 })
        );
        assert_eq!(
            parse_range("bytes=-200", 100),
            Some(Satisfiable { start: 0, end: 99 })
        );
        assert_eq!(
            parse_range("bytes=95-200", 100),
            Some(Satisfiable { start: 95, end: 99 })
        );
        assert_eq!(parse_range("bytes=100-", 100), Some(Unsatisfiable));
        assert_eq!(parse_range("bytes=0-1,3-4", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }

    proptest::proptest! {
        #[test]
        fn ranges_never_panic(s in "\\PC{0,40}", size in 0u64..1000) {
            if let Some(r) = ChunkRange::parse(&s) { proptest::prop_assert!(r.end >= r.start); }
            if let Some(ByteRange::Satisfiable { start, end }) = parse_range(&s, size) {
                proptest::prop_assert!(start <= end && end < size);
            }
        }
    }
}
