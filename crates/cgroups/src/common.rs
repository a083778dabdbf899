//! What both cgroup versions share: the manager trait, control-file I/O, path checks, parsers
//! for the kernel's file formats, and the removal and freezing loops.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::fs;
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};
use std::thread;
use std::time::Duration;

use oci_spec::runtime::{LinuxCpu, LinuxResources};

use crate::error::CgroupError;
use crate::stats::{MemoryEvents, Stats};
use crate::FreezerState;

/// The operations every cgroup backend offers; [`crate::CgroupManager`] dispatches to one.
pub(crate) trait CgroupBackend {
    fn create(&self) -> Result<(), CgroupError>;
    fn add_process(&self, pid: i32) -> Result<(), CgroupError>;
    fn apply(&self, resources: &LinuxResources) -> Result<(), CgroupError>;
    fn freeze(&self) -> Result<(), CgroupError>;
    fn thaw(&self) -> Result<(), CgroupError>;
    fn freezer_state(&self) -> Result<FreezerState, CgroupError>;
    fn pids(&self) -> Result<Vec<i32>, CgroupError>;
    fn stats(&self) -> Result<Stats, CgroupError>;
    fn memory_events(&self) -> Result<MemoryEvents, CgroupError>;
    fn kill_all(&self, signal: i32) -> Result<(), CgroupError>;
    fn destroy(&self) -> Result<(), CgroupError>;
    fn paths(&self) -> BTreeMap<String, PathBuf>;
}

/// `cgroup.procs`: the processes of one cgroup (not its descendants).
pub(crate) const CGROUP_PROCS: &str = "cgroup.procs";

/// How many times freezing is checked before giving up, and the pause between checks.
const FREEZE_ATTEMPTS: u32 = 1000;
const FREEZE_PAUSE: Duration = Duration::from_millis(10);

/// `rmdir` retries for `EBUSY` (processes still exiting): 8 tries, 10 ms doubling, ~2.5 s.
const REMOVE_ATTEMPTS: u32 = 8;
const REMOVE_FIRST_PAUSE: Duration = Duration::from_millis(10);

/// Turns OCI `linux.cgroupsPath` into a path relative to a hierarchy root.
///
/// Absolute and relative paths are both placed under the root. `..` is refused: it would let a
/// bundle's configuration reach cgroups outside the one it was given. An empty path would be
/// the root cgroup itself, which a container must never configure or remove.
pub(crate) fn relative_cgroup_path(cgroups_path: &Path) -> Result<PathBuf, CgroupError> {
    let mut relative = PathBuf::new();
    for component in cgroups_path.components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(part) => relative.push(part),
            Component::ParentDir => {
                return Err(CgroupError::InvalidPath {
                    path: cgroups_path.to_owned(),
                    reason: "'..' is not allowed",
                })
            }
            Component::Prefix(_) => {
                return Err(CgroupError::InvalidPath {
                    path: cgroups_path.to_owned(),
                    reason: "path prefixes are not allowed",
                })
            }
        }
    }
    if relative.as_os_str().is_empty() {
        return Err(CgroupError::InvalidPath {
            path: cgroups_path.to_owned(),
            reason: "the path names the root cgroup",
        });
    }
    Ok(relative)
}

/// Writes `value` to the control file `dir/file` in one `write(2)`.
///
/// The file is never created: a control file that is missing means the controller or the
/// feature is missing, and that must surface as an error (also in tests on a fake tree).
pub(crate) fn write_file(dir: &Path, file: &str, value: impl Display) -> Result<(), CgroupError> {
    let path = dir.join(file);
    let value = value.to_string();
    #[cfg(test)]
    if let Some(errno) = test_support::injected_failure(&path) {
        return Err(CgroupError::Write {
            path,
            value,
            source: io::Error::from_raw_os_error(errno),
        });
    }
    let result = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .and_then(|mut handle| handle.write_all(value.as_bytes()));
    #[cfg(test)]
    if result.is_ok() {
        test_support::record_write(&path, &value);
    }
    tracing::debug!(path = %path.display(), value = %value, ok = result.is_ok(), "cgroup write");
    result.map_err(|source| CgroupError::Write {
        path,
        value,
        source,
    })
}

