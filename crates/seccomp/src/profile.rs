//! Seccomp profiles as data: parsing profile files, and Palisade's default profile.
//!
//! A profile file is an OCI `LinuxSeccomp` object, plus optional `"comment"` strings on the
//! profile and on each rule, in the style of Firecracker's `resources/seccomp/*.json`, so that
//! every rule carries its reason where it is reviewed. Parsing is strict: a field the OCI schema
//! does not define is an error rather than silently ignored, because a Docker-format profile
//! (`archMap`, `includes`, `excludes`) read loosely would turn its capability-conditional rules
//! into unconditional ones.

use oci_spec::runtime::LinuxSeccomp;
use serde_json::{Map, Value};

/// The default profile as reviewed: `profiles/default.json` of this crate.
const DEFAULT_PROFILE_JSON: &str = include_str!("../profiles/default.json");

/// Fields of `LinuxSeccomp`.
const PROFILE_FIELDS: [&str; 7] = [
    "defaultAction",
    "defaultErrnoRet",
    "architectures",
    "flags",
    "listenerPath",
    "listenerMetadata",
    "syscalls",
];
/// Fields of `LinuxSyscall`.
const RULE_FIELDS: [&str; 4] = ["names", "action", "errnoRet", "args"];
/// Fields of `LinuxSeccompArg`.
const ARG_FIELDS: [&str; 4] = ["index", "value", "valueTwo", "op"];
/// The annotation field allowed on the profile and on each rule.
const COMMENT: &str = "comment";

/// Errors from parsing a seccomp profile file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// Not JSON at all.
    #[error("seccomp profile is not valid JSON")]
    Json {
        /// The parser's error, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// A field the OCI schema does not define.
    #[error("unknown field {field:?} in {location} of the seccomp profile")]
    UnknownField {
        /// `"the profile"`, `"syscalls[3]"` or `"syscalls[3].args[0]"`.
        location: String,
        /// The field's name.
        field: String,
    },
    /// JSON that does not fit the OCI schema (a missing `defaultAction`, an unknown action,
    /// architecture, operator or flag, a wrong type).
    #[error("seccomp profile does not follow the OCI LinuxSeccomp schema")]
    Schema {
        /// The deserializer's error.
        #[source]
        source: serde_json::Error,
    },
}

/// Parses a seccomp profile: an OCI `LinuxSeccomp` object whose profile and rules may carry a
/// `"comment"`.
pub fn parse_profile(json: &str) -> Result<LinuxSeccomp, ProfileError> {
    let mut value: Value =
        serde_json::from_str(json).map_err(|source| ProfileError::Json { source })?;
    strip_comments(&mut value)?;
    serde_json::from_value(value).map_err(|source| ProfileError::Schema { source })
}

/// Palisade's default profile, as JSON with a comment on every rule.
pub fn default_profile_json() -> &'static str {
    DEFAULT_PROFILE_JSON
}

/// Palisade's hardened default profile: an allow-list of the system calls ordinary Linux
/// programs need, stricter than Docker's default. See `profiles/default.json` for every rule
/// and its reason.
pub fn default_profile() -> LinuxSeccomp {
    // The profile is part of this crate, not input; `tests::default_profile_parses` keeps it
    // valid.
    #[allow(clippy::expect_used)]
    parse_profile(DEFAULT_PROFILE_JSON).expect("the embedded default seccomp profile is valid")
}

/// Removes `"comment"` fields and refuses fields the schema does not know.
fn strip_comments(value: &mut Value) -> Result<(), ProfileError> {
    let Some(profile) = value.as_object_mut() else {
        // Not an object: let the schema check say so.
        return Ok(());
    };
    check_fields(profile, &PROFILE_FIELDS, true, || "the profile".to_owned())?;
    let Some(Value::Array(rules)) = profile.get_mut("syscalls") else {
        return Ok(());
    };
    for (position, rule) in rules.iter_mut().enumerate() {
        let Some(rule) = rule.as_object_mut() else {
            continue;
        };
        check_fields(rule, &RULE_FIELDS, true, || format!("syscalls[{position}]"))?;
        let Some(Value::Array(args)) = rule.get_mut("args") else {
            continue;
        };
        for (arg_position, arg) in args.iter_mut().enumerate() {
            let Some(arg) = arg.as_object_mut() else {
                continue;
            };
            check_fields(arg, &ARG_FIELDS, false, || {
                format!("syscalls[{position}].args[{arg_position}]")
            })?;
        }
    }
    Ok(())
}

