//! RFC 3339 UTC timestamps with nanoseconds, without a calendar crate.
//!
//! A record's `time` is always written as `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`: fixed width, nine
//! fraction digits, `Z`. Fixed width makes the text sort like the instant it names, and a
//! canonical form lets the verifier insist each line is byte-for-byte what the writer produced.
//! The proleptic Gregorian conversions are Howard Hinnant's `days_from_civil` / `civil_from_days`.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Seconds from the Unix epoch to 9999-12-31T23:59:59Z, the last second RFC 3339 can write.
const MAX_SECONDS: u64 = 253_402_300_799;
const NANOS_PER_SECOND: u32 = 1_000_000_000;
const SECONDS_PER_DAY: u64 = 86_400;

/// An instant in UTC between 1970 and the end of year 9999, with nanosecond precision.
///
/// Serializes as RFC 3339 text (`2024-05-01T12:00:00.000000001Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    seconds: u64,
    nanos: u32,
}

/// A text that is not an RFC 3339 UTC timestamp this crate accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid RFC 3339 UTC timestamp {text:?}: {reason}")]
pub struct TimestampError {
    text: String,
    reason: &'static str,
}

impl Timestamp {
    /// The Unix epoch, 1970-01-01T00:00:00Z.
    pub const UNIX_EPOCH: Timestamp = Timestamp {
        seconds: 0,
        nanos: 0,
    };

    /// The current time from the system clock, clamped to the representable range.
    pub fn now() -> Timestamp {
        Timestamp::from_system_time(SystemTime::now())
    }

    /// Converts a [`SystemTime`], clamping times before 1970 to the epoch and after 9999 to the
    /// last representable instant.
    pub fn from_system_time(time: SystemTime) -> Timestamp {
        match time.duration_since(UNIX_EPOCH) {
            Ok(since) => Timestamp::from_unix(since.as_secs(), since.subsec_nanos()),
            Err(_) => Timestamp::UNIX_EPOCH,
        }
    }

    /// An instant from seconds and nanoseconds since the epoch, clamped like
    /// [`Timestamp::from_system_time`]; nanoseconds past one second carry into the seconds.
    pub fn from_unix(seconds: u64, nanos: u32) -> Timestamp {
        let seconds = seconds.saturating_add(u64::from(nanos / NANOS_PER_SECOND));
        let nanos = nanos % NANOS_PER_SECOND;
        if seconds > MAX_SECONDS {
            return Timestamp {
                seconds: MAX_SECONDS,
                nanos: NANOS_PER_SECOND - 1,
            };
        }
        Timestamp { seconds, nanos }
    }

    /// Whole seconds since the Unix epoch.
    pub fn unix_seconds(&self) -> u64 {
        self.seconds
    }

    /// Nanoseconds past [`Timestamp::unix_seconds`].
    pub fn subsec_nanos(&self) -> u32 {
        self.nanos
    }

    /// The same instant as a [`SystemTime`].
    pub fn to_system_time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::new(self.seconds, self.nanos)
    }

    /// Parses RFC 3339 in UTC: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+00:00)`, with `T` or `t` or a
    /// space between date and time and up to nine fraction digits. Other offsets and leap
    /// seconds are refused.
    pub fn parse(text: &str) -> Result<Timestamp, TimestampError> {
        let fail = |reason| TimestampError {
            text: text.to_owned(),
            reason,
        };
        let bytes = text.as_bytes();
        if bytes.len() < 20 {
            return Err(fail("too short"));
        }
        let digits = |range: std::ops::Range<usize>| -> Result<u64, TimestampError> {
            let part = &bytes[range];
            if part.iter().all(u8::is_ascii_digit) {
                Ok(part
                    .iter()
                    .fold(0, |value, digit| value * 10 + u64::from(digit - b'0')))
            } else {
                Err(fail("expected a digit"))
            }
        };
        let year = digits(0..4)?;
        let month = digits(5..7)?;
        let day = digits(8..10)?;
        let hour = digits(11..13)?;
        let minute = digits(14..16)?;
        let second = digits(17..19)?;
        if bytes[4] != b'-' || bytes[7] != b'-' {
            return Err(fail("expected '-' between year, month and day"));
        }
        if !matches!(bytes[10], b'T' | b't' | b' ') {
            return Err(fail("expected 'T' between date and time"));
        }
        if bytes[13] != b':' || bytes[16] != b':' {
            return Err(fail("expected ':' between hour, minute and second"));
        }
        if year < 1970 {
            return Err(fail("year before 1970"));
        }
        if !(1..=12).contains(&month) {
            return Err(fail("month out of range"));
        }
        if day < 1 || day > days_in_month(year, month) {
            return Err(fail("day out of range"));
        }
        if hour > 23 || minute > 59 || second > 59 {
            return Err(fail("time of day out of range"));
        }

        let mut rest = &bytes[19..];
        let mut nanos = 0u32;
        if let Some(fraction) = rest.strip_prefix(b".") {
            let count = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
            if count == 0 || count > 9 {
                return Err(fail("fraction must have one to nine digits"));
            }
            for (index, digit) in fraction[..count].iter().enumerate() {
                nanos += u32::from(digit - b'0') * 10u32.pow(8 - index as u32);
            }
            rest = &fraction[count..];
        }
        if !matches!(rest, b"Z" | b"z" | b"+00:00" | b"-00:00") {
            return Err(fail("offset must be Z (UTC)"));
        }

        let days = days_from_civil(year, month, day);
        let seconds = days * SECONDS_PER_DAY + hour * 3600 + minute * 60 + second;
        Ok(Timestamp { seconds, nanos })
    }
}

