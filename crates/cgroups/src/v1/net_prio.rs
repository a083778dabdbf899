//! The cgroup v1 net_prio controller: `net_prio.ifpriomap` (`<interface> <priority>` lines).

use std::path::Path;

use oci_spec::runtime::LinuxInterfacePriority;

use crate::common;
use crate::error::CgroupError;

pub(super) fn apply(dir: &Path, priorities: &[LinuxInterfacePriority]) -> Result<(), CgroupError> {
    for priority in priorities {
        let name = priority.name();
        // Interface names are at most 15 bytes, without whitespace or '/'.
        if name.is_empty()
            || name.len() > 15
            || name.contains(|c: char| c.is_whitespace() || c == '/')
        {
            return Err(CgroupError::InvalidResource {
                resource: "network.priorities",
                path: dir.to_owned(),
                reason: format!("{name:?} is not an interface name"),
            });
        }
        common::write_file(
            dir,
            "net_prio.ifpriomap",
            format!("{name} {}", priority.priority()),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::test_support::*;
    use crate::v1::tests::{fake_v1, RELATIVE};
    use oci_spec::runtime::LinuxInterfacePriorityBuilder;

    #[test]
    fn writes_each_interface() {
        let dir = fake_v1(false, &["net_cls,net_prio"]);
        let cgroup = dir.path().join("net_cls,net_prio").join(RELATIVE);
        let priority = |name: &str, value: u32| {
            LinuxInterfacePriorityBuilder::default()
                .name(name)
                .priority(value)
                .build()
                .unwrap()
        };
        take_writes();
        apply(&cgroup, &[priority("eth0", 5), priority("lo", 1)]).unwrap();
        assert_eq!(
            take_writes(),
            vec![
                ("net_prio.ifpriomap".to_owned(), "eth0 5".to_owned()),
                ("net_prio.ifpriomap".to_owned(), "lo 1".to_owned()),
            ]
        );
        assert!(apply(&cgroup, &[priority("a b", 1)]).is_err());
    }
}
