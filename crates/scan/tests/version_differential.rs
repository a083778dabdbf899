//! Differential tests: our comparators against the reference implementations installed on
//! the machine (python3-apt and dpkg, python3-rpm, python3-packaging; scripts/setup.sh installs
//! them), over every version in Debian's package lists and in the OSV data.
//!
//! tests/reference/version_pairs.py writes the pairs with the reference's verdict; each test
//! reads them back and requires our answer to be identical for every pair. Without the
//! reference modules a test skips with a message, except under PALISADE_REQUIRE_PRIVILEGED=1
//! (CI), where a skip is a failure.

use std::cmp::Ordering;
use std::path::Path;
use std::process::Command;

use palisade_scan::version::{dpkg, pep440, rpm};

const PYTHON: &str = "/usr/bin/python3";

fn reference_pairs(scheme: &str, module: &str) -> Option<String> {
    let present = Command::new(PYTHON)
        .args(["-c", &format!("import {module}")])
        .status()
        .is_ok_and(|s| s.success());
    if !present {
        let msg = format!(
            "{PYTHON} cannot import {module}: install python3-apt python3-rpm python3-packaging \
             (scripts/setup.sh does)"
        );
        if std::env::var("PALISADE_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
            panic!("{msg}");
        }
        eprintln!("skipping the {scheme} differential test: {msg}");
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("pairs.tsv");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/version_pairs.py");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/versions");
    let mut cmd = Command::new(PYTHON);
    cmd.arg(&script).arg(scheme).arg(&out);
    let extra = fixtures.join(format!("{scheme}.txt"));
    if extra.exists() {
        cmd.arg(extra);
    }
    let status = cmd.status().expect("run the reference script");
    assert!(status.success(), "{} {scheme} failed", script.display());
    Some(std::fs::read_to_string(&out).expect("read pairs"))
}

fn ordering(r: &str) -> Ordering {
    match r {
        "-1" => Ordering::Less,
        "0" => Ordering::Equal,
        "1" => Ordering::Greater,
        other => panic!("bad reference result {other:?}"),
    }
}

#[test]
fn dpkg_matches_apt_pkg_and_dpkg() {
    let Some(pairs) = reference_pairs("dpkg", "apt_pkg") else {
        return;
    };
    let (mut total, mut by_dpkg, mut mismatches) = (0, 0, Vec::new());
    for line in pairs.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        total += 1;
        if f.get(3) == Some(&"dpkg") {
            by_dpkg += 1;
        }
        let ours = dpkg::compare(f[0], f[1]);
        if ours != ordering(f[2]) {
            mismatches.push(format!(
                "{} vs {}: reference {}, ours {ours:?}",
                f[0], f[1], f[2]
            ));
        }
    }
    assert!(
        total > 20_000,
        "only {total} pairs: are the apt lists present (apt-get update)?"
    );
    assert!(by_dpkg > 1000);
    assert!(
        mismatches.is_empty(),
        "{} of {total} differ:\n{}",
        mismatches.len(),
        mismatches[..mismatches.len().min(20)].join("\n")
    );
    eprintln!(
        "dpkg: {total} pairs agree with apt_pkg ({by_dpkg} also with dpkg --compare-versions)"
    );
}

#[test]
fn rpm_matches_label_compare() {
    let Some(pairs) = reference_pairs("rpm", "rpm") else {
        return;
    };
    let (mut total, mut mismatches) = (0, Vec::new());
    for line in pairs.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        total += 1;
        let ours = rpm::compare_evr(f[0], f[1]);
        if ours != ordering(f[2]) {
            mismatches.push(format!(
                "{} vs {}: reference {}, ours {ours:?}",
                f[0], f[1], f[2]
            ));
        }
    }
    assert!(total > 20_000, "only {total} pairs");
    assert!(
        mismatches.is_empty(),
        "{} of {total} differ:\n{}",
        mismatches.len(),
        mismatches[..mismatches.len().min(20)].join("\n")
    );
    eprintln!("rpm: {total} pairs agree with rpm.labelCompare");
}

#[test]
fn pep440_matches_packaging() {
    let Some(pairs) = reference_pairs("pep440", "packaging.version") else {
        return;
    };
    let (mut total, mut invalid, mut mismatches) = (0, 0, Vec::new());
    for line in pairs.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        total += 1;
        let ours = pep440::compare(f[0], f[1]);
        if f[2] == "invalid" {
            invalid += 1;
            if ours.is_ok() {
                mismatches.push(format!("{:?}: packaging rejects it, we accept it", f[0]));
            }
            continue;
        }
        match ours {
            Ok(o) if o == ordering(f[2]) => {}
            other => mismatches.push(format!(
                "{:?} vs {:?}: reference {}, ours {other:?}",
                f[0], f[1], f[2]
            )),
        }
    }
    assert!(
        total > 20_000,
        "only {total} pairs: is the OSV data present?"
    );
    assert!(
        mismatches.is_empty(),
        "{} of {total} differ:\n{}",
        mismatches.len(),
        mismatches[..mismatches.len().min(20)].join("\n")
    );
    eprintln!(
        "pep440: {total} pairs agree with packaging ({invalid} invalid versions rejected by both)"
    );
}
