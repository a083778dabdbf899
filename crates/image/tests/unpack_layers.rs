//! Legitimate layers: every entry kind, the three compressions, ownership shifted into a user
//! namespace range, whiteouts in both forms, the OCI replacement rules, and a real overlayfs
//! mount of two unpacked layers.

#![allow(clippy::unwrap_used)]

mod unpack_support;

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use palisade_image::unpack::{
    apply_layer, apply_layers, unpack_layer, unpack_layer_atomic, Compression, IdShift,
    OverlayXattrs, Ownership, UnpackOptions,
};
use unpack_support::{gzip, privileged, zstd, EntryType, Sandbox, Spec, Tar};

fn opts() -> UnpackOptions {
    let ownership = if rustix::process::geteuid().is_root() {
        Ownership::Preserve
    } else {
        Ownership::Ignore
    };
    UnpackOptions {
        ownership,
        ..UnpackOptions::default()
    }
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    let len = rustix::fs::lgetxattr(path, name, &mut buf[..]).ok()?;
    buf.truncate(len);
    Some(buf)
}

fn is_whiteout(path: &Path) -> bool {
    std::fs::symlink_metadata(path)
        .is_ok_and(|meta| meta.file_type().is_char_device() && meta.rdev() == 0)
}

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// A layer with one of every kind of entry.
fn every_kind() -> Vec<u8> {
    let long_name = format!("usr/share/{}/file", "long-directory-name-".repeat(8));
    Tar::new()
        .add(Spec::dir("./").mode(0o755).mtime(1_500_000_000))
        .add(Spec::dir("etc").mode(0o755).mtime(1_500_000_001))
        .add(
            Spec::file("etc/hostname", "palisade\n")
                .mode(0o640)
                .mtime(1_500_000_002),
        )
        .add(Spec::file("etc/motd", "hi").pax("mtime", "1500000003.25"))
        .symlink("etc/localtime", "/usr/share/zoneinfo/UTC")
        .symlink("etc/relative", "../usr/../etc/hostname")
        .hardlink("etc/hostname.bak", "etc/hostname")
        .add(Spec::new("run/fifo", EntryType::Fifo).mode(0o600))
        .file("deep/implicit/parents/file", "x")
        .file(&long_name, "long")
        .file(b"caf\xe9-latin1", "bytes")
        .add(Spec::file("tagged", "x").xattr("user.mime_type", "text/plain"))
        .add(Spec::dir("tmp").mode(0o1777))
        .add(Spec::dir("ro").mode(0o555))
        .file("ro/inside", "created before the directory became read-only")
        .add(Spec::new("gnu-regular", EntryType::Regular).typeflag(0))
        .add(Spec::new("old-style-dir/", EntryType::Regular).typeflag(0))
        .bytes()
}

fn check_every_kind(root: &Path) {
    let meta = |path: &str| std::fs::symlink_metadata(root.join(path)).unwrap();
    assert_eq!(
        std::fs::read(root.join("etc/hostname")).unwrap(),
        b"palisade\n"
    );
    assert_eq!(meta("etc/hostname").mode() & 0o7777, 0o640);
    assert_eq!(meta("etc/hostname").mtime(), 1_500_000_002);
    assert_eq!(
        (meta("etc/motd").mtime(), meta("etc/motd").mtime_nsec()),
        (1_500_000_003, 250_000_000)
    );
    assert_eq!(
        meta("etc").mtime(),
        1_500_000_001,
        "directory mtime set after its children"
    );
    assert_eq!(meta(".").mtime(), 1_500_000_000);
    assert_eq!(
        std::fs::read_link(root.join("etc/localtime")).unwrap(),
        Path::new("/usr/share/zoneinfo/UTC")
    );
    assert_eq!(
        std::fs::read_link(root.join("etc/relative")).unwrap(),
        Path::new("../usr/../etc/hostname")
    );
    assert_eq!(meta("etc/hostname.bak").ino(), meta("etc/hostname").ino());
    assert_eq!(meta("etc/hostname").nlink(), 2);
    assert!(meta("run/fifo").file_type().is_fifo());
    assert_eq!(meta("run/fifo").mode() & 0o7777, 0o600);
    assert_eq!(
        meta("run").mode() & 0o7777,
        0o755,
        "implicit directories are 0755"
    );
    assert_eq!(
        std::fs::read(root.join("deep/implicit/parents/file")).unwrap(),
        b"x"
    );
    let long_name = format!("usr/share/{}/file", "long-directory-name-".repeat(8));
    assert_eq!(std::fs::read(root.join(long_name)).unwrap(), b"long");
    let latin1 = std::ffi::OsStr::from_bytes(b"caf\xe9-latin1");
    assert_eq!(std::fs::read(root.join(latin1)).unwrap(), b"bytes");
    assert_eq!(
        xattr(&root.join("tagged"), "user.mime_type").as_deref(),
        Some(&b"text/plain"[..])
    );
    assert_eq!(meta("tmp").mode() & 0o7777, 0o1777);
    assert_eq!(meta("ro").mode() & 0o7777, 0o555);
    assert!(root.join("ro/inside").is_file());
    assert!(root.join("gnu-regular").is_file());
    assert!(meta("old-style-dir").is_dir());
}