/// Reads the control file `dir/file` as text.
/// Writes `cpuset.cpus` and `cpuset.mems` (same names in v1 and v2), refusing a malformed
/// list early with a clear message; the kernel gets the text as written.
pub(crate) fn apply_cpuset(dir: &Path, cpu: &LinuxCpu) -> Result<(), CgroupError> {
    for (file, resource, value) in [
        ("cpuset.cpus", "cpu.cpus", cpu.cpus()),
        ("cpuset.mems", "cpu.mems", cpu.mems()),
    ] {
        let Some(value) = value.as_deref().filter(|v| !v.is_empty()) else {
            continue;
        };
        parse_id_list(Path::new(resource), value).map_err(|_| CgroupError::InvalidResource {
            resource,
            path: dir.to_owned(),
            reason: format!("{value:?} is not a list like 0-3,8"),
        })?;
        write_file(dir, file, value)?;
    }
    Ok(())
}

/// The effective cpus and memory nodes, from the files each version names them in.
pub(crate) fn cpuset_stats(
    dir: &Path,
    stats: &mut Stats,
    cpus_file: &str,
    mems_file: &str,
) -> Result<(), CgroupError> {
    if let Some(cpus) = read_optional(dir, cpus_file)? {
        stats.cpuset.cpus = parse_id_list(&dir.join(cpus_file), &cpus)?;
    }
    if let Some(mems) = read_optional(dir, mems_file)? {
        stats.cpuset.mems = parse_id_list(&dir.join(mems_file), &mems)?;
    }
    Ok(())
}

pub(crate) fn read_file(dir: &Path, file: &str) -> Result<String, CgroupError> {
    let path = dir.join(file);
    fs::read_to_string(&path).map_err(|source| CgroupError::Read { path, source })
}

/// Reads `dir/file` if it exists; `Ok(None)` when it does not.
pub(crate) fn read_optional(dir: &Path, file: &str) -> Result<Option<String>, CgroupError> {
    match read_file(dir, file) {
        Ok(content) => Ok(Some(content)),
        Err(error) if error.is_not_found() => Ok(None),
        Err(error) => Err(error),
    }
}

/// Parses one unsigned value; `max` (cgroup v2's "no limit") is `u64::MAX`.
pub(crate) fn parse_value(path: &Path, text: &str) -> Result<u64, CgroupError> {
    let text = text.trim();
    if text == "max" {
        return Ok(u64::MAX);
    }
    text.parse::<u64>().map_err(|error| CgroupError::Parse {
        path: path.to_owned(),
        reason: format!("{text:?} is not an unsigned integer: {error}"),
    })
}

/// Reads a file holding one unsigned value (or `max`).
pub(crate) fn read_value(dir: &Path, file: &str) -> Result<u64, CgroupError> {
    let content = read_file(dir, file)?;
    parse_value(&dir.join(file), &content)
}

/// Reads a single-value file if it exists.
pub(crate) fn read_optional_value(dir: &Path, file: &str) -> Result<Option<u64>, CgroupError> {
    read_optional(dir, file)?
        .map(|content| parse_value(&dir.join(file), &content))
        .transpose()
}

/// Parses a flat keyed file (`key value` per line), such as `memory.stat` or `cpu.stat`.
pub(crate) fn parse_flat_keyed(
    path: &Path,
    content: &str,
) -> Result<BTreeMap<String, u64>, CgroupError> {
    let mut map = BTreeMap::new();
    for line in content.lines().filter(|line| !line.trim().is_empty()) {
        let mut fields = line.split_whitespace();
        let (Some(key), Some(value), None) = (fields.next(), fields.next(), fields.next()) else {
            return Err(CgroupError::Parse {
                path: path.to_owned(),
                reason: format!("line {line:?} is not \"key value\""),
            });
        };
        map.insert(key.to_owned(), parse_value(path, value)?);
    }
    Ok(map)
}

