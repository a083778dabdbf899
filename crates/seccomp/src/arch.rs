//! The system call ABIs a filter can cover, and the name → number table of each.
//!
//! The kernel tells a filter which calling convention a system call used through
//! `seccomp_data.arch` (an `AUDIT_ARCH_*` value). An x86-64 kernel runs x86-64, i386 and x32
//! programs; an arm64 kernel runs arm64 and 32-bit ARM programs. x32 shares `AUDIT_ARCH_X86_64`
//! with x86-64 and marks its calls by setting bit 30 of the system call number, the way
//! libseccomp and the kernel do.

use std::str::FromStr;

use oci_spec::runtime::Arch;

/// `__X32_SYSCALL_BIT`: set in the number of every x32 system call.
pub(crate) const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// First number of the ARM-private system calls (`__ARM_NR_BASE`).
const ARM_PRIVATE_BASE: u32 = 0x000f_0000;

/// The ARM-private system calls (`arch/arm/include/uapi/asm/unistd.h`), which the generic tables
/// do not list.
const ARM_PRIVATE: [(&str, u32); 6] = [
    ("breakpoint", ARM_PRIVATE_BASE + 1),
    ("cacheflush", ARM_PRIVATE_BASE + 2),
    ("usr26", ARM_PRIVATE_BASE + 3),
    ("usr32", ARM_PRIVATE_BASE + 4),
    ("set_tls", ARM_PRIVATE_BASE + 5),
    ("get_tls", ARM_PRIVATE_BASE + 6),
];

/// x32 system calls whose x32 number differs from the x86-64 one: the kernel's
/// `syscall_64.tbl` gives them numbers 512 to 547 (plus the x32 bit), because their arguments
/// have a different layout for x32.
const X32_RENUMBERED: [(&str, u32); 36] = [
    ("rt_sigaction", 512),
    ("rt_sigreturn", 513),
    ("ioctl", 514),
    ("readv", 515),
    ("writev", 516),
    ("recvfrom", 517),
    ("sendmsg", 518),
    ("recvmsg", 519),
    ("execve", 520),
    ("ptrace", 521),
    ("rt_sigpending", 522),
    ("rt_sigtimedwait", 523),
    ("rt_sigqueueinfo", 524),
    ("sigaltstack", 525),
    ("timer_create", 526),
    ("mq_notify", 527),
    ("kexec_load", 528),
    ("waitid", 529),
    ("set_robust_list", 530),
    ("get_robust_list", 531),
    ("vmsplice", 532),
    ("move_pages", 533),
    ("preadv", 534),
    ("pwritev", 535),
    ("rt_tgsigqueueinfo", 536),
    ("recvmmsg", 537),
    ("sendmmsg", 538),
    ("process_vm_readv", 539),
    ("process_vm_writev", 540),
    ("setsockopt", 541),
    ("getsockopt", 542),
    ("io_setup", 543),
    ("io_submit", 544),
    ("execveat", 545),
    ("preadv2", 546),
    ("pwritev2", 547),
];

/// Entries of `syscall_64.tbl` marked "64" that have no x32 counterpart at all.
const X86_64_ONLY: [&str; 11] = [
    "uselib",
    "_sysctl",
    "create_module",
    "get_kernel_syms",
    "query_module",
    "nfsservctl",
    "set_thread_area",
    "get_thread_area",
    "epoll_ctl_old",
    "epoll_wait_old",
    "vserver",
];

/// A system call ABI: one calling convention with its own numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Abi {
    X86_64,
    X32,
    X86,
    Aarch64,
    Arm,
}

impl Abi {
    /// Every ABI Palisade has a system call table for.
    pub(crate) const ALL: [Abi; 5] = [Abi::X86_64, Abi::X32, Abi::X86, Abi::Aarch64, Abi::Arm];

