//! Landlock queries the `landlock` crate deliberately does not expose.

/// `LANDLOCK_CREATE_RULESET_VERSION` from `include/uapi/linux/landlock.h`.
const CREATE_RULESET_VERSION: libc::c_ulong = 1 << 0;

/// The Landlock ABI version the running kernel implements (`landlock_create_ruleset(NULL, 0,
/// LANDLOCK_CREATE_RULESET_VERSION)`), or `None` when it has no Landlock (not built in, or not
/// enabled at boot).
///
/// Use it to choose behaviour that is not an access right, such as the audit logging flags of
/// ABI 7; access rights themselves are better left to the crate's best-effort compatibility.
pub fn abi_version() -> Option<u32> {
    // SAFETY: with a null attribute pointer, a size of 0 and only the VERSION flag, the kernel
    // reads no memory of ours and creates no descriptor; it only returns the ABI number.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    // A negative result is ENOSYS (not built in) or EOPNOTSUPP (not enabled at boot).
    u32::try_from(rc).ok().filter(|version| *version > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_abi_version_is_reported_when_landlock_is_active() {
        // Landlock is active exactly when the LSM list names it.
        let active = std::fs::read_to_string("/sys/kernel/security/lsm")
            .map(|list| list.split(',').any(|lsm| lsm.trim() == "landlock"));
        match active {
            Ok(true) => assert!(abi_version().is_some_and(|v| v >= 1)),
            Ok(false) => assert_eq!(abi_version(), None),
            Err(_) => eprintln!("skipped: /sys/kernel/security/lsm is not readable"),
        }
    }
}
