//! The attack regression suite (THREATS.md rows 3-10): `palisade-check attacks` run as the
//! process of a real container, under `palisade run` defaults (every attack must be blocked:
//! the test fails otherwise) and under runc with `runc spec` defaults (what runc leaves open is
//! recorded, not a failure). Both tables are printed and written to
//! `$CARGO_TARGET_TMPDIR/attack-suite.md`, which `.ci/run` prints.
//!
//! The host-side targets are real: a host process, a SysV segment, a POSIX queue and an
//! abstract unix socket, created here and named to the suite by flags.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fmt::Write as _;
use std::fs;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use palisade_image::import::{import, ImportOptions};
use palisade_image::{ImageReference, Store};
use serde_json::Value;

const PALISADE: &str = env!("CARGO_BIN_EXE_palisade");
const RUNTIME: &str = env!("CARGO_BIN_EXE_palisade-runtime");

/// One attack's result.
#[derive(Debug, Clone)]
struct Result {
    row: u64,
    attack: String,
    blocked: bool,
    errno: String,
    detail: String,
}

fn parse(stdout: &str) -> Vec<Result> {
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|value| value.get("attack").is_some())
        .map(|value| Result {
            row: value["row"].as_u64().unwrap_or(0),
            attack: value["attack"].as_str().unwrap_or_default().to_owned(),
            blocked: value["blocked"].as_bool().unwrap_or(false),
            errno: value["errno"].as_str().unwrap_or("-").to_owned(),
            detail: value["detail"].as_str().unwrap_or_default().to_owned(),
        })
        .collect()
}

/// The host resources the attacks aim at; removed on drop.
struct Targets {
    process: Child,
    shm_id: i32,
    mq_name: String,
    abstract_name: String,
    _listener: UnixListener,
}

impl Targets {
    fn new() -> Targets {
        // What cannot be undone if a later step fails comes last: the abstract socket closes
        // with the test, the queue is unlinked if the segment cannot be made.
        let abstract_name = format!("palisade-attack-{}", std::process::id());
        let listener =
            UnixListener::bind_addr(&SocketAddr::from_abstract_name(&abstract_name).unwrap())
                .unwrap();
        let mq_name = format!("/palisade-attack-{}", std::process::id());
        nix::mqueue::mq_open(
            mq_name.as_str(),
            nix::mqueue::MQ_OFlag::O_CREAT | nix::mqueue::MQ_OFlag::O_RDWR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            Some(&nix::mqueue::MqAttr::new(0, 4, 64, 0)),
        )
        .unwrap();
        let shm_id = palisade_sys::ipc::shm_create().unwrap_or_else(|error| {
            let _ = nix::mqueue::mq_unlink(mq_name.as_str());
            panic!("cannot create a SysV segment: {error}")
        });
        let process = match Command::new("sleep").arg("600").spawn() {
            Ok(process) => process,
            Err(error) => {
                let _ = nix::mqueue::mq_unlink(mq_name.as_str());
                let _ = palisade_sys::ipc::shm_remove(shm_id);
                panic!("cannot start a host process: {error}")
            }
        };
        Targets {
            process,
            shm_id,
            mq_name,
            abstract_name,
            _listener: listener,
        }
    }

    fn args(&self) -> Vec<String> {
        vec![
            "attacks".into(),
            "--host-pid".into(),
            self.process.id().to_string(),
            "--shm-id".into(),
            self.shm_id.to_string(),
            "--mq".into(),
            self.mq_name.clone(),
            "--abstract".into(),
            self.abstract_name.clone(),
        ]
    }
}

impl Drop for Targets {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        let _ = palisade_sys::ipc::shm_remove(self.shm_id);
        let _ = nix::mqueue::mq_unlink(self.mq_name.as_str());
    }
}

/// A directory every user can traverse (the container's root is an unprivileged host uid).
fn traversable_dir(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
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
    dir
}

