//! Thin wrappers over `seccomp(2)`: installing a classic-BPF filter, and the user-space side of
//! `SECCOMP_RET_USER_NOTIF` (receiving a notification and answering it).
//!
//! Nothing here decides policy: `palisade-seccomp` compiles an OCI profile into the program that
//! [`install_filter`] loads. The notification helpers serve a seccomp agent (and the tests that
//! play one). [`probe`] issues a fixed set of dangerous system calls with arguments that make
//! each of them fail harmlessly, so a test or a check run inside a container can see whether a
//! filter refuses them.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `SECCOMP_FILTER_FLAG_TSYNC`: synchronize every thread of the process to the new filter.
pub const FILTER_FLAG_TSYNC: u32 = 1 << 0;
/// `SECCOMP_FILTER_FLAG_LOG`: log every action except `SECCOMP_RET_ALLOW`.
pub const FILTER_FLAG_LOG: u32 = 1 << 1;
/// `SECCOMP_FILTER_FLAG_SPEC_ALLOW`: do not enable the speculative store bypass mitigation.
pub const FILTER_FLAG_SPEC_ALLOW: u32 = 1 << 2;
/// `SECCOMP_FILTER_FLAG_NEW_LISTENER`: return a notification listener descriptor.
pub const FILTER_FLAG_NEW_LISTENER: u32 = 1 << 3;
/// `SECCOMP_FILTER_FLAG_TSYNC_ESRCH`: report a failed TSYNC as `ESRCH` instead of a thread id,
/// which makes TSYNC usable together with [`FILTER_FLAG_NEW_LISTENER`].
pub const FILTER_FLAG_TSYNC_ESRCH: u32 = 1 << 4;
/// `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV`: a notified task waits killably, not interruptibly.
pub const FILTER_FLAG_WAIT_KILLABLE_RECV: u32 = 1 << 5;

/// `BPF_MAXINSNS`: the longest classic-BPF program the kernel accepts.
pub const MAX_INSTRUCTIONS: usize = 4096;

/// Installs `program` as a seccomp filter on the calling thread (`seccomp(SECCOMP_SET_MODE_FILTER,
/// flags, &prog)`), or on every thread of the process with [`FILTER_FLAG_TSYNC`].
///
/// The caller must already have set `no_new_privs` (`prctl(PR_SET_NO_NEW_PRIVS, 1)`) or hold
/// `CAP_SYS_ADMIN` in its user namespace; otherwise the kernel refuses with `EACCES`. Filters
/// stack: a later filter can only make the combined verdict stricter, and none can be removed.
///
/// Returns the notification listener when `flags` contains [`FILTER_FLAG_NEW_LISTENER`] (the
/// caller hands it to a seccomp agent), and `None` otherwise. When TSYNC fails without
/// [`FILTER_FLAG_TSYNC_ESRCH`], the kernel names the thread that could not be synchronized and
/// this returns an error saying so; no filter was installed then.
pub fn install_filter(program: &[libc::sock_filter], flags: u32) -> io::Result<Option<OwnedFd>> {
    let len = u16::try_from(program.len())
        .ok()
        .filter(|&len| len > 0 && usize::from(len) <= MAX_INSTRUCTIONS)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a seccomp program has 1 to {MAX_INSTRUCTIONS} instructions, not {}",
                    program.len()
                ),
            )
        })?;
    let fprog = libc::sock_fprog {
        len,
        // The kernel only reads the program (it copies it in before the call returns); the
        // `*mut` is what the C declaration of `struct sock_fprog` says, not a write.
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: `fprog` points at `len` initialised `sock_filter`s borrowed from `program`, which
    // outlives the call; the kernel copies them into its own memory during the call and keeps no
    // pointer to ours. `flags` is a plain integer the kernel validates.
    let result = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::c_ulong::from(flags),
            &fprog as *const libc::sock_fprog,
        )
    };
    if result < 0 {
        return Err(io::Error::last_os_error());
    }
    if flags & FILTER_FLAG_NEW_LISTENER != 0 {
        let fd = libc::c_int::try_from(result)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "listener fd out of range"))?;
        // SAFETY: with SECCOMP_FILTER_FLAG_NEW_LISTENER a non-negative result is a new
        // descriptor the kernel just opened for this process; nothing else owns it.
        return Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }));
    }
    if result > 0 {
        // Only TSYNC without TSYNC_ESRCH returns a positive value: the id of the thread that
        // could not be synchronized. The filter was not installed.
        return Err(io::Error::other(format!(
            "seccomp TSYNC failed: thread {result} could not be synchronized"
        )));
    }
    Ok(None)
}

