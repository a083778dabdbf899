//! The OCI distribution grammar for repository names, as the authorizer enforces it.
//!
//! ```text
//! name      := component ( "/" component )*
//! component := [a-z0-9]+ ( separator [a-z0-9]+ )*
//! separator := "." | "_" | "__" | "-"+
//! ```
//!
//! At most [`MAX_NAME_LEN`] bytes. Anything else — upper case, empty segments, `.` or `..`
//! segments, leading or trailing separators, percent escapes, a host name with a port — is not
//! a repository name, and the authorizer refuses every action on it before looking at a rule.
//! That is what makes path tricks like `team-a/../team-b` harmless: they never reach the glob
//! matcher.

/// The longest repository name accepted (the OCI spec recommends registries accept at least
/// 255 characters for the whole `<name>`; we allow exactly that).
pub const MAX_NAME_LEN: usize = 255;

/// Whether `name` is a valid repository name (see the module documentation).
pub fn is_valid_repository_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_LEN && name.split('/').all(is_valid_component)
}

/// Whether `component` matches `[a-z0-9]+ ( separator [a-z0-9]+ )*`.
fn is_valid_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let mut i = 0;
    // Alternate: one alphanumeric run, then one separator, then a run, ...
    loop {
        let run_start = i;
        while i < bytes.len() && is_alnum(bytes[i]) {
            i += 1;
        }
        if i == run_start {
            return false; // empty run: empty component, leading or doubled separator
        }
        if i == bytes.len() {
            return true;
        }
        let sep_start = i;
        while i < bytes.len() && matches!(bytes[i], b'.' | b'_' | b'-') {
            i += 1;
        }
        let sep = &bytes[sep_start..i];
        let valid_separator = match sep {
            b"." | b"_" | b"__" => true,
            other => !other.is_empty() && other.iter().all(|b| *b == b'-'),
        };
        if !valid_separator {
            return false;
        }
    }
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_spec_grammar() {
        for name in [
            "a",
            "team-a/app",
            "team-a/app/sub",
            "a.b_c__d---e/f",
            "library/busybox",
            "0/1/2",
        ] {
            assert!(is_valid_repository_name(name), "{name}");
        }
        assert!(is_valid_repository_name(&"a".repeat(255)));
    }

    #[test]
    fn rejects_path_tricks_and_bad_spellings() {
        for name in [
            "",
            "/",
            "team-a/../team-b",
            "team-a/./x",
            "..",
            "team-a//x",
            "/team-a",
            "team-a/",
            "Team-A/app",
            "team-a/App",
            "-a",
            "a-",
            "a..b",
            "a___b",
            "a._b",
            "team-a/%2e%2e/team-b",
            "localhost:5000/a",
            "a b",
            "a\0b",
            "tēam",
            "*",
            "team-a/*",
        ] {
            assert!(!is_valid_repository_name(name), "{name:?}");
        }
        assert!(!is_valid_repository_name(&"a".repeat(256)));
    }
}
