//! OCI `linux.resources.unified`: raw cgroup v2 files written as given, after the typed
//! resources, so they can override them.

use std::collections::HashMap;
use std::path::Path;

use crate::common;
use crate::error::CgroupError;

/// Checks that `key` names a control file in the cgroup itself: `<controller>.<name>`, no `/`,
/// no `..`, and not a `cgroup.*` core file that would move processes or change the tree.
fn check_key(dir: &Path, key: &str) -> Result<(), CgroupError> {
    let invalid = |reason: &str| CgroupError::InvalidResource {
        resource: "unified",
        path: dir.to_owned(),
        reason: format!("key {key:?}: {reason}"),
    };
    if key.is_empty() || key.contains('/') || key.starts_with('.') || !key.contains('.') {
        return Err(invalid("not a control file name like memory.high"));
    }
    const CORE_FILES: [&str; 5] = [
        "cgroup.procs",
        "cgroup.threads",
        "cgroup.subtree_control",
        "cgroup.type",
        "cgroup.kill",
    ];
    if CORE_FILES.contains(&key) {
        return Err(invalid("managed by the runtime, not settable"));
    }
    Ok(())
}

pub(crate) fn apply(dir: &Path, unified: &HashMap<String, String>) -> Result<(), CgroupError> {
    let mut entries: Vec<_> = unified.iter().collect();
    entries.sort();
    for (key, _) in &entries {
        check_key(dir, key)?;
    }
    for (key, value) in entries {
        match common::write_file(dir, key, value) {
            Ok(()) => {}
            Err(error) if error.is_not_found() => {
                let controller = key.split('.').next().unwrap_or(key);
                return Err(CgroupError::InvalidResource {
                    resource: "unified",
                    path: dir.join(key),
                    reason: format!(
                        "no such control file (is the {controller} controller enabled?)"
                    ),
                });
            }
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::test_support::*;
    use crate::v2::tests::fake_v2;

    #[test]
    fn writes_raw_keys() {
        let (_dir, cgroup) = fake_v2();
        fake_cgroup(&cgroup, &["memory.high"]);
        let unified = HashMap::from([
            ("memory.high".to_owned(), "1000000".to_owned()),
            ("pids.max".to_owned(), "9".to_owned()),
        ]);
        apply(&cgroup, &unified).unwrap();
        assert_eq!(get(&cgroup, "memory.high"), "1000000");
        assert_eq!(get(&cgroup, "pids.max"), "9");
    }

    #[test]
    fn refuses_paths_core_files_and_missing_files() {
        let (_dir, cgroup) = fake_v2();
        for key in ["../x.max", "memory", "cgroup.procs", "/etc/passwd", ".."] {
            let unified = HashMap::from([(key.to_owned(), "1".to_owned())]);
            assert!(
                matches!(
                    apply(&cgroup, &unified),
                    Err(CgroupError::InvalidResource { .. })
                ),
                "{key}"
            );
        }
        let missing = HashMap::from([("io.latency".to_owned(), "1".to_owned())]);
        let error = apply(&cgroup, &missing).unwrap_err();
        assert!(error.to_string().contains("io.latency"), "{error}");
    }
}
