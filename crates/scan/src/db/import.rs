//! Building the database from OSV records: directories of `.json`/`.yaml` files and osv.dev
//! `all.zip` exports.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use super::file::{Database, DbError, DbMeta, EcosystemCount, SCHEMA_VERSION};
use crate::advisory::{Advisory, AffectedRange, RangeKind};
use crate::cvss::{self, Severity};
use crate::osv::Record;
use crate::version::Scheme;

/// Largest single record accepted (real ones are far smaller).
const MAX_RECORD: u64 = 16 << 20;

/// What an import did.
#[derive(Debug, Default)]
pub struct ImportReport {
    /// The database written.
    pub meta: DbMeta,
    /// Its size in bytes.
    pub size: u64,
    /// One line per file or range skipped, naming the file.
    pub warnings: Vec<String>,
}

#[derive(Default)]
struct Collector {
    by_id: HashMap<String, (String, Vec<(String, Advisory)>)>,
    meta: DbMeta,
    warnings: Vec<String>,
}

fn is_informational(v: Option<&serde_json::Value>) -> bool {
    v.and_then(|d| d.get("informational"))
        .is_some_and(|i| !i.is_null())
}

fn severity_word(v: Option<&serde_json::Value>) -> Option<Severity> {
    let v = v?;
    let word = v
        .get("severity")
        .and_then(|s| s.as_str())
        .or_else(|| v.get("urgency").and_then(|s| s.as_str()))?;
    Severity::parse(word)
}

impl Collector {
    fn add(&mut self, origin: &str, bytes: &[u8], yaml: bool) {
        let parsed = if yaml {
            Record::from_yaml(bytes)
        } else {
            Record::from_json(bytes)
        };
        let record = match parsed {
            Ok(r) => r,
            Err(e) => {
                self.meta.malformed += 1;
                self.warnings.push(format!("{origin}: skipped: {e}"));
                return;
            }
        };
        if record.withdrawn.is_some() {
            self.meta.withdrawn += 1;
            return;
        }
        if is_informational(record.database_specific.as_ref()) {
            self.meta.informational += 1;
            return;
        }
        let title = record.title();
        let mut entries = Vec::new();
        let mut informational = 0;
        for affected in &record.affected {
            let Some(package) = &affected.package else {
                continue;
            };
            // RUSTSEC notices (unmaintained, unsound, notice) are not vulnerabilities.
            if is_informational(affected.database_specific.as_ref()) {
                informational += 1;
                continue;
            }
            let scheme = Scheme::for_ecosystem(&package.ecosystem);
            let vectors: Vec<String> = record
                .severity
                .iter()
                .chain(&affected.severity)
                .filter(|s| s.kind.starts_with("CVSS"))
                .map(|s| s.score.clone())
                .collect();
            let score = vectors
                .iter()
                .filter_map(|v| cvss::v3_base_score(v))
                .fold(None, |m: Option<f64>, s| Some(m.map_or(s, |m| m.max(s))));
            let severity = score
                .map(Severity::from_score)
                .or_else(|| severity_word(affected.ecosystem_specific.as_ref()))
                .or_else(|| severity_word(affected.database_specific.as_ref()))
                .or_else(|| severity_word(record.database_specific.as_ref()))
                .unwrap_or(Severity::Unknown);
            let mut ranges = Vec::new();
            for r in &affected.ranges {
                let kind = match r.kind.as_str() {
                    "ECOSYSTEM" => RangeKind::Ecosystem,
                    "SEMVER" => RangeKind::SemVer,
                    _ => continue, // GIT ranges name commits, not package versions
                };
                let range = AffectedRange {
                    kind,
                    events: r.events.clone(),
                };
                if let Some(s) = scheme {
                    if let Err(e) = range.validate(s) {
                        self.warnings
                            .push(format!("{origin}: {}: range skipped: {e}", record.id));
                        continue;
                    }
                }
                ranges.push(range);
            }
            if ranges.is_empty() && affected.versions.is_empty() {
                continue;
            }
            let advisory = Advisory {
                id: record.id.clone(),
                aliases: record.aliases.clone(),
                summary: title.clone(),
                modified: record.modified.clone(),
                ecosystem: package.ecosystem.trim().to_owned(),
                package: package.name.trim().to_owned(),
                severity,
                score,
                vectors,
                ranges,
                versions: affected.versions.clone(),
            };
            entries.push((
                super::package_key(&package.ecosystem, &package.name),
                advisory,
            ));
        }
        if entries.is_empty() && informational > 0 {
            self.meta.informational += 1;
            return;
        }
        match self.by_id.get(&record.id) {
            Some((modified, _)) if *modified >= record.modified => {}
            _ => {
                self.by_id
                    .insert(record.id.clone(), (record.modified.clone(), entries));
            }
        }
    }

