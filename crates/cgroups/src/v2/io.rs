//! The cgroup v2 io controller: `io.weight` (or `io.bfq.weight`), `io.max`.

use std::path::Path;

use oci_spec::runtime::{LinuxBlockIo, LinuxThrottleDevice};

use crate::common;
use crate::error::CgroupError;
use crate::stats::{BlkioEntry, Stats};

/// Whether `block_io` asks for anything this controller enforces (leaf weights do not exist on
/// v2 and are only warned about).
pub(super) fn is_requested(block_io: &LinuxBlockIo) -> bool {
    block_io.weight().is_some_and(|w| w != 0)
        || block_io
            .weight_device()
            .as_ref()
            .is_some_and(|devices| devices.iter().any(|d| d.weight().is_some()))
        || throttles(block_io)
            .iter()
            .any(|(_, devices)| !devices.is_empty())
}

/// Converts a v1 blkio weight (10..=1000) to a v2 io weight (1..=10000), as runc does:
/// `1 + (weight - 10) * 9999 / 990`.
pub(super) fn blkio_weight_to_io_weight(weight: u16) -> u64 {
    let weight = u64::from(weight.clamp(10, 1000));
    1 + (weight - 10) * 9999 / 990
}

fn list_of(devices: &Option<Vec<LinuxThrottleDevice>>) -> &[LinuxThrottleDevice] {
    devices.as_deref().unwrap_or(&[])
}