/// Reads a flat keyed file if it exists (an empty map when it does not).
pub(crate) fn read_flat_keyed(
    dir: &Path,
    file: &str,
) -> Result<Option<BTreeMap<String, u64>>, CgroupError> {
    read_optional(dir, file)?
        .map(|content| parse_flat_keyed(&dir.join(file), &content))
        .transpose()
}

/// Parses a space-separated list of values (`cpuacct.usage_percpu`).
pub(crate) fn parse_value_list(path: &Path, content: &str) -> Result<Vec<u64>, CgroupError> {
    content
        .split_whitespace()
        .map(|value| parse_value(path, value))
        .collect()
}

/// Parses a `MAJOR:MINOR` device number.
pub(crate) fn parse_device_number(path: &Path, text: &str) -> Result<(u64, u64), CgroupError> {
    let parsed = text
        .split_once(':')
        .and_then(|(major, minor)| Some((major.parse().ok()?, minor.parse().ok()?)));
    parsed.ok_or_else(|| CgroupError::Parse {
        path: path.to_owned(),
        reason: format!("{text:?} is not a MAJOR:MINOR device number"),
    })
}

/// Parses a cpu or memory-node list such as `0-3,8,10-11` into its members.
pub(crate) fn parse_id_list(path: &Path, text: &str) -> Result<Vec<u16>, CgroupError> {
    let error = |reason: String| CgroupError::Parse {
        path: path.to_owned(),
        reason,
    };
    let mut ids = Vec::new();
    for part in text.trim().split(',').filter(|part| !part.is_empty()) {
        let (first, last) = match part.split_once('-') {
            Some((first, last)) => (first, last),
            None => (part, part),
        };
        let first: u16 = first
            .parse()
            .map_err(|_| error(format!("{part:?} is not an id or range")))?;
        let last: u16 = last
            .parse()
            .map_err(|_| error(format!("{part:?} is not an id or range")))?;
        if first > last {
            return Err(error(format!("range {part:?} is reversed")));
        }
        ids.extend(first..=last);
    }
    Ok(ids)
}

/// Fails with a `Read` error naming `dir` when the cgroup does not exist, so statistics of a
/// removed cgroup are an error rather than zeros.
pub(crate) fn require_directory(dir: &Path) -> Result<(), CgroupError> {
    fs::metadata(dir)
        .map(drop)
        .map_err(|source| CgroupError::Read {
            path: dir.to_owned(),
            source,
        })
}

/// Reads `cgroup.procs` of `dir` and of every cgroup below it.
pub(crate) fn pids_recursive(dir: &Path) -> Result<Vec<i32>, CgroupError> {
    let mut pids = Vec::new();
    collect_pids(dir, &mut pids)?;
    pids.sort_unstable();
    pids.dedup();
    Ok(pids)
}

fn collect_pids(dir: &Path, pids: &mut Vec<i32>) -> Result<(), CgroupError> {
    let procs = dir.join(CGROUP_PROCS);
    let content = read_file(dir, CGROUP_PROCS)?;
    for line in content.lines().filter(|line| !line.trim().is_empty()) {
        let pid = line.trim().parse::<i32>().map_err(|_| CgroupError::Parse {
            path: procs.clone(),
            reason: format!("{line:?} is not a process id"),
        })?;
        pids.push(pid);
    }
    for child in child_cgroups(dir)? {
        collect_pids(&child, pids)?;
    }
    Ok(())
}

/// The cgroups directly below `dir`.
pub(crate) fn child_cgroups(dir: &Path) -> Result<Vec<PathBuf>, CgroupError> {
    let read_error = |source| CgroupError::Read {
        path: dir.to_owned(),
        source,
    };
    let mut children = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        if entry.file_type().map_err(read_error)?.is_dir() {
            children.push(entry.path());
        }
    }
    children.sort();
    Ok(children)
}

