//! End-to-end: hand-written Debian 12 / Alpine 3.19 advisories and the real OSV data against
//! committed root filesystem extracts and layer streams.

use std::path::{Path, PathBuf};

use palisade_scan::db::{self, Database};
use palisade_scan::{scan_dir, scan_layers, Report, Severity};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The real OSV data (PALISADE_OSV_DATA, default /work/shared/data/osv), if present.
fn osv_data() -> Option<PathBuf> {
    let p = std::env::var_os("PALISADE_OSV_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/work/shared/data/osv".into());
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!(
            "skipping: no OSV data at {} (set PALISADE_OSV_DATA)",
            p.display()
        );
        None
    }
}

fn build_db(dir: &Path, sources: &[PathBuf]) -> (Database, db::ImportReport) {
    let path = dir.join("vulndb");
    let report = db::import(sources, &path).expect("import");
    (Database::open(&path).expect("open"), report)
}

fn ids(report: &Report) -> Vec<String> {
    report
        .findings
        .iter()
        .map(|f| format!("{}:{}", f.package, f.id))
        .collect()
}

#[test]
fn debian_rootfs_against_hand_written_advisories() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (db, import) = build_db(
        tmp.path(),
        &[
            fixtures().join("osv/debian"),
            fixtures().join("osv/malformed"),
        ],
    );
    assert_eq!(import.meta.withdrawn, 1);
    assert_eq!(import.meta.malformed, 2, "{:?}", import.warnings);
    assert!(
        import.warnings.iter().any(|w| w.contains("truncated.json")),
        "{:?}",
        import.warnings
    );
    assert!(
        import.warnings.iter().any(|w| w.contains("garbage.yaml")),
        "{:?}",
        import.warnings
    );

    let inv = scan_dir(&fixtures().join("rootfs/debian12")).expect("inventory");
    assert_eq!(
        inv.os.as_ref().and_then(|o| o.ecosystem()).as_deref(),
        Some("Debian:12")
    );
    let libc = inv
        .packages
        .iter()
        .find(|p| p.name == "libc6")
        .expect("libc6");
    assert_eq!(libc.advisory_key(), ("glibc", "2.36-9+deb12u1"));
    let libfoo = inv
        .packages
        .iter()
        .find(|p| p.name == "libfoo1")
        .expect("libfoo1");
    assert_eq!(libfoo.advisory_key(), ("foo", "1.0-1"));
    assert!(
        !inv.packages.iter().any(|p| p.name == "removed-pkg"),
        "config-files only is not installed"
    );
    // six's metadata belongs to python3-six: the distribution's package covers it.
    assert!(!inv
        .packages
        .iter()
        .any(|p| p.name == "six" && p.ecosystem == "PyPI"));
    // The binary garbage METADATA is named in a warning; the rest is still inventoried.
    assert!(
        inv.warnings
            .iter()
            .any(|w| w.contains("broken-0.1.dist-info/METADATA")),
        "{:?}",
        inv.warnings
    );
    assert!(inv
        .packages
        .iter()
        .any(|p| p.name == "urllib3" && p.version == "1.26.4"));
    assert!(inv
        .packages
        .iter()
        .any(|p| p.name == "regex" && p.ecosystem == "crates.io"));

    let report = db.match_inventory(&inv).expect("match");
    let found = ids(&report);
    // glibc's DSA is reported on the binary package by its CVE, with the fix.
    let glibc = report
        .findings
        .iter()
        .find(|f| f.package == "libc6" && f.id == "CVE-2023-4911")
        .expect("CVE-2023-4911");
    assert_eq!(glibc.fixed, vec!["2.36-9+deb12u3".to_owned()]);
    assert_eq!(glibc.aliases, vec!["DSA-5514-1".to_owned()]);
    assert_eq!(glibc.severity, Severity::High);
    assert_eq!(glibc.score, Some(7.8));
    assert_eq!(glibc.source.as_deref(), Some("glibc"));
    assert!(
        found.contains(&"libfoo1:CVE-2099-0001".to_owned()),
        "{found:?}"
    );
    assert_eq!(
        report
            .findings
            .iter()
            .find(|f| f.id == "CVE-2099-0001")
            .map(|f| f.severity),
        Some(Severity::High)
    );
    let zlib = report
        .findings
        .iter()
        .find(|f| f.id == "FIXTURE-DEB-LAST-AFFECTED")
        .expect("last_affected");
    assert!(zlib.fixed.is_empty());
    assert_eq!(zlib.severity, Severity::Medium);
    // Explicit versions list matches bash; withdrawn and Debian:11 records never do.
    assert!(
        found.contains(&"bash:FIXTURE-DEB-VERSIONS-LIMIT".to_owned()),
        "{found:?}"
    );
    assert!(
        !found
            .iter()
            .any(|f| f.contains("WITHDRAWN") || f.contains("OTHER-RELEASE")),
        "{found:?}"
    );
    // glibc 2.36-9+deb12u1 is past the limit event of the same record.
    assert!(
        !found.contains(&"libc6:FIXTURE-DEB-VERSIONS-LIMIT".to_owned()),
        "{found:?}"
    );
    assert_eq!(report.findings.len(), 4, "{found:?}");
}

