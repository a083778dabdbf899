//! The rdma controller (`rdma.max`), the same file on cgroup v1 and v2.

use std::collections::HashMap;
use std::path::Path;

use oci_spec::runtime::LinuxRdma;

use crate::common;
use crate::error::CgroupError;

/// Writes one `rdma.max` line per device: `<device> hca_handle=N hca_object=N`.
pub(crate) fn apply(dir: &Path, rdma: &HashMap<String, LinuxRdma>) -> Result<(), CgroupError> {
    let mut devices: Vec<_> = rdma.iter().collect();
    devices.sort_by(|a, b| a.0.cmp(b.0));
    for (device, limits) in devices {
        if device.is_empty() || device.contains(char::is_whitespace) {
            return Err(CgroupError::InvalidResource {
                resource: "rdma",
                path: dir.to_owned(),
                reason: format!("{device:?} is not a device name"),
            });
        }
        let mut line = device.clone();
        if let Some(handles) = limits.hca_handles() {
            line.push_str(&format!(" hca_handle={handles}"));
        }
        if let Some(objects) = limits.hca_objects() {
            line.push_str(&format!(" hca_object={objects}"));
        }
        if line.len() > device.len() {
            common::write_file(dir, "rdma.max", line)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::test_support::*;
    use crate::v2::tests::fake_v2;
    use oci_spec::runtime::LinuxRdmaBuilder;

    #[test]
    fn writes_rdma_max() {
        let (_dir, cgroup) = fake_v2();
        let limits = LinuxRdmaBuilder::default()
            .hca_handles(2u32)
            .hca_objects(2000u32)
            .build()
            .unwrap();
        apply(&cgroup, &HashMap::from([("mlx4_0".to_owned(), limits)])).unwrap();
        assert_eq!(
            get(&cgroup, "rdma.max"),
            "mlx4_0 hca_handle=2 hca_object=2000"
        );
        let bad = HashMap::from([("a b".to_owned(), limits)]);
        assert!(apply(&cgroup, &bad).is_err());
    }
}
