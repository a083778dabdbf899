//! Registry credentials: the redacting [`Secret`], Palisade's own auth file (written by
//! `palisade login`), and lookup across Palisade's, Podman's and Docker's auth files.
//!
//! All three files share Docker's format:
//!
//! ```json
//! {"auths": {"registry.example:5000": {"auth": "base64(user:password)"}}}
//! ```
//!
//! Keys may be a bare host (`host:port`), a URL (`https://index.docker.io/v1/`), or (Podman)
//! a repository prefix (`host/namespace`); the longest matching prefix wins. Docker's
//! credential helpers (`credsStore`, `credHelpers`) run external programs and are not used.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{Map, Value};

use super::error::DistributionError;

/// A password or token. `Debug` and `Display` print `<redacted>`; only [`Secret::expose`]
/// gives the text, at the one place it is put on the wire or in the auth file.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The secret text.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A user name and password for a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password (or a personal access token).
    pub password: Secret,
}

impl Credentials {
    /// Credentials from a user name and password.
    pub fn new(username: impl Into<String>, password: Secret) -> Self {
        Self {
            username: username.into(),
            password,
        }
    }

    /// The value of an `Authorization: Basic` header.
    pub(crate) fn basic_header(&self) -> Secret {
        Secret(format!("Basic {}", self.encoded().0))
    }

    /// `base64(user:password)`, as auth files store it.
    fn encoded(&self) -> Secret {
        Secret(STANDARD.encode(format!("{}:{}", self.username, self.password.expose())))
    }

    /// Decodes an auth file's `auth` field. The error never quotes the input.
    fn decode(auth: &str) -> Result<Self, &'static str> {
        let bytes = STANDARD
            .decode(auth.trim())
            .map_err(|_| "the \"auth\" field is not valid base64")?;
        let text = String::from_utf8(bytes).map_err(|_| "the \"auth\" field is not UTF-8")?;
        let (username, password) = text
            .split_once(':')
            .ok_or("the \"auth\" field is not base64 of user:password")?;
        Ok(Self::new(username, Secret::new(password)))
    }
}

/// Palisade's configuration directory: `$XDG_CONFIG_HOME/palisade`, or `~/.config/palisade`
/// (`/root/.config/palisade` for root). `auth.json` and `certs.d/` live there.
pub fn default_config_dir() -> Result<PathBuf, DistributionError> {
    if let Some(dir) = absolute_env("XDG_CONFIG_HOME") {
        return Ok(dir.join("palisade"));
    }
    absolute_env("HOME")
        .map(|home| home.join(".config/palisade"))
        .ok_or(DistributionError::NoConfigDir)
}

fn absolute_env(name: &str) -> Option<PathBuf> {
    let value = PathBuf::from(std::env::var_os(name)?);
    value.is_absolute().then_some(value)
}

/// The name auth files use for a registry domain: `docker.io` for Docker Hub's aliases and
/// URL forms, the bare `host[:port][/path]` otherwise.
pub(crate) fn normalise_key(key: &str) -> String {
    let key = key.trim();
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let key = key.trim_end_matches('/');
    let key = key
        .strip_suffix("/v1")
        .or_else(|| key.strip_suffix("/v2"))
        .unwrap_or(key);
    let (host, rest) = match key.split_once('/') {
        Some((host, rest)) => (host, Some(rest)),
        None => (key, None),
    };
    let host = match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => "docker.io",
        other => other,
    };
    match rest {
        Some(rest) if !rest.is_empty() => format!("{host}/{rest}"),
        _ => host.to_owned(),
    }
}

/// The key Docker itself writes for Docker Hub.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// Where credentials come from, in order: explicit ones, then each auth file (the first file
/// with a matching entry wins). Holds paths, never secrets, until a lookup.
#[derive(Debug, Clone, Default)]
pub struct CredentialStore {
    explicit: Vec<(String, Credentials)>,
    files: Vec<PathBuf>,
}

impl CredentialStore {
    /// No credentials at all (anonymous access).
    pub fn none() -> Self {
        Self::default()
    }

