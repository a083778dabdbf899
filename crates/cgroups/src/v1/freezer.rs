//! The cgroup v1 freezer: `freezer.state` (`THAWED`, `FREEZING`, `FROZEN`).

use std::path::Path;

use crate::common;
use crate::error::CgroupError;
use crate::FreezerState;

const STATE: &str = "freezer.state";

/// Freezes and waits. While the kernel reports `FREEZING`, `FROZEN` is written again: a task
/// that was busy (in a vfork, say) makes v1 stop trying until asked anew.
pub(super) fn freeze(dir: &Path) -> Result<(), CgroupError> {
    common::write_file(dir, STATE, "FROZEN")?;
    common::wait_until_frozen(
        dir,
        || state(dir),
        || common::write_file(dir, STATE, "FROZEN"),
    )
}

pub(super) fn thaw(dir: &Path) -> Result<(), CgroupError> {
    common::write_file(dir, STATE, "THAWED")
}

pub(super) fn state(dir: &Path) -> Result<FreezerState, CgroupError> {
    let content = common::read_file(dir, STATE)?;
    match content.trim() {
        "THAWED" => Ok(FreezerState::Thawed),
        "FREEZING" => Ok(FreezerState::Freezing),
        "FROZEN" => Ok(FreezerState::Frozen),
        other => Err(CgroupError::Parse {
            path: dir.join(STATE),
            reason: format!("unknown freezer state {other:?}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::test_support::*;

    #[test]
    fn states_parse_and_garbage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for (content, expected) in [
            ("THAWED\n", FreezerState::Thawed),
            ("FREEZING\n", FreezerState::Freezing),
            ("FROZEN\n", FreezerState::Frozen),
        ] {
            put(dir.path(), STATE, content);
            assert_eq!(state(dir.path()).unwrap(), expected);
        }
        put(dir.path(), STATE, "MELTED\n");
        assert!(matches!(state(dir.path()), Err(CgroupError::Parse { .. })));
    }

    #[test]
    fn freeze_and_thaw_write_the_state() {
        let dir = tempfile::tempdir().unwrap();
        put(dir.path(), STATE, "THAWED\n");
        // The fake file reads back what was written, so the freeze completes at once.
        freeze(dir.path()).unwrap();
        assert_eq!(state(dir.path()).unwrap(), FreezerState::Frozen);
        thaw(dir.path()).unwrap();
        assert_eq!(get(dir.path(), STATE), "THAWED");
    }
}
