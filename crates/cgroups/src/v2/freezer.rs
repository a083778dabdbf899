//! The cgroup v2 freezer: `cgroup.freeze` asks, `cgroup.events` (`frozen 1`) confirms.

use std::path::Path;

use crate::common;
use crate::error::CgroupError;
use crate::FreezerState;

const CGROUP_FREEZE: &str = "cgroup.freeze";
const CGROUP_EVENTS: &str = "cgroup.events";

/// Whether the cgroup has a freezer (every non-root cgroup since Linux 5.2).
pub(crate) fn is_available(dir: &Path) -> bool {
    dir.join(CGROUP_FREEZE).is_file()
}

/// Whether this cgroup itself was asked to freeze (a frozen ancestor does not count).
pub(crate) fn is_freeze_requested(dir: &Path) -> Result<bool, CgroupError> {
    Ok(read_freeze(dir)?.trim() == "1")
}

/// Freezes the cgroup and waits until the kernel reports it frozen.
pub(crate) fn freeze(dir: &Path) -> Result<(), CgroupError> {
    common::write_file(dir, CGROUP_FREEZE, 1)?;
    common::wait_until_frozen(dir, || state(dir), || Ok(()))
}

/// Thaws the cgroup.
pub(crate) fn thaw(dir: &Path) -> Result<(), CgroupError> {
    read_freeze(dir)?;
    common::write_file(dir, CGROUP_FREEZE, 0)
}

/// Reads the freezer state: frozen when `cgroup.events` says so, freezing when asked but not
/// yet done, thawed otherwise.
pub(crate) fn state(dir: &Path) -> Result<FreezerState, CgroupError> {
    let requested = is_freeze_requested(dir)?;
    let events = common::read_file(dir, CGROUP_EVENTS)?;
    let events = common::parse_flat_keyed(&dir.join(CGROUP_EVENTS), &events)?;
    Ok(
        match (events.get("frozen").copied().unwrap_or(0), requested) {
            (1, _) => FreezerState::Frozen,
            (_, true) => FreezerState::Freezing,
            _ => FreezerState::Thawed,
        },
    )
}

fn read_freeze(dir: &Path) -> Result<String, CgroupError> {
    common::read_optional(dir, CGROUP_FREEZE)?.ok_or_else(|| CgroupError::ControllerUnavailable {
        controller: "freezer",
        path: dir.to_owned(),
        resource: "freeze",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::test_support::*;

    #[test]
    fn reports_each_state() {
        let dir = tempfile::tempdir().unwrap();
        let cgroup = dir.path();
        put(cgroup, CGROUP_FREEZE, "0\n");
        put(cgroup, CGROUP_EVENTS, "populated 1\nfrozen 0\n");
        assert_eq!(state(cgroup).unwrap(), FreezerState::Thawed);
        put(cgroup, CGROUP_FREEZE, "1\n");
        assert_eq!(state(cgroup).unwrap(), FreezerState::Freezing);
        put(cgroup, CGROUP_EVENTS, "populated 1\nfrozen 1\n");
        assert_eq!(state(cgroup).unwrap(), FreezerState::Frozen);
    }

    #[test]
    fn freeze_and_thaw_write_cgroup_freeze() {
        let dir = tempfile::tempdir().unwrap();
        let cgroup = dir.path();
        put(cgroup, CGROUP_FREEZE, "0\n");
        put(cgroup, CGROUP_EVENTS, "populated 1\nfrozen 1\n");
        freeze(cgroup).unwrap();
        assert_eq!(get(cgroup, CGROUP_FREEZE), "1");
        thaw(cgroup).unwrap();
        assert_eq!(get(cgroup, CGROUP_FREEZE), "0");
    }

    #[test]
    fn missing_freezer_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let error = state(dir.path()).unwrap_err();
        assert!(matches!(
            error,
            CgroupError::ControllerUnavailable {
                controller: "freezer",
                ..
            }
        ));
    }
}
