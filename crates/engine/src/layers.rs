//! Unpacked layers, shared by every container: `<store>/layers/<diffid-hex>/`.
//!
//! Each layer is unpacked once, by `palisade_image::unpack` (no `..`, no absolute paths, no
//! symlink escapes, devices and setuid bits dropped), with its ownership shifted into the
//! user-namespace range the containers run in, as an overlayfs lower directory. Containers
//! stack these directories read-only under their own upper directory, so starting a second
//! container from an image copies nothing.
//!
//! A layer directory appears only complete: it is unpacked into a temporary directory beside
//! it, synced, and renamed into place; a per-layer `flock` keeps two `palisade run`s from
//! unpacking the same layer at once. Before the rename, the compressed blob is checked
//! against its digest (the store's verifying reader) and the uncompressed tar against the
//! config's diff_id: the directory is named by the diff_id and shared across images, so an
//! image that lies about a diff_id must not get to fill another image's layer.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use flate2::read::MultiGzDecoder;
use palisade_image::digest::VerifyingReader;
use palisade_image::inspect::LayerInfo;
use palisade_image::media_types::LayerCompression;
use palisade_image::unpack::{self, IdShift, Ownership, UnpackError, UnpackOptions};
use palisade_image::{DigestError, LocalImage, Store, StoreError};
use rustix::fs::{flock, FlockOperation, RenameFlags, CWD};

use crate::paths::EnginePaths;

/// zstd frames may ask for a window of up to 2^27 bytes (128 MiB), zstd's own default cap.
const ZSTD_WINDOW_LOG_MAX: u32 = 27;

/// Failure to provide an unpacked layer.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// The layer's blob could not be opened.
    #[error("failed to open layer {digest} in the image store")]
    Blob {
        /// The blob's digest.
        digest: String,
        /// The cause.
        #[source]
        source: Box<StoreError>,
    },
    /// The unpacker refused the layer or failed.
    #[error("failed to unpack layer {digest}")]
    Unpack {
        /// The blob's digest.
        digest: String,
        /// The cause.
        #[source]
        source: Box<UnpackError>,
    },
    /// Reading the layer failed, or it did not match its digest or diff_id.
    #[error("layer {digest} does not match its digest or its diff_id {diff_id}, or could not be read; it was not used")]
    Verify {
        /// The blob's digest.
        digest: String,
        /// The diff_id the config gives it.
        diff_id: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A file system operation on the layer directories failed.
    #[error("failed to {operation} {path:?}")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// Whose ids the unpacked files carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerOwnership {
    /// Container ids `0..size` as host ids `base..base+size` (the default user namespace).
    Shifted {
        /// Host id of container root.
        base: u32,
        /// Ids mapped.
        size: u32,
    },
    /// The layer's ids as they are, for containers in the host's user namespace.
    Host,
}

impl LayerOwnership {
    /// The default: palisade-runtime's hardened mapping.
    pub fn default_shift() -> Self {
        Self::Shifted {
            base: palisade_runtime::spec::DEFAULT_HOST_ID_BASE,
            size: palisade_runtime::spec::DEFAULT_ID_RANGE,
        }
    }

    /// Host uid and gid of the container's root.
    pub fn root(self) -> (u32, u32) {
        match self {
            Self::Shifted { base, .. } => (base, base),
            Self::Host => (0, 0),
        }
    }

    fn suffix(self) -> String {
        match self {
            Self::Shifted { base, size }
                if Self::default_shift() == (Self::Shifted { base, size }) =>
            {
                String::new()
            }
            Self::Shifted { base, size } => format!("-{base}-{size}"),
            Self::Host => "-host".to_owned(),
        }
    }

    fn unpack_ownership(self) -> Ownership {
        match self {
            Self::Shifted { base, size } => Ownership::Shift(IdShift {
                uid_base: base,
                gid_base: base,
                size,
            }),
            Self::Host => Ownership::Preserve,
        }
    }
}

/// The unpacked layers of a store.
#[derive(Debug, Clone)]
pub struct LayerCache {
    dir: PathBuf,
}