/// One system call stopped by `SECCOMP_RET_USER_NOTIF`, as a seccomp agent receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notification {
    /// The notification's id: pass it to [`respond`] (and to [`notification_is_pending`]).
    pub id: u64,
    /// The id of the thread that made the call, in the listener's pid namespace (0 when the
    /// thread is not visible there).
    pub pid: u32,
    /// The system call number, in the numbering of `arch`.
    pub nr: i32,
    /// The `AUDIT_ARCH_*` value of the calling convention used.
    pub arch: u32,
    /// The instruction pointer at the time of the call.
    pub instruction_pointer: u64,
    /// The raw arguments. Pointers refer to the caller's memory, which may change at any time:
    /// an agent that reads it must re-check [`notification_is_pending`] afterwards.
    pub args: [u64; 6],
}

/// How a seccomp agent answers a [`Notification`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationResponse {
    /// The call returns this value without running.
    Return(i64),
    /// The call fails with this errno (a positive value, 1 to 4095) without running.
    Fail(i32),
    /// The kernel runs the call as if the filter had allowed it
    /// (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`). Never use this as a security decision based on
    /// the caller's memory: the caller can change it between the check and the call.
    Continue,
}

/// Receives the next notification from a listener (`SECCOMP_IOCTL_NOTIF_RECV`), blocking until
/// one arrives unless the descriptor is non-blocking. Retries when interrupted by a signal.
///
/// `ENOENT` means the notifying thread went away before the notification was read.
pub fn receive_notification(listener: BorrowedFd<'_>) -> io::Result<Notification> {
    loop {
        // The kernel requires the buffer to be all zeroes; every field is set explicitly and the
        // struct has no padding (8 + 4 + 4 + 64 bytes).
        let mut raw = libc::seccomp_notif {
            id: 0,
            pid: 0,
            flags: 0,
            data: libc::seccomp_data {
                nr: 0,
                arch: 0,
                instruction_pointer: 0,
                args: [0; 6],
            },
        };
        // SAFETY: `raw` is an exclusive, live `struct seccomp_notif`, the exact type the request
        // code encodes; the kernel writes at most its size into it during the call.
        let result = unsafe {
            libc::ioctl(
                listener.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_RECV,
                &mut raw as *mut libc::seccomp_notif,
            )
        };
        if result < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        return Ok(Notification {
            id: raw.id,
            pid: raw.pid,
            nr: raw.data.nr,
            arch: raw.data.arch,
            instruction_pointer: raw.data.instruction_pointer,
            args: raw.data.args,
        });
    }
}

/// Answers the notification `id` (`SECCOMP_IOCTL_NOTIF_SEND`).
///
/// `ENOENT` means the notification is no longer pending (the thread was killed, or the call was
/// interrupted by a signal and will be restarted, producing a new notification).
pub fn respond(
    listener: BorrowedFd<'_>,
    id: u64,
    response: NotificationResponse,
) -> io::Result<()> {
    let (val, error, flags) = match response {
        NotificationResponse::Return(value) => (value, 0, 0),
        NotificationResponse::Fail(errno) => {
            if !(1..=4095).contains(&errno) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("errno {errno} is outside 1..=4095"),
                ));
            }
            (0, -errno, 0)
        }
        NotificationResponse::Continue => (0, 0, libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32),
    };
    let mut raw = libc::seccomp_notif_resp {
        id,
        val,
        error,
        flags,
    };
    // SAFETY: `raw` is a live, initialised `struct seccomp_notif_resp`, the type the request
    // code encodes; the kernel only reads it during the call.
    let result = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND,
            &mut raw as *mut libc::seccomp_notif_resp,
        )
    };
    if result < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether notification `id` is still pending (`SECCOMP_IOCTL_NOTIF_ID_VALID`). An agent that
