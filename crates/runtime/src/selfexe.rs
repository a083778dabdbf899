//! Defence against CVE-2019-5736: a container that reaches the runtime's binary through
//! `/proc/<pid>/exe` must not be able to overwrite the host's copy.
//!
//! Before a command that enters a container, the runtime re-executes itself from a sealed
//! memfd copy of its binary. `/proc/self/exe` then names that copy, which no one can write
//! (F_SEAL_WRITE) or change in size, so the host binary is unreachable from inside.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;

use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MemFdCreateFlag};

use crate::error::{Result, RuntimeError};

const SEALS: SealFlag = SealFlag::F_SEAL_SEAL
    .union(SealFlag::F_SEAL_SHRINK)
    .union(SealFlag::F_SEAL_GROW)
    .union(SealFlag::F_SEAL_WRITE);

/// Whether the running binary is already a sealed memfd copy.
pub fn running_from_sealed_copy() -> bool {
    let Ok(exe) = File::open("/proc/self/exe") else {
        return false;
    };
    match fcntl(exe.as_raw_fd(), FcntlArg::F_GET_SEALS) {
        Ok(bits) => SealFlag::from_bits_truncate(bits).contains(SEALS),
        Err(_) => false,
    }
}

/// Adds the seals; the kernel answers EBUSY while a page of the fresh copy is still
/// referenced elsewhere (rare, seen about once in a thousand runs): retry briefly.
fn seal(copy: &File) -> Result<()> {
    let mut pause = std::time::Duration::from_millis(1);
    for _ in 0..8 {
        match fcntl(copy.as_raw_fd(), FcntlArg::F_ADD_SEALS(SEALS)) {
            Err(nix::errno::Errno::EBUSY) => {
                std::thread::sleep(pause);
                pause *= 2;
            }
            other => {
                return other
                    .map(drop)
                    .map_err(|e| RuntimeError::sys("seal runtime copy", e))
            }
        }
    }
    Err(RuntimeError::sys(
        "seal runtime copy",
        nix::errno::Errno::EBUSY,
    ))
}

/// Whether a container with this config could overwrite the runtime's binary through
/// `/proc/<pid>/exe` if the runtime entered it from the host file. Not when its user
/// namespace maps no id that owns or may write the binary: the kernel then refuses the write
/// (capabilities inside a user namespace never cover files owned by unmapped ids), so the
/// copy, about 10 ms per container, is skipped. Anything unusual keeps the copy.
pub fn needs_sealed_copy(spec: &oci_spec::runtime::Spec) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(linux) = spec.linux().as_ref() else {
        return true;
    };
    let has_userns = linux
        .namespaces()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::User && n.path().is_none());
    let Ok(meta) = std::fs::metadata("/proc/self/exe") else {
        return true;
    };
    if !has_userns || meta.mode() & 0o022 != 0 {
        return true;
    }
    let maps = |m: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>, id: u32| {
        m.as_deref().unwrap_or_default().iter().any(|m| {
            id >= m.host_id() && u64::from(id) < u64::from(m.host_id()) + u64::from(m.size())
        })
    };
    maps(linux.uid_mappings(), meta.uid()) || maps(linux.gid_mappings(), meta.gid())
}

/// Re-executes the runtime from a sealed memfd copy unless it already runs from one.
/// Returns only if it already does.
pub fn ensure_sealed_copy() -> Result<()> {
    if running_from_sealed_copy() {
        return Ok(());
    }
    let mut exe =
        File::open("/proc/self/exe").map_err(|e| RuntimeError::io("open", "/proc/self/exe", e))?;
    let fd = memfd_create(
        c"palisade-runtime",
        MemFdCreateFlag::MFD_CLOEXEC | MemFdCreateFlag::MFD_ALLOW_SEALING,
    )
    .map_err(|e| RuntimeError::sys("memfd_create", e))?;
    let mut copy = File::from(fd);
    std::io::copy(&mut exe, &mut copy)
        .map_err(|e| RuntimeError::io("copy runtime binary from", "/proc/self/exe", e))?;
    seal(&copy)?;
    let args: Vec<CString> = std::env::args_os()
        .filter_map(|a| CString::new(a.as_bytes()).ok())
        .collect();
    let env: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut pair = k.as_bytes().to_vec();
            pair.push(b'=');
            pair.extend_from_slice(v.as_bytes());
            CString::new(pair).ok()
        })
        .collect();
    let err = nix::unistd::fexecve(copy.as_raw_fd(), &args, &env).unwrap_err();
    Err(RuntimeError::sys("re-execute from sealed copy", err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hardened_spec_needs_no_copy_but_a_host_root_mapping_does() {
        let spec = crate::spec::hardened(false).unwrap();
        // The test binary is owned by root here and 0755: unmapped in 1000000+.
        let owner_is_root =
            std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self/exe").unwrap()) == 0;
        if owner_is_root {
            assert!(!needs_sealed_copy(&spec));
        }
        let mut no_userns = spec.clone();
        if let Some(linux) = no_userns.linux_mut().as_mut() {
            let mut ns = linux.namespaces().clone().unwrap_or_default();
            ns.retain(|n| n.typ() != oci_spec::runtime::LinuxNamespaceType::User);
            linux.set_namespaces(Some(ns));
        }
        assert!(needs_sealed_copy(&no_userns));
        let mut maps_root = spec.clone();
        if let Some(linux) = maps_root.linux_mut().as_mut() {
            let m = oci_spec::runtime::LinuxIdMappingBuilder::default()
                .container_id(0u32)
                .host_id(0u32)
                .size(65536u32)
                .build()
                .unwrap();
            linux.set_uid_mappings(Some(vec![m]));
        }
        if owner_is_root {
            assert!(needs_sealed_copy(&maps_root));
        }
        assert!(needs_sealed_copy(&oci_spec::runtime::Spec::default()) || !owner_is_root);
    }
}