    /// Palisade's auth file, then Podman's (`$REGISTRY_AUTH_FILE`,
    /// `$XDG_RUNTIME_DIR/containers/auth.json`, `~/.config/containers/auth.json`), then
    /// Docker's (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`).
    pub fn from_environment() -> Self {
        let mut files = Vec::new();
        if let Ok(dir) = default_config_dir() {
            files.push(dir.join("auth.json"));
        }
        if let Some(file) = absolute_env("REGISTRY_AUTH_FILE") {
            files.push(file);
        }
        if let Some(runtime) = absolute_env("XDG_RUNTIME_DIR") {
            files.push(runtime.join("containers/auth.json"));
        }
        let home = absolute_env("HOME");
        match absolute_env("XDG_CONFIG_HOME") {
            Some(config) => files.push(config.join("containers/auth.json")),
            None => {
                if let Some(home) = &home {
                    files.push(home.join(".config/containers/auth.json"));
                }
            }
        }
        match absolute_env("DOCKER_CONFIG") {
            Some(dir) => files.push(dir.join("config.json")),
            None => {
                if let Some(home) = &home {
                    files.push(home.join(".docker/config.json"));
                }
            }
        }
        files.dedup();
        Self {
            explicit: Vec::new(),
            files,
        }
    }

    /// Adds an auth file to consult after those already listed.
    pub fn with_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.files.push(path.into());
        self
    }

    /// Uses `credentials` for `registry` before any file.
    pub fn with_credentials(mut self, registry: &str, credentials: Credentials) -> Self {
        self.explicit.push((normalise_key(registry), credentials));
        self
    }

    /// The auth files consulted, in order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The credentials for `repository` (a path such as `library/busybox`) on `registry`.
    /// Unreadable or malformed files are skipped with a warning (a broken Docker config must
    /// not stop a pull that needs no credentials).
    pub fn find(&self, registry: &str, repository: &str) -> Option<Credentials> {
        let candidates = lookup_keys(registry, repository);
        for key in &candidates {
            if let Some((_, credentials)) = self.explicit.iter().find(|(k, _)| k == key) {
                return Some(credentials.clone());
            }
        }
        for path in &self.files {
            match read_auths(path) {
                Ok(Some(auths)) => {
                    if let Some(found) = find_in(&auths, &candidates, path) {
                        return Some(found);
                    }
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "skipping auth file"),
            }
        }
        None
    }
}

/// `registry/ns/repo`, `registry/ns`, `registry`: the keys that may hold credentials for a
/// repository, most specific first.
fn lookup_keys(registry: &str, repository: &str) -> Vec<String> {
    let registry = normalise_key(registry);
    let mut keys = Vec::new();
    let mut path = repository.trim_matches('/').to_owned();
    while !path.is_empty() {
        keys.push(format!("{registry}/{path}"));
        match path.rfind('/') {
            Some(i) => path.truncate(i),
            None => path.clear(),
        }
    }
    keys.push(registry);
    keys
}

fn find_in(auths: &Map<String, Value>, candidates: &[String], path: &Path) -> Option<Credentials> {
    for candidate in candidates {
        for (key, entry) in auths {
            if normalise_key(key) != *candidate {
                continue;
            }
            match entry_credentials(entry) {
                Ok(Some(credentials)) => return Some(credentials),
                Ok(None) => {}
                Err(reason) => {
                    tracing::warn!(path = %path.display(), key = %key, reason, "skipping auth entry");
                }
            }
        }
    }
    None
}

fn entry_credentials(entry: &Value) -> Result<Option<Credentials>, &'static str> {
    let Value::Object(entry) = entry else {
        return Err("the entry is not an object");
    };
    if let Some(Value::String(auth)) = entry.get("auth") {
        if !auth.is_empty() {
            return Credentials::decode(auth).map(Some);
        }
    }
    if let (Some(Value::String(user)), Some(Value::String(password))) =
        (entry.get("username"), entry.get("password"))
    {
        return Ok(Some(Credentials::new(user, Secret::new(password.clone()))));
    }
    if entry.contains_key("identitytoken") {
        tracing::debug!("OAuth identity tokens in auth files are not supported");
    }
    Ok(None)
}

/// The `auths` object of an auth file; `None` when the file does not exist.
fn read_auths(path: &Path) -> Result<Option<Map<String, Value>>, DistributionError> {
    let Some(document) = read_document(path)? else {
        return Ok(None);
    };
    match document.get("auths") {
        None | Some(Value::Null) => Ok(Some(Map::new())),
        Some(Value::Object(auths)) => Ok(Some(auths.clone())),
        Some(_) => Err(DistributionError::AuthFile {
            path: path.to_owned(),
            reason: "\"auths\" is not an object".to_owned(),
        }),
    }
}

fn read_document(path: &Path) -> Result<Option<Map<String, Value>>, DistributionError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(DistributionError::File {
                action: "read",
                path: path.to_owned(),
                source,
            })
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Some(Map::new()));
    }
    // serde_json's messages give a line and column, never the text, so no secret leaks.
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(document)) => Ok(Some(document)),
        Ok(_) => Err(DistributionError::AuthFile {
            path: path.to_owned(),
            reason: "not a JSON object".to_owned(),
        }),
        Err(error) => Err(DistributionError::AuthFile {
            path: path.to_owned(),
            reason: format!(
                "invalid JSON at line {} column {}",
                error.line(),
                error.column()
            ),
        }),
    }
}

