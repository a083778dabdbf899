//! Process-level system calls that `nix` exposes only as `unsafe` or not at all.

use std::io;
use std::os::fd::RawFd;

use nix::unistd::Pid;

/// What [`fork`] returned in the calling process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    /// We are the parent; the value is the child's pid.
    Parent(Pid),
    /// We are the child.
    Child,
}

/// Forks the calling process.
///
/// The caller must be single-threaded: the child only gets a copy of the calling thread, so a
/// lock held by another thread (the allocator's, stdio's) would stay locked forever in it.
/// `palisade-runtime` never starts threads, which is what makes this sound there.
pub fn fork() -> io::Result<Forked> {
    // SAFETY: the runtime is single-threaded (documented contract of this function), so the
    // child inherits no lock held by a thread that does not exist in it; the child only calls
    // async-signal-safe code or code that is safe in a single-threaded copy of the parent.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Parent { child } => Ok(Forked::Parent(child)),
        nix::unistd::ForkResult::Child => Ok(Forked::Child),
    }
}

/// Sets or clears the "dumpable" attribute of the calling process (`PR_SET_DUMPABLE`).
///
/// A non-dumpable process cannot be ptraced and its `/proc/<pid>` files (`exe`, `mem`, `fd/`)
/// are owned by root of the initial user namespace, so a container cannot reach the runtime's
/// host binary or descriptors through them while the runtime is entering the container.
pub fn set_dumpable(dumpable: bool) -> io::Result<()> {
    // SAFETY: PR_SET_DUMPABLE takes one integer argument and touches no memory of ours.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_DUMPABLE,
            libc::c_ulong::from(dumpable),
            0,
            0,
            0,
        )
    };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Marks every descriptor from `first` upwards close-on-exec (`close_range` with
/// `CLOSE_RANGE_CLOEXEC`), so nothing the runtime opened reaches the container's process
/// (CVE-2024-21626).
pub fn cloexec_from(first: RawFd) -> io::Result<()> {
    let first = u32::try_from(first).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: close_range only changes flags on this process's descriptor table; no pointers.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets the I/O priority of the calling process (`ioprio_set(IOPRIO_WHO_PROCESS, 0, prio)`).
pub fn set_io_priority(class: u16, level: u16) -> io::Result<()> {
    const IOPRIO_WHO_PROCESS: libc::c_int = 1;
    const IOPRIO_CLASS_SHIFT: u32 = 13;
    let prio = (u32::from(class) << IOPRIO_CLASS_SHIFT) | u32::from(level);
    // SAFETY: ioprio_set takes integers only; pid 0 means the calling process.
    let rc = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, prio) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The kernel's `struct sched_attr` (version 1, with utilization clamps).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct SchedAttr {
    /// Size of this structure, filled in by [`set_scheduler`].
    pub size: u32,
    /// Scheduling policy (`SCHED_*`).
    pub policy: u32,
    /// `SCHED_FLAG_*` bits.
    pub flags: u64,
    /// Nice value for SCHED_OTHER and SCHED_BATCH.
    pub nice: i32,
    /// Static priority for SCHED_FIFO and SCHED_RR.
    pub priority: u32,
    /// SCHED_DEADLINE runtime in nanoseconds.
    pub runtime: u64,
    /// SCHED_DEADLINE deadline in nanoseconds.
    pub deadline: u64,
    /// SCHED_DEADLINE period in nanoseconds.
    pub period: u64,
    /// Minimum utilization clamp.
    pub util_min: u32,
    /// Maximum utilization clamp.
    pub util_max: u32,
}

/// Sets the scheduling policy and attributes of the calling process (`sched_setattr`).
pub fn set_scheduler(attr: &SchedAttr) -> io::Result<()> {
    let mut attr = *attr;
    attr.size = std::mem::size_of::<SchedAttr>() as u32;
    // SAFETY: `attr` is a valid, initialised `struct sched_attr` whose `size` field matches
    // its layout; the kernel only reads it during the call.
    let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Ends the calling process at once with `code`, running no exit handlers and flushing no
/// buffers. A forked child that fails during setup uses this so it never runs the parent's
/// cleanup code or writes the parent's buffered output twice.
pub fn exit_immediately(code: i32) -> ! {
    // SAFETY: _exit never returns and has no preconditions.
    unsafe { libc::_exit(code) }
}

/// Resets every catchable signal to its default action and unblocks all signals, so the
/// program a container runs does not inherit the runtime's choices (Rust's runtime ignores
/// SIGPIPE; callers may block signals they forward).
pub fn reset_signals() -> io::Result<()> {
    use nix::sys::signal::{SigSet, SigmaskHow};
    // The kernel's `struct sigaction`; all zeroes is SIG_DFL with no flags and an empty mask
    // whatever the field order of the architecture.
    #[repr(C)]
    struct KernelSigaction {
        handler: usize,
        flags: u64,
        restorer: usize,
        mask: u64,
    }
    let default = KernelSigaction {
        handler: 0,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for number in 1..=64 {
        if number == libc::SIGKILL || number == libc::SIGSTOP {
            continue;
        }
        // SAFETY: the raw syscall (not libc's wrapper, which refuses the signals glibc
        // reserves for itself) reads `default`, a valid zeroed `struct sigaction` that lives
        // across the call, with the kernel's sigset size of 8 bytes; no old action is
        // returned. SIG_DFL runs no code of ours, and the process is single-threaded and
        // about to exec.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                number,
                &default as *const KernelSigaction,
                std::ptr::null_mut::<KernelSigaction>(),
                8usize,
            )
        };
        if rc == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .map_err(io::Error::from)
}

/// Sets the calling process's umask and returns the previous one.
pub fn set_umask(mask: u32) -> u32 {
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask)).bits()
}