fn throttles(block_io: &LinuxBlockIo) -> [(&'static str, &[LinuxThrottleDevice]); 4] {
    [
        ("rbps", list_of(block_io.throttle_read_bps_device())),
        ("wbps", list_of(block_io.throttle_write_bps_device())),
        ("riops", list_of(block_io.throttle_read_iops_device())),
        ("wiops", list_of(block_io.throttle_write_iops_device())),
    ]
}

/// Checks a device number from the configuration.
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

/// The `io.max` lines: one per device, with every limit of that device (0 means no limit).
pub(super) fn max_lines(dir: &Path, block_io: &LinuxBlockIo) -> Result<Vec<String>, CgroupError> {
    let mut lines: Vec<(String, String)> = Vec::new();
    for (key, devices) in throttles(block_io) {
        for throttle in devices {
            let device = device(dir, throttle.major(), throttle.minor())?;
            let value = match throttle.rate() {
                0 => "max".to_owned(),
                rate => rate.to_string(),
            };
            let entry = format!(" {key}={value}");
            match lines.iter_mut().find(|(d, _)| *d == device) {
                Some((_, line)) => line.push_str(&entry),
                None => lines.push((device.clone(), format!("{device}{entry}"))),
            }
        }
    }
    Ok(lines.into_iter().map(|(_, line)| line).collect())
}

pub(super) fn apply(dir: &Path, block_io: &LinuxBlockIo) -> Result<(), CgroupError> {
    let bfq = dir.join("io.bfq.weight").is_file();
    if let Some(weight) = block_io.weight().filter(|&w| w != 0) {
        if !(10..=1000).contains(&weight) {
            return Err(CgroupError::InvalidResource {
                resource: "blockIO.weight",
                path: dir.to_owned(),
                reason: format!("{weight} is outside 10..=1000"),
            });
        }
        if bfq {
            common::write_file(dir, "io.bfq.weight", weight)?;
        } else {
            let value = format!("default {}", blkio_weight_to_io_weight(weight));
            common::write_file(dir, "io.weight", value)?;
        }
    }
    if block_io.leaf_weight().is_some() {
        tracing::warn!(path = %dir.display(), "blockIO.leafWeight does not exist on cgroup v2; ignored");
    }
    for weight_device in block_io.weight_device().as_deref().unwrap_or(&[]) {
        if weight_device.leaf_weight().is_some() {
            tracing::warn!(path = %dir.display(), "blockIO.weightDevice.leafWeight does not exist on cgroup v2; ignored");
        }
        let Some(weight) = weight_device.weight() else {
            continue;
        };
        let device = device(dir, weight_device.major(), weight_device.minor())?;
        if bfq {
            common::write_file(dir, "io.bfq.weight", format!("{device} {weight}"))?;
        } else {
            let value = format!("{device} {}", blkio_weight_to_io_weight(weight));
            common::write_file(dir, "io.weight", value)?;
        }
    }
    for line in max_lines(dir, block_io)? {
        common::write_file(dir, "io.max", line)?;
    }
    Ok(())
}

/// Parses `io.stat` (`MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=.. dbytes=.. dios=..`).
pub(super) fn stats(dir: &Path, stats: &mut Stats) -> Result<(), CgroupError> {
    let Some(content) = common::read_optional(dir, "io.stat")? else {
        return Ok(());
    };
    let path = dir.join("io.stat");
    for line in content.lines().filter(|line| !line.trim().is_empty()) {
        let mut fields = line.split_whitespace();
        let Some(device) = fields.next() else {
            continue;
        };
        let (major, minor) = common::parse_device_number(&path, device)?;
        for field in fields {
            let Some((key, value)) = field.split_once('=') else {
                return Err(CgroupError::Parse {
                    path: path.clone(),
                    reason: format!("{field:?} is not key=value"),
                });
            };
            let value = common::parse_value(&path, value)?;
            let (table, op) = match key {
                "rbytes" => (&mut stats.blkio.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut stats.blkio.io_service_bytes_recursive, "Write"),
                "rios" => (&mut stats.blkio.io_serviced_recursive, "Read"),
                "wios" => (&mut stats.blkio.io_serviced_recursive, "Write"),
                _ => continue,
            };
            table.push(BlkioEntry {
                major,
                minor,
                op: op.to_owned(),
                value,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::test_support::*;
    use crate::v2::tests::fake_v2;
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
    fn weight_converts_like_runc() {
        assert_eq!(blkio_weight_to_io_weight(10), 1);
        assert_eq!(blkio_weight_to_io_weight(500), 4950);
        assert_eq!(blkio_weight_to_io_weight(1000), 10_000);
    }

    #[test]
    fn writes_weights_and_one_max_line_per_device() {
        let (_dir, cgroup) = fake_v2();
        let block_io = LinuxBlockIoBuilder::default()
            .weight(500u16)
            .weight_device(vec![LinuxWeightDeviceBuilder::default()
                .major(8)
                .minor(0)
                .weight(100u16)
                .build()
                .unwrap()])
            .throttle_read_bps_device(vec![throttle(8, 0, 1_048_576), throttle(8, 16, 10)])
            .throttle_write_bps_device(vec![throttle(8, 0, 0)])
            .throttle_read_iops_device(vec![throttle(8, 0, 100)])
            .throttle_write_iops_device(vec![throttle(8, 16, 200)])
            .build()
            .unwrap();
        assert!(is_requested(&block_io));
        take_writes();
        apply(&cgroup, &block_io).unwrap();
        assert_eq!(
            take_writes(),
            vec![
                ("io.weight".to_owned(), "default 4950".to_owned()),
                ("io.weight".to_owned(), "8:0 910".to_owned()),
                (
                    "io.max".to_owned(),
                    "8:0 rbps=1048576 wbps=max riops=100".to_owned()
                ),
                ("io.max".to_owned(), "8:16 rbps=10 wiops=200".to_owned()),
            ]
        );
    }

    #[test]
    fn bfq_weight_is_written_unconverted() {
        let (_dir, cgroup) = fake_v2();
        put(&cgroup, "io.bfq.weight", "default 100\n");
        let block_io = LinuxBlockIoBuilder::default()
            .weight(300u16)
            .build()
            .unwrap();
        apply(&cgroup, &block_io).unwrap();
        assert_eq!(get(&cgroup, "io.bfq.weight"), "300");
    }

    #[test]
    fn refuses_bad_weights_and_devices() {
        let (_dir, cgroup) = fake_v2();
        let weight = LinuxBlockIoBuilder::default().weight(5u16).build().unwrap();
        assert!(apply(&cgroup, &weight).is_err());
        let negative = LinuxBlockIoBuilder::default()
            .throttle_read_bps_device(vec![throttle(-1, 0, 5)])
            .build()
            .unwrap();
        assert!(matches!(
            apply(&cgroup, &negative),
            Err(CgroupError::InvalidResource { .. })
        ));
    }
}