/// read the caller's memory checks this afterwards: if the caller died and its pid was reused,
/// the memory read belonged to someone else.
pub fn notification_is_pending(listener: BorrowedFd<'_>, id: u64) -> io::Result<bool> {
    let mut id = id;
    // SAFETY: the request reads one `u64` from the pointer, which refers to a live local.
    let result = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_ID_VALID,
            &mut id as *mut u64,
        )
    };
    if result == 0 {
        return Ok(true);
    }
    let error = io::Error::last_os_error();
    if error.raw_os_error() == Some(libc::ENOENT) {
        Ok(false)
    } else {
        Err(error)
    }
}

/// A system call that container policy is expected to refuse, for [`probe`].
///
/// Each is issued with arguments the kernel rejects (a NULL pointer, a descriptor of -1, an
/// unknown command or flag bits), so that without a filter it fails with `EFAULT`, `EBADF`,
/// `EINVAL` or similar and changes nothing, even for root; with a filter, the filter's answer
/// (`EPERM`, `ENOSYS`, ...) comes back instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SyscallProbe {
    /// `io_uring_setup(0, NULL)`.
    IoUringSetup,
    /// `io_uring_enter(-1, 0, 0, 0, NULL, 0)`.
    IoUringEnter,
    /// `io_uring_register(-1, 0, NULL, 0)`.
    IoUringRegister,
    /// `userfaultfd(~0)`: undefined flag bits.
    Userfaultfd,
    /// `perf_event_open(NULL, 0, -1, -1, 0)`.
    PerfEventOpen,
    /// `bpf(INT_MAX, NULL, 0)`: an unknown command.
    Bpf,
    /// `add_key(NULL, NULL, NULL, 0, 0)`.
    AddKey,
    /// `keyctl(INT_MAX, 0, 0, 0, 0)`: an unknown operation.
    Keyctl,
    /// `request_key(NULL, NULL, NULL, 0)`.
    RequestKey,
    /// `init_module(NULL, 0, NULL)`.
    InitModule,
    /// `finit_module(-1, NULL, 0)`.
    FinitModule,
    /// `delete_module(NULL, 0)`.
    DeleteModule,
    /// `mount(NULL, NULL, NULL, 0, NULL)`.
    Mount,
    /// `umount2(NULL, 0)`.
    Umount2,
    /// `pivot_root(NULL, NULL)`.
    PivotRoot,
    /// `fsopen(NULL, 0)`.
    Fsopen,
    /// `open_tree(-1, NULL, ~0)`: undefined flag bits.
    OpenTree,
    /// `setns(-1, 0)`.
    Setns,
    /// `clone3(NULL, 0)`: a size below the smallest `struct clone_args`.
    Clone3,
    /// `ptrace(INT_MAX, 0, NULL, NULL)`: an unknown request for pid 0.
    Ptrace,
    /// `process_vm_readv(0, NULL, 0, NULL, 0, 1)`: undefined flag bits.
    ProcessVmReadv,
    /// `open_by_handle_at(-1, NULL, 0)`.
    OpenByHandleAt,
    /// `syslog(INT_MAX, NULL, 0)`: an unknown action.
    Syslog,
    /// `swapon(NULL, ~0)`: undefined flag bits.
    Swapon,
    /// `kexec_load(0, 0, NULL, ~0)`: undefined flag bits.
    KexecLoad,
    /// `kexec_file_load(-1, -1, 0, NULL, ~0)`: undefined flag bits.
    KexecFileLoad,
}

impl SyscallProbe {
    /// Every probe, for checks that try them all.
    pub const ALL: [SyscallProbe; 26] = [
        Self::IoUringSetup,
        Self::IoUringEnter,
        Self::IoUringRegister,
        Self::Userfaultfd,
        Self::PerfEventOpen,
        Self::Bpf,
        Self::AddKey,
        Self::Keyctl,
        Self::RequestKey,
        Self::InitModule,
        Self::FinitModule,
        Self::DeleteModule,
        Self::Mount,
        Self::Umount2,
        Self::PivotRoot,
        Self::Fsopen,
        Self::OpenTree,
        Self::Setns,
        Self::Clone3,
        Self::Ptrace,
        Self::ProcessVmReadv,
        Self::OpenByHandleAt,
        Self::Syslog,
        Self::Swapon,
        Self::KexecLoad,
        Self::KexecFileLoad,
    ];