/// Tries `PTRACE_ATTACH` to `pid` and, if that worked, detaches again at once. For the attack
/// suite: a container must not be able to trace a process outside it.
pub fn ptrace_attach_detach(pid: i32) -> std::io::Result<()> {
    // SAFETY: PTRACE_ATTACH takes only a pid (addr and data are ignored); it reads or writes
    // no memory of this process.
    let attached = unsafe {
        libc::ptrace(
            libc::PTRACE_ATTACH,
            pid,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_void>(),
        )
    };
    if attached < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above; PTRACE_DETACH with a data of 0 delivers no signal. The tracee may not
    // have stopped yet, in which case detaching fails and it is released when we exit.
    unsafe {
        libc::ptrace(
            libc::PTRACE_DETACH,
            pid,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_void>(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloexec_from_marks_high_descriptors() {
        let file = std::fs::File::open("/dev/null").unwrap();
        use std::os::fd::AsRawFd;
        let fd = file.as_raw_fd();
        nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        )
        .unwrap();
        cloexec_from(fd).unwrap();
        let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert_ne!(flags & libc::FD_CLOEXEC, 0);
    }

    #[test]
    fn signals_are_reset_to_defaults() {
        use nix::sys::signal::{SigHandler, Signal};
        // SAFETY: test-only; ignoring SIGPIPE is what Rust's runtime does anyway.
        unsafe { nix::sys::signal::signal(Signal::SIGUSR2, SigHandler::SigIgn) }.unwrap();
        reset_signals().unwrap();
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let ignored = status.lines().find(|l| l.starts_with("SigIgn:")).unwrap();
        let mask = u64::from_str_radix(ignored.split_whitespace().nth(1).unwrap(), 16).unwrap();
        assert_eq!(mask & (1 << (Signal::SIGUSR2 as u64 - 1)), 0, "{ignored}");
    }

    #[test]
    fn umask_round_trips() {
        let old = set_umask(0o077);
        assert_eq!(set_umask(old), 0o077);
    }
}
