//! Tables, sizes and ages for people; JSON for programs.

use std::io::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;

/// Prints rows under a header, each column as wide as its widest cell, three spaces apart.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> anyhow::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = io::stdout().lock();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}   "));
            }
        }
        writeln!(out, "{}", line.trim_end()).context("failed to write to standard output")?;
    }
    Ok(())
}

/// Prints a value as pretty JSON.
pub(crate) fn json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value).context("failed to write JSON")?;
    writeln!(out).context("failed to write to standard output")?;
    Ok(())
}

/// Prints a line to standard output.
pub(crate) fn line(text: impl std::fmt::Display) -> anyhow::Result<()> {
    writeln!(io::stdout().lock(), "{text}").context("failed to write to standard output")
}

/// `123B`, `4.56kB`, `78.9MB`, `1.23GB` (decimal units, as Docker prints them).
pub(crate) fn size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        return format!("{bytes}B");
    }
    let text = if value < 10.0 {
        format!("{value:.2}")
    } else if value < 100.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.0}")
    };
    format!("{text}{}", UNITS[unit])
}

/// `5 seconds ago`, `About a minute ago`, `3 days ago` from seconds since the epoch.
pub(crate) fn age(created_unix: Option<i64>) -> String {
    let Some(created) = created_unix else {
        return "N/A".to_owned();
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let seconds = now.saturating_sub(created);
    if seconds < 0 {
        return "in the future".to_owned();
    }
    let plural = |n: i64, unit: &str| {
        if n == 1 {
            format!("1 {unit} ago")
        } else {
            format!("{n} {unit}s ago")
        }
    };
    match seconds {
        0 => "Less than a second ago".to_owned(),
        1..=59 => plural(seconds, "second"),
        60..=119 => "About a minute ago".to_owned(),
        120..=3_599 => plural(seconds / 60, "minute"),
        3_600..=7_199 => "About an hour ago".to_owned(),
        7_200..=172_799 => plural(seconds / 3_600, "hour"),
        172_800..=1_209_599 => plural(seconds / 86_400, "day"),
        1_209_600..=5_183_999 => plural(seconds / 604_800, "week"),
        5_184_000..=63_071_999 => plural(seconds / 2_592_000, "month"),
        _ => plural(seconds / 31_536_000, "year"),
    }
}

/// Shortens text to `width` characters with a trailing `…`.
pub(crate) fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(width.saturating_sub(1)).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(size(0), "0B");
        assert_eq!(size(999), "999B");
        assert_eq!(size(1_234), "1.23kB");
        assert_eq!(size(45_600_000), "45.6MB");
        assert_eq!(size(123_000_000_000), "123GB");
    }

    #[test]
    fn ages() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert_eq!(age(None), "N/A");
        assert_eq!(age(Some(now - 30)), "30 seconds ago");
        assert_eq!(age(Some(now - 3 * 86_400)), "3 days ago");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }
}