/// Removes the cgroup `dir` and every cgroup below it, deepest first.
///
/// A directory that is already gone is fine, so this is idempotent. `EBUSY` (tasks that are
/// still exiting) is retried with a bounded back-off. The files inside are kernel-owned and
/// vanish with the directory, so only `rmdir` is used: on a real cgroupfs nothing else works, and
/// on a test tree the fake control files are removed first to stand in for that.
pub(crate) fn remove_cgroup(dir: &Path) -> Result<(), CgroupError> {
    let children = match child_cgroups(dir) {
        Ok(children) => children,
        Err(error) if error.is_not_found() => return Ok(()),
        Err(error) => return Err(error),
    };
    for child in children {
        remove_cgroup(&child)?;
    }
    let mut pause = REMOVE_FIRST_PAUSE;
    for attempt in 1..=REMOVE_ATTEMPTS {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(error)
                if error.raw_os_error() == Some(libc::EBUSY) && attempt < REMOVE_ATTEMPTS =>
            {
                tracing::debug!(path = %dir.display(), attempt, "cgroup busy, retrying rmdir");
                thread::sleep(pause);
                pause *= 2;
            }
            Err(error) if error.raw_os_error() == Some(libc::ENOTEMPTY) && !is_cgroupfs(dir) => {
                remove_fake_control_files(dir)?;
            }
            Err(source) => {
                return Err(CgroupError::Remove {
                    path: dir.to_owned(),
                    source,
                })
            }
        }
    }
    Err(CgroupError::Remove {
        path: dir.to_owned(),
        source: io::Error::from_raw_os_error(libc::EBUSY),
    })
}

/// Whether `dir` is on a cgroup filesystem (v1 or v2) rather than a test tree.
fn is_cgroupfs(dir: &Path) -> bool {
    use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC};
    statfs(dir).is_ok_and(|stat| {
        let magic = stat.filesystem_type();
        magic == CGROUP_SUPER_MAGIC || magic == CGROUP2_SUPER_MAGIC
    })
}

/// On a test tree, deletes the regular files that stand in for kernel control files.
fn remove_fake_control_files(dir: &Path) -> Result<(), CgroupError> {
    let read_error = |source| CgroupError::Read {
        path: dir.to_owned(),
        source,
    };
    for entry in fs::read_dir(dir).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        if entry.file_type().map_err(read_error)?.is_file() {
            fs::remove_file(entry.path()).map_err(|source| CgroupError::Remove {
                path: entry.path(),
                source,
            })?;
        }
    }
    Ok(())
}

/// Polls `state` until it reports [`FreezerState::Frozen`], calling `nudge` while it reports
/// [`FreezerState::Freezing`] (cgroup v1 needs `FROZEN` written again to make progress).
pub(crate) fn wait_until_frozen(
    path: &Path,
    mut state: impl FnMut() -> Result<FreezerState, CgroupError>,
    mut nudge: impl FnMut() -> Result<(), CgroupError>,
) -> Result<(), CgroupError> {
    let mut last = FreezerState::Thawed;
    for _ in 0..FREEZE_ATTEMPTS {
        last = state()?;
        if last == FreezerState::Frozen {
            return Ok(());
        }
        thread::sleep(FREEZE_PAUSE);
        nudge()?;
    }
    Err(CgroupError::FreezeTimeout {
        path: path.to_owned(),
        state: format!("{last:?}"),
    })
}

/// Sends `signal` to each process, ignoring those that have exited meanwhile.
pub(crate) fn signal_processes(dir: &Path, pids: &[i32], signal: i32) -> Result<(), CgroupError> {
    let signal_value =
        nix::sys::signal::Signal::try_from(signal).map_err(|source| CgroupError::Signal {
            path: dir.to_owned(),
            pid: 0,
            signal,
            source,
        })?;
    for &pid in pids {
        match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal_value) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(source) => {
                return Err(CgroupError::Signal {
                    path: dir.to_owned(),
                    pid,
                    signal,
                    source,
                })
            }
        }
    }
    Ok(())
}