/// Palisade's own auth file, written by `palisade login` (mode 0600, in a 0700 directory,
/// replaced atomically under a lock so two logins at once both land).
#[derive(Debug, Clone)]
pub struct AuthFile {
    path: PathBuf,
}

impl AuthFile {
    /// `auth.json` in [`default_config_dir`].
    pub fn default_location() -> Result<Self, DistributionError> {
        Ok(Self::at(default_config_dir()?.join("auth.json")))
    }

    /// The auth file at `path`.
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The credentials stored for `registry`, if any.
    pub fn find(&self, registry: &str) -> Result<Option<Credentials>, DistributionError> {
        let Some(auths) = read_auths(&self.path)? else {
            return Ok(None);
        };
        let wanted = normalise_key(registry);
        for (key, entry) in &auths {
            if normalise_key(key) == wanted {
                return entry_credentials(entry).map_err(|reason| DistributionError::AuthFile {
                    path: self.path.clone(),
                    reason: format!("entry {key:?}: {reason}"),
                });
            }
        }
        Ok(None)
    }

    /// Stores `credentials` for `registry`, replacing any entry for it and keeping the rest of
    /// the file.
    pub fn store(
        &self,
        registry: &str,
        credentials: &Credentials,
    ) -> Result<(), DistributionError> {
        let key = normalise_key(registry);
        self.update(|auths| {
            auths.retain(|k, _| normalise_key(k) != key);
            let mut entry = Map::new();
            entry.insert("auth".to_owned(), Value::String(credentials.encoded().0));
            // Docker's clients look Docker Hub up under its legacy URL.
            let key = if key == "docker.io" {
                DOCKER_HUB_KEY.to_owned()
            } else {
                key.clone()
            };
            auths.insert(key, Value::Object(entry));
            true
        })
        .map(|_| ())
    }

    /// Removes the entry for `registry`. Returns whether there was one.
    pub fn remove(&self, registry: &str) -> Result<bool, DistributionError> {
        let key = normalise_key(registry);
        self.update(|auths| {
            let before = auths.len();
            auths.retain(|k, _| normalise_key(k) != key);
            auths.len() != before
        })
    }

    fn update(
        &self,
        change: impl FnOnce(&mut Map<String, Value>) -> bool,
    ) -> Result<bool, DistributionError> {
        let dir = self.path.parent().unwrap_or_else(|| Path::new("."));
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| DistributionError::File {
                action: "create directory",
                path: dir.to_owned(),
                source,
            })?;
        let name = self
            .path
            .file_name()
            .map_or_else(|| "auth.json".into(), |n| n.to_string_lossy().into_owned());
        let _lock = lock_file(&dir.join(format!(".{name}.lock")))?;
        let mut document = read_document(&self.path)?.unwrap_or_default();
        let mut auths = match document.remove("auths") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(auths)) => auths,
            Some(_) => {
                return Err(DistributionError::AuthFile {
                    path: self.path.clone(),
                    reason: "\"auths\" is not an object".to_owned(),
                })
            }
        };
        let changed = change(&mut auths);
        if !changed {
            return Ok(false);
        }
        // serde_json's map keeps keys sorted, so the file's order is stable.
        document.insert("auths".to_owned(), Value::Object(auths));
        let mut bytes =
            serde_json::to_vec_pretty(&document).map_err(|e| DistributionError::AuthFile {
                path: self.path.clone(),
                reason: e.to_string(),
            })?;
        bytes.push(b'\n');
        write_private(&self.path, &bytes)?;
        Ok(true)
    }
}

fn lock_file(path: &Path) -> Result<File, DistributionError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|source| DistributionError::File {
            action: "open lock file",
            path: path.to_owned(),
            source,
        })?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive).map_err(|e| {
        DistributionError::File {
            action: "lock",
            path: path.to_owned(),
            source: e.into(),
        }
    })?;
    Ok(file)
}