    /// The system call's name, as seccomp profiles spell it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::IoUringSetup => "io_uring_setup",
            Self::IoUringEnter => "io_uring_enter",
            Self::IoUringRegister => "io_uring_register",
            Self::Userfaultfd => "userfaultfd",
            Self::PerfEventOpen => "perf_event_open",
            Self::Bpf => "bpf",
            Self::AddKey => "add_key",
            Self::Keyctl => "keyctl",
            Self::RequestKey => "request_key",
            Self::InitModule => "init_module",
            Self::FinitModule => "finit_module",
            Self::DeleteModule => "delete_module",
            Self::Mount => "mount",
            Self::Umount2 => "umount2",
            Self::PivotRoot => "pivot_root",
            Self::Fsopen => "fsopen",
            Self::OpenTree => "open_tree",
            Self::Setns => "setns",
            Self::Clone3 => "clone3",
            Self::Ptrace => "ptrace",
            Self::ProcessVmReadv => "process_vm_readv",
            Self::OpenByHandleAt => "open_by_handle_at",
            Self::Syslog => "syslog",
            Self::Swapon => "swapon",
            Self::KexecLoad => "kexec_load",
            Self::KexecFileLoad => "kexec_file_load",
        }
    }

    /// The system call number and its six arguments. Pointers are NULL and descriptors -1.
    fn call(self) -> (libc::c_long, [libc::c_long; 6]) {
        const NONE: libc::c_long = -1;
        const UNKNOWN: libc::c_long = i32::MAX as libc::c_long;
        const ALL_BITS: libc::c_long = u32::MAX as libc::c_long;
        match self {
            Self::IoUringSetup => (libc::SYS_io_uring_setup, [0; 6]),
            Self::IoUringEnter => (libc::SYS_io_uring_enter, [NONE, 0, 0, 0, 0, 0]),
            Self::IoUringRegister => (libc::SYS_io_uring_register, [NONE, 0, 0, 0, 0, 0]),
            Self::Userfaultfd => (libc::SYS_userfaultfd, [ALL_BITS, 0, 0, 0, 0, 0]),
            Self::PerfEventOpen => (libc::SYS_perf_event_open, [0, 0, NONE, NONE, 0, 0]),
            Self::Bpf => (libc::SYS_bpf, [UNKNOWN, 0, 0, 0, 0, 0]),
            Self::AddKey => (libc::SYS_add_key, [0; 6]),
            Self::Keyctl => (libc::SYS_keyctl, [UNKNOWN, 0, 0, 0, 0, 0]),
            Self::RequestKey => (libc::SYS_request_key, [0; 6]),
            Self::InitModule => (libc::SYS_init_module, [0; 6]),
            Self::FinitModule => (libc::SYS_finit_module, [NONE, 0, 0, 0, 0, 0]),
            Self::DeleteModule => (libc::SYS_delete_module, [0; 6]),
            Self::Mount => (libc::SYS_mount, [0; 6]),
            Self::Umount2 => (libc::SYS_umount2, [0; 6]),
            Self::PivotRoot => (libc::SYS_pivot_root, [0; 6]),
            Self::Fsopen => (libc::SYS_fsopen, [0; 6]),
            Self::OpenTree => (libc::SYS_open_tree, [NONE, 0, ALL_BITS, 0, 0, 0]),
            Self::Setns => (libc::SYS_setns, [NONE, 0, 0, 0, 0, 0]),
            Self::Clone3 => (libc::SYS_clone3, [0; 6]),
            Self::Ptrace => (libc::SYS_ptrace, [UNKNOWN, 0, 0, 0, 0, 0]),
            Self::ProcessVmReadv => (libc::SYS_process_vm_readv, [0, 0, 0, 0, 0, 1]),
            Self::OpenByHandleAt => (libc::SYS_open_by_handle_at, [NONE, 0, 0, 0, 0, 0]),
            Self::Syslog => (libc::SYS_syslog, [UNKNOWN, 0, 0, 0, 0, 0]),
            Self::Swapon => (libc::SYS_swapon, [0, ALL_BITS, 0, 0, 0, 0]),
            Self::KexecLoad => (libc::SYS_kexec_load, [0, 0, 0, ALL_BITS, 0, 0]),
            Self::KexecFileLoad => (libc::SYS_kexec_file_load, [NONE, NONE, 0, 0, ALL_BITS, 0]),
        }
    }
}