    /// The ABIs a kernel of native ABI `native` can run, native first.
    pub(crate) fn family(native: Abi) -> &'static [Abi] {
        match native {
            Abi::X86_64 | Abi::X32 | Abi::X86 => &[Abi::X86_64, Abi::X86, Abi::X32],
            Abi::Aarch64 | Abi::Arm => &[Abi::Aarch64, Abi::Arm],
        }
    }

    /// The ABI an OCI architecture names, or `None` for architectures Palisade has no system
    /// call table for. `SCMP_ARCH_NATIVE` is `native`.
    pub(crate) fn from_oci(arch: Arch, native: Abi) -> Option<Abi> {
        match arch {
            Arch::ScmpArchNative => Some(native),
            Arch::ScmpArchX86_64 => Some(Abi::X86_64),
            Arch::ScmpArchX32 => Some(Abi::X32),
            Arch::ScmpArchX86 => Some(Abi::X86),
            Arch::ScmpArchAarch64 => Some(Abi::Aarch64),
            Arch::ScmpArchArm => Some(Abi::Arm),
            _ => None,
        }
    }

    /// The OCI name of this ABI.
    pub(crate) fn oci(self) -> Arch {
        match self {
            Abi::X86_64 => Arch::ScmpArchX86_64,
            Abi::X32 => Arch::ScmpArchX32,
            Abi::X86 => Arch::ScmpArchX86,
            Abi::Aarch64 => Arch::ScmpArchAarch64,
            Abi::Arm => Arch::ScmpArchArm,
        }
    }

    /// The `AUDIT_ARCH_*` value the kernel puts in `seccomp_data.arch` for this ABI.
    pub(crate) fn audit_arch(self) -> u32 {
        const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
        const AUDIT_ARCH_I386: u32 = 0x4000_0003;
        const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;
        const AUDIT_ARCH_ARM: u32 = 0x4000_0028;
        match self {
            Abi::X86_64 | Abi::X32 => AUDIT_ARCH_X86_64,
            Abi::X86 => AUDIT_ARCH_I386,
            Abi::Aarch64 => AUDIT_ARCH_AARCH64,
            Abi::Arm => AUDIT_ARCH_ARM,
        }
    }

    /// Whether system call arguments are 64 bits wide. For 32-bit ABIs only the low word of
    /// an argument carries data, and filters compare only that word (as libseccomp does).
    pub(crate) fn has_wide_arguments(self) -> bool {
        matches!(self, Abi::X86_64 | Abi::X32 | Abi::Aarch64)
    }

    /// The numbers this ABI's regular system calls use, `[start, end)`. Numbers of this range
    /// above the newest call a profile names are assumed to be calls newer than the profile
    /// (see the ENOSYS rule in `compile`).
    pub(crate) fn regular_range(self) -> (u64, u64) {
        match self {
            Abi::X86_64 => (0, u64::from(X32_SYSCALL_BIT)),
            Abi::X32 => (u64::from(X32_SYSCALL_BIT), 1 << 32),
            Abi::X86 | Abi::Aarch64 => (0, 1 << 32),
            Abi::Arm => (0, u64::from(ARM_PRIVATE_BASE)),
        }
    }

    /// The number of system call `name` in this ABI, or `None` if the ABI has no such call.
    pub(crate) fn syscall_number(self, name: &str) -> Option<u32> {
        let number = match self {
            Abi::X86_64 => syscalls::x86_64::Sysno::from_str(name).ok()?.id(),
            Abi::X86 => syscalls::x86::Sysno::from_str(name).ok()?.id(),
            Abi::Aarch64 => syscalls::aarch64::Sysno::from_str(name).ok()?.id(),
            Abi::Arm => {
                if let Some(&(_, number)) = ARM_PRIVATE.iter().find(|(n, _)| *n == name) {
                    return Some(number);
                }
                syscalls::arm::Sysno::from_str(name).ok()?.id()
            }
            Abi::X32 => return x32_number(name),
        };
        u32::try_from(number).ok()
    }
}

/// The x32 number of `name`, bit 30 included.
fn x32_number(name: &str) -> Option<u32> {
    if let Some(&(_, number)) = X32_RENUMBERED.iter().find(|(n, _)| *n == name) {
        return Some(X32_SYSCALL_BIT | number);
    }
    if X86_64_ONLY.contains(&name) {
        return None;
    }
    let number = u32::try_from(syscalls::x86_64::Sysno::from_str(name).ok()?.id()).ok()?;
    (number < 512).then_some(X32_SYSCALL_BIT | number)
}

/// The ABI of the machine this crate was built for, if Palisade supports it.
pub(crate) fn native() -> Option<Abi> {
    if cfg!(target_arch = "x86_64") {
        Some(Abi::X86_64)
    } else if cfg!(target_arch = "aarch64") {
        Some(Abi::Aarch64)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_the_kernel_tables() {
        assert_eq!(Abi::X86_64.syscall_number("read"), Some(0));
        assert_eq!(Abi::X86_64.syscall_number("mkdirat"), Some(258));
        assert_eq!(Abi::X86_64.syscall_number("io_uring_setup"), Some(425));
        assert_eq!(Abi::X86.syscall_number("socketcall"), Some(102));
        assert_eq!(Abi::X86.syscall_number("mkdirat"), Some(296));
        assert_eq!(Abi::Aarch64.syscall_number("mkdirat"), Some(34));
        assert_eq!(Abi::Aarch64.syscall_number("open"), None);
        assert_eq!(Abi::Arm.syscall_number("mkdirat"), Some(323));
        assert_eq!(Abi::Arm.syscall_number("cacheflush"), Some(0x000f_0002));
        assert_eq!(Abi::X86_64.syscall_number("no_such_call"), None);
    }

    #[test]
    fn x32_numbers_carry_bit_30_and_the_x32_renumbering() {
        assert_eq!(Abi::X32.syscall_number("read"), Some(X32_SYSCALL_BIT));
        assert_eq!(
            Abi::X32.syscall_number("mkdirat"),
            Some(X32_SYSCALL_BIT | 258)
        );
        assert_eq!(
            Abi::X32.syscall_number("ioctl"),
            Some(X32_SYSCALL_BIT | 514)
        );
        assert_eq!(
            Abi::X32.syscall_number("execve"),
            Some(X32_SYSCALL_BIT | 520)
        );
        assert_eq!(Abi::X32.syscall_number("uselib"), None);
        assert_eq!(Abi::X32.syscall_number("set_thread_area"), None);
        assert_eq!(
            Abi::X32.syscall_number("io_uring_setup"),
            Some(X32_SYSCALL_BIT | 425)
        );
    }

    #[test]
    fn oci_names_round_trip() {
        for abi in [Abi::X86_64, Abi::X32, Abi::X86, Abi::Aarch64, Abi::Arm] {
            assert_eq!(Abi::from_oci(abi.oci(), Abi::X86_64), Some(abi));
        }
        assert_eq!(
            Abi::from_oci(Arch::ScmpArchNative, Abi::Aarch64),
            Some(Abi::Aarch64)
        );
        assert_eq!(Abi::from_oci(Arch::ScmpArchMips, Abi::X86_64), None);
    }

    #[test]
    fn x32_shares_the_x86_64_audit_arch() {
        assert_eq!(Abi::X32.audit_arch(), Abi::X86_64.audit_arch());
        assert_ne!(Abi::X86.audit_arch(), Abi::X86_64.audit_arch());
    }
}
