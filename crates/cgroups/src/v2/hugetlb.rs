//! The cgroup v2 hugetlb controller: `hugetlb.<size>.max` (and `.rsvd.max` where it exists).

use std::path::Path;

use oci_spec::runtime::LinuxHugepageLimit;

use crate::common;
use crate::error::CgroupError;
use crate::stats::{HugetlbStats, Stats};

pub(super) fn apply(dir: &Path, limits: &[LinuxHugepageLimit]) -> Result<(), CgroupError> {
    for limit in limits {
        let size = limit.page_size();
        if !common::valid_page_size(size) {
            return Err(CgroupError::InvalidResource {
                resource: "hugepageLimits.pageSize",
                path: dir.to_owned(),
                reason: format!("{size:?} is not a size like 2MB or 1GB"),
            });
        }
        let value = match limit.limit() {
            -1 => "max".to_owned(),
            value if value >= 0 => value.to_string(),
            value => {
                return Err(CgroupError::InvalidResource {
                    resource: "hugepageLimits.limit",
                    path: dir.to_owned(),
                    reason: format!("{value} is neither -1 nor positive"),
                })
            }
        };
        let max = format!("hugetlb.{size}.max");
        if !dir.join(&max).is_file() {
            return Err(CgroupError::ControllerUnavailable {
                controller: "hugetlb",
                path: dir.join(max),
                resource: "hugepageLimits",
            });
        }
        // Reservations are what OCI means first; the fault limit is set too, as runc does.
        let reserved = format!("hugetlb.{size}.rsvd.max");
        if dir.join(&reserved).is_file() {
            common::write_file(dir, &reserved, &value)?;
        }
        common::write_file(dir, &max, &value)?;
    }
    Ok(())
}

pub(super) fn stats(dir: &Path, stats: &mut Stats) -> Result<(), CgroupError> {
    for size in common::page_sizes_in(dir, ".current")? {
        let usage = common::read_value(dir, &format!("hugetlb.{size}.current"))?;
        let failcnt = common::read_flat_keyed(dir, &format!("hugetlb.{size}.events"))?
            .and_then(|events| events.get("max").copied())
            .unwrap_or(0);
        stats.hugetlb.insert(
            size,
            HugetlbStats {
                usage,
                max: 0,
                failcnt,
            },
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::test_support::*;
    use crate::v2::tests::fake_v2;
    use oci_spec::runtime::LinuxHugepageLimitBuilder;

    fn limit(size: &str, value: i64) -> LinuxHugepageLimit {
        LinuxHugepageLimitBuilder::default()
            .page_size(size)
            .limit(value)
            .build()
            .unwrap()
    }

    #[test]
    fn writes_reservation_and_fault_limits() {
        let (_dir, cgroup) = fake_v2();
        apply(&cgroup, &[limit("2MB", 4 << 21), limit("1GB", -1)]).unwrap();
        assert_eq!(get(&cgroup, "hugetlb.2MB.max"), (4u64 << 21).to_string());
        assert_eq!(
            get(&cgroup, "hugetlb.2MB.rsvd.max"),
            (4u64 << 21).to_string()
        );
        assert_eq!(get(&cgroup, "hugetlb.1GB.max"), "max");
    }

    #[test]
    fn unknown_sizes_and_bad_values_are_errors() {
        let (_dir, cgroup) = fake_v2();
        let error = apply(&cgroup, &[limit("16GB", 1)]).unwrap_err();
        assert!(matches!(
            error,
            CgroupError::ControllerUnavailable {
                controller: "hugetlb",
                ..
            }
        ));
        assert!(apply(&cgroup, &[limit("../../x", 1)]).is_err());
        assert!(apply(&cgroup, &[limit("2MB", -3)]).is_err());
    }
}
