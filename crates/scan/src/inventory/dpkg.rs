//! dpkg's database: `var/lib/dpkg/status` and distroless `status.d/*` paragraphs (binary
//! name and version, and the source package and source version advisories are keyed by),
//! and `info/*.list` (which files each package owns).

use super::Package;

/// Parses status-file paragraphs; only installed packages are returned. `Err` when the text
/// has no parseable paragraph at all but is not empty.
pub(super) fn parse_status(
    text: &str,
    ecosystem: &str,
    location: &str,
) -> Result<Vec<Package>, String> {
    let mut out = Vec::new();
    let mut seen_any = false;
    for para in text.split("\n\n") {
        let mut name = None;
        let mut version = None;
        let mut source = None;
        let mut installed = true;
        for line in para.lines() {
            if line.starts_with([' ', '\t']) {
                continue;
            }
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let v = v.trim();
            match k {
                "Package" => name = Some(v),
                "Version" => version = Some(v),
                "Source" => source = Some(v),
                "Status" => installed = v.split_whitespace().last() == Some("installed"),
                _ => {}
            }
        }
        let (Some(name), Some(version)) = (name, version) else {
            continue;
        };
        seen_any = true;
        if !installed || name.is_empty() || version.is_empty() {
            continue;
        }
        // "Source: name" or "Source: name (version)" (binNMUs and rebuilt binaries).
        let (src_name, src_version) = match source {
            Some(s) => match s.split_once('(') {
                Some((n, v)) => (n.trim(), v.trim_end_matches(')').trim()),
                None => (s, version),
            },
            None => (name, version),
        };
        let mut p = Package::os(name, version, ecosystem, location);
        p.source_name = Some(src_name.to_owned());
        p.source_version = Some(src_version.to_owned());
        out.push(p);
    }
    if !seen_any && !text.trim().is_empty() {
        return Err("no package paragraph with Package and Version fields".into());
    }
    Ok(out)
}

/// The absolute paths a `.list` file names, made relative to the root.
pub(super) fn parse_list(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(|l| l.trim().trim_start_matches('/'))
        .filter(|l| !l.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_and_binnmu() {
        let text = "Package: libgcc-s1\nStatus: install ok installed\nSource: gcc-12\nVersion: 12.2.0-14\n\n\
                    Package: libfoo1\nStatus: install ok installed\nSource: foo (1.2-3)\nVersion: 1.2-3+b1\n\n\
                    Package: gone\nStatus: deinstall ok config-files\nVersion: 1.0\n\n\
                    Package: bash\nStatus: install ok installed\nVersion: 5.2.15-2+b2\nDescription: x\n y: z\n";
        let p = parse_status(text, "Debian:12", "var/lib/dpkg/status").expect("parse");
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].source_name.as_deref(), Some("gcc-12"));
        assert_eq!(p[0].source_version.as_deref(), Some("12.2.0-14"));
        assert_eq!(p[1].version, "1.2-3+b1");
        assert_eq!(p[1].source_version.as_deref(), Some("1.2-3"));
        assert_eq!(p[2].source_name.as_deref(), Some("bash"));
        assert!(parse_status("\u{0}\u{1}garbage", "Debian:12", "x").is_err());
    }
}