/// Checks that a hugetlb page size such as `2MB` or `1GB` is well formed: it becomes part of a
/// file name, so anything else (a `/`, `..`) must never get that far.
pub(crate) fn valid_page_size(page_size: &str) -> bool {
    let Some(number) = page_size
        .strip_suffix("KB")
        .or_else(|| page_size.strip_suffix("MB"))
        .or_else(|| page_size.strip_suffix("GB"))
    else {
        return false;
    };
    !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit())
}

/// The hugetlb page sizes a directory has files for (`hugetlb.2MB.max`, ...), from the names of
/// the files ending in `suffix`.
pub(crate) fn page_sizes_in(dir: &Path, suffix: &str) -> Result<Vec<String>, CgroupError> {
    let read_error = |source| CgroupError::Read {
        path: dir.to_owned(),
        source,
    };
    let mut sizes = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(size) = name
            .strip_prefix("hugetlb.")
            .and_then(|rest| rest.strip_suffix(suffix))
        {
            if valid_page_size(size) {
                sizes.push(size.to_owned());
            }
        }
    }
    sizes.sort();
    Ok(sizes)
}

#[cfg(test)]
pub(crate) mod test_support {
    //! A fake cgroupfs: directories with empty "control files" that writes go to.

    use std::cell::RefCell;
    use std::fs;
    use std::path::{Path, PathBuf};

    thread_local! {
        /// Every successful control-file write of this test thread, in order.
        static WRITES: RefCell<Vec<(PathBuf, String)>> = const { RefCell::new(Vec::new()) };
        /// Files whose next write fails with the given errno (once each).
        static FAILURES: RefCell<Vec<(String, i32)>> = const { RefCell::new(Vec::new()) };
    }

