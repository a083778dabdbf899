//! System V shared memory calls, which neither `nix` nor `rustix` wrap. Used to prove that a
//! container cannot reach a segment of the host or a neighbour (separate ipc namespaces).

use std::io;

/// Creates a private 4 KiB segment readable and writable by its owner; returns its id.
pub fn shm_create() -> io::Result<i32> {
    // SAFETY: shmget takes integers only.
    let id = unsafe { libc::shmget(libc::IPC_PRIVATE, 4096, libc::IPC_CREAT | 0o600) };
    if id == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(id)
}

/// Attaches segment `id` and detaches it again: `Ok` means the caller could reach it.
pub fn shm_reachable(id: i32) -> io::Result<()> {
    // SAFETY: a null address lets the kernel choose where to map; the mapping is not used
    // and is detached right away.
    let addr = unsafe { libc::shmat(id, std::ptr::null(), libc::SHM_RDONLY) };
    if addr as isize == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `addr` was returned by the successful shmat above and is detached once.
    unsafe { libc::shmdt(addr) };
    Ok(())
}

/// Marks segment `id` for removal.
pub fn shm_remove(id: i32) -> io::Result<()> {
    // SAFETY: IPC_RMID ignores the buffer argument, so a null pointer is allowed.
    let rc = unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_round_trip() {
        let id = shm_create().unwrap();
        shm_reachable(id).unwrap();
        shm_remove(id).unwrap();
        assert!(shm_reachable(i32::MAX).is_err());
    }
}