fn check_fields(
    object: &mut Map<String, Value>,
    known: &[&str],
    comment_allowed: bool,
    location: impl Fn() -> String,
) -> Result<(), ProfileError> {
    if comment_allowed {
        object.remove(COMMENT);
    }
    match object.keys().find(|key| !known.contains(&key.as_str())) {
        Some(field) => Err(ProfileError::UnknownField {
            location: location(),
            field: field.clone(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Abi;
    use crate::bpf::interpreter::run;
    use crate::compile::tests::{
        verdict, x86_64, AUDIT_AARCH64, AUDIT_ARM, AUDIT_I386, AUDIT_X86_64,
    };
    use crate::compile::{compile_for, BAD_ARCH_ACTION, NEWER_THAN_PROFILE_ACTION};
    use crate::SeccompWarning;
    use oci_spec::runtime::{Arch, LinuxSeccompAction};
    use proptest::prelude::*;

    const ALLOW: u32 = 0x7fff_0000;
    const EPERM: u32 = 0x0005_0001;
    const CLONE_NEWUSER: u64 = 0x1000_0000;
    const CLONE_NEWNS: u64 = 0x0002_0000;
    const CLONE_NEWNET: u64 = 0x4000_0000;
    /// The flags glibc's pthread_create passes to clone.
    const THREAD_FLAGS: u64 = 0x003d_0f00;

    #[test]
    fn default_profile_parses() {
        let profile = default_profile();
        assert_eq!(profile.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(profile.default_errno_ret(), Some(1));
        assert!(profile
            .syscalls()
            .as_ref()
            .is_some_and(|rules| rules.len() > 20));
    }

    #[test]
    fn every_name_in_the_default_profile_is_a_real_syscall() {
        let profile = default_profile();
        let abis = [Abi::X86_64, Abi::X32, Abi::X86, Abi::Aarch64, Abi::Arm];
        for rule in profile.syscalls().iter().flatten() {
            for name in rule.names() {
                assert!(
                    abis.iter().any(|abi| abi.syscall_number(name).is_some()),
                    "{name} is no syscall of any supported architecture (a typo?)"
                );
            }
        }
    }

    #[test]
    fn the_default_profile_compiles_for_both_families_with_only_other_arch_names_skipped() {
        for native in [Arch::ScmpArchX86_64, Arch::ScmpArchAarch64] {
            let filter = compile_for(&default_profile(), native).unwrap();
            assert!(filter.program().len() < 2000, "{}", filter.program().len());
            assert!(!filter.needs_listener());
            for warning in filter.warnings() {
                assert!(
                    matches!(
                        warning,
                        SeccompWarning::SyscallMissingOnArchitectures { .. }
                    ),
                    "{warning}"
                );
            }
        }
    }

    #[test]
    fn the_default_profile_allows_ordinary_calls() {
        let filter = compile_for(&default_profile(), Arch::ScmpArchX86_64).unwrap();
        let call = x86_64(&filter);
        for name in [
            "read",
            "write",
            "openat",
            "close",
            "fstat",
            "newfstatat",
            "mmap",
            "munmap",
            "brk",
            "futex",
            "rt_sigaction",
            "execve",
            "exit_group",
            "wait4",
            "getdents64",
            "mkdirat",
            "unlinkat",
            "renameat2",
            "epoll_wait",
            "ioctl",
            "getrandom",
            "pipe2",
            "statx",
            "rseq",
            "set_robust_list",
            "prlimit64",
            "sched_yield",
            "connect",
            "sendmsg",
        ] {
            assert_eq!(call(name, [0; 6]), ALLOW, "{name}");
        }
        assert_eq!(call("clone", [THREAD_FLAGS, 0, 0, 0, 0, 0]), ALLOW);
        assert_eq!(
            call("clone", [0x0100_0011, 0, 0, 0, 0, 0]),
            ALLOW,
            "fork-like clone"
        );
        assert_eq!(
            call("unshare", [0x400, 0, 0, 0, 0, 0]),
            ALLOW,
            "CLONE_FILES"
        );
        for family in [1, 2, 10, 16] {
            assert_eq!(
                call("socket", [family, 1, 0, 0, 0, 0]),
                ALLOW,
                "family {family}"
            );
        }
        for persona in [0, 8, 0x20000, 0x20008, 0xffff_ffff] {
            assert_eq!(call("personality", [persona, 0, 0, 0, 0, 0]), ALLOW);
        }
        // i386 programs: their own numbers, socketcall included.
        for name in ["read", "socketcall", "mmap2", "set_thread_area", "_llseek"] {
            let nr = Abi::X86.syscall_number(name).unwrap();
            assert_eq!(
                verdict(&filter, AUDIT_I386, nr, [0; 6]),
                ALLOW,
                "i386 {name}"
            );
        }
    }

    #[test]
    fn the_default_profile_denies_the_dangerous_calls() {
        let filter = compile_for(&default_profile(), Arch::ScmpArchX86_64).unwrap();
        let call = x86_64(&filter);
        for name in [
            "io_uring_setup",
            "io_uring_enter",
            "io_uring_register",
            "userfaultfd",
            "perf_event_open",
            "bpf",
            "add_key",
            "keyctl",
            "request_key",
            "kexec_load",
            "kexec_file_load",
            "init_module",
            "finit_module",
            "delete_module",
            "mount",
            "umount2",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "move_mount",
            "open_tree",
            "mount_setattr",
            "pivot_root",
            "setns",
            "open_by_handle_at",
            "name_to_handle_at",
            "ptrace",
            "process_vm_readv",
            "process_vm_writev",
            "acct",
            "swapon",
            "swapoff",
            "reboot",
            "settimeofday",
            "clock_settime",
            "adjtimex",
            "clock_adjtime",
            "iopl",
            "ioperm",
            "syslog",
            "quotactl",
            "lookup_dcookie",
            "nfsservctl",
            "uselib",
            "_sysctl",
            "kcmp",
            "fanotify_init",
            "modify_ldt",
            "chroot",
            "pidfd_getfd",
        ] {
            assert_eq!(call(name, [0; 6]), EPERM, "{name}");
        }
        // clone3 keeps its flags in memory: ENOSYS so that libc falls back to clone.
        assert_eq!(call("clone3", [0; 6]), NEWER_THAN_PROFILE_ACTION);
        // No new namespaces, even with extra bits set in the upper half of the flags word.
        for flags in [
            CLONE_NEWUSER,
            THREAD_FLAGS | CLONE_NEWUSER,
            (1 << 32) | CLONE_NEWUSER,
            CLONE_NEWNS,
            CLONE_NEWNET | 0x11,
        ] {
            assert_eq!(
                call("clone", [flags, 0, 0, 0, 0, 0]),
                EPERM,
                "clone {flags:#x}"
            );
            assert_eq!(
                call("unshare", [flags, 0, 0, 0, 0, 0]),
                EPERM,
                "unshare {flags:#x}"
            );
        }
        // CLONE_NEWTIME (0x80) is a namespace for unshare (for clone it is part of the signal).
        assert_eq!(call("unshare", [0x80, 0, 0, 0, 0, 0]), EPERM);
        // Rare socket families and weakening personalities.
        for family in [3, 5, 38, 40, 30, 21, 0x1_0000_0002] {
            assert_eq!(
                call("socket", [family, 1, 0, 0, 0, 0]),
                EPERM,
                "family {family}"
            );
        }
        for persona in [0x0040_0000, 0x0004_0000, 0x0010_0000, 0x1_0000_0000] {
            assert_eq!(call("personality", [persona, 0, 0, 0, 0, 0]), EPERM);
        }
        // Calls newer than the profile, x32 calls, foreign architectures.
        assert_eq!(
            verdict(&filter, AUDIT_X86_64, 520, [0; 6]),
            NEWER_THAN_PROFILE_ACTION
        );
        assert_eq!(
            verdict(&filter, AUDIT_X86_64, 0x4000_0000, [0; 6]),
            BAD_ARCH_ACTION
        );
        assert_eq!(verdict(&filter, AUDIT_AARCH64, 63, [0; 6]), BAD_ARCH_ACTION);
        // i386: the same denials through the i386 numbers.
        for name in ["io_uring_setup", "bpf", "keyctl", "mount", "vm86", "ptrace"] {
            let nr = Abi::X86.syscall_number(name).unwrap();
            assert_eq!(
                verdict(&filter, AUDIT_I386, nr, [0; 6]),
                EPERM,
                "i386 {name}"
            );
        }
        let clone = Abi::X86.syscall_number("clone").unwrap();
        assert_eq!(
            verdict(&filter, AUDIT_I386, clone, [CLONE_NEWUSER, 0, 0, 0, 0, 0]),
            EPERM
        );
    }

    #[test]
    fn the_default_profile_on_arm64() {
        let filter = compile_for(&default_profile(), Arch::ScmpArchAarch64).unwrap();
        let arm64 = |name: &str, args| {
            let nr = Abi::Aarch64.syscall_number(name).unwrap();
            verdict(&filter, AUDIT_AARCH64, nr, args)
        };
        assert_eq!(arm64("openat", [0; 6]), ALLOW);
        assert_eq!(arm64("clone", [THREAD_FLAGS, 0, 0, 0, 0, 0]), ALLOW);
        assert_eq!(arm64("clone", [CLONE_NEWUSER, 0, 0, 0, 0, 0]), EPERM);
        assert_eq!(arm64("io_uring_setup", [0; 6]), EPERM);
        assert_eq!(arm64("clone3", [0; 6]), NEWER_THAN_PROFILE_ACTION);
        let set_tls = Abi::Arm.syscall_number("set_tls").unwrap();
        assert_eq!(verdict(&filter, AUDIT_ARM, set_tls, [0; 6]), ALLOW);
        let bpf = Abi::Arm.syscall_number("bpf").unwrap();
        assert_eq!(verdict(&filter, AUDIT_ARM, bpf, [0; 6]), EPERM);
        assert_eq!(verdict(&filter, AUDIT_X86_64, 0, [0; 6]), BAD_ARCH_ACTION);
    }

    /// The cost of the allow path: instructions the kernel runs for each allowed call.
    ///
    /// The layout is a binary search over ranges of syscall numbers with one action each, so a
    /// call costs two instructions for the architecture check, one load, about log2(ranges)
    /// comparisons and a return, whatever its number. A linear list (one comparison per
    /// allowed syscall, as the simplest compilers emit) would cost up to ~300 for the same
    /// profile.
    #[test]
    fn allowed_calls_run_few_instructions() {
        let filter = compile_for(&default_profile(), Arch::ScmpArchX86_64).unwrap();
        let mut worst = (0, String::new());
        let mut total = 0;
        let mut count = 0;
        for sysno in syscalls::x86_64::Sysno::iter() {
            let data =
                crate::bpf::interpreter::SeccompData::new(AUDIT_X86_64, sysno.id() as u32, [0; 6]);
            let outcome = run(filter.program(), &data).unwrap();
            if outcome.action == ALLOW {
                total += outcome.executed;
                count += 1;
                if outcome.executed > worst.0 {
                    worst = (outcome.executed, sysno.name().to_owned());
                }
            }
        }
        let read = crate::bpf::interpreter::SeccompData::new(AUDIT_X86_64, 0, [0; 6]);
        let read = run(filter.program(), &read).unwrap().executed;
        println!(
            "default profile, x86_64: {} instructions; read runs {read}; allowed calls run {:.1} \
             on average ({count} calls), at most {} ({})",
            filter.program().len(),
            total as f64 / f64::from(count),
            worst.0,
            worst.1
        );
        assert!(read <= 14, "read runs {read} instructions");
        assert!(worst.0 <= 16, "{} runs {} instructions", worst.1, worst.0);
    }

    #[test]
    fn comments_are_dropped_and_the_rest_is_oci() {
        let profile = parse_profile(
            r#"{
                "comment": "why",
                "defaultAction": "SCMP_ACT_ERRNO",
                "syscalls": [{
                    "comment": "because",
                    "names": ["read"],
                    "action": "SCMP_ACT_ALLOW",
                    "args": [{ "index": 0, "value": 1, "op": "SCMP_CMP_EQ" }]
                }]
            }"#,
        )
        .unwrap();
        assert_eq!(profile.syscalls().as_ref().map(Vec::len), Some(1));
    }

    #[test]
    fn malformed_profiles_are_refused_with_the_reason() {
        let cases = [
            ("", "not valid JSON"),
            ("{", "not valid JSON"),
            ("[]", "OCI LinuxSeccomp schema"),
            ("{}", "OCI LinuxSeccomp schema"),
            (
                r#"{"defaultAction": "SCMP_ACT_MAYBE"}"#,
                "OCI LinuxSeccomp schema",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]}"#,
                "OCI LinuxSeccomp schema",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_FAST"]}"#,
                "OCI LinuxSeccomp schema",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": -1}"#,
                "OCI LinuxSeccomp schema",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_ALLOW"}]}"#,
                "OCI LinuxSeccomp schema",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "archMap": []}"#,
                "unknown field \"archMap\" in the profile",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                    {"names": ["mount"], "action": "SCMP_ACT_ALLOW",
                     "includes": {"caps": ["CAP_SYS_ADMIN"]}}]}"#,
                "unknown field \"includes\" in syscalls[0]",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                    {"names": ["read"], "action": "SCMP_ACT_ALLOW",
                     "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ", "comment": "x"}]}]}"#,
                "unknown field \"comment\" in syscalls[0].args[0]",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                    {"names": ["read"], "action": "SCMP_ACT_ALLOW",
                     "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ABOUT"}]}]}"#,
                "OCI LinuxSeccomp schema",
            ),
        ];
        for (json, expected) in cases {
            let error = parse_profile(json).unwrap_err();
            assert!(error.to_string().contains(expected), "{json}: {error}");
        }
    }

    proptest! {
        /// Any bytes: a profile or a typed error, never a panic.
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
            let _ = parse_profile(&text);
        }

        /// Valid JSON of any shape: a profile or a typed error, and what parses compiles or
        /// fails with a typed error.
        #[test]
        fn arbitrary_json_never_panics(value in arbitrary_json()) {
            if let Ok(profile) = parse_profile(&value.to_string()) {
                let _ = compile_for(&profile, Arch::ScmpArchX86_64);
            }
        }
    }

    fn arbitrary_json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            prop::sample::select(vec![
                "SCMP_ACT_ALLOW",
                "SCMP_ACT_ERRNO",
                "SCMP_ACT_NOTIFY",
                "SCMP_CMP_EQ",
                "SCMP_ARCH_X86",
                "read",
                "mkdirat",
                "",
            ])
            .prop_map(serde_json::Value::from),
        ];
        let keys = prop::sample::select(vec![
            "defaultAction",
            "defaultErrnoRet",
            "architectures",
            "flags",
            "listenerPath",
            "syscalls",
            "names",
            "action",
            "errnoRet",
            "args",
            "index",
            "value",
            "valueTwo",
            "op",
            "comment",
        ]);
        leaf.prop_recursive(4, 64, 8, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
                prop::collection::btree_map(keys.clone(), inner, 0..6).prop_map(|map| {
                    serde_json::Value::Object(
                        map.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
                    )
                }),
            ]
        })
    }
}