    /// The errno a test asked the next write to `path` to fail with, if any (consumed).
    pub(crate) fn injected_failure(path: &Path) -> Option<i32> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        FAILURES.with(|failures| {
            let mut failures = failures.borrow_mut();
            let index = failures.iter().position(|(file, _)| file == name)?;
            Some(failures.remove(index).1)
        })
    }

    /// Called by `write_file` after the data reached the (fake) file.
    pub(crate) fn record_write(path: &Path, value: &str) {
        WRITES.with(|writes| {
            writes
                .borrow_mut()
                .push((path.to_owned(), value.to_owned()))
        });
    }

    /// Makes the next write to a file named `file` fail with `errno`.
    pub(crate) fn fail_next_write(file: &str, errno: i32) {
        FAILURES.with(|failures| failures.borrow_mut().push((file.to_owned(), errno)));
    }

    /// Takes the writes recorded so far as (file name, value).
    pub(crate) fn take_writes() -> Vec<(String, String)> {
        WRITES.with(|writes| {
            writes
                .borrow_mut()
                .drain(..)
                .map(|(path, value)| {
                    let name = path.file_name().unwrap().to_str().unwrap().to_owned();
                    (name, value)
                })
                .collect()
        })
    }

    /// Creates `dir` with an empty file for each name in `files`.
    pub(crate) fn fake_cgroup(dir: &Path, files: &[&str]) {
        fs::create_dir_all(dir).unwrap();
        for file in files {
            fs::write(dir.join(file), "").unwrap();
        }
    }

    /// Writes `content` to `dir/file`, creating it.
    pub(crate) fn put(dir: &Path, file: &str, content: &str) {
        fs::write(dir.join(file), content).unwrap();
    }

    /// Reads `dir/file`.
    pub(crate) fn get(dir: &Path, file: &str) -> String {
        fs::read_to_string(dir.join(file)).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

    #[test]
    fn cgroups_paths_stay_under_the_root() {
        assert_eq!(
            relative_cgroup_path(Path::new("/palisade/abc")).unwrap(),
            PathBuf::from("palisade/abc")
        );
        assert_eq!(
            relative_cgroup_path(Path::new("palisade/./abc")).unwrap(),
            PathBuf::from("palisade/abc")
        );
        assert!(matches!(
            relative_cgroup_path(Path::new("/a/../../etc")),
            Err(CgroupError::InvalidPath { .. })
        ));
        assert!(matches!(
            relative_cgroup_path(Path::new("/")),
            Err(CgroupError::InvalidPath { .. })
        ));
        assert!(relative_cgroup_path(Path::new("")).is_err());
    }

    #[test]
    fn writes_never_create_control_files() {
        let dir = tempfile::tempdir().unwrap();
        let error = write_file(dir.path(), "memory.max", 5).unwrap_err();
        assert!(error.is_not_found());
        assert!(!dir.path().join("memory.max").exists());
        assert!(error.to_string().contains("memory.max"));
    }

    #[test]
    fn values_parse_with_max() {
        let path = Path::new("x");
        assert_eq!(parse_value(path, "max\n").unwrap(), u64::MAX);
        assert_eq!(parse_value(path, " 42\n").unwrap(), 42);
        assert!(matches!(
            parse_value(path, "-1"),
            Err(CgroupError::Parse { .. })
        ));
        assert!(parse_value(path, "12abc").is_err());
    }

    #[test]
    fn flat_keyed_files_parse_and_reject_garbage() {
        let path = Path::new("cpu.stat");
        let map = parse_flat_keyed(path, "usage_usec 100\nuser_usec 60\n\n").unwrap();
        assert_eq!(map["usage_usec"], 100);
        assert_eq!(map["user_usec"], 60);
        assert!(parse_flat_keyed(path, "usage_usec\n").is_err());
        assert!(parse_flat_keyed(path, "a 1 2\n").is_err());
        assert!(parse_flat_keyed(path, "a x\n").is_err());
    }

    #[test]
    fn id_lists_parse() {
        let path = Path::new("cpuset.cpus");
        assert_eq!(parse_id_list(path, "0-2,5\n").unwrap(), vec![0, 1, 2, 5]);
        assert_eq!(parse_id_list(path, "\n").unwrap(), Vec::<u16>::new());
        assert!(parse_id_list(path, "3-1").is_err());
        assert!(parse_id_list(path, "a").is_err());
    }

    #[test]
    fn device_numbers_parse() {
        let path = Path::new("io.stat");
        assert_eq!(parse_device_number(path, "8:16").unwrap(), (8, 16));
        assert!(parse_device_number(path, "8").is_err());
        assert!(parse_device_number(path, "a:b").is_err());
    }

    #[test]
    fn page_sizes_are_checked() {
        assert!(valid_page_size("2MB"));
        assert!(valid_page_size("1GB"));
        assert!(valid_page_size("64KB"));
        assert!(!valid_page_size("MB"));
        assert!(!valid_page_size("2mb"));
        assert!(!valid_page_size("../2MB"));
        assert!(!valid_page_size("2MB/x"));
    }

    #[test]
    fn pids_are_collected_recursively() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("c");
        fake_cgroup(&root, &[]);
        put(&root, CGROUP_PROCS, "10\n12\n");
        fake_cgroup(&root.join("sub"), &[]);
        put(&root.join("sub"), CGROUP_PROCS, "11\n");
        assert_eq!(pids_recursive(&root).unwrap(), vec![10, 11, 12]);
        put(&root.join("sub"), CGROUP_PROCS, "x\n");
        assert!(matches!(
            pids_recursive(&root),
            Err(CgroupError::Parse { .. })
        ));
    }

    #[test]
    fn removal_is_recursive_and_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("c");
        fake_cgroup(&root.join("a/b"), &["cgroup.procs"]);
        fake_cgroup(&root, &["cgroup.procs", "memory.max"]);
        remove_cgroup(&root).unwrap();
        assert!(!root.exists());
        remove_cgroup(&root).unwrap();
    }
}
