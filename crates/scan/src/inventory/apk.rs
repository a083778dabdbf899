//! apk's installed database, `lib/apk/db/installed`: `P:` name, `V:` version, `o:` origin
//! (the source package Alpine's advisories are keyed by), blank lines between packages.

use super::Package;

/// Parses the installed database.
pub(super) fn parse_installed(
    text: &str,
    ecosystem: &str,
    location: &str,
) -> Result<Vec<Package>, String> {
    let mut out = Vec::new();
    let mut seen_any = false;
    for block in text.split("\n\n") {
        let (mut name, mut version, mut origin) = (None, None, None);
        for line in block.lines() {
            match line.split_once(':') {
                Some(("P", v)) => name = Some(v.trim()),
                Some(("V", v)) => version = Some(v.trim()),
                Some(("o", v)) => origin = Some(v.trim()),
                _ => {}
            }
        }
        if let (Some(n), Some(v)) = (name, version) {
            seen_any = true;
            let mut p = Package::os(n, v, ecosystem, location);
            p.source_name = Some(origin.unwrap_or(n).to_owned());
            p.source_version = Some(v.to_owned());
            out.push(p);
        }
    }
    if !seen_any && !text.trim().is_empty() {
        return Err("no package block with P: and V: lines".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin() {
        let text = "C:Q1abc=\nP:libcrypto3\nV:3.1.4-r5\nA:x86_64\no:openssl\n\nP:musl\nV:1.2.4_git20230717-r4\n";
        let p = parse_installed(text, "Alpine:v3.19", "lib/apk/db/installed").expect("parse");
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].source_name.as_deref(), Some("openssl"));
        assert_eq!(p[1].source_name.as_deref(), Some("musl"));
    }
}