impl LayerCache {
    /// The cache under `paths` (see [`EnginePaths::prepare`]).
    pub fn new(paths: &EnginePaths) -> Self {
        Self {
            dir: paths.layers(),
        }
    }

    /// Where a layer with this diff_id lives for `ownership`.
    pub fn layer_dir(&self, diff_id_hex: &str, ownership: LayerOwnership) -> PathBuf {
        self.dir
            .join(format!("{diff_id_hex}{}", ownership.suffix()))
    }

    /// Unpacks whatever layers of `image` are missing and returns every layer's directory,
    /// lowest first.
    pub fn ensure(
        &self,
        store: &Store,
        image: &LocalImage,
        ownership: LayerOwnership,
    ) -> Result<Vec<PathBuf>, LayerError> {
        image
            .layers
            .iter()
            .map(|layer| self.ensure_layer(store, layer, ownership))
            .collect()
    }

    fn ensure_layer(
        &self,
        store: &Store,
        layer: &LayerInfo,
        ownership: LayerOwnership,
    ) -> Result<PathBuf, LayerError> {
        let final_dir = self.layer_dir(layer.diff_id.hex(), ownership);
        if final_dir.is_dir() {
            return Ok(final_dir);
        }
        let name = final_dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let _lock = self.lock(&name)?;
        if final_dir.is_dir() {
            // Another process unpacked it while we waited.
            return Ok(final_dir);
        }
        self.remove_stale_temps(&name);
        let temp = self.create_temp(&name, ownership)?;
        match unpack_verified(store, layer, &temp, ownership) {
            Ok(report) => {
                if !report.dropped_devices.is_empty() || !report.dropped_setuid.is_empty() {
                    tracing::info!(
                        layer = %layer.digest,
                        devices = report.dropped_devices.len(),
                        setuid = report.dropped_setuid.len(),
                        "dropped device nodes and setuid bits from the layer"
                    );
                }
            }
            Err(error) => {
                let _ = fs::remove_dir_all(&temp);
                return Err(error);
            }
        }
        if let Err(error) = publish(&temp, &final_dir) {
            let _ = fs::remove_dir_all(&temp);
            return Err(error);
        }
        Ok(final_dir)
    }

    /// Holds off [`LayerCache::remove_unused`] while the caller chooses layer directories and
    /// records them in a container record (a shared lock; prune takes it exclusively).
    pub fn hold(&self) -> Result<File, LayerError> {
        self.lock_file(".prune.lock", FlockOperation::LockShared)
    }

    /// Removes every layer directory (and interrupted unpack) whose name `keep` rejects;
    /// takes the prune lock exclusively, so no container is being created meanwhile. `keep`
    /// sees the directory name: `<diff_id hex>` plus an ownership suffix.
    pub fn remove_unused(
        &self,
        keep: impl Fn(&str) -> bool,
    ) -> Result<LayerPruneReport, LayerError> {
        let _prune = self.lock_file(".prune.lock", FlockOperation::LockExclusive)?;
        let mut report = LayerPruneReport::default();
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(report),
            Err(source) => {
                return Err(LayerError::Io {
                    operation: "list",
                    path: self.dir.clone(),
                    source,
                })
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let layer = match name.strip_prefix(".tmp-") {
                // An interrupted unpack: its layer's lock says whether it is still going.
                Some(rest) => rest.split('-').next().unwrap_or_default().to_owned(),
                None if name.starts_with('.') => continue,
                None if keep(&name) => continue,
                None => name.clone(),
            };
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let _lock = self.lock(&layer)?;
            let path = entry.path();
            let size = tree_size(&path);
            match fs::remove_dir_all(&path) {
                Ok(()) => {
                    report.bytes_freed += size;
                    report.removed.push(name);
                }
                Err(e) => {
                    tracing::warn!(path = ?path, error = %e, "failed to remove an unused layer")
                }
            }
            let _ = fs::remove_file(self.dir.join(format!(".{layer}.lock")));
        }
        report.removed.sort();
        Ok(report)
    }

