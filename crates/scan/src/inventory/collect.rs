//! The single collection pass, over a directory or over layer tar streams.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use palisade_image::media_types::LayerCompression;

use super::{binary_packages, build, elf, Collected, Inventory, Kind, Package, BINARY_SECTIONS};

/// Largest executable read from a layer stream to look for build information.
const MAX_BINARY: u64 = 512 << 20;

/// Why an inventory could not be taken at all (single unreadable files are warnings instead).
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The root directory cannot be read.
    #[error("cannot read {path}: {source}")]
    Root {
        /// The directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A layer is not a readable tar stream: what it holds is unknown, so no verdict.
    #[error("layer {index} is not a readable tar stream: {source}")]
    Layer {
        /// 0-based layer position.
        index: usize,
        /// The error.
        source: std::io::Error,
    },
}

/// Wraps a layer blob in the decompressor its media type names.
pub fn decompress<'a, R: Read + 'a>(
    compression: LayerCompression,
    blob: R,
) -> std::io::Result<Box<dyn Read + 'a>> {
    Ok(match compression {
        LayerCompression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(blob)),
        LayerCompression::Zstd => {
            let mut d = zstd::stream::read::Decoder::new(blob)?;
            d.window_log_max(27)?;
            Box::new(d)
        }
        LayerCompression::Uncompressed => Box::new(blob),
    })
}

fn read_limited(mut r: impl Read, limit: u64) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    (&mut r).take(limit + 1).read_to_end(&mut buf)?;
    Ok((buf.len() as u64 <= limit).then_some(buf))
}

/// Takes the inventory of an unpacked root filesystem. Symbolic links are never followed
/// (they could point outside the tree).
pub fn scan_dir(root: &Path) -> Result<Inventory, InventoryError> {
    let mut c = Collected::default();
    std::fs::read_dir(root).map_err(|source| InventoryError::Root {
        path: root.to_owned(),
        source,
    })?;
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) => {
                c.warnings.push(format!(
                    "{}: directory skipped: {e}",
                    if rel.is_empty() { "/" } else { &rel }
                ));
                continue;
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let path = if rel.is_empty() {
                name.to_string()
            } else {
                format!("{rel}/{name}")
            };
            if rel.is_empty() && matches!(&*name, "proc" | "sys" | "dev") {
                continue;
            }
            let Ok(ft) = entry.file_type() else { continue };
            if ft.is_dir() {
                stack.push((entry.path(), path));
            } else if ft.is_file() {
                visit_file(&mut c, &entry.path(), path);
            }
        }
    }
    Ok(build(c))
}

fn visit_file(c: &mut Collected, full: &Path, path: String) {
    let Ok(meta) = std::fs::symlink_metadata(full) else {
        return;
    };
    if let Some(kind) = Kind::of(&path) {
        if kind == Kind::RpmBdb {
            c.files.insert(path, (kind, Vec::new()));
            return;
        }
        if meta.len() > kind.limit() {
            c.warnings.push(format!(
                "{path}: skipped: {} bytes is more than the {} limit",
                meta.len(),
                kind.limit()
            ));
            return;
        }
        match std::fs::File::open(full).and_then(|f| read_limited(f, kind.limit())) {
            Ok(Some(bytes)) => {
                c.files.insert(path, (kind, bytes));
            }
            Ok(None) => c.warnings.push(format!(
                "{path}: skipped: grew past the size limit while read"
            )),
            Err(e) => c.warnings.push(format!("{path}: skipped: {e}")),
        }
        return;
    }
    if meta.permissions().mode() & 0o111 == 0 || meta.len() < 64 {
        return;
    }
    let Ok(file) = std::fs::File::open(full) else {
        return;
    };
    let mut head = [0u8; 4];
    if elf::ReadAt::read_exact_at(&file, &mut head, 0).is_err() || !elf::is_elf(&head) {
        return;
    }
    match elf::sections(&file, &BINARY_SECTIONS) {
        Ok(sections) => {
            if let Some(found) =
                binary_packages(&path, &sections, &|a, l| elf::read_virtual(&file, a, l))
            {
                c.binaries.insert(path, found);
            }
        }
        Err(e) => {
            c.binaries.insert(path, Err(format!("malformed ELF: {e}")));
        }
    }
}