#[test]
fn every_entry_kind_in_every_compression() {
    let layer = every_kind();
    for (data, compression) in [
        (layer.clone(), Compression::Uncompressed),
        (gzip(&layer), Compression::Gzip),
        (zstd(&layer), Compression::Zstd),
    ] {
        let sandbox = Sandbox::new();
        let overlay = sandbox.layer_dir("overlay");
        let report = unpack_layer(&data[..], &overlay, &opts()).unwrap();
        assert_eq!(report.compression, compression);
        assert_eq!(report.entries, 17);
        assert_eq!(report.compressed_bytes, data.len() as u64);
        assert_eq!(report.uncompressed_bytes, layer.len() as u64);
        assert!(report.dropped_devices.is_empty() && report.dropped_xattrs.is_empty());
        check_every_kind(&overlay);

        let flat = sandbox.layer_dir("flat");
        apply_layer(&data[..], &flat, &opts()).unwrap();
        check_every_kind(&flat);
        sandbox.assert_outside_unchanged();
    }
}

#[test]
fn ownership_is_shifted_into_the_namespace_range() {
    if !privileged("chown to shifted ids") {
        return;
    }
    let shift = IdShift {
        uid_base: 100_000,
        gid_base: 200_000,
        size: 65_536,
    };
    let layer = Tar::new()
        .add(Spec::dir("home/user").owner(1000, 1000))
        .add(Spec::file("home/user/file", "x").owner(1000, 100))
        .add(Spec::symlink("home/user/link", "file").owner(1000, 1000))
        .add(Spec::file("root-file", "x"))
        .add(Spec::file("big-id", "x").owner(0, 0).pax("uid", "65535"))
        .bytes();
    let sandbox = Sandbox::new();
    let opts = UnpackOptions {
        ownership: Ownership::Shift(shift),
        ..UnpackOptions::default()
    };
    let target = sandbox.layer_dir("layer");
    unpack_layer(&layer[..], &target, &opts).unwrap();
    let owner = |path: &str| {
        let meta = std::fs::symlink_metadata(target.join(path)).unwrap();
        (meta.uid(), meta.gid())
    };
    assert_eq!(
        owner("home"),
        (100_000, 200_000),
        "implicit directories belong to container root"
    );
    assert_eq!(owner("home/user"), (101_000, 201_000));
    assert_eq!(owner("home/user/file"), (101_000, 200_100));
    assert_eq!(owner("home/user/link"), (101_000, 201_000));
    assert_eq!(owner("root-file"), (100_000, 200_000));
    assert_eq!(owner("big-id"), (165_535, 200_000));

    // The atomic form gives the new root directory to container root as well.
    let final_dir = sandbox.target.join("atomic");
    unpack_layer_atomic(&layer[..], &final_dir, &opts).unwrap();
    let meta = std::fs::metadata(&final_dir).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (100_000, 200_000, 0o755)
    );
}

#[test]
fn file_capabilities_become_namespaced_when_shifting() {
    if !privileged("write security.capability") {
        return;
    }
    // v2: effective, permitted = CAP_NET_BIND_SERVICE (10).
    let mut v2 = 0x0200_0001u32.to_le_bytes().to_vec();
    for word in [1u32 << 10, 0, 0, 0] {
        v2.extend_from_slice(&word.to_le_bytes());
    }
    let layer = Tar::new()
        .add(
            Spec::file("bin/server", "x")
                .mode(0o755)
                .xattr("security.capability", &v2),
        )
        .bytes();
    let shift = IdShift {
        uid_base: 300_000,
        gid_base: 300_000,
        size: 65_536,
    };
    let opts = UnpackOptions {
        ownership: Ownership::Shift(shift),
        allow_file_capabilities: true,
        ..UnpackOptions::default()
    };
    let sandbox = Sandbox::new();
    let report = unpack_layer(&layer[..], &sandbox.target, &opts).unwrap();
    assert!(report.dropped_xattrs.is_empty(), "{report:?}");
    let value = xattr(&sandbox.target.join("bin/server"), "security.capability").unwrap();
    assert_eq!(value.len(), 24, "a v3 (namespaced) capability");
    assert_eq!(&value[..4], &0x0300_0001u32.to_le_bytes());
    assert_eq!(&value[4..8], &(1u32 << 10).to_le_bytes());
    assert_eq!(
        &value[20..],
        &300_000u32.to_le_bytes(),
        "root id is the shifted container root"
    );
}