    fn lock(&self, name: &str) -> Result<File, LayerError> {
        self.lock_file(&format!(".{name}.lock"), FlockOperation::LockExclusive)
    }

    fn lock_file(&self, file: &str, operation: FlockOperation) -> Result<File, LayerError> {
        let path = self.dir.join(file);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|source| LayerError::Io {
                operation: "open lock file",
                path: path.clone(),
                source,
            })?;
        flock(&file, operation).map_err(|e| LayerError::Io {
            operation: "lock",
            path,
            source: e.into(),
        })?;
        Ok(file)
    }

    /// Removes temporary directories an interrupted unpack of this layer left (we hold its
    /// lock, so nobody is writing them).
    fn remove_stale_temps(&self, name: &str) {
        let prefix = format!(".tmp-{name}-");
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                if let Err(e) = fs::remove_dir_all(entry.path()) {
                    tracing::warn!(path = ?entry.path(), error = %e, "failed to remove a stale layer directory");
                }
            }
        }
    }

    fn create_temp(&self, name: &str, ownership: LayerOwnership) -> Result<PathBuf, LayerError> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let temp = self
            .dir
            .join(format!(".tmp-{name}-{}-{nanos}", std::process::id()));
        let io = |operation| {
            let path = temp.clone();
            move |source| LayerError::Io {
                operation,
                path,
                source,
            }
        };
        fs::create_dir(&temp).map_err(io("create"))?;
        let (uid, gid) = ownership.root();
        std::os::unix::fs::chown(&temp, Some(uid), Some(gid)).map_err(io("chown"))?;
        fs::set_permissions(&temp, fs::Permissions::from_mode(0o755)).map_err(io("chmod"))?;
        Ok(temp)
    }
}

/// What [`LayerCache::remove_unused`] removed.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct LayerPruneReport {
    /// The removed directories' names.
    pub removed: Vec<String>,
    /// Bytes they held (apparent file sizes).
    pub bytes_freed: u64,
}

/// The apparent size of the files under `path` (symlinks not followed).
fn tree_size(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    fs::read_dir(path)
        .map(|entries| entries.flatten().map(|e| tree_size(&e.path())).sum())
        .unwrap_or(0)
}

/// Unpacks `layer` into the empty directory `target`, checking the blob against its digest
/// and the tar stream against its diff_id (both only known good at their end of data).
fn unpack_verified(
    store: &Store,
    layer: &LayerInfo,
    target: &Path,
    ownership: LayerOwnership,
) -> Result<unpack::UnpackReport, LayerError> {
    let digest = layer.digest.to_string();
    let verify_error = |source: io::Error| LayerError::Verify {
        digest: digest.clone(),
        diff_id: layer.diff_id.to_string(),
        source,
    };
    let mut blob = store
        .open_blob(&layer.digest)
        .map_err(|source| LayerError::Blob {
            digest: digest.clone(),
            source: Box::new(source),
        })?;
    let options = UnpackOptions {
        ownership: ownership.unpack_ownership(),
        ..UnpackOptions::default()
    };
    let report = {
        let decoded: Box<dyn Read + '_> = match layer.compression {
            LayerCompression::Gzip => Box::new(MultiGzDecoder::new(&mut blob)),
            LayerCompression::Zstd => {
                let mut decoder =
                    zstd::stream::read::Decoder::new(&mut blob).map_err(verify_error)?;
                decoder
                    .window_log_max(ZSTD_WINDOW_LOG_MAX)
                    .map_err(verify_error)?;
                Box::new(decoder)
            }
            LayerCompression::Uncompressed => Box::new(&mut blob),
        };
        let mut tar = VerifyingReader::new(decoded, layer.diff_id.clone(), None);
        let report = unpack::unpack_layer(&mut tar, target, &options).map_err(|source| {
            // The tar reader may be the one to hit the digest check at end of data.
            match digest_mismatch(&source) {
                Some(mismatch) => {
                    verify_error(io::Error::new(io::ErrorKind::InvalidData, mismatch))
                }
                None => LayerError::Unpack {
                    digest: digest.clone(),
                    source: Box::new(source),
                },
            }
        })?;
        // The tar's end-of-archive marker may come before the end of the stream.
        io::copy(&mut tar, &mut io::sink()).map_err(verify_error)?;
        if !tar.is_verified() {
            return Err(verify_error(io::Error::new(
                io::ErrorKind::InvalidData,
                "the uncompressed layer was not read to its end",
            )));
        }
        report
    };
    // And the compressed blob to its end, where the store's reader checks its digest.
    io::copy(&mut blob, &mut io::sink()).map_err(verify_error)?;
    Ok(report)
}

