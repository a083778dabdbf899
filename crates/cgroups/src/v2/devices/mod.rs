//! The cgroup v2 device controller: the device rules become an eBPF program attached to the
//! cgroup directory.
//!
//! Replacing the rules (on `update`) attaches the new program first and only then detaches the
//! earlier programs of ours, so there is never a moment without a filter: while both are
//! attached the kernel requires both to allow. Programs attached by someone else are left alone;
//! ours are recognised by their name.

pub(crate) mod program;

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use oci_spec::runtime::LinuxDeviceCgroup;
use palisade_sys::bpf::{self, BpfError};

use crate::devices::DeviceRule;
use crate::error::CgroupError;

/// The name our device programs carry (at most 15 characters).
pub(crate) const PROGRAM_NAME: &str = "palisade_device";

/// Device programs do nothing GPL-only; the license string only gates kernel helpers.
const LICENSE: &std::ffi::CStr = c"Apache";

/// Compiles `rules` and installs the program on the cgroup `dir`, replacing ours.
pub(crate) fn apply(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<(), CgroupError> {
    let rules = DeviceRule::from_oci_list(rules)?;
    let instructions = program::compile(&rules);
    let filter_error = |source| CgroupError::DeviceFilter {
        path: dir.to_owned(),
        source,
    };
    let cgroup = File::open(dir).map_err(|source| CgroupError::Read {
        path: dir.to_owned(),
        source,
    })?;
    let previous = bpf::query_cgroup_device_programs(cgroup.as_fd()).map_err(filter_error)?;
    let program = bpf::load_cgroup_device_program(&instructions, LICENSE, PROGRAM_NAME)
        .map_err(filter_error)?;
    bpf::attach_cgroup_device_program(cgroup.as_fd(), program.as_fd(), bpf::ATTACH_ALLOW_MULTI)
        .map_err(filter_error)?;
    tracing::debug!(path = %dir.display(), rules = rules.len(), "attached device program");
    for id in previous {
        let old = match bpf::program_by_id(id) {
            Ok(old) => old,
            // Unloaded since the query: nothing left to detach.
            Err(BpfError::OpenById { source, .. })
                if source.raw_os_error() == Some(libc::ENOENT) =>
            {
                continue
            }
            Err(error) => return Err(filter_error(error)),
        };
        let info = bpf::program_info(old.as_fd()).map_err(filter_error)?;
        if info.name != PROGRAM_NAME {
            continue;
        }
        match bpf::detach_cgroup_device_program(cgroup.as_fd(), old.as_fd()) {
            Ok(()) => {}
            // Detached by a concurrent update: the goal is reached.
            Err(BpfError::Detach { source }) if is_gone(&source) => {}
            Err(error) => return Err(filter_error(error)),
        }
    }
    Ok(())
}

/// The ids of all device programs attached directly to `dir`, for inspection.
pub(crate) fn attached_programs(dir: &Path) -> Result<Vec<u32>, CgroupError> {
    let cgroup = File::open(dir).map_err(|source| CgroupError::Read {
        path: dir.to_owned(),
        source,
    })?;
    bpf::query_cgroup_device_programs(cgroup.as_fd()).map_err(|source| CgroupError::DeviceFilter {
        path: dir.to_owned(),
        source,
    })
}

fn is_gone(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::ENOENT))
}