/// Issues `probe`'s system call with its harmless arguments and returns what the call returned:
/// `Ok` with the raw result if it succeeded (which none should), or the error otherwise.
pub fn probe(probe: SyscallProbe) -> io::Result<libc::c_long> {
    let (nr, [a0, a1, a2, a3, a4, a5]) = probe.call();
    // SAFETY: every argument list above holds only integers, descriptors of -1 and NULL
    // pointers, and was chosen so that the kernel rejects the call while validating its
    // arguments: it neither reads nor writes any memory of this process (a NULL user pointer
    // faults in the kernel with EFAULT) nor changes any state (unknown commands and undefined
    // flag bits are refused before any work is done).
    let result = unsafe { libc::syscall(nr, a0, a1, a2, a3, a4, a5) };
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

/// Reads the kernel's message buffer (`syslog(SYSLOG_ACTION_READ_ALL)`, what `dmesg` does)
/// into `buffer`; returns how many bytes the kernel wrote. Containers must be refused.
pub fn read_kernel_log(buffer: &mut [u8]) -> io::Result<usize> {
    const SYSLOG_ACTION_READ_ALL: libc::c_int = 3;
    let len = libc::c_int::try_from(buffer.len()).unwrap_or(libc::c_int::MAX);
    // SAFETY: the kernel writes at most `len` bytes into `buffer`, which is valid for writes of
    // `buffer.len() >= len` bytes for the duration of the call; nothing else is touched.
    let result = unsafe { libc::klogctl(SYSLOG_ACTION_READ_ALL, buffer.as_mut_ptr().cast(), len) };
    usize::try_from(result).map_err(|_| io::Error::last_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::size_of;

    #[test]
    fn kernel_structs_have_the_uapi_sizes() {
        assert_eq!(size_of::<libc::seccomp_data>(), 64);
        assert_eq!(size_of::<libc::seccomp_notif>(), 80);
        assert_eq!(size_of::<libc::seccomp_notif_resp>(), 24);
        assert_eq!(size_of::<libc::sock_filter>(), 8);
    }

    #[test]
    fn flag_constants_match_libc() {
        assert_eq!(
            libc::c_ulong::from(FILTER_FLAG_TSYNC),
            libc::SECCOMP_FILTER_FLAG_TSYNC
        );
        assert_eq!(
            libc::c_ulong::from(FILTER_FLAG_LOG),
            libc::SECCOMP_FILTER_FLAG_LOG
        );
        assert_eq!(
            libc::c_ulong::from(FILTER_FLAG_SPEC_ALLOW),
            libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
        );
        assert_eq!(
            libc::c_ulong::from(FILTER_FLAG_NEW_LISTENER),
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
        );
        assert_eq!(
            libc::c_ulong::from(FILTER_FLAG_TSYNC_ESRCH),
            libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH
        );
        assert_eq!(
            libc::c_ulong::from(FILTER_FLAG_WAIT_KILLABLE_RECV),
            libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
        );
    }

    #[test]
    fn programs_of_the_wrong_length_are_refused_before_the_kernel() {
        let error = install_filter(&[], 0).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        let long = vec![
            libc::sock_filter {
                code: 0x06,
                jt: 0,
                jf: 0,
                k: 0x7fff_0000,
            };
            MAX_INSTRUCTIONS + 1
        ];
        let error = install_filter(&long, 0).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn errno_responses_are_checked() {
        let file = std::fs::File::open("/dev/null").unwrap();
        use std::os::fd::AsFd;
        let error = respond(file.as_fd(), 1, NotificationResponse::Fail(0)).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        let error = respond(file.as_fd(), 1, NotificationResponse::Fail(4096)).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn probe_names_are_unique() {
        let mut names: Vec<_> = SyscallProbe::ALL.iter().map(|p| p.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SyscallProbe::ALL.len());
    }

    #[test]
    fn probes_fail_without_a_filter() {
        // Without any filter each probe must fail: the arguments are invalid on purpose.
        for p in SyscallProbe::ALL {
            assert!(probe(p).is_err(), "{} succeeded", p.name());
        }
    }
}