#[test]
fn debian_fixed_versions_report_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (db, _) = build_db(tmp.path(), &[fixtures().join("osv/debian")]);
    let root = tmp.path().join("root");
    copy_tree(&fixtures().join("rootfs/debian12"), &root);
    let status = root.join("var/lib/dpkg/status");
    let text = std::fs::read_to_string(&status).expect("status");
    let text = text
        .replace("Version: 2.36-9+deb12u1", "Version: 2.36-9+deb12u3")
        .replace(
            "Source: foo (1.0-1)\nVersion: 1.0-1+b1",
            "Source: foo (1.0-2)\nVersion: 1.0-2+b1",
        )
        .replace("Version: 1:1.2.13.dfsg-1", "Version: 1:1.2.13.dfsg-2")
        .replace("Version: 5.2.15-2+b2", "Version: 5.2.15-2+b3");
    std::fs::write(&status, text).expect("write");
    let report = db
        .match_inventory(&scan_dir(&root).expect("inventory"))
        .expect("match");
    assert!(report.findings.is_empty(), "{:?}", ids(&report));
}

#[test]
fn alpine_rootfs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (db, import) = build_db(tmp.path(), &[fixtures().join("osv/alpine")]);
    assert!(
        import
            .warnings
            .iter()
            .any(|w| w.contains("FIXTURE-APK-BAD-VERSION") && w.contains("range skipped")),
        "{:?}",
        import.warnings
    );
    let inv = scan_dir(&fixtures().join("rootfs/alpine319")).expect("inventory");
    assert_eq!(
        inv.os.as_ref().and_then(|o| o.ecosystem()).as_deref(),
        Some("Alpine:v3.19")
    );
    assert_eq!(inv.packages.len(), 3);
    let report = db.match_inventory(&inv).expect("match");
    let found = ids(&report);
    assert_eq!(
        found,
        vec![
            "libcrypto3:CVE-2024-0727".to_owned(),
            "libssl3:CVE-2024-0727".to_owned()
        ]
    );
    assert_eq!(report.findings[0].fixed, vec!["3.1.4-r5".to_owned()]);
    assert_eq!(report.findings[0].severity, Severity::High);
}

