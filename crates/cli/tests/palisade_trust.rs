//! `palisade key`, `sign`, `verify` and the enforced trust policy, end to end: Debian's
//! docker-registry on 127.0.0.1, SoftHSM2 tokens (one per test, with its own SOFTHSM2_CONF),
//! busybox images imported locally.
//!
//! Tests that need docker-registry or softhsm2 skip with a message when they are missing,
//! and fail instead when PALISADE_REQUIRE_PRIVILEGED=1; those that run containers also need
//! root and user namespaces.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use palisade_image::import::{import, ImportOptions};
use palisade_image::{ImageReference, Store};
use serde_json::Value;

const PALISADE: &str = env!("CARGO_BIN_EXE_palisade");
const RUNTIME: &str = env!("CARGO_BIN_EXE_palisade-runtime");
const BUSYBOX: &str = "/bin/busybox";
const SOFTHSM: &str = "/usr/lib/softhsm/libsofthsm2.so";

fn require(what: &str, present: bool) -> bool {
    if present {
        return true;
    }
    assert!(
        std::env::var("PALISADE_REQUIRE_PRIVILEGED").as_deref() != Ok("1"),
        "{what} is missing and PALISADE_REQUIRE_PRIVILEGED=1"
    );
    eprintln!("SKIP: {what} is missing");
    false
}

fn can_run_containers() -> bool {
    require("root", nix::unistd::geteuid().is_root())
        && require("user namespaces", Path::new("/proc/self/ns/user").exists())
        && require(
            "busybox (apt-get install busybox-static)",
            Path::new(BUSYBOX).exists(),
        )
}

/// A store, a runtime root, keys and a policy of our own.
struct Env {
    dir: tempfile::TempDir,
    policy: Option<PathBuf>,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("palisade-trust")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap();
        // The container's root (an unprivileged host uid) must traverse to the store.
        let mut path = dir.path().to_owned();
        loop {
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            if mode & 0o001 == 0 {
                fs::set_permissions(&path, fs::Permissions::from_mode(mode | 0o011)).unwrap();
            }
            if !path.pop() {
                break;
            }
        }
        fs::create_dir_all(dir.path().join("run")).unwrap();
        Env { dir, policy: None }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn store(&self) -> PathBuf {
        self.path("store")
    }

    /// Imports a busybox image named `name` into the store.
    fn busybox(&self, name: &str, marker: &str) {
        let rootfs = self.path(&format!("rootfs-{}", name.replace([':', '/'], "-")));
        fs::create_dir_all(rootfs.join("bin")).unwrap();
        fs::create_dir_all(rootfs.join("etc")).unwrap();
        fs::copy(BUSYBOX, rootfs.join("bin/busybox")).unwrap();
        for applet in ["sh", "echo", "cat", "true"] {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
        }
        fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n").unwrap();
        fs::write(rootfs.join("marker"), marker).unwrap();
        let store = Store::open(self.store()).unwrap();
        import(
            &store,
            &rootfs,
            &ImageReference::parse(name).unwrap(),
            &ImportOptions::default(),
        )
        .unwrap();
    }

    /// Writes the policy file (and `keys/` beside it) that every later command uses.
    fn set_policy(&mut self, json: &str) {
        let path = self.path("policy.json");
        fs::write(&path, json).unwrap();
        self.policy = Some(path);
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(PALISADE);
        command
            .arg("--root")
            .arg(self.store())
            .args(args)
            .current_dir(self.dir.path())
            .env("PALISADE_RUNTIME", RUNTIME)
            .env("PALISADE_RUNTIME_ROOT", self.path("run"))
            .env("COSIGN_PASSWORD", "correct horse")
            .env_remove("SOFTHSM2_CONF")
            .stdin(Stdio::null());
        match &self.policy {
            Some(path) => command.env("PALISADE_POLICY", path),
            None => command.env("PALISADE_POLICY", self.path("no-policy-file.json")),
        };
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "palisade {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs and expects failure with `code`; returns stderr.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "palisade {args:?}: {stderr}");
        stderr
    }