#[test]
fn whiteouts_in_the_per_layer_form() {
    let layer = Tar::new()
        .dir("etc")
        .file("etc/.wh.passwd", "")
        .file(".wh.removed-dir", "")
        .dir("var")
        .file("var/.wh..wh..opq", "")
        .file("var/new", "x")
        .file("opt/.wh..wh..opq", "")
        // A whiteout and an entry of the same name in one layer: the entry stays.
        .file("both", "kept")
        .file(".wh.both", "")
        .file(".wh.later", "")
        .add(Spec::dir("later"))
        .file("later/child", "x")
        // Top-level aufs metadata is skipped.
        .dir(".wh..wh.plnk")
        .file(".wh..wh.plnk/123.456", "x")
        .bytes();
    let sandbox = Sandbox::new();
    let target = sandbox.layer_dir("layer");
    let opts = UnpackOptions {
        overlay_xattrs: OverlayXattrs::User,
        ..opts()
    };
    let report = unpack_layer(&layer[..], &target, &opts).unwrap();
    assert!(is_whiteout(&target.join("etc/passwd")));
    assert!(is_whiteout(&target.join("removed-dir")));
    assert_eq!(
        xattr(&target.join("var"), "user.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(
        xattr(&target.join("opt"), "user.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert!(target.join("var/new").is_file());
    assert_eq!(std::fs::read(target.join("both")).unwrap(), b"kept");
    // The whiteout was replaced by the directory, which must hide the lower one: opaque.
    assert!(target.join("later").is_dir());
    assert_eq!(
        xattr(&target.join("later"), "user.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert!(!exists(&target.join(".wh..wh.plnk")));
    assert!(!exists(&target.join("etc/.wh.passwd")));
    assert_eq!(report.whiteouts, 4);
    assert_eq!(report.opaque_directories, 2);
    assert_eq!(report.skipped.len(), 2);
    sandbox.assert_outside_unchanged();
}

#[test]
fn trusted_opaque_xattr_when_privileged() {
    if !privileged("write trusted.* xattrs") {
        return;
    }
    let layer = Tar::new().dir("var").file("var/.wh..wh..opq", "").bytes();
    let sandbox = Sandbox::new();
    let opts = UnpackOptions {
        overlay_xattrs: OverlayXattrs::Trusted,
        ..opts()
    };
    unpack_layer(&layer[..], &sandbox.target, &opts).unwrap();
    assert_eq!(
        xattr(&sandbox.target.join("var"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
}

#[test]
fn whiteouts_delete_when_flattening() {
    let lower = Tar::new()
        .dir("a")
        .file("a/x", "x")
        .file("a/y", "y")
        .file("b", "b")
        .dir("d")
        .file("d/old", "old")
        .file("d/sub/deep", "deep")
        .file("d/keep-dir/lower-child", "hidden by the opaque d")
        .bytes();
    let upper = Tar::new()
        .file("a/.wh.x", "")
        .file(".wh.b", "")
        .file(".wh.never-existed", "")
        .dir("d")
        .dir("d/keep-dir")
        .file("d/keep-dir/upper-child", "new")
        .file("d/.wh..wh..opq", "")
        .file("d/new", "new")
        // Same-layer entry and whiteout: the entry stays.
        .file("c", "c")
        .file(".wh.c", "")
        .bytes();
    let sandbox = Sandbox::new();
    let reports = apply_layers([&lower[..], &upper[..]], &sandbox.target, &opts()).unwrap();
    assert_eq!(reports.len(), 2);
    let root = &sandbox.target;
    assert!(!exists(&root.join("a/x")));
    assert!(root.join("a/y").is_file());
    assert!(!exists(&root.join("b")));
    assert!(!exists(&root.join("d/old")));
    assert!(!exists(&root.join("d/sub")));
    assert!(!exists(&root.join("d/keep-dir/lower-child")));
    assert!(root.join("d/keep-dir/upper-child").is_file());
    assert!(root.join("d/new").is_file());
    assert!(root.join("c").is_file());
    assert_eq!(reports[1].whiteouts, 4);
    assert_eq!(reports[1].opaque_directories, 1);
    sandbox.assert_outside_unchanged();
}

#[test]
fn later_layers_replace_per_the_oci_rules() {
    let lower = Tar::new()
        .dir("dir-then-file")
        .file("dir-then-file/child", "x")
        .file("file-then-dir", "x")
        .symlink("link-then-dir", "/etc")
        .symlink("link-then-file", "../outside/passwd")
        .add(Spec::dir("merged").mode(0o700))
        .file("merged/lower", "x")
        .bytes();
    let upper = Tar::new()
        .file("dir-then-file", "now a file")
        .dir("file-then-dir")
        .file("file-then-dir/child", "x")
        .dir("link-then-dir")
        .file("link-then-dir/palisade-unpack-test-must-not-exist", "x")
        .file("link-then-file", "replaced, not written through")
        .add(Spec::dir("merged").mode(0o755))
        .file("merged/upper", "x")
        .bytes();
    let sandbox = Sandbox::new();
    apply_layers([&lower[..], &upper[..]], &sandbox.target, &opts()).unwrap();
    let root = &sandbox.target;
    assert_eq!(
        std::fs::read(root.join("dir-then-file")).unwrap(),
        b"now a file"
    );
    assert!(root.join("file-then-dir/child").is_file());
    assert!(std::fs::symlink_metadata(root.join("link-then-dir"))
        .unwrap()
        .is_dir());
    assert!(!Path::new("/etc/palisade-unpack-test-must-not-exist").exists());
    assert!(std::fs::symlink_metadata(root.join("link-then-file"))
        .unwrap()
        .is_file());
    assert!(root.join("merged/lower").is_file() && root.join("merged/upper").is_file());
    assert_eq!(
        std::fs::metadata(root.join("merged"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o755
    );
    sandbox.assert_outside_unchanged();
}

#[test]
fn atomic_unpack_publishes_a_complete_directory() {
    let sandbox = Sandbox::new();
    let final_dir = sandbox.target.join("sha256-abc");
    let layer = gzip(&every_kind());
    let report = unpack_layer_atomic(&layer[..], &final_dir, &opts()).unwrap();
    assert_eq!(report.compression, Compression::Gzip);
    check_every_kind(&final_dir);
    let names: Vec<_> = std::fs::read_dir(&sandbox.target)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["sha256-abc"], "no temporary directory is left");
    sandbox.assert_outside_unchanged();
}

/// Unmounts on drop, so a failed assertion does not leave the mount behind.
struct Mounted<'p>(&'p Path);

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(self.0, rustix::mount::UnmountFlags::DETACH);
    }
}

#[test]
fn overlayfs_hides_what_an_upper_layer_whites_out() {
    if !privileged("mount overlayfs") {
        return;
    }
    let lower = Tar::new()
        .dir("a")
        .file("a/keep", "kept")
        .file("a/gone", "must be hidden")
        .dir("d")
        .file("d/old", "must be hidden by the opaque directory")
        .file("replaced", "lower")
        .bytes();
    let upper = Tar::new()
        .file("a/.wh.gone", "")
        .dir("d")
        .file("d/.wh..wh..opq", "")
        .file("d/new", "new")
        .file("replaced", "upper")
        .bytes();
    let sandbox = Sandbox::new();
    let opts = UnpackOptions {
        overlay_xattrs: OverlayXattrs::Trusted,
        ..opts()
    };
    let lower_dir = sandbox.target.join("lower");
    let upper_dir = sandbox.target.join("upper");
    unpack_layer_atomic(&gzip(&lower)[..], &lower_dir, &opts).unwrap();
    unpack_layer_atomic(&zstd(&upper)[..], &upper_dir, &opts).unwrap();
    let mnt = sandbox.layer_dir("merged");

    let data = format!("lowerdir={}:{}", upper_dir.display(), lower_dir.display());
    let data = std::ffi::CString::new(data).unwrap();
    let result = rustix::mount::mount(
        "overlay",
        &mnt,
        "overlay",
        rustix::mount::MountFlags::RDONLY,
        data.as_c_str(),
    );
    if let Err(errno) = result {
        if std::env::var("PALISADE_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
            panic!("overlayfs mount failed: {errno}");
        }
        eprintln!("SKIP: overlayfs mount failed here: {errno}");
        return;
    }
    let _mounted = Mounted(&mnt);
    assert_eq!(std::fs::read(mnt.join("a/keep")).unwrap(), b"kept");
    assert!(
        !exists(&mnt.join("a/gone")),
        "the whiteout does not hide the lower file"
    );
    assert!(
        !exists(&mnt.join("d/old")),
        "the opaque directory does not hide the lower file"
    );
    assert_eq!(std::fs::read(mnt.join("d/new")).unwrap(), b"new");
    assert_eq!(std::fs::read(mnt.join("replaced")).unwrap(), b"upper");
    let listed: Vec<_> = std::fs::read_dir(mnt.join("a"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(listed, ["keep"]);
    // The lower layer itself is untouched: layers are shared between containers.
    assert_eq!(
        std::fs::read(lower_dir.join("a/gone")).unwrap(),
        b"must be hidden"
    );
}
