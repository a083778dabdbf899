//! The cgroup v1 net_cls controller: `net_cls.classid` (a packet class for traffic control).

use std::path::Path;

use crate::common;
use crate::error::CgroupError;

pub(super) fn apply(dir: &Path, class_id: u32) -> Result<(), CgroupError> {
    common::write_file(dir, "net_cls.classid", class_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::test_support::*;
    use crate::v1::tests::{fake_v1, RELATIVE};

    #[test]
    fn writes_classid() {
        let dir = fake_v1(false, &["net_cls,net_prio"]);
        let cgroup = dir.path().join("net_cls,net_prio").join(RELATIVE);
        apply(&cgroup, 0x0010_0001).unwrap();
        assert_eq!(get(&cgroup, "net_cls.classid"), "1048577");
    }
}