    fn generate(&self, prefix: &str) {
        self.ok(&["key", "generate", "--output-key-prefix", prefix]);
    }

    fn audit_verdicts(&self) -> Vec<String> {
        fs::read_to_string(self.store().join("audit/trust.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|v| v["event"]["verdict"].as_str().map(str::to_owned))
            .collect()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = Command::new(PALISADE)
            .arg("--root")
            .arg(self.store())
            .args(["rm", "-f", "--all"])
            .env("PALISADE_RUNTIME", RUNTIME)
            .env("PALISADE_RUNTIME_ROOT", self.path("run"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Debian's docker-registry on a free 127.0.0.1 port, stopped on drop.
struct LocalRegistry {
    child: std::process::Child,
    host: String,
}

impl LocalRegistry {
    fn start(dir: &Path) -> Option<LocalRegistry> {
        if !require(
            "docker-registry (apt-get install docker-registry)",
            Path::new("/usr/bin/docker-registry").exists(),
        ) {
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.join("registry.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.join("registry").display()
            ),
        )
        .unwrap();
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(LocalRegistry {
            child,
            host: format!("127.0.0.1:{port}"),
        })
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn keys_generate_export_and_fingerprint() {
    let env = Env::new();
    for (prefix, kind) in [
        ("p256", "ecdsa-p256"),
        ("p384", "ecdsa-p384"),
        ("ed", "ed25519"),
    ] {
        let out = env.ok(&[
            "--format",
            "json",
            "key",
            "generate",
            "--type",
            kind,
            "--output-key-prefix",
            prefix,
        ]);
        let generated: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(generated["algorithm"], kind);
        let key = env.path(&format!("{prefix}.key"));
        assert_eq!(
            fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(fs::read_to_string(&key)
            .unwrap()
            .starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"));
        let public = fs::read_to_string(env.path(&format!("{prefix}.pub"))).unwrap();
        assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"));
        assert_eq!(
            env.ok(&["key", "export-public", "--key", &format!("{prefix}.key")]),
            public
        );
        let fingerprints = env.ok(&[
            "--format",
            "json",
            "key",
            "fingerprint",
            &format!("{prefix}.pub"),
            &format!("{prefix}.key"),
        ]);
        let rows: Value = serde_json::from_str(&fingerprints).unwrap();
        assert_eq!(rows[0]["fingerprint"], generated["fingerprint"]);
        assert_eq!(rows[1]["fingerprint"], generated["fingerprint"]);
    }
    // Existing files are kept unless --force.
    let stderr = env.fails(&["key", "generate", "--output-key-prefix", "p256"], 125);
    assert!(stderr.contains("--force"), "{stderr}");
    // A wrong password, and no password at all without a terminal.
    let out = env
        .command(&["key", "export-public", "--key", "p256.key"])
        .env("COSIGN_PASSWORD", "wrong")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong password"));
    let out = env
        .command(&["key", "export-public", "--key", "p256.key"])
        .env_remove("COSIGN_PASSWORD")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("COSIGN_PASSWORD"));
    // Garbage key files are clear errors.
    fs::write(env.path("garbage.key"), "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n").unwrap();
    let stderr = env.fails(&["key", "export-public", "--key", "garbage.key"], 1);
    assert!(stderr.contains("garbage.key"), "{stderr}");
}

#[test]
fn sign_and_verify_both_forms_on_a_registry() {
    let env = Env::new();
    let Some(registry) = LocalRegistry::start(env.dir.path()) else {
        return;
    };
    let host = registry.host.as_str();
    env.busybox("busybox:latest", "one");
    let image = format!("{host}/team/app:1");
    env.ok(&[
        "push",
        "--insecure-registry",
        host,
        "busybox:latest",
        &image,
    ]);
    env.generate("alice");
    env.generate("mallory");
    // Unsigned: verify fails and says why.
    let out = env.run(&[
        "verify",
        "--insecure-registry",
        host,
        "--key",
        "alice.pub",
        &image,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no signatures found"));
    // The referrer form (default; this registry has no referrers API: the tag schema) and
    // the tag form with an annotation.
    let signed = env.ok(&[
        "sign",
        "--insecure-registry",
        host,
        "--key",
        "alice.key",
        &image,
    ]);
    assert!(
        signed.contains("referrer") && signed.contains("sha256-"),
        "{signed}"
    );
    let signed = env.ok(&[
        "sign",
        "--insecure-registry",
        host,
        "--key",
        "alice.key",
        "--tag-form",
        "-a",
        "env=prod",
        &image,
    ]);
    assert!(signed.contains(".sig"), "{signed}");
    let out = env.ok(&[
        "--format",
        "json",
        "verify",
        "--insecure-registry",
        host,
        "--key",
        "alice.pub",
        &image,
    ]);
    let verdict: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(verdict["accepted"], true);
    let sigs = verdict["signatures"].as_array().unwrap();
    assert_eq!(sigs.len(), 2);
    let forms: Vec<&str> = sigs.iter().map(|s| s["form"].as_str().unwrap()).collect();
    assert_eq!(forms, ["tag", "referrer"]);
    assert!(sigs
        .iter()
        .all(|s| s["key_name"] == "alice.pub" && s["identity"] == format!("{host}/team/app")));
    assert_eq!(sigs[0]["annotations"]["env"], "prod");
    let table = env.ok(&[
        "verify",
        "--insecure-registry",
        host,
        "--key",
        "alice.pub",
        &image,
    ]);
    assert!(table.contains("signed by alice.pub"), "{table}");
    // Another key does not verify; two keys with a threshold of two need both.
    let stderr = env.fails(
        &[
            "verify",
            "--insecure-registry",
            host,
            "--key",
            "mallory.pub",
            &image,
        ],
        1,
    );
    assert!(stderr.contains("mallory.pub"), "{stderr}");
    env.fails(
        &[
            "verify",
            "--insecure-registry",
            host,
            "--key",
            "alice.pub",
            "--key",
            "mallory.pub",
            "--threshold",
            "2",
            &image,
        ],
        1,
    );
    env.ok(&[
        "sign",
        "--insecure-registry",
        host,
        "--key",
        "mallory.key",
        &image,
    ]);
    env.ok(&[
        "verify",
        "--insecure-registry",
        host,
        "--key",
        "alice.pub",
        "--key",
        "mallory.pub",
        "--threshold",
        "2",
        &image,
    ]);
    // Bad arguments.
    env.fails(
        &[
            "sign",
            "--insecure-registry",
            host,
            "--key",
            "alice.key",
            "-a",
            "novalue",
            &image,
        ],
        125,
    );
    env.fails(
        &[
            "verify",
            "--insecure-registry",
            host,
            "--key",
            "alice.pub",
            "--threshold",
            "2",
            &image,
        ],
        125,
    );
}

#[test]
fn the_policy_gates_pull() {
    let mut env = Env::new();
    let Some(registry) = LocalRegistry::start(env.dir.path()) else {
        return;
    };
    let host = registry.host.clone();
    env.busybox("busybox:latest", "one");
    env.busybox("other:latest", "two");
    let signed = format!("{host}/team/app:1");
    let unsigned = format!("{host}/team/unsigned:1");
    env.ok(&[
        "push",
        "--insecure-registry",
        &host,
        "busybox:latest",
        &signed,
    ]);
    env.ok(&[
        "push",
        "--insecure-registry",
        &host,
        "other:latest",
        &unsigned,
    ]);
    env.generate("team");
    env.ok(&[
        "sign",
        "--insecure-registry",
        &host,
        "--key",
        "team.key",
        &signed,
    ]);
    fs::create_dir(env.path("keys")).unwrap();
    fs::copy(env.path("team.pub"), env.path("keys/team.pub")).unwrap();
    env.set_policy(&format!(
        r#"{{"scopes": {{"{host}/team/*": {{"keys": ["team.pub"]}}, "*": "reject"}}}}"#
    ));
    let stderr = env.fails(&["pull", "--insecure-registry", &host, &unsigned], 1);
    assert!(
        stderr.contains("not trusted")
            && stderr.contains("team.pub")
            && stderr.contains("no signatures found"),
        "{stderr}"
    );
    let images = env.ok(&["images"]);
    assert!(
        !images.contains("team/unsigned"),
        "a refused image is not tagged: {images}"
    );
    env.ok(&["pull", "--insecure-registry", &host, &signed]);
    assert_eq!(env.audit_verdicts(), ["refused", "verified"]);
    // A policy file with errors stops everything.
    env.set_policy(r#"{"scopes": {"*": "rejcet"}}"#);
    let stderr = env.fails(&["pull", "--insecure-registry", &host, &signed], 1);
    assert!(
        stderr.contains("trust policy") && stderr.contains("rejcet"),
        "{stderr}"
    );
    // Verify against the policy instead of --key.
    env.set_policy(&format!(
        r#"{{"scopes": {{"{host}/team/*": {{"keys": ["team.pub"]}}}}}}"#
    ));
    let out = env.ok(&["verify", "--insecure-registry", &host, &signed]);
    assert!(out.contains("trust policy"), "{out}");
}

#[test]
fn run_checks_the_policy_offline_and_local_images_follow_the_local_scope() {
    if !can_run_containers() {
        return;
    }
    let mut env = Env::new();
    let Some(registry) = LocalRegistry::start(env.dir.path()) else {
        return;
    };
    let host = registry.host.clone();
    env.busybox("busybox:latest", "local");
    let signed = format!("{host}/team/app:1");
    let unsigned = format!("{host}/team/unsigned:1");
    env.ok(&[
        "push",
        "--insecure-registry",
        &host,
        "busybox:latest",
        &signed,
    ]);
    env.ok(&["tag", "busybox:latest", "busybox:copy"]);
    env.ok(&[
        "push",
        "--insecure-registry",
        &host,
        "busybox:copy",
        &unsigned,
    ]);
    env.generate("team");
    env.ok(&[
        "sign",
        "--insecure-registry",
        &host,
        "--key",
        "team.key",
        &signed,
    ]);
    fs::create_dir(env.path("keys")).unwrap();
    fs::copy(env.path("team.pub"), env.path("keys/team.pub")).unwrap();
    env.set_policy(&format!(
        r#"{{"scopes": {{"{host}/team/*": {{"keys": ["team.pub"]}}, "*": "reject"}}}}"#
    ));
    // run pulls the signed image the store lacks under this name, verified, then runs it.
    let out = env.ok(&[
        "run",
        "--rm",
        "--insecure-registry",
        &host,
        &signed,
        "cat",
        "/marker",
    ]);
    assert_eq!(out, "local");
    // An unsigned image is neither pulled nor run.
    let stderr = env.fails(
        &[
            "run",
            "--rm",
            "--insecure-registry",
            &host,
            &unsigned,
            "echo",
            "ran",
        ],
        125,
    );
    assert!(
        stderr.contains("not trusted") && stderr.contains("team.pub"),
        "{stderr}"
    );
    // Offline: the registry is gone, the cached signatures still admit the image.
    drop(registry);
    assert_eq!(env.ok(&["run", "--rm", &signed, "cat", "/marker"]), "local");
    // The key is revoked (the keyring now holds another key): the image no longer runs.
    env.generate("other");
    fs::copy(env.path("other.pub"), env.path("keys/team.pub")).unwrap();
    let stderr = env.fails(&["run", "--rm", &signed, "echo", "ran"], 125);
    assert!(
        stderr.contains("not trusted") && stderr.contains("offline"),
        "{stderr}"
    );
    // Local images (imported here, never pulled) are the operator's own: they run under
    // this policy... (busybox:latest itself was pushed and pulled back: its digest has a
    // registry origin, so the registry scope applies to it under any name.)
    env.busybox("mine:1", "mine");
    assert_eq!(env.ok(&["run", "--rm", "mine:1", "cat", "/marker"]), "mine");
    env.fails(&["run", "--rm", "busybox:latest", "echo", "ran"], 125);
    // ...unless the policy's local scope rejects them.
    env.set_policy(r#"{"scopes": {"local": "reject", "*": "reject"}}"#);
    let stderr = env.fails(&["run", "--rm", "mine:1", "echo", "ran"], 125);
    assert!(stderr.contains("local"), "{stderr}");
    let verdicts = env.audit_verdicts();
    assert!(verdicts.contains(&"verified".to_owned()) && verdicts.contains(&"refused".to_owned()));
}

fn softhsm_token(env: &Env, label: &str) -> Option<PathBuf> {
    if !require(
        "softhsm2 (apt-get install softhsm2)",
        Path::new(SOFTHSM).exists() && Path::new("/usr/bin/softhsm2-util").exists(),
    ) {
        return None;
    }
    let dir = env.path(&format!("hsm-{label}"));
    fs::create_dir_all(dir.join("tokens")).unwrap();
    let conf = dir.join("softhsm2.conf");
    fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            dir.join("tokens").display()
        ),
    )
    .unwrap();
    let out = Command::new("softhsm2-util")
        .args([
            "--init-token",
            "--free",
            "--label",
            label,
            "--pin",
            "1234",
            "--so-pin",
            "5678",
        ])
        .env("SOFTHSM2_CONF", &conf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(conf)
}

#[test]
fn pkcs11_keys_on_softhsm() {
    let env = Env::new();
    let Some(conf) = softhsm_token(&env, "prod") else {
        return;
    };
    let Some(registry) = LocalRegistry::start(env.dir.path()) else {
        return;
    };
    let host = registry.host.as_str();
    env.busybox("busybox:latest", "one");
    let image = format!("{host}/team/app:1");
    env.ok(&[
        "push",
        "--insecure-registry",
        host,
        "busybox:latest",
        &image,
    ]);
    fs::write(env.path("pin"), "1234\n").unwrap();
    let uri = format!(
        "pkcs11:token=prod;object=signer?module-path={SOFTHSM}&pin-source={}",
        env.path("pin").display()
    );
    let hsm = |args: &[&str]| {
        env.command(args)
            .env("SOFTHSM2_CONF", &conf)
            .output()
            .unwrap()
    };
    let out = hsm(&[
        "key",
        "generate",
        "--pkcs11",
        &uri,
        "--output-key-prefix",
        "hsm",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("1234"));
    let exported = hsm(&["key", "export-public", "--key", &uri]);
    assert_eq!(
        String::from_utf8_lossy(&exported.stdout),
        fs::read_to_string(env.path("hsm.pub")).unwrap()
    );
    for form in [&[][..], &["--tag-form"][..]] {
        let mut args = vec!["sign", "--insecure-registry", host, "--key", &uri];
        args.extend_from_slice(form);
        args.push(&image);
        let out = hsm(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = env.ok(&[
        "--format",
        "json",
        "verify",
        "--insecure-registry",
        host,
        "--key",
        "hsm.pub",
        &image,
    ]);
    let verdict: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(verdict["signatures"].as_array().unwrap().len(), 2);
    assert!(verdict["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["key_name"] == "hsm.pub"));
    // A second key under the same name is refused; wrong PIN and missing token are clear.
    let out = hsm(&[
        "key",
        "generate",
        "--pkcs11",
        &uri,
        "--output-key-prefix",
        "again",
        "--force",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let wrong = format!("pkcs11:token=prod;object=signer?module-path={SOFTHSM}&pin-value=9999");
    let out = hsm(&["sign", "--insecure-registry", host, "--key", &wrong, &image]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("wrong PIN") && !stderr.contains("9999"),
        "{stderr}"
    );
    let missing = format!("pkcs11:token=absent;object=signer?module-path={SOFTHSM}&pin-value=1234");
    let out = hsm(&[
        "sign",
        "--insecure-registry",
        host,
        "--key",
        &missing,
        &image,
    ]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no token \"absent\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = hsm(&[
        "key",
        "export-public",
        "--key",
        &format!("pkcs11:token=prod;object=nobody?module-path={SOFTHSM}&pin-value=1234"),
    ]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no private key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
