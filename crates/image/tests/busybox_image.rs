//! The image the tests and the demo use: a busybox root filesystem built from the host's
//! static `/bin/busybox` (Debian's busybox-static, installed by scripts/setup.sh), imported,
//! saved to an OCI archive and loaded elsewhere with identical digests; a tampered archive is
//! refused with nothing tagged.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use palisade_image::archive::{self, ArchiveError};
use palisade_image::import::{import, ImportOptions};
use palisade_image::manifest::PlatformSpec;
use palisade_image::store::StoreError;
use palisade_image::{Digest, ImageReference, LocalImage, Store};

const BUSYBOX: &str = "/bin/busybox";

/// A rootfs with busybox and a symlink per applet, as `busybox --install -s` would make.
fn busybox_rootfs(dir: &Path) -> PathBuf {
    assert!(
        Path::new(BUSYBOX).is_file(),
        "{BUSYBOX} is missing: install busybox-static (scripts/setup.sh does)"
    );
    let root = dir.join("rootfs");
    for sub in ["bin", "etc", "tmp", "proc", "sys", "dev"] {
        fs::create_dir_all(root.join(sub)).unwrap();
    }
    fs::copy(BUSYBOX, root.join("bin/busybox")).unwrap();
    let list = Command::new(BUSYBOX).arg("--list").output().unwrap();
    assert!(list.status.success());
    let applets: Vec<String> = String::from_utf8(list.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .filter(|a| a != "busybox" && !a.is_empty())
        .collect();
    assert!(applets.iter().any(|a| a == "sh"));
    for applet in &applets {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    fs::write(root.join("etc/group"), "root:x:0:\n").unwrap();
    root
}

fn fixed_options() -> ImportOptions {
    ImportOptions {
        created: Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000)),
        ..ImportOptions::default()
    }
}

fn reference(text: &str) -> ImageReference {
    ImageReference::parse(text).unwrap()
}

#[test]
fn busybox_import_is_runnable_and_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let rootfs = busybox_rootfs(dir.path());
    let store = Store::open(dir.path().join("store")).unwrap();
    let name = reference("busybox");
    let first = import(&store, &rootfs, &name, &fixed_options()).unwrap();
    let other = Store::open(dir.path().join("other")).unwrap();
    let second = import(&other, &rootfs, &name, &fixed_options()).unwrap();
    assert_eq!(first, second, "same tree and options give the same image");

    let image = LocalImage::open(&store, &name, None).unwrap();
    assert_eq!(image.platform(), PlatformSpec::host());
    let runtime = image.config.config().as_ref().unwrap();
    assert_eq!(runtime.cmd().as_deref(), Some(&["/bin/sh".to_owned()][..]));
    assert!(runtime.env().as_ref().unwrap()[0].starts_with("PATH=/usr/local/sbin"));

    // The layer holds busybox byte for byte and the applet links.
    let layer = store.open_blob(&image.layers[0].digest).unwrap();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(layer));
    let mut found_busybox = false;
    let mut found_sh = false;
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().into_owned();
        if path == Path::new("bin/busybox") {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            assert_eq!(bytes, fs::read(BUSYBOX).unwrap());
            assert_eq!(entry.header().mode().unwrap() & 0o111, 0o111);
            found_busybox = true;
        }
        if path == Path::new("bin/sh") {
            assert_eq!(entry.link_name().unwrap().unwrap(), Path::new("busybox"));
            found_sh = true;
        }
    }
    assert!(found_busybox && found_sh);
    assert!(store.check(false).unwrap().is_clean());
}