#[test]
fn real_osv_data_urllib3_regex_and_alias_merging() {
    let Some(data) = osv_data() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let (db, _) = build_db(
        tmp.path(),
        &[
            data.join("pypi/urllib3"),
            data.join("crates.io/RUSTSEC-2022-0013.json"),
            fixtures().join("osv/pypi"),
        ],
    );
    let inv = scan_dir(&fixtures().join("rootfs/debian12")).expect("inventory");
    let report = db.match_inventory(&inv).expect("match");
    let urllib3: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.package == "urllib3")
        .collect();
    let names: Vec<&str> = urllib3.iter().map(|f| f.id.as_str()).collect();
    // PYSEC-2021-108 and the GHSA record are the same CVE: one finding, rated from the GHSA
    // record's CVSS vector.
    let merged = urllib3
        .iter()
        .find(|f| f.id == "CVE-2021-33503")
        .expect("CVE-2021-33503");
    assert!(merged.aliases.contains(&"PYSEC-2021-108".to_owned()));
    assert!(merged.aliases.contains(&"GHSA-q2q7-5pp4-w6pg".to_owned()));
    assert_eq!(merged.severity, Severity::High);
    assert_eq!(merged.fixed, vec!["1.26.5".to_owned()]);
    assert_eq!(
        urllib3
            .iter()
            .filter(|f| f.id == "CVE-2021-33503" || f.aliases.iter().any(|a| a == "PYSEC-2021-108"))
            .count(),
        1
    );
    assert!(
        urllib3
            .iter()
            .any(|f| f.aliases.iter().any(|a| a == "PYSEC-2023-192") || f.id == "PYSEC-2023-192"),
        "{names:?}"
    );
    assert!(
        urllib3
            .iter()
            .any(|f| f.aliases.iter().any(|a| a == "PYSEC-2023-212") || f.id == "PYSEC-2023-212"),
        "{names:?}"
    );
    assert!(
        !urllib3
            .iter()
            .any(|f| f.aliases.iter().any(|a| a == "PYSEC-2021-59")),
        "fixed in 1.26.4 itself: {names:?}"
    );
    let regex = report
        .findings
        .iter()
        .find(|f| f.package == "regex")
        .expect("regex finding");
    assert!(
        regex.id == "CVE-2022-24713" || regex.aliases.iter().any(|a| a == "RUSTSEC-2022-0013"),
        "{regex:?}"
    );
    assert_eq!(regex.fixed, vec!["1.5.5".to_owned()]);

    // Fixed versions: nothing.
    let root = tmp.path().join("root");
    copy_tree(&fixtures().join("rootfs/debian12"), &root);
    let meta =
        root.join("usr/local/lib/python3.11/dist-packages/urllib3-1.26.4.dist-info/METADATA");
    std::fs::write(
        &meta,
        "Metadata-Version: 2.1\nName: urllib3\nVersion: 1.26.18\n\n",
    )
    .expect("write");
    let lock = root.join("srv/app/Cargo.lock");
    let text = std::fs::read_to_string(&lock)
        .expect("lock")
        .replace("1.5.4", "1.5.5");
    std::fs::write(&lock, text).expect("write");
    let report = db
        .match_inventory(&scan_dir(&root).expect("inventory"))
        .expect("match");
    assert!(report.findings.is_empty(), "{:?}", ids(&report));
}

fn tar_layer(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, content) in entries {
        let mut h = tar::Header::new_gnu();
        match content {
            Some(data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                h.set_mode(0o644);
                h.set_cksum();
                b.append_data(&mut h, path, *data).expect("append");
            }
            None => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                h.set_mode(0o755);
                h.set_cksum();
                b.append_data(&mut h, path, std::io::empty())
                    .expect("append");
            }
        }
    }
    b.into_inner().expect("tar")
}