fn normalize(raw: &[u8]) -> Option<String> {
    let s = String::from_utf8_lossy(raw);
    let mut parts = Vec::new();
    for p in s.split('/') {
        match p {
            "" | "." => {}
            ".." => return None,
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

fn remove_under<V>(map: &mut BTreeMap<String, V>, dir: &str) {
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    let doomed: Vec<String> = map
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .map(|(k, _)| k.clone())
        .collect();
    for k in doomed {
        map.remove(&k);
    }
}

/// Takes the inventory of an image from its layers' uncompressed tar streams, lowest layer
/// first, applying whiteouts (`.wh.NAME`, `.wh..wh..opq`) as the layers stack.
pub fn scan_layers<I, R>(layers: I) -> Result<Inventory, InventoryError>
where
    I: IntoIterator<Item = R>,
    R: Read,
{
    let mut c = Collected::default();
    let mut warnings: BTreeMap<String, String> = BTreeMap::new();
    for (index, layer) in layers.into_iter().enumerate() {
        let err = |source| InventoryError::Layer { index, source };
        let mut files: BTreeMap<String, (Kind, Vec<u8>)> = BTreeMap::new();
        let mut bins: BTreeMap<String, Result<Vec<Package>, String>> = BTreeMap::new();
        let mut layer_warnings: BTreeMap<String, String> = BTreeMap::new();
        let (mut deleted, mut opaque, mut touched) = (Vec::new(), Vec::new(), Vec::new());
        let mut replaced_by_dir: Vec<String> = Vec::new();
        let mut archive = tar::Archive::new(layer);
        for entry in archive.entries().map_err(err)? {
            let entry = entry.map_err(err)?;
            let Some(path) = normalize(&entry.path_bytes()) else {
                continue;
            };
            let (dir, name) = match path.rsplit_once('/') {
                Some((d, n)) => (d.to_owned(), n.to_owned()),
                None => (String::new(), path.clone()),
            };
            if name == ".wh..wh..opq" {
                opaque.push(dir);
                continue;
            }
            if let Some(target) = name.strip_prefix(".wh.") {
                deleted.push(if dir.is_empty() {
                    target.to_owned()
                } else {
                    format!("{dir}/{target}")
                });
                continue;
            }
            let header = entry.header();
            let et = header.entry_type();
            if et.is_dir() {
                // A directory replaces a file of the same path, but keeps what is under it.
                replaced_by_dir.push(path);
                continue;
            }
            touched.push(path.clone());
            if !(et.is_file() || et == tar::EntryType::Continuous) {
                continue;
            }
            let size = entry.size();
            let mode = header.mode().unwrap_or(0);
            if let Some(kind) = Kind::of(&path) {
                if kind == Kind::RpmBdb {
                    files.insert(path, (kind, Vec::new()));
                } else if size > kind.limit() {
                    layer_warnings.insert(
                        path.clone(),
                        format!(
                            "{path}: skipped: {size} bytes is more than the {} limit",
                            kind.limit()
                        ),
                    );
                } else {
                    let bytes = read_limited(entry, kind.limit())
                        .map_err(err)?
                        .unwrap_or_default();
                    files.insert(path, (kind, bytes));
                }
                continue;
            }
            if mode & 0o111 == 0 || size < 64 {
                continue;
            }
            let mut entry = entry;
            let mut head = [0u8; 4];
            if entry.read_exact(&mut head).is_err() || !elf::is_elf(&head) {
                continue;
            }
            if size > MAX_BINARY {
                layer_warnings.insert(
                    path.clone(),
                    format!(
                        "{path}: executable of {size} bytes not searched for build information"
                    ),
                );
                continue;
            }
            let mut bytes = head.to_vec();
            entry.read_to_end(&mut bytes).map_err(err)?;
            match elf::sections(&bytes[..], &BINARY_SECTIONS) {
                Ok(sections) => {
                    if let Some(found) = binary_packages(&path, &sections, &|a, l| {
                        elf::read_virtual(&bytes[..], a, l)
                    }) {
                        bins.insert(path, found);
                    }
                }
                Err(e) => {
                    bins.insert(path, Err(format!("malformed ELF: {e}")));
                }
            }
        }
        for d in &opaque {
            remove_under(&mut c.files, d);
            remove_under(&mut c.binaries, d);
            remove_under(&mut warnings, d);
        }
        for d in deleted.iter().chain(&touched) {
            c.files.remove(d);
            c.binaries.remove(d);
            warnings.remove(d);
            remove_under(&mut c.files, d);
            remove_under(&mut c.binaries, d);
            remove_under(&mut warnings, d);
        }
        // Read to the end so a verifying reader underneath checks the layer's digest.
        let mut rest = archive.into_inner();
        std::io::copy(&mut rest, &mut std::io::sink()).map_err(err)?;
        for d in &replaced_by_dir {
            c.files.remove(d);
            c.binaries.remove(d);
            warnings.remove(d);
        }
        c.files.extend(files);
        c.binaries.extend(bins);
        warnings.extend(layer_warnings);
    }
    c.warnings.extend(warnings.into_values());
    Ok(build(c))
}
