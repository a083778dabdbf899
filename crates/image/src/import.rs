//! `palisade image import`: a root filesystem (a directory, or a tar archive, plain or gzip) as
//! a single-layer image.
//!
//! A directory becomes a deterministic tar: entries sorted by name, numeric ownership with no
//! user or group names, permission bits and mtimes from the files, no access or change times,
//! hard links kept as links; the gzip header carries no time or name. Importing the same tree
//! twice gives the same layer digest. A tarball is streamed through as it is (checked to be a
//! tar archive) and gzip-compressed. Hostile content (absolute paths, `..`, devices) is not
//! judged here but by the layer unpacker, which refuses it whatever the image's origin.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use flate2::write::GzEncoder;
use flate2::Compression;
use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, HistoryBuilder, ImageConfigurationBuilder,
    ImageManifestBuilder, MediaType, Os, RootFsBuilder,
};

use crate::digest::{Digest, DigestAlgorithm, DigestWriter};
use crate::manifest::PlatformSpec;
use crate::media_types::{self, LayerCompression};
use crate::reference::ImageReference;
use crate::store::{BlobWriter, Store, StoreError};
use crate::timestamp;

/// The `PATH` an imported image gets unless `--env PATH=...` says otherwise (Docker's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The command an imported image runs unless told otherwise.
pub const DEFAULT_CMD: &str = "/bin/sh";

/// Settings for an import.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The image's default command; `["/bin/sh"]` when `None`.
    pub cmd: Option<Vec<String>>,
    /// The image's entrypoint, if any.
    pub entrypoint: Option<Vec<String>>,
    /// `KEY=VALUE` pairs added to the environment (a `PATH` here replaces the default one).
    pub env: Vec<String>,
    /// The working directory, if any.
    pub working_dir: Option<String>,
    /// The user to run as, if not root.
    pub user: Option<String>,
    /// The image's creation time; now when `None`.
    pub created: Option<SystemTime>,
    /// The platform to record; the host's when `None`.
    pub platform: Option<PlatformSpec>,
    /// A comment for the history entry.
    pub comment: Option<String>,
    /// Paths the image declares as volumes (Dockerfile `VOLUME`).
    pub volumes: Vec<String>,
}

/// What an import produced.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImportedImage {
    /// The tag given to the image.
    pub reference: ImageReference,
    /// The manifest digest.
    pub manifest: Digest,
    /// The config digest.
    pub config: Digest,
    /// The compressed layer's digest.
    pub layer: Digest,
    /// The uncompressed layer's digest (its `diff_id`).
    pub diff_id: Digest,
    /// The compressed layer's size.
    pub layer_size: u64,
}