#[test]
fn layers_apply_whiteouts() {
    let os = b"ID=debian\nVERSION_ID=12\n" as &[u8];
    let old = b"Metadata-Version: 2.1\nName: urllib3\nVersion: 1.26.4\n\n" as &[u8];
    let new = b"Metadata-Version: 2.1\nName: urllib3\nVersion: 1.26.18\n\n" as &[u8];
    let req = b"Metadata-Version: 2.1\nName: requests\nVersion: 2.0.0\n\n" as &[u8];
    let l1 = tar_layer(&[
        ("etc/os-release", Some(os)),
        ("./usr/lib/py/urllib3-1.26.4.dist-info/METADATA", Some(old)),
        ("opt/venv/requests-2.0.0.dist-info/METADATA", Some(req)),
        ("srv/a/requests-2.0.0.dist-info/METADATA", Some(req)),
    ]);
    let l2 = tar_layer(&[
        ("usr/lib/py/.wh.urllib3-1.26.4.dist-info", Some(b"")),
        ("usr/lib/py/urllib3-1.26.18.dist-info/METADATA", Some(new)),
        ("opt/venv/.wh..wh..opq", Some(b"")),
        ("srv/a/requests-2.0.0.dist-info/METADATA", None),
    ]);
    let inv = scan_layers([&l1[..], &l2[..]]).expect("inventory");
    let pkgs: Vec<String> = inv
        .packages
        .iter()
        .map(|p| format!("{}@{}:{}", p.name, p.version, p.location))
        .collect();
    assert_eq!(
        pkgs,
        vec!["urllib3@1.26.18:usr/lib/py/urllib3-1.26.18.dist-info/METADATA".to_owned()],
        "{pkgs:?}"
    );
    assert_eq!(inv.os.as_ref().map(|o| o.id.as_str()), Some("debian"));
    // The same tree as one layer, unpacked: the same inventory from a directory.
    let garbage = scan_layers([&b"this is not a tar stream at all, just some bytes that go on for a while......................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................"[..]]);
    assert!(
        garbage.is_err(),
        "a corrupt layer must fail the scan, not pass it"
    );
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

/// The registry's flow: compressed layer blobs in, a stored verdict out.
#[test]
fn registry_flow_from_compressed_blobs_to_verdict() {
    use std::io::Write;

    use palisade_image::media_types::LayerCompression;
    use palisade_scan::inventory::decompress;
    use palisade_scan::policy::{Verdict, VulnPolicy};

    let meta = b"Metadata-Version: 2.1\nName: urllib3\nVersion: 1.26.4\n\n" as &[u8];
    let layer = tar_layer(&[(
        "usr/lib/python3/site-packages/urllib3-1.26.4.dist-info/METADATA",
        Some(meta),
    )]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&layer).expect("gzip");
    let blob = gz.finish().expect("gzip");
    let readers = vec![decompress(LayerCompression::Gzip, &blob[..]).expect("decoder")];
    let inventory = scan_layers(readers).expect("inventory");

    let tmp = tempfile::tempdir().expect("tempdir");
    let (db, _) = build_db(tmp.path(), &[fixtures().join("osv/pypi")]);
    let mut report = db.match_inventory(&inventory).expect("match");
    report.target = "registry.example/app@sha256:feed".into();
    let policy = VulnPolicy::parse("name = \"registry\"\nmax_severity = \"MEDIUM\"\n", "inline")
        .expect("policy");
    let verdict = policy.evaluate(&report);
    assert!(!verdict.allowed);
    assert_eq!(verdict.violations[0].id, "CVE-2021-33503");
    assert!(verdict.is_current(&db));
    let stored = serde_json::to_vec(&verdict).expect("serialize");
    let back: Verdict = serde_json::from_slice(&stored).expect("deserialize");
    assert_eq!(back, verdict);
}

/// Real files: the dpkg status of a debootstrapped Debian 12 (minbase plus python3, 122
/// packages), two real `.list` files and the Python metadata they own.
#[test]
fn real_debian_status_sources_and_ownership() {
    let root = fixtures().join("rootfs/debian12-real");
    let inv = scan_dir(&root).expect("inventory");
    assert!(inv.warnings.is_empty(), "{:?}", inv.warnings);
    // etc/os-release is a symlink that is not in the extract: usr/lib/os-release is read.
    assert_eq!(
        inv.os.as_ref().and_then(|o| o.ecosystem()).as_deref(),
        Some("Debian:12")
    );
    let deb: Vec<_> = inv
        .packages
        .iter()
        .filter(|p| p.ecosystem == "Debian:12")
        .collect();
    assert_eq!(deb.len(), 122);
    let bash = deb.iter().find(|p| p.name == "bash").expect("bash");
    assert_eq!(bash.version, "5.2.15-2+b13");
    assert_eq!(
        bash.advisory_key(),
        ("bash", "5.2.15-2"),
        "binNMU: advisories use the source version"
    );
    let libc = deb.iter().find(|p| p.name == "libc6").expect("libc6");
    assert_eq!(libc.advisory_key().0, "glibc");
    // urllib3 and requests metadata belong to python3-urllib3 / python3-requests.
    assert!(
        !inv.packages.iter().any(|p| p.ecosystem == "PyPI"),
        "{:?}",
        inv.packages
            .iter()
            .filter(|p| p.ecosystem == "PyPI")
            .collect::<Vec<_>>()
    );

    let tmp = tempfile::tempdir().expect("tempdir");
    copy_tree(&root, tmp.path());
    for list in ["python3-urllib3.list", "python3-requests.list"] {
        std::fs::remove_file(tmp.path().join("var/lib/dpkg/info").join(list)).expect("rm");
    }
    let inv = scan_dir(tmp.path()).expect("inventory");
    let mut py: Vec<String> = inv
        .packages
        .iter()
        .filter(|p| p.ecosystem == "PyPI")
        .map(|p| format!("{}@{}", p.name, p.version))
        .collect();
    py.sort();
    assert_eq!(
        py,
        vec!["requests@2.28.1".to_owned(), "urllib3@1.26.12".to_owned()]
    );
}

/// Garbage in every file the scanner reads: each is skipped with a warning naming it, nothing
/// panics, and what can be read still is.
#[test]
fn garbage_everywhere_is_named_and_the_rest_still_scanned() {
    use std::os::unix::fs::PermissionsExt;

    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    copy_tree(&fixtures().join("rootfs/debian12"), root);
    let mut noise = Vec::new();
    let mut x: u32 = 7;
    for _ in 0..20_000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        noise.push((x >> 16) as u8);
    }
    let files = [
        "var/lib/dpkg/status.d/distroless-pkg",
        "lib/apk/db/installed",
        "srv/web/node_modules/left-pad/package.json",
        "srv/web/package-lock.json",
        "srv/other/Cargo.lock",
    ];
    for f in files {
        let p = root.join(f);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, &noise).expect("write");
    }
    let mut elf = b"\x7fELF\x02\x01\x01".to_vec();
    elf.extend_from_slice(&noise);
    let bin = root.join("usr/local/bin/broken");
    std::fs::create_dir_all(bin.parent().expect("parent")).expect("mkdir");
    std::fs::write(&bin, &elf).expect("write");
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    // A huge file of a kind with a limit is skipped without being read.
    let big = root.join("srv/big/node_modules/huge/package.json");
    std::fs::create_dir_all(big.parent().expect("parent")).expect("mkdir");
    std::fs::File::create(&big)
        .expect("create")
        .set_len(9 << 20)
        .expect("set_len");

    let inv = scan_dir(root).expect("inventory");
    for f in files.iter().copied().chain([
        "usr/local/bin/broken",
        "srv/big/node_modules/huge/package.json",
    ]) {
        assert!(
            inv.warnings.iter().any(|w| w.starts_with(f)),
            "no warning for {f}: {:?}",
            inv.warnings
        );
    }
    assert!(inv.packages.iter().any(|p| p.name == "libc6"));
    assert!(inv.packages.iter().any(|p| p.name == "urllib3"));
    let tmpdb = tempfile::tempdir().expect("tempdir");
    let (db, _) = build_db(tmpdb.path(), &[fixtures().join("osv/debian")]);
    let report = db.match_inventory(&inv).expect("match");
    assert!(report.findings.iter().any(|f| f.id == "CVE-2023-4911"));
    assert_eq!(
        report.warnings, inv.warnings,
        "the report carries what could not be read"
    );
}