/// Writes `bytes` to `target` through a 0600 temporary file in the same directory, fsync and
/// rename, so a crash leaves the old file or the new one, and the secret is never readable by
/// others, not even briefly.
fn write_private(target: &Path, bytes: &[u8]) -> Result<(), DistributionError> {
    let dir = target.parent().unwrap_or_else(|| Path::new("."));
    let name = target
        .file_name()
        .map_or_else(|| "auth.json".into(), |n| n.to_string_lossy().into_owned());
    let temp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let file_err = |action, path: &Path| {
        let path = path.to_owned();
        move |source| DistributionError::File {
            action,
            path,
            source,
        }
    };
    let _ = fs::remove_file(&temp);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .map_err(file_err("create", &temp))?;
        file.write_all(bytes).map_err(file_err("write", &temp))?;
        file.sync_all().map_err(file_err("sync", &temp))?;
        fs::rename(&temp, target).map_err(file_err("replace", target))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(file_err("sync", dir))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn secrets_are_redacted() {
        let credentials = Credentials::new("alice", Secret::new("hunter2"));
        let shown = format!(
            "{credentials:?} {} {}",
            credentials.password,
            credentials.basic_header()
        );
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("alice"));
        assert_eq!(
            credentials.basic_header().expose(),
            "Basic YWxpY2U6aHVudGVyMg=="
        );
    }

    #[test]
    fn keys_normalise() {
        assert_eq!(normalise_key("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(normalise_key("registry-1.docker.io"), "docker.io");
        assert_eq!(normalise_key("http://localhost:5000"), "localhost:5000");
        assert_eq!(normalise_key("quay.io/team"), "quay.io/team");
        assert_eq!(normalise_key("https://quay.io/v2/"), "quay.io");
        assert_eq!(
            lookup_keys("quay.io", "team/app"),
            ["quay.io/team/app", "quay.io/team", "quay.io"]
        );
    }

    #[test]
    fn store_find_remove_round_trip_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let file = AuthFile::at(dir.path().join("palisade/auth.json"));
        assert_eq!(file.find("localhost:5000").unwrap(), None);
        let credentials = Credentials::new("bob", Secret::new("p:ss"));
        file.store("localhost:5000", &credentials).unwrap();
        file.store("docker.io", &credentials).unwrap();
        assert_eq!(
            file.find("localhost:5000").unwrap(),
            Some(credentials.clone())
        );
        assert_eq!(
            file.find("index.docker.io").unwrap(),
            Some(credentials.clone())
        );
        let mode = fs::metadata(file.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = fs::metadata(file.path().parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let raw: Value = serde_json::from_slice(&fs::read(file.path()).unwrap()).unwrap();
        assert_eq!(raw["auths"]["localhost:5000"]["auth"], "Ym9iOnA6c3M=");
        assert!(raw["auths"][DOCKER_HUB_KEY].is_object());
        assert!(file.remove("localhost:5000").unwrap());
        assert!(!file.remove("localhost:5000").unwrap());
        assert_eq!(file.find("localhost:5000").unwrap(), None);
    }

    #[test]
    fn keeps_other_fields_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.json");
        fs::write(
            &path,
            r#"{"auths":{"a.io":{"auth":"eDp5"}},"credsStore":"desktop"}"#,
        )
        .unwrap();
        AuthFile::at(&path)
            .store("b.io", &Credentials::new("u", Secret::new("p")))
            .unwrap();
        let raw: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(raw["credsStore"], "desktop");
        assert_eq!(raw["auths"]["a.io"]["auth"], "eDp5");
    }

    #[test]
    fn lookup_across_docker_and_podman_files() {
        let dir = tempfile::tempdir().unwrap();
        let docker = dir.path().join("config.json");
        fs::write(
            &docker,
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"ZG9jazpodWI="},"quay.io/team":{"username":"t","password":"tp"}}}"#,
        )
        .unwrap();
        let broken = dir.path().join("broken.json");
        fs::write(&broken, "{not json").unwrap();
        let store = CredentialStore::none()
            .with_file(&broken)
            .with_file(&docker);
        let hub = store.find("docker.io", "library/busybox").unwrap();
        assert_eq!(hub.username, "dock");
        assert_eq!(hub.password.expose(), "hub");
        assert_eq!(store.find("quay.io", "team/app").unwrap().username, "t");
        assert_eq!(store.find("quay.io", "other/app"), None);
        let explicit = store.with_credentials("quay.io", Credentials::new("e", Secret::new("x")));
        assert_eq!(explicit.find("quay.io", "team/app").unwrap().username, "e");
    }

    #[test]
    fn bad_auth_fields_do_not_leak() {
        let error = Credentials::decode("c2VjcmV0LXdpdGhvdXQtY29sb24=").unwrap_err();
        assert!(!error.contains("secret"));
        let error = Credentials::decode("!!!secret!!!").unwrap_err();
        assert!(!error.contains("secret"));
    }
}
