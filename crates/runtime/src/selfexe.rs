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
    fcntl(copy.as_raw_fd(), FcntlArg::F_ADD_SEALS(SEALS))
        .map_err(|e| RuntimeError::sys("seal runtime copy", e))?;
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