#[test]
fn save_load_round_trip_keeps_every_digest() {
    let dir = tempfile::tempdir().unwrap();
    let rootfs = busybox_rootfs(dir.path());
    let store = Store::open(dir.path().join("store")).unwrap();
    let imported = import(&store, &rootfs, &reference("busybox:1"), &fixed_options()).unwrap();
    store
        .tag(
            &reference("localhost:5000/tools/busybox:stable"),
            &imported.manifest,
        )
        .unwrap();
    let names = [
        reference("busybox:1"),
        reference("localhost:5000/tools/busybox:stable"),
    ];

    let archive_path = dir.path().join("busybox.tar");
    let file = fs::File::create(&archive_path).unwrap();
    let (_, saved) = archive::save(&store, &names, file).unwrap();
    assert_eq!(saved.blobs, 3);

    let loaded_store = Store::open(dir.path().join("loaded")).unwrap();
    let report = archive::load(&loaded_store, fs::File::open(&archive_path).unwrap()).unwrap();
    assert_eq!(report.images.len(), 2);
    for name in &names {
        assert_eq!(
            loaded_store.resolve(name).unwrap(),
            Some(imported.manifest.clone())
        );
        let before = LocalImage::open(&store, name, None).unwrap();
        let after = LocalImage::open(&loaded_store, name, None).unwrap();
        assert_eq!(before.manifest_bytes, after.manifest_bytes);
        assert_eq!(before.config_digest, after.config_digest);
        assert_eq!(before.layers, after.layers);
    }
    assert!(loaded_store.check(false).unwrap().is_clean());

    // Saving again from the loaded store gives the very same archive bytes.
    let (again, _) = archive::save(&loaded_store, &names, Vec::new()).unwrap();
    assert_eq!(
        Digest::of(&again),
        Digest::of(&fs::read(&archive_path).unwrap())
    );

    // A gzip-compressed archive loads too.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &again).unwrap();
    let gz_store = Store::open(dir.path().join("gz")).unwrap();
    archive::load(&gz_store, &gz.finish().unwrap()[..]).unwrap();
    assert_eq!(
        gz_store.resolve(&names[0]).unwrap(),
        Some(imported.manifest)
    );
}

/// Offsets and sizes of the blob entries of an archive.
fn blob_entries(archive: &[u8]) -> Vec<(String, u64, u64)> {
    let mut tar = tar::Archive::new(archive);
    tar.entries()
        .unwrap()
        .map(Result::unwrap)
        .filter(|e| e.header().entry_type().is_file())
        .map(|e| {
            (
                e.path().unwrap().display().to_string(),
                e.raw_file_position(),
                e.size(),
            )
        })
        .filter(|(path, _, _)| path.starts_with("blobs/"))
        .collect()
}

#[test]
fn tampered_archives_are_refused_and_nothing_is_tagged() {
    let dir = tempfile::tempdir().unwrap();
    let rootfs = busybox_rootfs(dir.path());
    let store = Store::open(dir.path().join("store")).unwrap();
    let name = reference("busybox");
    import(&store, &rootfs, &name, &fixed_options()).unwrap();
    let (archive, _) = archive::save(&store, std::slice::from_ref(&name), Vec::new()).unwrap();

    // Every blob, altered by one byte, is caught: the layer, the config, the manifest.
    for (path, offset, size) in blob_entries(&archive) {
        let mut tampered = archive.clone();
        tampered[(offset + size / 2) as usize] ^= 0x01;
        let target =
            Store::open(dir.path().join(format!("t-{}", &path[path.len() - 8..]))).unwrap();
        let err = archive::load(&target, &tampered[..]).unwrap_err();
        assert!(
            matches!(&err, ArchiveError::Blob { source, .. } if matches!(**source, StoreError::DigestMismatch { .. })),
            "{path}: {err:?}"
        );
        assert!(
            target.list_images().unwrap().is_empty(),
            "{path}: nothing tagged"
        );
    }

    // index.json pointed at a manifest the archive does not have.
    let index_at = archive
        .windows(br#""schemaVersion":2"#.len())
        .position(|w| w == br#""schemaVersion":2"#)
        .unwrap();
    let manifest = store.resolve(&name).unwrap().unwrap();
    let hex_at = index_at
        + archive[index_at..]
            .windows(64)
            .position(|w| w == manifest.hex().as_bytes())
            .unwrap();
    let mut redirected = archive.clone();
    redirected[hex_at] = if redirected[hex_at] == b'0' {
        b'1'
    } else {
        b'0'
    };
    // Keep the tar header checksum valid: it covers headers only, and index.json's bytes are
    // data, so the tar still parses.
    let target = Store::open(dir.path().join("redirected")).unwrap();
    let err = archive::load(&target, &redirected[..]).unwrap_err();
    assert!(matches!(err, ArchiveError::MissingBlob { .. }), "{err:?}");
    assert!(target.list_images().unwrap().is_empty());

    // A truncated archive is refused.
    let truncated = &archive[..archive.len() / 2];
    let target = Store::open(dir.path().join("truncated")).unwrap();
    assert!(archive::load(&target, truncated).is_err());
    assert!(target.list_images().unwrap().is_empty());
}