/// Why an import failed. Nothing is tagged when it does.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The source could not be opened or inspected.
    #[error("cannot read import source {path:?}")]
    Source {
        /// The source.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The source is a file but not a tar archive.
    #[error("{path:?} is neither a directory nor a tar archive (plain or gzip)")]
    NotAnArchive {
        /// The source.
        path: PathBuf,
        /// What the tar reader said.
        #[source]
        source: io::Error,
    },
    /// Reading the source or writing the layer failed midway.
    #[error("failed to build the layer from {path:?}")]
    Layer {
        /// The file being archived (or the source).
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// An `--env` value without `=`.
    #[error("invalid environment variable {value:?}: expected KEY=VALUE")]
    InvalidEnv {
        /// The value.
        value: String,
    },
    /// The config or manifest could not be built.
    #[error("failed to build the image {what}")]
    Build {
        /// "config" or "manifest".
        what: &'static str,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The store refused a blob or the tag.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Imports `source` (a directory or a tar/tar.gz file) into `store` as a single-layer image
/// tagged `reference`.
pub fn import(
    store: &Store,
    source: &Path,
    reference: &ImageReference,
    options: &ImportOptions,
) -> Result<ImportedImage, ImportError> {
    let env = environment(&options.env)?;
    let metadata = fs::metadata(source).map_err(|e| ImportError::Source {
        path: source.to_owned(),
        source: e,
    })?;
    // Keep prune from collecting the new blobs before they are tagged.
    let _lease = store.lease()?;
    let layer = if metadata.is_dir() {
        directory_layer(store, source)?
    } else {
        tarball_layer(store, source)?
    };
    let platform = options.platform.clone().unwrap_or_else(PlatformSpec::host);
    let created = timestamp::format_rfc3339(timestamp::unix_seconds(
        options.created.unwrap_or_else(SystemTime::now),
    ));
    let source_name = source.file_name().map_or_else(
        || source.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let config = image_config(
        options,
        env,
        &platform,
        &created,
        &layer.diff_id,
        &source_name,
    )?;
    let config_digest = store.put_blob_bytes(&config)?;
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(descriptor(
            MediaType::ImageConfig,
            config.len() as u64,
            &config_digest,
        )?)
        .layers(vec![descriptor(
            MediaType::ImageLayerGzip,
            layer.size,
            &layer.digest,
        )?])
        .build()
        .map_err(|e| build_error("manifest", e))?;
    let manifest = serde_json::to_vec(&manifest).map_err(|e| build_error("manifest", e))?;
    let manifest_digest = store.put_blob_bytes(&manifest)?;
    store.tag(reference, &manifest_digest)?;
    Ok(ImportedImage {
        reference: reference.clone(),
        manifest: manifest_digest,
        config: config_digest,
        layer: layer.digest,
        diff_id: layer.diff_id,
        layer_size: layer.size,
    })
}

fn build_error(
    what: &'static str,
    e: impl std::error::Error + Send + Sync + 'static,
) -> ImportError {
    ImportError::Build {
        what,
        source: Box::new(e),
    }
}

fn descriptor(
    media_type: MediaType,
    size: u64,
    digest: &Digest,
) -> Result<Descriptor, ImportError> {
    let digest =
        oci_spec::image::Digest::try_from(digest).map_err(|e| build_error("manifest", e))?;
    Ok(Descriptor::new(media_type, size, digest))
}

/// `PATH` first (the default unless overridden), then the caller's variables in order.
fn environment(extra: &[String]) -> Result<Vec<String>, ImportError> {
    let mut env = vec![format!("PATH={DEFAULT_PATH}")];
    for value in extra {
        let Some((key, _)) = value.split_once('=') else {
            return Err(ImportError::InvalidEnv {
                value: value.clone(),
            });
        };
        if key.is_empty() {
            return Err(ImportError::InvalidEnv {
                value: value.clone(),
            });
        }
        let prefix = format!("{key}=");
        env.retain(|existing| !existing.starts_with(&prefix));
        env.push(value.clone());
    }
    Ok(env)
}

fn image_config(
    options: &ImportOptions,
    env: Vec<String>,
    platform: &PlatformSpec,
    created: &str,
    diff_id: &Digest,
    source_name: &str,
) -> Result<Vec<u8>, ImportError> {
    let mut runtime = ConfigBuilder::default().env(env).cmd(
        options
            .cmd
            .clone()
            .unwrap_or_else(|| vec![DEFAULT_CMD.to_owned()]),
    );
    if let Some(entrypoint) = &options.entrypoint {
        runtime = runtime.entrypoint(entrypoint.clone());
    }
    if let Some(dir) = &options.working_dir {
        runtime = runtime.working_dir(dir.clone());
    }
    if let Some(user) = &options.user {
        runtime = runtime.user(user.clone());
    }
    if !options.volumes.is_empty() {
        runtime = runtime.volumes(options.volumes.clone());
    }
    let runtime = runtime.build().map_err(|e| build_error("config", e))?;
    let mut history = HistoryBuilder::default()
        .created(created.to_owned())
        .created_by(format!("palisade image import {source_name}"));
    if let Some(comment) = &options.comment {
        history = history.comment(comment.clone());
    }
    let history = history.build().map_err(|e| build_error("config", e))?;
    let rootfs = RootFsBuilder::default()
        .typ("layers")
        .diff_ids(vec![diff_id.to_string()])
        .build()
        .map_err(|e| build_error("config", e))?;
    let mut config = ImageConfigurationBuilder::default()
        .created(created.to_owned())
        .architecture(Arch::from(platform.architecture()))
        .os(Os::from(platform.os()))
        .config(runtime)
        .rootfs(rootfs)
        .history(vec![history]);
    if let Some(variant) = platform.variant() {
        config = config.variant(variant.to_owned());
    }
    let config = config.build().map_err(|e| build_error("config", e))?;
    serde_json::to_vec(&config).map_err(|e| build_error("config", e))
}

/// A layer written to the store.
#[derive(Debug)]
struct StoredLayer {
    digest: Digest,
    size: u64,
    diff_id: Digest,
}

type LayerSink = DigestWriter<GzEncoder<BlobWriter>>;

fn layer_sink(store: &Store) -> Result<LayerSink, StoreError> {
    let blob = store.blob_writer(DigestAlgorithm::Sha256, None)?;
    Ok(DigestWriter::new(GzEncoder::new(
        blob,
        Compression::default(),
    )))
}

fn finish_layer(sink: LayerSink, path: &Path) -> Result<StoredLayer, ImportError> {
    let (gz, diff_id, _) = sink.finish();
    let blob = gz.finish().map_err(|source| ImportError::Layer {
        path: path.to_owned(),
        source,
    })?;
    let (digest, size) = blob.commit(None, None)?;
    Ok(StoredLayer {
        digest,
        size,
        diff_id,
    })
}

fn directory_layer(store: &Store, dir: &Path) -> Result<StoredLayer, ImportError> {
    let sink = write_rootfs_tar(dir, layer_sink(store)?)?;
    finish_layer(sink, dir)
}

/// Writes the deterministic tar of the tree at `root` to `out` (see the module docs) and
/// returns `out`.
pub fn write_rootfs_tar<W: Write>(root: &Path, out: W) -> Result<W, ImportError> {
    let mut builder = tar::Builder::new(out);
    let mut links = HashMap::new();
    append_tree(&mut builder, root, Path::new(""), &mut links)?;
    builder.into_inner().map_err(|source| ImportError::Layer {
        path: root.to_owned(),
        source,
    })
}

fn append_tree<W: Write>(
    builder: &mut tar::Builder<W>,
    root: &Path,
    relative: &Path,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<(), ImportError> {
    let dir = root.join(relative);
    let layer_error = |path: &Path| {
        let path = path.to_owned();
        move |source| ImportError::Layer { path, source }
    };
    let mut names: Vec<_> = fs::read_dir(&dir)
        .map_err(layer_error(&dir))?
        .map(|entry| entry.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(layer_error(&dir))?;
    names.sort_by(|a, b| a.as_encoded_bytes().cmp(b.as_encoded_bytes()));
    for name in names {
        let relative = relative.join(&name);
        let path = root.join(&relative);
        let meta = fs::symlink_metadata(&path).map_err(layer_error(&path))?;
        let kind = meta.file_type();
        let mut header = tar::Header::new_gnu();
        header.set_mode(meta.mode() & 0o7777);
        header.set_uid(u64::from(meta.uid()));
        header.set_gid(u64::from(meta.gid()));
        header.set_mtime(u64::try_from(meta.mtime()).unwrap_or(0));
        header.set_size(0);
        let result = if kind.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            builder
                .append_data(&mut header, &relative, io::empty())
                .map(|()| append_tree(builder, root, &relative, links))
        } else if kind.is_symlink() {
            header.set_entry_type(tar::EntryType::Symlink);
            fs::read_link(&path)
                .and_then(|target| builder.append_link(&mut header, &relative, target))
                .map(Ok)
        } else if kind.is_file() {
            let key = (meta.dev(), meta.ino());
            match links.get(&key) {
                Some(first) if meta.nlink() > 1 => {
                    header.set_entry_type(tar::EntryType::Link);
                    builder.append_link(&mut header, &relative, first).map(Ok)
                }
                _ => {
                    if meta.nlink() > 1 {
                        links.insert(key, relative.clone());
                    }
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(meta.len());
                    File::open(&path)
                        .and_then(|file| {
                            let exact = ExactReader {
                                inner: file.take(meta.len()),
                                remaining: meta.len(),
                            };
                            builder.append_data(&mut header, &relative, exact)
                        })
                        .map(Ok)
                }
            }
        } else if kind.is_char_device() || kind.is_block_device() || kind.is_fifo() {
            header.set_entry_type(if kind.is_char_device() {
                tar::EntryType::Char
            } else if kind.is_block_device() {
                tar::EntryType::Block
            } else {
                tar::EntryType::Fifo
            });
            let rdev = meta.rdev();
            let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
            let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
            header
                .set_device_major(u32::try_from(major).unwrap_or(0))
                .and_then(|()| header.set_device_minor(u32::try_from(minor).unwrap_or(0)))
                .and_then(|()| builder.append_data(&mut header, &relative, io::empty()))
                .map(Ok)
        } else {
            tracing::warn!(path = %path.display(), "skipping a socket in the imported tree");
            Ok(Ok(()))
        };
        result.map_err(layer_error(&path))??;
    }
    Ok(())
}

/// Yields exactly `remaining` bytes or fails: a file that shrinks while it is archived must not
/// leave a tar whose header promises more data than follows.
struct ExactReader<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while it was being archived",
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Copies everything read through it into a writer.
struct Tee<R, W> {
    reader: R,
    writer: W,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.reader.read(buf)?;
        self.writer.write_all(&buf[..n])?;
        Ok(n)
    }
}

fn tarball_layer(store: &Store, path: &Path) -> Result<StoredLayer, ImportError> {
    let file = File::open(path).map_err(|source| ImportError::Source {
        path: path.to_owned(),
        source,
    })?;
    let mut buffered = BufReader::new(file);
    let head = buffered.fill_buf().map_err(|source| ImportError::Source {
        path: path.to_owned(),
        source,
    })?;
    let input: Box<dyn Read> =
        match LayerCompression::sniff(head) {
            LayerCompression::Gzip => Box::new(flate2::read::GzDecoder::new(buffered)),
            LayerCompression::Uncompressed => Box::new(buffered),
            LayerCompression::Zstd => return Err(ImportError::NotAnArchive {
                path: path.to_owned(),
                source: io::Error::new(
                    io::ErrorKind::InvalidData,
                    "zstd-compressed tarballs are not supported for import; decompress it first",
                ),
            }),
        };
    let tee = Tee {
        reader: input,
        writer: layer_sink(store)?,
    };
    let mut archive = tar::Archive::new(tee);
    let not_tar = |source| ImportError::NotAnArchive {
        path: path.to_owned(),
        source,
    };
    let mut count = 0usize;
    for entry in archive.entries().map_err(not_tar)? {
        let mut entry = entry.map_err(not_tar)?;
        io::copy(&mut entry, &mut io::sink()).map_err(|source| ImportError::Layer {
            path: path.to_owned(),
            source,
        })?;
        count += 1;
    }
    if count == 0 {
        return Err(not_tar(io::Error::new(
            io::ErrorKind::InvalidData,
            "no tar entries found",
        )));
    }
    let mut tee = archive.into_inner();
    // The end-of-archive blocks and anything after them belong to the layer as well.
    io::copy(&mut tee, &mut io::sink()).map_err(|source| ImportError::Layer {
        path: path.to_owned(),
        source,
    })?;
    finish_layer(tee.writer, path)
}

/// The media type of the layers import writes.
pub const LAYER_MEDIA_TYPE: &str = media_types::OCI_LAYER_GZIP;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{parse_config, ManifestDocument};

    fn tree(dir: &Path) {
        fs::create_dir_all(dir.join("bin")).unwrap();
        fs::create_dir_all(dir.join("etc")).unwrap();
        fs::write(dir.join("bin/tool"), b"#!/bin/sh\necho hi\n").unwrap();
        std::os::unix::fs::symlink("tool", dir.join("bin/alias")).unwrap();
        fs::hard_link(dir.join("bin/tool"), dir.join("bin/tool2")).unwrap();
        fs::write(dir.join("etc/hostname"), b"box\n").unwrap();
        let deep = dir.join("a".repeat(60)).join("b".repeat(60));
        fs::create_dir_all(&deep).unwrap();
        fs::write(deep.join("c".repeat(60)), b"long name").unwrap();
    }

    #[test]
    fn directory_tar_is_deterministic_and_complete() {
        let dir = tempfile::tempdir().unwrap();
        tree(dir.path());
        let first = write_rootfs_tar(dir.path(), Vec::new()).unwrap();
        let second = write_rootfs_tar(dir.path(), Vec::new()).unwrap();
        assert_eq!(first, second);
        let mut archive = tar::Archive::new(&first[..]);
        let entries: Vec<(String, tar::EntryType, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.entry_type(),
                    h.uid().unwrap(),
                )
            })
            .collect();
        let names: Vec<&str> = entries.iter().map(|(n, _, _)| n.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert!(names.contains(&"bin/alias"));
        assert!(
            names.iter().any(|n| n.len() > 180),
            "long names kept: {names:?}"
        );
        let types: HashMap<&str, tar::EntryType> =
            entries.iter().map(|(n, t, _)| (n.as_str(), *t)).collect();
        assert_eq!(types["bin/alias"], tar::EntryType::Symlink);
        assert_eq!(types["bin/tool"], tar::EntryType::Regular);
        assert_eq!(types["bin/tool2"], tar::EntryType::Link);
        assert_eq!(types["bin"], tar::EntryType::Directory);
        let me = u64::from(rustix::process::geteuid().as_raw());
        assert!(entries.iter().all(|(_, _, uid)| *uid == me));
    }

    #[test]
    fn imports_a_directory() {
        let src = tempfile::tempdir().unwrap();
        tree(src.path());
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let reference = ImageReference::parse("test/tree:1").unwrap();
        let options = ImportOptions {
            cmd: Some(vec!["/bin/tool".into()]),
            env: vec!["FOO=bar".into(), "PATH=/bin".into()],
            created: Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000)),
            ..ImportOptions::default()
        };
        let image = import(&store, src.path(), &reference, &options).unwrap();
        assert_eq!(
            store.resolve(&reference).unwrap(),
            Some(image.manifest.clone())
        );
        let manifest = store.read_blob(&image.manifest, 1 << 20).unwrap();
        let ManifestDocument::Image(manifest) = ManifestDocument::parse(&manifest, None).unwrap()
        else {
            panic!("not a manifest")
        };
        assert_eq!(
            manifest.layers()[0].media_type().to_string(),
            LAYER_MEDIA_TYPE
        );
        let config = parse_config(&store.read_blob(&image.config, 1 << 20).unwrap()).unwrap();
        let runtime = config.config().as_ref().unwrap();
        assert_eq!(
            runtime.cmd().as_ref().unwrap(),
            &vec!["/bin/tool".to_owned()]
        );
        assert_eq!(
            runtime.env().as_ref().unwrap(),
            &vec!["FOO=bar".to_owned(), "PATH=/bin".to_owned()]
        );
        assert_eq!(config.rootfs().diff_ids(), &vec![image.diff_id.to_string()]);
        assert_eq!(config.created().as_deref(), Some("2023-11-14T22:13:20Z"));
        assert_eq!(config.os().to_string(), "linux");
        // The same tree, options and time give the same image.
        let again = import(&store, src.path(), &reference, &options).unwrap();
        assert_eq!(again, image);
        // The diff_id is the digest of the uncompressed layer.
        let mut layer = flate2::read::GzDecoder::new(store.open_blob(&image.layer).unwrap());
        let mut tar = Vec::new();
        layer.read_to_end(&mut tar).unwrap();
        assert_eq!(Digest::of(&tar), image.diff_id);
        assert!(store.check(false).unwrap().is_clean());
    }

    #[test]
    fn imports_tarballs_plain_and_gzip() {
        let src = tempfile::tempdir().unwrap();
        tree(src.path());
        let tar = write_rootfs_tar(src.path(), Vec::new()).unwrap();
        let files = tempfile::tempdir().unwrap();
        fs::write(files.path().join("root.tar"), &tar).unwrap();
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(&tar).unwrap();
        fs::write(files.path().join("root.tar.gz"), gz.finish().unwrap()).unwrap();
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let reference = ImageReference::parse("t").unwrap();
        let plain = import(
            &store,
            &files.path().join("root.tar"),
            &reference,
            &ImportOptions::default(),
        )
        .unwrap();
        let gzip = import(
            &store,
            &files.path().join("root.tar.gz"),
            &reference,
            &ImportOptions::default(),
        )
        .unwrap();
        assert_eq!(plain.diff_id, Digest::of(&tar));
        assert_eq!(gzip.diff_id, plain.diff_id);
    }

    #[test]
    fn refuses_what_is_not_a_tar() {
        let files = tempfile::tempdir().unwrap();
        let junk = files.path().join("junk");
        fs::write(&junk, vec![b'x'; 4096]).unwrap();
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let reference = ImageReference::parse("t").unwrap();
        let err = import(&store, &junk, &reference, &ImportOptions::default()).unwrap_err();
        assert!(matches!(err, ImportError::NotAnArchive { .. }), "{err:?}");
        let missing = import(
            &store,
            &files.path().join("nope"),
            &reference,
            &ImportOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(missing, ImportError::Source { .. }), "{missing:?}");
        let bad_env = ImportOptions {
            env: vec!["NOEQUALS".into()],
            ..ImportOptions::default()
        };
        assert!(matches!(
            import(&store, files.path(), &reference, &bad_env),
            Err(ImportError::InvalidEnv { .. })
        ));
        assert!(store.list_images().unwrap().is_empty());
        // Nothing half-written stays behind.
        assert!(store.scan_blobs().unwrap().temp_files.is_empty());
    }
}
