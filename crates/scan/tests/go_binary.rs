//! A Go binary's build information: built here with the installed Go toolchain (Debian 12's
//! golang-go is Go 1.19, which the Go vulnerability database lists in many stdlib advisories).

use std::path::{Path, PathBuf};
use std::process::Command;

use palisade_scan::db::{self, Database};
use palisade_scan::scan_dir;

fn go() -> Option<PathBuf> {
    let found = Command::new("go")
        .arg("version")
        .output()
        .ok()
        .filter(|o| o.status.success());
    if found.is_none() {
        let msg = "no `go` toolchain: install golang-go (scripts/setup.sh does)";
        if std::env::var("PALISADE_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
            panic!("{msg}");
        }
        eprintln!("skipping: {msg}");
        return None;
    }
    Some(PathBuf::from("go"))
}

fn build_hello(dir: &Path) -> PathBuf {
    let src = dir.join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("go.mod"), "module example.com/hello\n\ngo 1.19\n").expect("go.mod");
    std::fs::write(
        src.join("main.go"),
        "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }\n",
    )
    .expect("main.go");
    let out = dir.join("root/usr/local/bin/hello");
    std::fs::create_dir_all(out.parent().expect("parent")).expect("mkdir");
    let status = Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .arg(".")
        .current_dir(&src)
        .env("GOCACHE", dir.join("cache"))
        .env("GOPATH", dir.join("gopath"))
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", "0")
        .status()
        .expect("go build");
    assert!(status.success(), "go build failed");
    out
}

#[test]
fn go_binary_stdlib_advisories() {
    if go().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    build_hello(tmp.path());
    let inv = scan_dir(&tmp.path().join("root")).expect("inventory");
    let stdlib = inv
        .packages
        .iter()
        .find(|p| p.name == "stdlib")
        .expect("stdlib from build info");
    assert_eq!(stdlib.ecosystem, "Go");
    assert_eq!(stdlib.location, "usr/local/bin/hello");
    let version = stdlib.version.clone();
    eprintln!("Go toolchain in the binary: {version}");
    assert!(inv.warnings.is_empty(), "{:?}", inv.warnings);

    let data = std::env::var_os("PALISADE_OSV_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/work/shared/data/osv".into());
    if !data.join("go").is_dir() {
        eprintln!("skipping the match: no Go OSV data at {}", data.display());
        return;
    }
    let path = tmp.path().join("vulndb");
    db::import(&[data.join("go")], &path).expect("import");
    let db = Database::open(&path).expect("open");
    let report = db.match_inventory(&inv).expect("match");
    let stdlib_findings: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.package == "stdlib")
        .collect();
    eprintln!(
        "{} stdlib advisories for Go {version}",
        stdlib_findings.len()
    );
    if version.starts_with("1.19.") {
        assert!(
            stdlib_findings.len() >= 20,
            "only {} stdlib findings for Go {version}",
            stdlib_findings.len()
        );
        // GO-2023-1840 (CVE-2023-29404, cmd/go) is fixed in 1.19.10 / 1.20.5;
        // net/http's HTTP/2 rapid reset, GO-2023-2102, in 1.20.10 / 1.21.3.
        assert!(stdlib_findings
            .iter()
            .any(|f| f.id == "CVE-2023-39325" || f.aliases.iter().any(|a| a == "GO-2023-2102")));
        assert!(stdlib_findings.iter().all(|f| !f.fixed.is_empty()));
    } else {
        assert!(
            !report.warnings.iter().any(|w| w.contains("stdlib")),
            "{:?}",
            report.warnings
        );
    }
}
