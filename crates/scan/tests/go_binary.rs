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

/// A minimal ELF64 with the build information layout of Go 1.13–1.17: `.go.buildinfo` holds
/// pointers to Go string headers in `.data`.
fn old_go_elf(version: &str, modinfo: &str) -> Vec<u8> {
    const DATA_ADDR: u64 = 0x40_1000;
    let shstrtab = b"\0.shstrtab\0.go.buildinfo\0.data\0";
    let mut buildinfo = b"\xff Go buildinf:".to_vec();
    buildinfo.push(8); // pointer size
    buildinfo.push(0); // little endian, pointer format
    buildinfo.extend_from_slice(&DATA_ADDR.to_le_bytes()); // version string header
    buildinfo.extend_from_slice(&(DATA_ADDR + 16).to_le_bytes()); // modinfo string header
    let sentinel = [0x30u8; 16];
    let mut mod_bytes = sentinel.to_vec();
    mod_bytes.extend_from_slice(modinfo.as_bytes());
    mod_bytes.extend_from_slice(&sentinel);
    let mut data = Vec::new();
    data.extend_from_slice(&(DATA_ADDR + 0x40).to_le_bytes());
    data.extend_from_slice(&(version.len() as u64).to_le_bytes());
    data.extend_from_slice(&(DATA_ADDR + 0x80).to_le_bytes());
    data.extend_from_slice(&(mod_bytes.len() as u64).to_le_bytes());
    data.resize(0x40, 0);
    data.extend_from_slice(version.as_bytes());
    data.resize(0x80, 0);
    data.extend_from_slice(&mod_bytes);
    let (str_off, bi_off, data_off) = (64u64, 128u64, 256u64);
    let sh_off = data_off + data.len() as u64 + 64;
    let mut f = vec![0u8; sh_off as usize];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4] = 2; // 64-bit
    f[5] = 1; // little endian
    f[6] = 1;
    f[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f[18..20].copy_from_slice(&0x3eu16.to_le_bytes());
    f[20..24].copy_from_slice(&1u32.to_le_bytes());
    f[0x28..0x30].copy_from_slice(&sh_off.to_le_bytes());
    f[0x34..0x36].copy_from_slice(&64u16.to_le_bytes());
    f[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
    f[0x3c..0x3e].copy_from_slice(&4u16.to_le_bytes());
    f[0x3e..0x40].copy_from_slice(&1u16.to_le_bytes());
    f[str_off as usize..str_off as usize + shstrtab.len()].copy_from_slice(shstrtab);
    f[bi_off as usize..bi_off as usize + buildinfo.len()].copy_from_slice(&buildinfo);
    f[data_off as usize..data_off as usize + data.len()].copy_from_slice(&data);
    let section = |name: u32, kind: u32, addr: u64, off: u64, size: u64| {
        let mut s = Vec::with_capacity(64);
        s.extend_from_slice(&name.to_le_bytes());
        s.extend_from_slice(&kind.to_le_bytes());
        s.extend_from_slice(&0u64.to_le_bytes());
        s.extend_from_slice(&addr.to_le_bytes());
        s.extend_from_slice(&off.to_le_bytes());
        s.extend_from_slice(&size.to_le_bytes());
        s.extend_from_slice(&[0u8; 24]);
        s
    };
    f.extend(section(0, 0, 0, 0, 0));
    f.extend(section(1, 3, 0, str_off, shstrtab.len() as u64));
    f.extend(section(11, 1, 0x40_0000, bi_off, buildinfo.len() as u64));
    f.extend(section(25, 1, DATA_ADDR, data_off, data.len() as u64));
    f
}

#[test]
fn go_1_17_pointer_build_info() {
    use std::os::unix::fs::PermissionsExt;
    let modinfo = "path\texample.com/old\nmod\texample.com/old\t(devel)\t\ndep\tgolang.org/x/text\tv0.3.5\th1:abc=\ndep\tgithub.com/a/b\tv1.0.0\th1:def=\n=>\tgithub.com/a/fork\tv1.0.1\th1:ghi=\n";
    let tmp = tempfile::tempdir().expect("tempdir");
    let bin = tmp.path().join("usr/bin/old");
    std::fs::create_dir_all(bin.parent().expect("parent")).expect("mkdir");
    std::fs::write(&bin, old_go_elf("go1.16.15", modinfo)).expect("write");
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let inv = scan_dir(tmp.path()).expect("inventory");
    assert!(inv.warnings.is_empty(), "{:?}", inv.warnings);
    let mut found: Vec<String> = inv
        .packages
        .iter()
        .map(|p| format!("{}@{}", p.name, p.version))
        .collect();
    found.sort();
    assert_eq!(
        found,
        vec![
            "github.com/a/fork@1.0.1",
            "golang.org/x/text@0.3.5",
            "stdlib@1.16.15"
        ]
    );
}
