//! `palisade system check`: verify every blob and every tagged image.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use super::{atomic, Store, StoreError};
use crate::digest::Digest;
use crate::manifest::{
    descriptor_digest, parse_config, ManifestDocument, MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE,
};
use crate::media_types::MediaKind;

/// One thing wrong with the store.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Problem {
    /// A blob that does not hash to its name (altered or truncated on disk).
    CorruptBlob {
        /// Its digest.
        digest: Digest,
        /// Its file.
        path: PathBuf,
        /// What the check found.
        detail: String,
    },
    /// A blob that could not be read at all.
    UnreadableBlob {
        /// Its file.
        path: PathBuf,
        /// The error.
        detail: String,
    },
    /// A temporary file no writer holds (an interrupted write).
    StaleTempFile {
        /// The file.
        path: PathBuf,
    },
    /// A file under `blobs/` whose name is not a digest.
    StrayFile {
        /// The file.
        path: PathBuf,
    },
    /// `index.json` or `oci-layout` cannot be parsed.
    BadMetadata {
        /// The file.
        path: PathBuf,
        /// The error.
        detail: String,
    },
    /// An `index.json` entry without a valid reference name.
    UnnamedEntry {
        /// The entry's digest.
        digest: Digest,
    },
    /// A tagged manifest that is not in the store.
    MissingManifest {
        /// The tag.
        reference: String,
        /// The manifest digest.
        digest: Digest,
    },
    /// A manifest or config that cannot be parsed.
    InvalidManifest {
        /// The tag.
        reference: String,
        /// The document.
        digest: Digest,
        /// Why.
        detail: String,
    },
    /// A config, layer or platform manifest that an image needs but the store lacks.
    MissingBlob {
        /// The tag.
        reference: String,
        /// What the blob is (`config`, `layer 2`, `manifest for linux/arm64`).
        role: String,
        /// Its digest.
        digest: Digest,
    },
    /// A blob whose size differs from the descriptor that references it.
    SizeMismatch {
        /// The tag.
        reference: String,
        /// The blob.
        digest: Digest,
        /// The descriptor's size.
        expected: u64,
        /// The blob's size.
        actual: u64,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CorruptBlob {
                digest,
                path,
                detail,
            } => {
                write!(f, "corrupt blob {digest} at {}: {detail}", path.display())
            }
            Self::UnreadableBlob { path, detail } => {
                write!(f, "unreadable blob {}: {detail}", path.display())
            }
            Self::StaleTempFile { path } => {
                write!(
                    f,
                    "leftover temporary file {} (an interrupted write)",
                    path.display()
                )
            }
            Self::StrayFile { path } => write!(f, "unexpected file {}", path.display()),
            Self::BadMetadata { path, detail } => {
                write!(f, "invalid store metadata {}: {detail}", path.display())
            }
            Self::UnnamedEntry { digest } => {
                write!(f, "index.json entry {digest} has no valid reference name")
            }
            Self::MissingManifest { reference, digest } => {
                write!(f, "{reference}: manifest {digest} is missing")
            }
            Self::InvalidManifest {
                reference,
                digest,
                detail,
            } => {
                write!(f, "{reference}: invalid document {digest}: {detail}")
            }
            Self::MissingBlob {
                reference,
                role,
                digest,
            } => {
                write!(f, "{reference}: {role} {digest} is missing")
            }
            Self::SizeMismatch {
                reference,
                digest,
                expected,
                actual,
            } => write!(
                f,
                "{reference}: blob {digest} is {actual} bytes, its descriptor says {expected}"
            ),
        }
    }
}

/// The result of [`Store::check`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    /// Blobs verified.
    pub blobs_checked: usize,
    /// Bytes hashed.
    pub bytes_checked: u64,
    /// Tags whose image was walked.
    pub images_checked: usize,
    /// Problems still present.
    pub problems: Vec<Problem>,
    /// Problems fixed by `repair` (corrupt blobs and stale temporary files deleted).
    pub repaired: Vec<Problem>,
}