/// rpmdb.sqlite with header blobs written by librpm (tests/reference/make_rpmdb.py), one of
/// them corrupt: the readable packages are inventoried, the corrupt one is a warning.
#[test]
fn rocky_rpmdb_sqlite() {
    let inv = scan_dir(&fixtures().join("rootfs/rocky9")).expect("inventory");
    assert_eq!(
        inv.os.as_ref().and_then(|o| o.ecosystem()).as_deref(),
        Some("Rocky Linux:9")
    );
    let mut found: Vec<String> = inv
        .packages
        .iter()
        .map(|p| format!("{} {} (source {:?})", p.name, p.version, p.source_name))
        .collect();
    found.sort();
    assert_eq!(
        found,
        vec![
            "bash 5.1.8-6.el9_1 (source Some(\"bash\"))".to_owned(),
            "openssl-libs 1:3.0.7-24.el9 (source Some(\"openssl\"))".to_owned(),
        ]
    );
    assert!(
        inv.warnings
            .iter()
            .any(|w| w.starts_with("var/lib/rpm/rpmdb.sqlite") && w.contains("1 package header")),
        "{:?}",
        inv.warnings
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let (db, _) = build_db(tmp.path(), &[fixtures().join("osv/rocky")]);
    let report = db.match_inventory(&inv).expect("match");
    assert_eq!(ids(&report), vec!["openssl-libs:CVE-2023-5678".to_owned()]);
    assert_eq!(report.findings[0].fixed, vec!["1:3.0.7-25.el9".to_owned()]);
    assert_eq!(report.findings[0].severity, Severity::Medium);
}