/// Runs the suite in `palisade run` with every default; returns its results and the directory
/// holding the store (and so its audit logs).
fn under_palisade(targets: &Targets) -> (Vec<Result>, tempfile::TempDir) {
    let dir = traversable_dir("attack-palisade");
    let store_root = dir.path().join("store");
    let run_root = dir.path().join("run");
    fs::create_dir_all(&run_root).unwrap();
    let store = Store::open(&store_root).unwrap();
    import(
        &store,
        support::rootfs(),
        &ImageReference::parse("attacks:latest").unwrap(),
        &ImportOptions::default(),
    )
    .unwrap();
    check_created_container(&store_root, &run_root);
    let output = Command::new(PALISADE)
        .arg("--root")
        .arg(&store_root)
        .args(["run", "--rm", "attacks:latest", "/bin/palisade-check"])
        .args(targets.args())
        .env("PALISADE_RUNTIME", RUNTIME)
        .env("PALISADE_RUNTIME_ROOT", &run_root)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let results = parse(&stdout);
    assert!(
        !results.is_empty(),
        "the suite did not run under palisade ({:?}): {stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    (results, dir)
}

/// `palisade check NAME` reads a created container's config from the engine: rows 3-10
/// covered under the defaults.
fn check_created_container(store_root: &Path, run_root: &Path) {
    let palisade = |args: &[&str]| {
        Command::new(PALISADE)
            .arg("--root")
            .arg(store_root)
            .args(args)
            .env("PALISADE_RUNTIME", RUNTIME)
            .env("PALISADE_RUNTIME_ROOT", run_root)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let created = palisade(&["create", "--name", "probe", "attacks:latest", "/bin/true"]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let checked = palisade(&["--format", "json", "check", "--strict", "probe"]);
    let _ = palisade(&["rm", "-f", "probe"]);
    assert!(
        checked.status.success(),
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    let report: Value = serde_json::from_slice(&checked.stdout).unwrap();
    assert!(report["subject"]
        .as_str()
        .unwrap()
        .starts_with("container "));
    for row in report["threats"].as_array().unwrap() {
        if row["number"].as_u64().unwrap() >= 3 {
            assert_eq!(row["coverage"], "covered", "{row}");
        }
    }
}

/// The records of an audit log, as JSON values.
fn records(path: &Path) -> Vec<Value> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// Row 10: what the attacks tried is in the audit log, for the right container, and the
/// chain verifies.
fn check_audit_trail(store_root: &Path) {
    let engine = records(&store_root.join("audit/engine.log"));
    let runtime = records(&store_root.join("audit/runtime.log"));
    let created = runtime
        .iter()
        .find(|r| r["event"]["kind"] == "container_created")
        .expect("the runtime recorded the container");
    let id = created["event"]["container_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let denied: Vec<&Value> = engine
        .iter()
        .filter(|r| r["event"]["kind"] == "seccomp_violation")
        .collect();
    eprintln!(
        "audit trail: {} seccomp_violation records: {:?}",
        denied.len(),
        denied
            .iter()
            .map(|r| format!(
                "{}x{}",
                r["event"]["syscall"].as_str().unwrap_or("?"),
                r["event"]["count"]
            ))
            .collect::<Vec<_>>()
    );
    for syscall in ["kexec_load", "init_module", "bpf", "mount"] {
        let record = denied
            .iter()
            .find(|r| r["event"]["syscall"] == syscall)
            .unwrap_or_else(|| panic!("no seccomp_violation for {syscall}: {denied:#?}"));
        assert_eq!(record["event"]["container_id"], id.as_str());
        assert!(record["event"]["count"].as_u64().unwrap() >= 1);
        assert_eq!(record["event"]["decision"], "deny");
    }
    let oom = runtime
        .iter()
        .find(|r| r["event"]["kind"] == "oom_killed")
        .expect("the memory hog's OOM kill is recorded");
    assert_eq!(oom["event"]["container_id"], id.as_str());
    let pids = runtime
        .iter()
        .find(|r| r["event"]["kind"] == "pids_limit_hit")
        .expect("the fork bomb's pids-limit hits are recorded");
    assert_eq!(pids["event"]["container_id"], id.as_str());
    assert!(pids["event"]["count"].as_u64().unwrap() >= 1);
    let stopped = engine
        .iter()
        .find(|r| {
            r["event"]["kind"] == "container_stopped" && r["event"]["container_id"] == id.as_str()
        })
        .expect("the container's end is recorded");
    assert_eq!(
        stopped["event"]["exit_code"], 0,
        "the suite exits 0 when all is blocked"
    );
    let verified = Command::new(PALISADE)
        .arg("--root")
        .arg(store_root)
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stdout)
    );
}

/// Runs the suite under runc with the config `runc spec` writes (rootfs and args set).
fn under_runc(targets: &Targets) -> Option<Vec<Result>> {
    let runc = ["/usr/sbin/runc", "/usr/bin/runc"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.exists())?;
    let bundle = traversable_dir("attack-runc");
    let made = Command::new(&runc)
        .args(["spec", "--bundle"])
        .arg(bundle.path())
        .status()
        .unwrap();
    assert!(made.success());
    let config_path = bundle.path().join("config.json");
    let mut config: Value = serde_json::from_slice(&fs::read(&config_path).unwrap()).unwrap();
    config["root"]["path"] = Value::String(support::rootfs().display().to_string());
    config["process"]["terminal"] = Value::Bool(false);
    let mut args = vec!["/bin/palisade-check".to_owned()];
    args.extend(targets.args());
    config["process"]["args"] = serde_json::json!(args);
    fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    let id = support::unique_id("attacks-runc");
    let state = bundle.path().join("state");
    let output = Command::new(&runc)
        .arg("--root")
        .arg(&state)
        .args(["run", "--bundle"])
        .arg(bundle.path())
        .arg(&id)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _ = Command::new(&runc)
        .arg("--root")
        .arg(&state)
        .args(["delete", "--force", &id])
        .output();
    let results = parse(&String::from_utf8_lossy(&output.stdout));
    assert!(
        !results.is_empty(),
        "the suite did not run under runc: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(results)
}

fn table(title: &str, results: &[Result]) -> String {
    let mut text = format!(
        "### {title}\n\n| row | attack | result | errno | detail |\n|---|---|---|---|---|\n"
    );
    for r in results {
        let _ = writeln!(
            text,
            "| {} | {} | {} | {} | {} |",
            r.row,
            r.attack,
            if r.blocked { "blocked" } else { "**EXPOSED**" },
            r.errno,
            r.detail.replace('|', "\\|")
        );
    }
    let exposed = results.iter().filter(|r| !r.blocked).count();
    let _ = writeln!(text, "\n{} attacks, {exposed} exposed\n", results.len());
    text
}

fn write_report(text: &str) {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("attack-suite.md");
    fs::write(path, text).unwrap();
}

#[test]
fn every_attack_is_blocked_under_palisade_defaults_and_runc_is_recorded() {
    if !support::privileged() {
        return;
    }
    let targets = Targets::new();
    let (palisade, store_dir) = under_palisade(&targets);
    let mut report = table("palisade run (defaults)", &palisade);
    let runc = under_runc(&targets);
    match &runc {
        Some(results) => report.push_str(&table("runc run (runc spec defaults)", results)),
        None => report.push_str("### runc run\n\nrunc is not installed (apt-get install runc)\n"),
    }
    eprintln!("{report}");
    write_report(&report);

    // Every row of 3-10 was attacked.
    for row in 3..=10 {
        assert!(
            palisade.iter().any(|r| r.row == row),
            "no attack of row {row} ran"
        );
    }
    for attack in [
        "kill-host-process",
        "ptrace-host-process",
        "fork-bomb",
        "memory-hog",
        "attach-host-sysv-shm",
        "open-host-posix-mq",
        "connect-host-abstract-socket",
        "cgroup-release-agent",
        "kexec_load",
        "nested-user-namespace",
        "raw-socket",
        "read-kernel-log",
        "kallsyms-addresses",
    ] {
        assert!(
            palisade.iter().any(|r| r.attack == attack),
            "{attack} did not run"
        );
    }
    let exposed: Vec<&Result> = palisade.iter().filter(|r| !r.blocked).collect();
    assert!(
        exposed.is_empty(),
        "attacks got through under palisade run defaults: {exposed:#?}"
    );
    check_audit_trail(&store_dir.path().join("store"));
    if let Some(runc) = runc {
        // runc's defaults differ (no user namespace, no seccomp, no limits): the suite must
        // see that, or it is not testing anything.
        assert!(runc.iter().any(|r| !r.blocked), "runc blocked everything?");
    }
}
