//! Two `palisade` processes on one store: tags from both land, the same blob written by both
//! stays intact, and a prune running meanwhile never deletes blobs an import is about to tag.
//!
//! The test binary re-runs itself as the two processes (`worker` below does nothing unless the
//! environment names a role).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};

use palisade_image::import::{import, ImportOptions};
use palisade_image::{Digest, ImageReference, Store};

const TAGS_PER_WORKER: usize = 40;
const IMPORTS: usize = 15;

fn shared_blob() -> Vec<u8> {
    (0..3_000_000u32).map(|i| (i % 251) as u8).collect()
}

fn manifest_for(store: &Store, worker: &str) -> Digest {
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"author":"{worker}"}}"#
    );
    let config_digest = store.put_blob_bytes(config.as_bytes()).unwrap();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","size":{},"digest":"{config_digest}"}},"layers":[]}}"#,
        config.len()
    );
    store.put_blob_bytes(manifest.as_bytes()).unwrap()
}

/// The body of a child process.
#[test]
fn worker() {
    let (Ok(root), Ok(role)) = (
        std::env::var("PALISADE_TEST_STORE"),
        std::env::var("PALISADE_TEST_ROLE"),
    ) else {
        return; // not a child
    };
    let store = Store::open(&root).unwrap();
    match role.as_str() {
        "tagger-a" | "tagger-b" => {
            let blob = shared_blob();
            let _lease = store.lease().unwrap();
            let manifest = manifest_for(&store, &role);
            for i in 0..TAGS_PER_WORKER {
                let reference = ImageReference::parse(&format!("{role}:t{i}")).unwrap();
                store.tag(&reference, &manifest).unwrap();
                if i % 10 == 0 {
                    // Both processes write the same large blob at once.
                    store
                        .put_blob(&blob[..], Some(&Digest::of(&blob)), None)
                        .unwrap();
                }
            }
        }
        "importer" => {
            let src = tempfile::tempdir().unwrap();
            for i in 0..IMPORTS {
                std::fs::write(src.path().join("file"), format!("generation {i}")).unwrap();
                let reference = ImageReference::parse(&format!("imported:g{i}")).unwrap();
                import(&store, src.path(), &reference, &ImportOptions::default()).unwrap();
            }
        }
        "pruner" => {
            for _ in 0..IMPORTS * 2 {
                store.prune().unwrap();
            }
        }
        other => panic!("unknown role {other}"),
    }
}

fn spawn(root: &std::path::Path, role: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "worker", "--nocapture", "--test-threads=1"])
        .env("PALISADE_TEST_STORE", root)
        .env("PALISADE_TEST_ROLE", role)
        // The child's own "test result" lines would be counted as the parent's tests.
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn two_processes_tagging_at_once_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let children = [spawn(dir.path(), "tagger-a"), spawn(dir.path(), "tagger-b")];
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let images = store.list_images().unwrap();
    assert_eq!(images.len(), 2 * TAGS_PER_WORKER);
    let blob = shared_blob();
    assert_eq!(
        store.verify_blob(&Digest::of(&blob)).unwrap(),
        blob.len() as u64
    );
    let report = store.check(false).unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
}

#[test]
fn prune_during_imports_deletes_nothing_they_tag() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let children = [spawn(dir.path(), "importer"), spawn(dir.path(), "pruner")];
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    assert_eq!(store.list_images().unwrap().len(), IMPORTS);
    let report = store.check(false).unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    for image in store.list_images().unwrap() {
        palisade_image::LocalImage::open(&store, &image.reference, None).unwrap();
    }
}
