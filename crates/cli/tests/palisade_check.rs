//! `palisade check`: the ten threats for `run` flags and OCI bundles, as a table and as JSON.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

const PALISADE: &str = env!("CARGO_BIN_EXE_palisade");
const RUNTIME: &str = env!("CARGO_BIN_EXE_palisade-runtime");

fn palisade(root: &Path, args: &[&str]) -> Output {
    Command::new(PALISADE)
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("run palisade")
}

/// Row number -> coverage, from `--format json`.
fn verdicts(output: &Output) -> Vec<(u64, String)> {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    value["threats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["number"].as_u64().unwrap(),
                row["coverage"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn status(verdicts: &[(u64, String)], number: u64) -> &str {
    &verdicts.iter().find(|(n, _)| *n == number).unwrap().1
}

#[test]
fn the_defaults_cover_rows_3_to_10_and_privileged_takes_them_away() {
    let dir = tempfile::tempdir().unwrap();
    let defaults = verdicts(&palisade(
        dir.path(),
        &["--format", "json", "check", "--run", "--", "busybox"],
    ));
    assert_eq!(defaults.len(), 10);
    for number in 3..=10 {
        assert_eq!(
            status(&defaults, number),
            "covered",
            "row {number}: {defaults:?}"
        );
    }
    let output = palisade(dir.path(), &["check", "--strict", "--run", "--", "busybox"]);
    assert_eq!(output.status.code(), Some(0));

    let privileged = verdicts(&palisade(
        dir.path(),
        &[
            "--format",
            "json",
            "check",
            "--run",
            "--",
            "--privileged",
            "busybox",
        ],
    ));
    for number in [6, 9, 10] {
        assert_eq!(
            status(&privileged, number),
            "open",
            "row {number}: {privileged:?}"
        );
    }
    let output = palisade(
        dir.path(),
        &[
            "check",
            "--strict",
            "--run",
            "--",
            "--privileged",
            "busybox",
        ],
    );
    assert_eq!(output.status.code(), Some(3));
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        table.contains("privilege escalation              OPEN       no seccomp filter"),
        "{table}"
    );

    for (flags, row, expected) in [
        (&["--security-opt", "seccomp=unconfined"][..], 9, "open"),
        (&["--network", "host"][..], 8, "open"),
        (&["--network", "host"][..], 5, "weakened"),
        (&["--read-only=false"][..], 6, "weakened"),
        (&["--pids-limit", "-1"][..], 4, "weakened"),
        (&["-v", "/etc:/host-etc"][..], 6, "open"),
    ] {
        let mut args = vec!["--format", "json", "check", "--run", "--"];
        args.extend_from_slice(flags);
        args.push("busybox");
        let found = verdicts(&palisade(dir.path(), &args));
        assert_eq!(
            status(&found, row),
            expected,
            "{flags:?} row {row}: {found:?}"
        );
    }
}

#[test]
fn a_bundle_is_checked_from_its_config_and_bad_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    std::fs::create_dir(&bundle).unwrap();
    // The runtime's own hardened spec.
    let made = Command::new(RUNTIME)
        .args(["spec", "--bundle"])
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let found = verdicts(&palisade(
        dir.path(),
        &[
            "--format",
            "json",
            "check",
            "--bundle",
            bundle.to_str().unwrap(),
        ],
    ));
    for number in 3..=10 {
        assert_eq!(status(&found, number), "covered", "row {number}: {found:?}");
    }
    assert_eq!(
        status(&found, 1),
        "open",
        "nothing is known of a bundle's image"
    );

    std::fs::write(bundle.join("config.json"), b"{\"ociVersion\": 7}").unwrap();
    let output = palisade(dir.path(), &["check", "--bundle", bundle.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is not an OCI runtime config"));
    let output = palisade(
        dir.path(),
        &[
            "check",
            "--bundle",
            dir.path().join("none").to_str().unwrap(),
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is it an OCI bundle?"));
    let output = palisade(dir.path(), &["check"]);
    assert_eq!(output.status.code(), Some(125));
}
