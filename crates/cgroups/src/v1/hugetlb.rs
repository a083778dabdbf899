//! The cgroup v1 hugetlb controller: `hugetlb.<size>.limit_in_bytes` (and the reservation
//! limit where the kernel has it).

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
        if limit.limit() < -1 {
            return Err(CgroupError::InvalidResource {
                resource: "hugepageLimits.limit",
                path: dir.to_owned(),
                reason: format!("{} is neither -1 nor positive", limit.limit()),
            });
        }
        let file = format!("hugetlb.{size}.limit_in_bytes");
        if !dir.join(&file).is_file() {
            return Err(CgroupError::ControllerUnavailable {
                controller: "hugetlb",
                path: dir.join(file),
                resource: "hugepageLimits",
            });
        }
        let reserved = format!("hugetlb.{size}.rsvd.limit_in_bytes");
        if dir.join(&reserved).is_file() {
            common::write_file(dir, &reserved, limit.limit())?;
        }
        common::write_file(dir, &file, limit.limit())?;
    }
    Ok(())
}

pub(super) fn stats(dir: &Path, stats: &mut Stats) -> Result<(), CgroupError> {
    for size in common::page_sizes_in(dir, ".usage_in_bytes")? {
        let value =
            |name: &str| common::read_optional_value(dir, &format!("hugetlb.{size}.{name}"));
        let entry = HugetlbStats {
            usage: value("usage_in_bytes")?.unwrap_or(0),
            max: value("max_usage_in_bytes")?.unwrap_or(0),
            failcnt: value("failcnt")?.unwrap_or(0),
        };
        stats.hugetlb.insert(size, entry);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::test_support::*;
    use crate::v1::tests::{fake_v1, RELATIVE};
    use oci_spec::runtime::LinuxHugepageLimitBuilder;

    fn limit(size: &str, value: i64) -> LinuxHugepageLimit {
        LinuxHugepageLimitBuilder::default()
            .page_size(size)
            .limit(value)
            .build()
            .unwrap()
    }

    #[test]
    fn writes_limits_and_names_missing_sizes() {
        let dir = fake_v1(false, &["hugetlb"]);
        let cgroup = dir.path().join("hugetlb").join(RELATIVE);
        apply(&cgroup, &[limit("2MB", 4 << 21)]).unwrap();
        assert_eq!(
            get(&cgroup, "hugetlb.2MB.limit_in_bytes"),
            (4u64 << 21).to_string()
        );
        apply(&cgroup, &[limit("2MB", -1)]).unwrap();
        assert_eq!(get(&cgroup, "hugetlb.2MB.limit_in_bytes"), "-1");
        let error = apply(&cgroup, &[limit("1GB", 1)]).unwrap_err();
        assert!(matches!(
            error,
            CgroupError::ControllerUnavailable {
                controller: "hugetlb",
                ..
            }
        ));
        assert!(apply(&cgroup, &[limit("2MB/../x", 1)]).is_err());
    }

    #[test]
    fn stats_per_page_size() {
        let dir = fake_v1(false, &["hugetlb"]);
        let cgroup = dir.path().join("hugetlb").join(RELATIVE);
        put(&cgroup, "hugetlb.2MB.usage_in_bytes", "4194304\n");
        put(&cgroup, "hugetlb.2MB.max_usage_in_bytes", "6291456\n");
        put(&cgroup, "hugetlb.2MB.failcnt", "1\n");
        let mut stats = Stats::default();
        super::stats(&cgroup, &mut stats).unwrap();
        assert_eq!(
            stats.hugetlb["2MB"],
            HugetlbStats {
                usage: 4_194_304,
                max: 6_291_456,
                failcnt: 1
            }
        );
    }
}