/// The digest check that failed somewhere in `error`'s chain, if one did.
fn digest_mismatch(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(mismatch) = e.downcast_ref::<DigestError>() {
            return Some(mismatch.to_string());
        }
        // io::Error's source() skips its payload: look at the payload itself.
        if let Some(payload) = e.downcast_ref::<io::Error>().and_then(|io| io.get_ref()) {
            if let Some(found) = digest_mismatch(payload) {
                return Some(found);
            }
        }
        current = e.source();
    }
    None
}

/// Syncs the unpacked tree and renames it to its final name, never replacing anything.
fn publish(temp: &Path, final_dir: &Path) -> Result<(), LayerError> {
    let io = |operation, path: &Path| {
        let path = path.to_owned();
        move |source: io::Error| LayerError::Io {
            operation,
            path,
            source,
        }
    };
    let dir = File::open(temp).map_err(io("open", temp))?;
    rustix::fs::syncfs(&dir).map_err(|e| io("sync", temp)(e.into()))?;
    rustix::fs::renameat_with(CWD, temp, CWD, final_dir, RenameFlags::NOREPLACE)
        .map_err(|e| io("rename into place", final_dir)(e.into()))?;
    if let Some(parent) = final_dir.parent() {
        File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(io("sync", parent))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_image::import::{import, ImportOptions};
    use palisade_image::{Digest, ImageReference};

    /// Whether the test may chown (root); a skip fails under PALISADE_REQUIRE_PRIVILEGED=1.
    fn privileged() -> bool {
        if rustix::process::geteuid().is_root() {
            return true;
        }
        assert_ne!(
            std::env::var("PALISADE_REQUIRE_PRIVILEGED").as_deref(),
            Ok("1"),
            "layer tests need root to shift ownership"
        );
        eprintln!("SKIP: layer tests need root to shift ownership");
        false
    }

    /// A store with an image `name` of one layer holding `files`.
    fn image_with(store: &Store, dir: &Path, name: &str, files: &[(&str, &str)]) -> LocalImage {
        let rootfs = dir.join(format!("rootfs-{name}"));
        fs::create_dir_all(rootfs.join("etc")).unwrap();
        for (path, text) in files {
            fs::write(rootfs.join(path), text).unwrap();
        }
        let reference = ImageReference::parse(name).unwrap();
        import(store, &rootfs, &reference, &ImportOptions::default()).unwrap();
        LocalImage::open(store, &reference, None).unwrap()
    }

    fn setup() -> (tempfile::TempDir, Store, LayerCache) {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o711)).unwrap();
        let paths = EnginePaths::new(dir.path().join("store"));
        let store = Store::open(paths.root()).unwrap();
        paths.prepare().unwrap();
        let cache = LayerCache::new(&paths);
        (dir, store, cache)
    }

    #[test]
    fn layers_are_unpacked_once_shifted_and_shared() {
        if !privileged() {
            return;
        }
        let (dir, store, cache) = setup();
        let image = image_with(&store, dir.path(), "a:1", &[("etc/motd", "hi\n")]);
        let first = cache
            .ensure(&store, &image, LayerOwnership::default_shift())
            .unwrap();
        let second = cache
            .ensure(&store, &image, LayerOwnership::default_shift())
            .unwrap();
        assert_eq!(first, second);
        let motd = fs::metadata(first[0].join("etc/motd")).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!((motd.uid(), motd.gid()), (1_000_000, 1_000_000));
        // Unshifted copies for userns=host live apart.
        let host = cache.ensure(&store, &image, LayerOwnership::Host).unwrap();
        assert_ne!(host, first);
        assert_eq!(fs::metadata(host[0].join("etc/motd")).unwrap().uid(), 0);
    }

    #[test]
    fn concurrent_unpacks_of_one_layer_publish_one_directory() {
        if !privileged() {
            return;
        }
        let (dir, store, cache) = setup();
        let image = image_with(&store, dir.path(), "a:1", &[("etc/motd", "hi\n")]);
        let results: Vec<Vec<PathBuf>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| {
                        cache
                            .ensure(&store, &image, LayerOwnership::default_shift())
                            .unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(results.windows(2).all(|w| w[0] == w[1]));
        let entries: Vec<String> = fs::read_dir(&cache.dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with(".lock"))
            .collect();
        assert_eq!(entries.len(), 1, "{entries:?}");
    }

    /// An image whose config claims another image's diff_id for different content must not
    /// fill (poison) the shared directory of that diff_id.
    #[test]
    fn a_layer_that_lies_about_its_diff_id_is_refused() {
        if !privileged() {
            return;
        }
        let (dir, store, cache) = setup();
        let honest = image_with(&store, dir.path(), "honest:1", &[("etc/motd", "honest\n")]);
        let evil = image_with(&store, dir.path(), "evil:1", &[("etc/motd", "evil\n")]);
        // evil's layer, under honest's diff_id.
        let mut config: serde_json::Value = serde_json::from_slice(&evil.config_bytes).unwrap();
        config["rootfs"]["diff_ids"][0] =
            serde_json::Value::String(honest.layers[0].diff_id.to_string());
        let config_bytes = serde_json::to_vec(&config).unwrap();
        let config_digest = store.put_blob_bytes(&config_bytes).unwrap();
        let mut manifest: serde_json::Value = serde_json::from_slice(&evil.manifest_bytes).unwrap();
        manifest["config"]["digest"] = serde_json::Value::String(config_digest.to_string());
        manifest["config"]["size"] = serde_json::json!(config_bytes.len());
        let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
        let manifest_digest: Digest = store.put_blob_bytes(&manifest_bytes).unwrap();
        let liar = ImageReference::parse("liar:1").unwrap();
        store.tag(&liar, &manifest_digest).unwrap();
        let liar = LocalImage::open(&store, &liar, None).unwrap();

        let error = cache
            .ensure(&store, &liar, LayerOwnership::default_shift())
            .unwrap_err();
        assert!(matches!(error, LayerError::Verify { .. }), "{error}");
        let shared = cache.layer_dir(
            honest.layers[0].diff_id.hex(),
            LayerOwnership::default_shift(),
        );
        assert!(!shared.exists(), "the liar filled the honest image's layer");
        // Nothing half-done is left, and the honest image still gets its own content.
        let leftovers = fs::read_dir(&cache.dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
            .count();
        assert_eq!(leftovers, 0);
        let layers = cache
            .ensure(&store, &honest, LayerOwnership::default_shift())
            .unwrap();
        assert_eq!(
            fs::read_to_string(layers[0].join("etc/motd")).unwrap(),
            "honest\n"
        );
    }

    #[test]
    fn layer_directories_are_named_by_diff_id_and_ownership() {
        let cache = LayerCache::new(&EnginePaths::new("/s"));
        assert_eq!(
            cache.layer_dir("ab", LayerOwnership::default_shift()),
            Path::new("/s/layers/ab")
        );
        assert_eq!(
            cache.layer_dir("ab", LayerOwnership::Host),
            Path::new("/s/layers/ab-host")
        );
        assert_eq!(
            cache.layer_dir("ab", LayerOwnership::Shifted { base: 5, size: 7 }),
            Path::new("/s/layers/ab-5-7")
        );
        assert_eq!(
            LayerOwnership::default_shift().root(),
            (1_000_000, 1_000_000)
        );
    }
}
