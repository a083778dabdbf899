//! The cgroup v1 blkio controller: weights (CFQ `blkio.weight` or BFQ `blkio.bfq.weight`) and
//! throttling (`blkio.throttle.*_device`).

use std::path::Path;

use oci_spec::runtime::{LinuxBlockIo, LinuxThrottleDevice};

use crate::common;
use crate::error::CgroupError;
use crate::stats::{BlkioEntry, Stats};

/// Whether `block_io` sets anything.
pub(super) fn is_requested(block_io: &LinuxBlockIo) -> bool {
    block_io.weight().is_some()
        || block_io.leaf_weight().is_some()
        || block_io
            .weight_device()
            .as_ref()
            .is_some_and(|d| !d.is_empty())
        || throttles(block_io)
            .iter()
            .any(|(_, devices)| !devices.is_empty())
}

fn list_of(devices: &Option<Vec<LinuxThrottleDevice>>) -> &[LinuxThrottleDevice] {
    devices.as_deref().unwrap_or(&[])
}

fn throttles(block_io: &LinuxBlockIo) -> [(&'static str, &[LinuxThrottleDevice]); 4] {
    [
        (
            "blkio.throttle.read_bps_device",
            list_of(block_io.throttle_read_bps_device()),
        ),
        (
            "blkio.throttle.write_bps_device",
            list_of(block_io.throttle_write_bps_device()),
        ),
        (
            "blkio.throttle.read_iops_device",
            list_of(block_io.throttle_read_iops_device()),
        ),
        (
            "blkio.throttle.write_iops_device",
            list_of(block_io.throttle_write_iops_device()),
        ),
    ]
}

fn device(dir: &Path, major: i64, minor: i64) -> Result<String, CgroupError> {
    if major < 0 || minor < 0 {
        return Err(CgroupError::InvalidResource {
            resource: "blockIO",
            path: dir.to_owned(),
            reason: format!("device {major}:{minor} has a negative number"),
        });
    }
    Ok(format!("{major}:{minor}"))
}

/// The weight file: BFQ's when the BFQ scheduler is in use, else CFQ's.
fn weight_file(dir: &Path, resource: &'static str) -> Result<&'static str, CgroupError> {
    if dir.join("blkio.bfq.weight").is_file() {
        Ok("blkio.bfq.weight")
    } else if dir.join("blkio.weight").is_file() {
        Ok("blkio.weight")
    } else {
        Err(CgroupError::ControllerUnavailable {
            controller: "blkio (weights need the BFQ or CFQ I/O scheduler)",
            path: dir.to_owned(),
            resource,
        })
    }
}

pub(super) fn apply(dir: &Path, block_io: &LinuxBlockIo) -> Result<(), CgroupError> {
    if let Some(weight) = block_io.weight() {
        if !(10..=1000).contains(&weight) {
            return Err(CgroupError::InvalidResource {
                resource: "blockIO.weight",
                path: dir.to_owned(),
                reason: format!("{weight} is outside 10..=1000"),
            });
        }
        common::write_file(dir, weight_file(dir, "blockIO.weight")?, weight)?;
    }
    if let Some(leaf_weight) = block_io.leaf_weight() {
        write_leaf_weight(dir, "blkio.leaf_weight", leaf_weight.to_string())?;
    }
    for weight_device in block_io.weight_device().as_deref().unwrap_or(&[]) {
        let device = device(dir, weight_device.major(), weight_device.minor())?;
        if let Some(weight) = weight_device.weight() {
            let file = match weight_file(dir, "blockIO.weightDevice")? {
                "blkio.bfq.weight" => "blkio.bfq.weight_device",
                _ => "blkio.weight_device",
            };
            common::write_file(dir, file, format!("{device} {weight}"))?;
        }
        if let Some(leaf_weight) = weight_device.leaf_weight() {
            write_leaf_weight(
                dir,
                "blkio.leaf_weight_device",
                format!("{device} {leaf_weight}"),
            )?;
        }
    }
    for (file, devices) in throttles(block_io) {
        for throttle in devices {
            let device = device(dir, throttle.major(), throttle.minor())?;
            common::write_file(dir, file, format!("{device} {}", throttle.rate()))?;
        }
    }
    Ok(())
}

/// Leaf weights exist only with CFQ; elsewhere they are a hint that is skipped.
fn write_leaf_weight(dir: &Path, file: &str, value: String) -> Result<(), CgroupError> {
    match common::write_file(dir, file, value) {
        Err(error) if error.is_not_found() => {
            tracing::warn!(%error, "blkio leaf weights need the CFQ scheduler; ignored");
            Ok(())
        }
        result => result,
    }
}

/// Statistics files, in runc's order of preference: BFQ, CFQ, throttling (recursive, then not).
const STAT_SOURCES: [[&str; 2]; 4] = [
    [
        "blkio.bfq.io_service_bytes_recursive",
        "blkio.bfq.io_serviced_recursive",
    ],
    [
        "blkio.io_service_bytes_recursive",
        "blkio.io_serviced_recursive",
    ],
    [
        "blkio.throttle.io_service_bytes_recursive",
        "blkio.throttle.io_serviced_recursive",
    ],
    [
        "blkio.throttle.io_service_bytes",
        "blkio.throttle.io_serviced",
    ],
];

/// Parses a blkio statistics file: `MAJ:MIN Op value` lines and a final `Total value`.
pub(super) fn parse_entries(path: &Path, content: &str) -> Result<Vec<BlkioEntry>, CgroupError> {
    let mut entries = Vec::new();
    for line in content.lines().filter(|line| !line.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["Total", _] => {}
            [device, op, value] => {
                let (major, minor) = common::parse_device_number(path, device)?;
                entries.push(BlkioEntry {
                    major,
                    minor,
                    op: (*op).to_owned(),
                    value: common::parse_value(path, value)?,
                });
            }
            _ => {
                return Err(CgroupError::Parse {
                    path: path.to_owned(),
                    reason: format!("line {line:?} is not \"MAJ:MIN Op value\""),
                })
            }
        }
    }
    Ok(entries)
}

pub(super) fn stats(dir: &Path, stats: &mut Stats) -> Result<(), CgroupError> {
    for [bytes_file, ops_file] in STAT_SOURCES {
        let Some(bytes) = common::read_optional(dir, bytes_file)? else {
            continue;
        };
        let bytes = parse_entries(&dir.join(bytes_file), &bytes)?;
        if bytes.is_empty() {
            continue;
        }
        let ops = common::read_optional(dir, ops_file)?.unwrap_or_default();
        stats.blkio.io_service_bytes_recursive = bytes;
        stats.blkio.io_serviced_recursive = parse_entries(&dir.join(ops_file), &ops)?;
        return Ok(());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::test_support::*;
    use crate::v1::tests::{fake_v1, RELATIVE};
    use oci_spec::runtime::{
        LinuxBlockIoBuilder, LinuxThrottleDeviceBuilder, LinuxWeightDeviceBuilder,
    };

    fn throttle(major: i64, minor: i64, rate: u64) -> LinuxThrottleDevice {
        LinuxThrottleDeviceBuilder::default()
            .major(major)
            .minor(minor)
            .rate(rate)
            .build()
            .unwrap()
    }

    #[test]
    fn writes_weights_and_throttles() {
        let dir = fake_v1(false, &["blkio"]);
        let cgroup = dir.path().join("blkio").join(RELATIVE);
        let block_io = LinuxBlockIoBuilder::default()
            .weight(300u16)
            .leaf_weight(200u16)
            .weight_device(vec![LinuxWeightDeviceBuilder::default()
                .major(8)
                .minor(0)
                .weight(500u16)
                .leaf_weight(100u16)
                .build()
                .unwrap()])
            .throttle_read_bps_device(vec![throttle(8, 0, 1_048_576), throttle(8, 16, 2)])
            .throttle_write_bps_device(vec![throttle(8, 0, 3)])
            .throttle_read_iops_device(vec![throttle(8, 0, 4)])
            .throttle_write_iops_device(vec![throttle(8, 0, 5)])
            .build()
            .unwrap();
        take_writes();
        apply(&cgroup, &block_io).unwrap();
        let writes: Vec<String> = take_writes()
            .into_iter()
            .map(|(file, value)| format!("{file}={value}"))
            .collect();
        assert_eq!(
            writes,
            vec![
                "blkio.weight=300",
                "blkio.leaf_weight=200",
                "blkio.weight_device=8:0 500",
                "blkio.leaf_weight_device=8:0 100",
                "blkio.throttle.read_bps_device=8:0 1048576",
                "blkio.throttle.read_bps_device=8:16 2",
                "blkio.throttle.write_bps_device=8:0 3",
                "blkio.throttle.read_iops_device=8:0 4",
                "blkio.throttle.write_iops_device=8:0 5",
            ]
        );
    }

    #[test]
    fn weight_without_a_weighting_scheduler_is_a_clear_error() {
        let dir = fake_v1(false, &["blkio"]);
        let cgroup = dir.path().join("blkio").join(RELATIVE);
        std::fs::remove_file(cgroup.join("blkio.weight")).unwrap();
        std::fs::remove_file(cgroup.join("blkio.leaf_weight")).unwrap();
        let weight = LinuxBlockIoBuilder::default()
            .weight(300u16)
            .build()
            .unwrap();
        let error = apply(&cgroup, &weight).unwrap_err();
        assert!(
            matches!(error, CgroupError::ControllerUnavailable { .. }),
            "{error}"
        );
        // Leaf weights are a hint: skipped.
        let leaf = LinuxBlockIoBuilder::default()
            .leaf_weight(300u16)
            .build()
            .unwrap();
        apply(&cgroup, &leaf).unwrap();
        let bad = LinuxBlockIoBuilder::default()
            .weight(2000u16)
            .build()
            .unwrap();
        assert!(apply(&cgroup, &bad).is_err());
    }

    #[test]
    fn stats_prefer_bfq_then_throttle() {
        let dir = fake_v1(false, &["blkio"]);
        let cgroup = dir.path().join("blkio").join(RELATIVE);
        put(
            &cgroup,
            "blkio.throttle.io_service_bytes_recursive",
            "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Async 12288\n8:0 Discard 0\n8:0 Total 12288\nTotal 12288\n",
        );
        put(
            &cgroup,
            "blkio.throttle.io_serviced_recursive",
            "8:0 Read 1\n8:0 Write 2\nTotal 3\n",
        );
        put(&cgroup, "blkio.bfq.io_service_bytes_recursive", "Total 0\n");
        let mut stats = Stats::default();
        super::stats(&cgroup, &mut stats).unwrap();
        let bytes = &stats.blkio.io_service_bytes_recursive;
        assert_eq!(bytes.len(), 6);
        assert_eq!(
            (bytes[0].major, bytes[0].op.as_str(), bytes[0].value),
            (8, "Read", 4096)
        );
        assert_eq!(stats.blkio.io_serviced_recursive[1].value, 2);
        put(
            &cgroup,
            "blkio.throttle.io_service_bytes_recursive",
            "8:0 Read\n",
        );
        assert!(super::stats(&cgroup, &mut stats).is_err());
    }
}
