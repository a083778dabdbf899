//! Request paths of the distribution API.
//!
//! Repository names contain slashes, so a path is matched from its end: `…/tags/list`,
//! `…/manifests/<ref>`, `…/blobs/uploads/[<id>]`, `…/blobs/<digest>`, `…/referrers/<digest>`.

use percent_encoding::percent_decode_str;

/// A recognised API path with its still-unvalidated parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /v2/`
    Base,
    /// `GET /v2/_catalog`
    Catalog,
    /// `/v2/<name>/tags/list`
    Tags { name: String },
    /// `/v2/<name>/manifests/<reference>`
    Manifest { name: String, reference: String },
    /// `/v2/<name>/blobs/<digest>`
    Blob { name: String, digest: String },
    /// `/v2/<name>/blobs/uploads/`
    UploadStart { name: String },
    /// `/v2/<name>/blobs/uploads/<id>`
    Upload { name: String, id: String },
    /// `/v2/<name>/referrers/<digest>`
    Referrers { name: String, digest: String },
    /// `/v2/_palisade/repositories/<name>` (DELETE: delete a repository; needs admin)
    Repository { name: String },
    /// `/token`
    Token,
    /// `/metrics`
    Metrics,
    /// Anything else.
    Unknown,
}

/// Matches a request path (without the query).
pub fn route(path: &str) -> Route {
    let decoded = percent_decode_str(path).decode_utf8_lossy();
    let path: &str = &decoded;
    match path {
        "/v2" | "/v2/" => return Route::Base,
        "/v2/_catalog" => return Route::Catalog,
        "/token" => return Route::Token,
        "/metrics" => return Route::Metrics,
        _ => {}
    }
    if let Some(name) = path.strip_prefix("/v2/_palisade/repositories/") {
        return Route::Repository {
            name: name.to_owned(),
        };
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return Route::Unknown;
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let n = parts.len();
    let name = |k: usize| parts[..n - k].join("/");
    if n >= 3 && parts[n - 2] == "tags" && parts[n - 1] == "list" {
        return Route::Tags { name: name(2) };
    }
    if n >= 3 && parts[n - 2] == "uploads" && parts[n - 3] == "blobs" && n >= 4 {
        let id = parts[n - 1];
        return if id.is_empty() {
            Route::UploadStart { name: name(3) }
        } else {
            Route::Upload {
                name: name(3),
                id: id.to_owned(),
            }
        };
    }
    if n >= 3 && parts[n - 1] == "uploads" && parts[n - 2] == "blobs" {
        return Route::UploadStart { name: name(2) };
    }
    if n >= 2 {
        let last = parts[n - 1].to_owned();
        match parts[n - 2] {
            "manifests" => {
                return Route::Manifest {
                    name: name(2),
                    reference: last,
                }
            }
            "blobs" => {
                return Route::Blob {
                    name: name(2),
                    digest: last,
                }
            }
            "referrers" => {
                return Route::Referrers {
                    name: name(2),
                    digest: last,
                }
            }
            _ => {}
        }
    }
    Route::Unknown
}

/// Query parameters, percent-decoded (`+` is a space, as in forms).
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    let Some(q) = query else { return Vec::new() };
    q.split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let dec = |s: &str| {
                percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (dec(k), dec(v))
        })
        .collect()
}

/// The first value of `key`.
pub fn query_get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("/v2/"), Route::Base);
        assert_eq!(
            route("/v2/a/b/tags/list"),
            Route::Tags { name: "a/b".into() }
        );
        assert_eq!(
            route("/v2/a/manifests/latest"),
            Route::Manifest {
                name: "a".into(),
                reference: "latest".into()
            }
        );
        assert_eq!(
            route("/v2/a/b/blobs/uploads/"),
            Route::UploadStart { name: "a/b".into() }
        );
        assert_eq!(
            route("/v2/a/b/blobs/uploads"),
            Route::UploadStart { name: "a/b".into() }
        );
        assert_eq!(
            route("/v2/a/blobs/uploads/abc"),
            Route::Upload {
                name: "a".into(),
                id: "abc".into()
            }
        );
        assert_eq!(
            route("/v2/a/blobs/sha256%3Aab"),
            Route::Blob {
                name: "a".into(),
                digest: "sha256:ab".into()
            }
        );
        assert_eq!(
            route("/v2/manifests/x"),
            Route::Manifest {
                name: "".into(),
                reference: "x".into()
            }
        );
        assert_eq!(route("/etc/passwd"), Route::Unknown);
        assert_eq!(route("/v2/a"), Route::Unknown);
    }

    #[test]
    fn queries() {
        let q = query_pairs(Some("n=2&last=a%2Fb&x"));
        assert_eq!(query_get(&q, "n"), Some("2"));
        assert_eq!(query_get(&q, "last"), Some("a/b"));
        assert_eq!(query_get(&q, "x"), Some(""));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,200}") {
            let _ = route(&s);
            let _ = query_pairs(Some(&s));
        }
    }
}