impl fmt::Display for Timestamp {
    /// Writes the canonical form, `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (year, month, day) = civil_from_days(self.seconds / SECONDS_PER_DAY);
        let time_of_day = self.seconds % SECONDS_PER_DAY;
        write!(
            formatter,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
            time_of_day / 3600,
            time_of_day / 60 % 60,
            time_of_day % 60,
            self.nanos
        )
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;

    fn from_str(text: &str) -> Result<Timestamp, TimestampError> {
        Timestamp::parse(text)
    }
}

impl From<SystemTime> for Timestamp {
    fn from(time: SystemTime) -> Timestamp {
        Timestamp::from_system_time(time)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
        let text = String::deserialize(deserializer)?;
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

fn is_leap_year(year: u64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a date on or after it (`year >= 1970`, valid month and day).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    // Shift the year to start in March so the leap day is the last day of the year.
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    // 719_468 days separate 0000-03-01 from 1970-01-01.
    era * 146_097 + day_of_era - 719_468
}

/// The date `days` after 1970-01-01.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let days = days + 719_468;
    let era = days / 146_097;
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(
            Timestamp::UNIX_EPOCH.to_string(),
            "1970-01-01T00:00:00.000000000Z"
        );
        // 2000-02-29 is a leap day in a year divisible by 400.
        assert_eq!(
            Timestamp::from_unix(951_782_400, 5).to_string(),
            "2000-02-29T00:00:00.000000005Z"
        );
        assert_eq!(
            Timestamp::from_unix(1_700_000_000, 123_456_789).to_string(),
            "2023-11-14T22:13:20.123456789Z"
        );
        assert_eq!(
            Timestamp::from_unix(MAX_SECONDS, 999_999_999).to_string(),
            "9999-12-31T23:59:59.999999999Z"
        );
    }

    #[test]
    fn parse_inverts_display_for_every_day_boundary_sample() {
        // One instant per ~11 days across 1970..2100, plus the last second of each.
        let mut seconds = 0u64;
        while seconds < 4_102_444_800 {
            for instant in [
                Timestamp::from_unix(seconds, 0),
                Timestamp::from_unix(seconds + 86_399, 999_999_999),
            ] {
                assert_eq!(Timestamp::parse(&instant.to_string()), Ok(instant));
            }
            seconds += 86_400 * 11;
        }
    }

    #[test]
    fn parse_accepts_rfc3339_variants_in_utc() {
        let expected = Timestamp::from_unix(1_700_000_000, 500_000_000);
        for text in [
            "2023-11-14T22:13:20.5Z",
            "2023-11-14t22:13:20.500z",
            "2023-11-14 22:13:20.500000000+00:00",
        ] {
            assert_eq!(Timestamp::parse(text), Ok(expected), "{text}");
        }
        assert_eq!(
            Timestamp::parse("2023-11-14T22:13:20Z"),
            Ok(Timestamp::from_unix(1_700_000_000, 0))
        );
    }

    #[test]
    fn parse_refuses_what_it_cannot_represent_exactly() {
        for text in [
            "",
            "2023-11-14T22:13:20",
            "2023-11-14T22:13:20+01:00",
            "2023-02-29T00:00:00Z",
            "2023-13-01T00:00:00Z",
            "2023-11-14T24:00:00Z",
            "2023-11-14T23:59:60Z",
            "1969-12-31T23:59:59Z",
            "2023-11-14T22:13:20.Z",
            "2023-11-14T22:13:20.1234567890Z",
            "2023/11/14T22:13:20Z",
            "２023-11-14T22:13:20Z",
        ] {
            assert!(Timestamp::parse(text).is_err(), "{text:?} parsed");
        }
    }

    #[test]
    fn clamps_out_of_range_instants() {
        assert_eq!(
            Timestamp::from_system_time(UNIX_EPOCH - Duration::from_secs(1)),
            Timestamp::UNIX_EPOCH
        );
        assert_eq!(
            Timestamp::from_unix(u64::MAX, 0).to_string(),
            "9999-12-31T23:59:59.999999999Z"
        );
        assert_eq!(
            Timestamp::from_unix(1, 1_500_000_000),
            Timestamp::from_unix(2, 500_000_000)
        );
    }

    #[test]
    fn serde_uses_the_text_form() {
        let instant = Timestamp::from_unix(1_700_000_000, 1);
        let json = serde_json::to_string(&instant).unwrap();
        assert_eq!(json, "\"2023-11-14T22:13:20.000000001Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), instant);
        assert!(serde_json::from_str::<Timestamp>("\"yesterday\"").is_err());
    }

    #[test]
    fn round_trips_system_time() {
        let now = Timestamp::now();
        assert_eq!(Timestamp::from_system_time(now.to_system_time()), now);
        assert!(now > Timestamp::parse("2020-01-01T00:00:00Z").unwrap());
    }
}
