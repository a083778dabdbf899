//! The cgroup v1 devices controller: the rules become `devices.allow` / `devices.deny` lines,
//! written in the rules' order (so a leading deny-all resets the list before the allows).

use std::path::Path;

use oci_spec::runtime::LinuxDeviceCgroup;

use crate::common;
use crate::devices::{v1_lines, DeviceRule};
use crate::error::CgroupError;

pub(super) fn apply(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<(), CgroupError> {
    let rules = DeviceRule::from_oci_list(rules)?;
    for (allow, line) in v1_lines(&rules) {
        let file = if allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        common::write_file(dir, file, line)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::test_support::*;
    use crate::devices::tests::oci;
    use crate::v1::tests::{fake_v1, RELATIVE};
    use oci_spec::runtime::LinuxDeviceType;

    #[test]
    fn deny_all_then_allows_in_order() {
        let dir = fake_v1(false, &["devices"]);
        let cgroup = dir.path().join("devices").join(RELATIVE);
        let rules = vec![
            oci(false, LinuxDeviceType::A, None, None, "rwm"),
            oci(true, LinuxDeviceType::C, Some(1), Some(3), "rwm"),
            oci(true, LinuxDeviceType::C, Some(136), Some(-1), "rw"),
            oci(true, LinuxDeviceType::P, None, None, "rwm"),
            oci(false, LinuxDeviceType::B, Some(8), Some(0), "w"),
            oci(true, LinuxDeviceType::A, None, None, "m"),
        ];
        take_writes();
        apply(&cgroup, &rules).unwrap();
        let writes: Vec<String> = take_writes()
            .into_iter()
            .map(|(file, value)| format!("{file}: {value}"))
            .collect();
        assert_eq!(
            writes,
            vec![
                "devices.deny: a",
                "devices.allow: c 1:3 rwm",
                "devices.allow: c 136:* rw",
                "devices.deny: b 8:0 w",
                "devices.allow: c *:* m",
                "devices.allow: b *:* m",
            ]
        );
    }

    #[test]
    fn malformed_rules_write_nothing() {
        let dir = fake_v1(false, &["devices"]);
        let cgroup = dir.path().join("devices").join(RELATIVE);
        let rules = vec![
            oci(false, LinuxDeviceType::A, None, None, "rwm"),
            oci(true, LinuxDeviceType::C, Some(1), Some(3), "rwz"),
        ];
        take_writes();
        assert!(matches!(
            apply(&cgroup, &rules),
            Err(CgroupError::InvalidDeviceRule { .. })
        ));
        assert!(take_writes().is_empty());
    }
}
