//! The distribution: `/etc/os-release` (or `usr/lib/os-release`), `etc/debian_version`,
//! `etc/alpine-release`, and the OSV ecosystem name (with release) its packages belong to.

use serde::{Deserialize, Serialize};

/// The image's distribution.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsRelease {
    /// `ID` (debian, alpine, ubuntu…).
    pub id: String,
    /// `VERSION_ID` (12, 3.19.1…), or what debian_version / alpine-release say.
    pub version_id: String,
    /// `PRETTY_NAME`.
    pub pretty_name: String,
}

/// Parses os-release text (`KEY=value`, values optionally quoted).
pub fn parse_os_release(text: &str) -> OsRelease {
    let mut os = OsRelease::default();
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"').trim_matches('\'').to_owned();
        match k.trim() {
            "ID" => os.id = v,
            "VERSION_ID" => os.version_id = v,
            "PRETTY_NAME" => os.pretty_name = v,
            _ => {}
        }
    }
    os
}

impl OsRelease {
    /// Fills gaps from `etc/debian_version` or `etc/alpine-release`.
    pub fn complete(&mut self, debian_version: Option<&str>, alpine_release: Option<&str>) {
        if self.id.is_empty() {
            if alpine_release.is_some() {
                self.id = "alpine".into();
            } else if debian_version.is_some() {
                self.id = "debian".into();
            }
        }
        if self.version_id.is_empty() {
            let from = match self.id.as_str() {
                "alpine" => alpine_release,
                "debian" => debian_version,
                _ => None,
            };
            if let Some(v) = from {
                let v = v.trim();
                // debian_version "12.5" -> "12"; "trixie/sid" has no number: leave it empty.
                if v.starts_with(|c: char| c.is_ascii_digit()) {
                    self.version_id = if self.id == "debian" {
                        v.split('.').next().unwrap_or(v).to_owned()
                    } else {
                        v.to_owned()
                    };
                }
            }
        }
    }

    /// The OSV ecosystem of this distribution's packages: `Debian:12`, `Alpine:v3.19`,
    /// `Ubuntu:22.04`; `None` for distributions without OSV data we can key on.
    pub fn ecosystem(&self) -> Option<String> {
        let v = self.version_id.trim();
        match self.id.as_str() {
            "debian" if !v.is_empty() => {
                Some(format!("Debian:{}", v.split('.').next().unwrap_or(v)))
            }
            "debian" => Some("Debian".into()),
            "alpine" if !v.is_empty() => {
                let mut parts = v.split('.');
                let major = parts.next().unwrap_or("");
                let minor = parts.next().unwrap_or("0");
                Some(format!("Alpine:v{major}.{minor}"))
            }
            "rocky" if !v.is_empty() => {
                Some(format!("Rocky Linux:{}", v.split('.').next().unwrap_or(v)))
            }
            "almalinux" if !v.is_empty() => {
                Some(format!("AlmaLinux:{}", v.split('.').next().unwrap_or(v)))
            }
            "rhel" => Some("Red Hat".into()),
            // OSV names Ubuntu LTS releases (even years, April) "Ubuntu:22.04:LTS".
            "ubuntu" if !v.is_empty() => {
                let lts = v.ends_with(".04")
                    && v.get(..2)
                        .and_then(|y| y.parse::<u32>().ok())
                        .is_some_and(|y| y % 2 == 0);
                Some(if lts {
                    format!("Ubuntu:{v}:LTS")
                } else {
                    format!("Ubuntu:{v}")
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecosystems() {
        let os = parse_os_release(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n",
        );
        assert_eq!(os.ecosystem().as_deref(), Some("Debian:12"));
        let mut os = parse_os_release("ID=alpine\nVERSION_ID=3.19.1\n");
        os.complete(None, Some("3.19.1\n"));
        assert_eq!(os.ecosystem().as_deref(), Some("Alpine:v3.19"));
        let mut os = OsRelease::default();
        os.complete(Some("12.7\n"), None);
        assert_eq!(os.ecosystem().as_deref(), Some("Debian:12"));
        let os = parse_os_release("ID=ubuntu\nVERSION_ID=\"22.04\"\n");
        assert_eq!(os.ecosystem().as_deref(), Some("Ubuntu:22.04:LTS"));
        let os = parse_os_release("ID=ubuntu\nVERSION_ID=\"23.10\"\n");
        assert_eq!(os.ecosystem().as_deref(), Some("Ubuntu:23.10"));
    }
}