    fn add_file(&mut self, path: &Path) {
        let name = path.to_string_lossy();
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".zip") {
            self.add_zip(path);
            return;
        }
        let yaml = lower.ends_with(".yaml") || lower.ends_with(".yml");
        if !yaml && !lower.ends_with(".json") {
            return;
        }
        match std::fs::metadata(path) {
            Ok(m) if m.len() > MAX_RECORD => {
                self.meta.malformed += 1;
                self.warnings
                    .push(format!("{name}: skipped: larger than {MAX_RECORD} bytes"));
                return;
            }
            _ => {}
        }
        match std::fs::read(path) {
            Ok(bytes) => self.add(&name, &bytes, yaml),
            Err(e) => {
                self.meta.malformed += 1;
                self.warnings.push(format!("{name}: skipped: {e}"));
            }
        }
    }

    fn add_zip(&mut self, path: &Path) {
        let name = path.display().to_string();
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) => {
                self.warnings.push(format!("{name}: skipped: {e}"));
                return;
            }
        };
        let mut archive = match zip::ZipArchive::new(std::io::BufReader::new(file)) {
            Ok(a) => a,
            Err(e) => {
                self.meta.malformed += 1;
                self.warnings
                    .push(format!("{name}: skipped: not a readable zip archive: {e}"));
                return;
            }
        };
        for i in 0..archive.len() {
            let mut entry = match archive.by_index(i) {
                Ok(e) => e,
                Err(e) => {
                    self.meta.malformed += 1;
                    self.warnings
                        .push(format!("{name}: entry {i} skipped: {e}"));
                    continue;
                }
            };
            let entry_name = entry.name().to_owned();
            let lower = entry_name.to_ascii_lowercase();
            let yaml = lower.ends_with(".yaml") || lower.ends_with(".yml");
            if entry.is_dir() || !(yaml || lower.ends_with(".json")) {
                continue;
            }
            let origin = format!("{name}:{entry_name}");
            let mut bytes = Vec::new();
            match (&mut entry).take(MAX_RECORD + 1).read_to_end(&mut bytes) {
                Ok(_) if bytes.len() as u64 > MAX_RECORD => {
                    self.meta.malformed += 1;
                    self.warnings
                        .push(format!("{origin}: skipped: larger than {MAX_RECORD} bytes"));
                }
                Ok(_) => self.add(&origin, &bytes, yaml),
                Err(e) => {
                    self.meta.malformed += 1;
                    self.warnings.push(format!("{origin}: skipped: {e}"));
                }
            }
        }
    }

    fn walk(&mut self, path: &Path) -> Result<(), DbError> {
        let io = |source| DbError::Io {
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        if meta.is_dir() {
            let mut children: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(io)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            children.sort();
            for child in children {
                if child.is_dir() {
                    self.walk(&child)?;
                } else {
                    self.add_file(&child);
                }
            }
        } else {
            self.add_file(path);
        }
        Ok(())
    }
}

/// Imports every OSV record under `sources` (directories, record files, zip exports) into a
/// new database at `target`, replacing it atomically. Records that cannot be read are
/// skipped with a warning naming the file; a source path that cannot be read fails the import.
pub fn import(sources: &[PathBuf], target: &Path) -> Result<ImportReport, DbError> {
    let mut c = Collector::default();
    for s in sources {
        c.walk(s)?;
    }
    let mut entries: BTreeMap<String, Vec<Advisory>> = BTreeMap::new();
    let mut eco_ids: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> = BTreeMap::new();
    let mut newest = String::new();
    let mut ids: Vec<_> = c.by_id.into_iter().collect();
    ids.sort_by(|a, b| a.0.cmp(&b.0));
    c.meta.records = ids.len() as u64;
    for (id, (modified, list)) in ids {
        if modified > newest {
            newest = modified;
        }
        for (key, adv) in list {
            let e = eco_ids.entry(adv.ecosystem.clone()).or_default();
            e.0.insert(id.clone());
            e.1.insert(adv.package.clone());
            entries.entry(key).or_default().push(adv);
        }
    }
    let mut meta = c.meta;
    meta.schema = SCHEMA_VERSION;
    meta.built = palisade_audit::Timestamp::now().to_string();
    meta.newest_modified = newest;
    meta.ecosystems = eco_ids
        .into_iter()
        .map(|(k, (a, p))| {
            (
                k,
                EcosystemCount {
                    advisories: a.len() as u64,
                    packages: p.len() as u64,
                },
            )
        })
        .collect();
    let size = Database::write(target, &meta, &entries)?;
    Ok(ImportReport {
        meta,
        size,
        warnings: c.warnings,
    })
}