impl CheckReport {
    /// Whether the store is consistent.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

fn detail(error: &StoreError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl Store {
    /// Verifies every blob's digest and that every tag's manifest, config and layers exist
    /// with the sizes their descriptors give. With `repair`, corrupt blobs and stale
    /// temporary files are deleted (the images that needed them are then reported as
    /// incomplete: import, load or pull them again).
    pub fn check(&self, repair: bool) -> Result<CheckReport, StoreError> {
        // Keep prune out so it cannot make blobs vanish under the check.
        let _lease = self.lease()?;
        let mut report = CheckReport::default();
        let scan = self.scan_blobs()?;
        for digest in &scan.blobs {
            let path = self.blob_path(digest);
            let problem = match self.verify_blob(digest) {
                Ok(size) => {
                    report.blobs_checked += 1;
                    report.bytes_checked += size;
                    continue;
                }
                Err(error @ StoreError::CorruptBlob { .. }) => Problem::CorruptBlob {
                    digest: digest.clone(),
                    path,
                    detail: detail(&error),
                },
                Err(StoreError::BlobNotFound { .. }) => continue, // removed meanwhile
                Err(error) => Problem::UnreadableBlob {
                    path,
                    detail: detail(&error),
                },
            };
            report.blobs_checked += 1;
            if repair && matches!(problem, Problem::CorruptBlob { .. }) {
                self.remove_blob(digest)?;
                tracing::warn!(%digest, "removed corrupt blob");
                report.repaired.push(problem);
            } else {
                report.problems.push(problem);
            }
        }
        for path in scan.temp_files {
            if !atomic::is_stale_temp(&path) {
                continue; // a write in progress
            }
            let problem = Problem::StaleTempFile { path: path.clone() };
            if repair {
                std::fs::remove_file(&path)
                    .map_err(|source| StoreError::Remove { path, source })?;
                report.repaired.push(problem);
            } else {
                report.problems.push(problem);
            }
        }
        for path in scan.strays {
            report.problems.push(Problem::StrayFile { path });
        }
        let index = match self.read_index() {
            Ok(index) => index,
            Err(error) => {
                report.problems.push(Problem::BadMetadata {
                    path: self.index_path(),
                    detail: detail(&error),
                });
                return Ok(report);
            }
        };
        for entry in &index.manifests {
            let reference = match entry.reference() {
                Some(reference) => reference.to_string(),
                None => {
                    report.problems.push(Problem::UnnamedEntry {
                        digest: entry.digest.clone(),
                    });
                    entry.digest.to_string()
                }
            };
            report.images_checked += 1;
            self.check_document(
                &reference,
                &entry.digest,
                &entry.media_type,
                entry.size,
                true,
                &mut report.problems,
            );
        }
        Ok(report)
    }

    /// Checks one manifest or index and what it references. `required` is false for the
    /// platform manifests of an index, which may be absent as long as one is present.
    fn check_document(
        &self,
        reference: &str,
        digest: &Digest,
        media_type: &str,
        expected_size: u64,
        required: bool,
        problems: &mut Vec<Problem>,
    ) -> bool {
        let missing = |problems: &mut Vec<Problem>| {
            if required {
                problems.push(Problem::MissingManifest {
                    reference: reference.to_owned(),
                    digest: digest.clone(),
                });
            }
            false
        };
        let Ok(size) = self.blob_size(digest) else {
            return missing(problems);
        };
        if size != expected_size {
            problems.push(Problem::SizeMismatch {
                reference: reference.to_owned(),
                digest: digest.clone(),
                expected: expected_size,
                actual: size,
            });
        }
        let invalid = |problems: &mut Vec<Problem>, digest: &Digest, detail: String| {
            problems.push(Problem::InvalidManifest {
                reference: reference.to_owned(),
                digest: digest.clone(),
                detail,
            });
            false
        };
        let bytes = match self.read_blob(digest, MAX_MANIFEST_SIZE) {
            Ok(bytes) => bytes,
            // Corruption is reported by the blob pass.
            Err(StoreError::CorruptBlob { .. }) => return false,
            Err(error) => return invalid(problems, digest, detail(&error)),
        };
        let document = match ManifestDocument::parse(&bytes, Some(media_type)) {
            Ok(document) => document,
            Err(error) => return invalid(problems, digest, error.to_string()),
        };
        match document {
            ManifestDocument::Index(index) => {
                let mut any_present = false;
                for child in index.manifests() {
                    if MediaKind::of(child.media_type().as_ref()) != MediaKind::Manifest {
                        continue;
                    }
                    let Ok(child_digest) = descriptor_digest(child) else {
                        continue;
                    };
                    // Platforms that were never fetched may be absent.
                    if !self.has_blob(&child_digest) {
                        continue;
                    }
                    any_present |= self.check_document(
                        reference,
                        &child_digest,
                        child.media_type().as_ref(),
                        child.size(),
                        true,
                        problems,
                    );
                }
                if !any_present && required {
                    problems.push(Problem::MissingBlob {
                        reference: reference.to_owned(),
                        role: "every platform manifest of the index".to_owned(),
                        digest: digest.clone(),
                    });
                }
                any_present
            }
            ManifestDocument::Image(manifest) => {
                let mut complete = true;
                let config = manifest.config();
                let layers = manifest
                    .layers()
                    .iter()
                    .enumerate()
                    .map(|(i, l)| (format!("layer {i}"), l));
                for (role, descriptor) in
                    std::iter::once(("config".to_owned(), config)).chain(layers)
                {
                    let Ok(blob) = descriptor_digest(descriptor) else {
                        complete =
                            invalid(problems, digest, format!("{role} has an invalid digest"));
                        continue;
                    };
                    match self.blob_size(&blob) {
                        Ok(size) if size == descriptor.size() => {}
                        Ok(size) => {
                            complete = false;
                            problems.push(Problem::SizeMismatch {
                                reference: reference.to_owned(),
                                digest: blob,
                                expected: descriptor.size(),
                                actual: size,
                            });
                        }
                        Err(_) => {
                            complete = false;
                            problems.push(Problem::MissingBlob {
                                reference: reference.to_owned(),
                                role,
                                digest: blob,
                            });
                        }
                    }
                }
                if let Ok(config_digest) = descriptor_digest(config) {
                    if MediaKind::of(config.media_type().as_ref()) == MediaKind::Config {
                        match self.read_blob(&config_digest, MAX_CONFIG_SIZE) {
                            Ok(bytes) => {
                                if let Err(error) = parse_config(&bytes)
                                    .and_then(|c| crate::manifest::diff_ids(&manifest, &c))
                                {
                                    complete = invalid(problems, &config_digest, error.to_string());
                                }
                            }
                            Err(
                                StoreError::BlobNotFound { .. } | StoreError::CorruptBlob { .. },
                            ) => {}
                            Err(error) => {
                                complete = invalid(problems, &config_digest, detail(&error))
                            }
                        }
                    }
                }
                complete
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media_types;
    use crate::reference::ImageReference;

    fn image(store: &Store) -> (Digest, Digest, Digest) {
        let layer = store.put_blob_bytes(b"layer").unwrap();
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
            Digest::of(b"diff")
        );
        let config_digest = store.put_blob_bytes(config.as_bytes()).unwrap();
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","size":{},"digest":"{config_digest}"}},"layers":[{{"mediaType":"{}","size":5,"digest":"{layer}"}}]}}"#,
            media_types::OCI_MANIFEST,
            media_types::OCI_CONFIG,
            config.len(),
            media_types::OCI_LAYER_GZIP
        );
        let manifest = store.put_blob_bytes(manifest.as_bytes()).unwrap();
        store
            .tag(&ImageReference::parse("img").unwrap(), &manifest)
            .unwrap();
        (manifest, config_digest, layer)
    }

    fn corrupt(store: &Store, digest: &Digest, bytes: &[u8]) {
        use std::os::unix::fs::PermissionsExt;
        let path = store.blob_path(digest);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(&path, bytes).unwrap();
    }

    #[test]
    fn clean_store_checks_clean() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        image(&store);
        let report = store.check(false).unwrap();
        assert!(report.is_clean(), "{:?}", report.problems);
        assert_eq!(report.blobs_checked, 3);
        assert_eq!(report.images_checked, 1);
    }

    #[test]
    fn reports_and_repairs_a_corrupt_layer() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (_, _, layer) = image(&store);
        corrupt(&store, &layer, b"LAYER");
        let report = store.check(false).unwrap();
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        assert!(
            matches!(&report.problems[0], Problem::CorruptBlob { digest, .. } if *digest == layer)
        );
        let report = store.check(true).unwrap();
        assert_eq!(report.repaired.len(), 1);
        assert!(!store.has_blob(&layer));
        assert!(
            matches!(&report.problems[..], [Problem::MissingBlob { role, .. }] if role == "layer 0")
        );
    }

    #[test]
    fn reports_missing_manifest_and_stale_temp() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (manifest, config, _) = image(&store);
        store.remove_blob(&config).unwrap();
        let stale = store
            .algorithm_dir(crate::digest::DigestAlgorithm::Sha256)
            .join(".tmp-1");
        std::fs::write(&stale, b"x").unwrap();
        std::fs::write(
            store
                .algorithm_dir(crate::digest::DigestAlgorithm::Sha256)
                .join("README"),
            b"x",
        )
        .unwrap();
        let report = store.check(false).unwrap();
        let text: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
        assert!(
            text.iter()
                .any(|t| t.contains("config") && t.contains("missing")),
            "{text:?}"
        );
        assert!(text.iter().any(|t| t.contains("temporary")), "{text:?}");
        assert!(
            text.iter().any(|t| t.contains("unexpected file")),
            "{text:?}"
        );
        store.remove_blob(&manifest).unwrap();
        let report = store.check(true).unwrap();
        assert!(report
            .problems
            .iter()
            .any(|p| matches!(p, Problem::MissingManifest { .. })));
        assert!(!stale.exists());
    }
}
