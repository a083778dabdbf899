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

/// Every version string in the crates.io and Go OSV records.
fn semver_versions_from_osv() -> Option<Vec<String>> {
    let root = std::env::var_os("PALISADE_OSV_DATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/work/shared/data/osv".into());
    let mut out = std::collections::BTreeSet::new();
    for eco in ["crates.io", "go"] {
        let dir = std::fs::read_dir(root.join(eco)).ok()?;
        for entry in dir.flatten() {
            let Ok(text) = std::fs::read(entry.path()) else {
                continue;
            };
            let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&text) else {
                continue;
            };
            for aff in doc["affected"].as_array().into_iter().flatten() {
                for v in aff["versions"].as_array().into_iter().flatten() {
                    out.extend(v.as_str().map(str::to_owned));
                }
                for r in aff["ranges"].as_array().into_iter().flatten() {
                    for ev in r["events"].as_array().into_iter().flatten() {
                        for v in ev.as_object().into_iter().flat_map(|o| o.values()) {
                            out.extend(v.as_str().filter(|s| *s != "0").map(str::to_owned));
                        }
                    }
                }
            }
        }
    }
    Some(out.into_iter().collect())
}

#[test]
fn npm_and_semver_match_node_semver() {
    // npm's own copy (Node.js from nodesource), or Debian's node-semver package.
    let semver_js = [
        "/usr/lib/node_modules/npm/node_modules/semver",
        "/usr/share/nodejs/semver",
        "/usr/lib/nodejs/semver",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
    .unwrap_or("/usr/share/nodejs/semver");
    let node_ok = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !node_ok || !Path::new(semver_js).exists() {
        let msg = "no node with node-semver: install nodejs and node-semver";
        if std::env::var("PALISADE_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
            panic!("{msg}");
        }
        eprintln!("skipping the node-semver differential test: {msg}");
        return;
    }
    let Some(versions) = semver_versions_from_osv() else {
        eprintln!("skipping: no OSV data (set PALISADE_OSV_DATA)");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let list = dir.path().join("versions.txt");
    std::fs::write(&list, versions.join("\n")).expect("write");
    let out = dir.path().join("pairs.tsv");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/npm_semver.js");
    let status = Command::new("node")
        .arg(&script)
        .arg(&list)
        .arg(&out)
        .status()
        .expect("node");
    assert!(status.success());
    let pairs = std::fs::read_to_string(&out).expect("read");
    let (mut total, mut invalid, mut mismatches) = (0, 0, Vec::new());
    for line in pairs.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        total += 1;
        let ours = palisade_scan::version::npm::compare(f[0], f[1]);
        if f[2] == "invalid" {
            invalid += 1;
            if ours.is_ok() {
                mismatches.push(format!("{:?}: node-semver rejects it, we accept it", f[0]));
            }
            continue;
        }
        match ours {
            Ok(o) if o == ordering(f[2]) => {}
            other => mismatches.push(format!(
                "{:?} vs {:?}: node-semver {}, ours {other:?}",
                f[0], f[1], f[2]
            )),
        }
        // Cargo's SemVer is the same ordering without the `v` prefix.
        if !f[0].starts_with('v') && !f[1].starts_with('v') {
            let cargo = palisade_scan::version::semver::compare(f[0], f[1]);
            if cargo != Ok(ordering(f[2])) {
                mismatches.push(format!(
                    "{:?} vs {:?}: node-semver {}, SemVer {cargo:?}",
                    f[0], f[1], f[2]
                ));
            }
        }
    }
    assert!(total > 20_000, "only {total} pairs");
    assert!(
        mismatches.is_empty(),
        "{} of {total} differ:\n{}",
        mismatches.len(),
        mismatches[..mismatches.len().min(20)].join("\n")
    );
    eprintln!(
        "npm/SemVer: {total} pairs agree with node-semver ({invalid} invalid rejected by both)"
    );
}

#[test]
fn maven_matches_comparable_version() {
    let jar = std::env::var("MAVEN_ARTIFACT_JAR")
        .unwrap_or_else(|_| "/usr/share/java/maven-artifact-3.x.jar".into());
    let java = Command::new("java")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !java || !Path::new(&jar).exists() {
        let msg = "no java with maven-artifact: install default-jre-headless libmaven3-core-java";
        if std::env::var("PALISADE_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
            panic!("{msg}");
        }
        eprintln!("skipping the Maven differential test: {msg}");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("pairs.tsv");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/maven_pairs.py");
    let status = Command::new(PYTHON)
        .arg(&script)
        .arg(&out)
        .status()
        .expect("python");
    assert!(status.success());
    let pairs = std::fs::read_to_string(&out).expect("read");
    let (mut total, mut mismatches) = (0, Vec::new());
    for line in pairs.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        total += 1;
        let ours = palisade_scan::version::maven::compare(f[0], f[1]);
        if ours != ordering(f[2]) {
            mismatches.push(format!(
                "{} vs {}: Maven {}, ours {ours:?}",
                f[0], f[1], f[2]
            ));
        }
    }
    assert!(total > 10_000, "only {total} pairs");
    assert!(
        mismatches.is_empty(),
        "{} of {total} differ:\n{}",
        mismatches.len(),
        mismatches[..mismatches.len().min(30)].join("\n")
    );
    eprintln!("maven: {total} pairs agree with ComparableVersion");
}
