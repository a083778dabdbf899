//! OCI seccomp profile → classic-BPF program.
//!
//! # Semantics
//!
//! The compiler follows runc with libseccomp, the reference for OCI profiles:
//!
//! - The filter covers the native architecture plus every listed one the kernel can run (on
//!   x86-64: `SCMP_ARCH_X86_64`, `SCMP_ARCH_X86`, `SCMP_ARCH_X32`; on arm64: `SCMP_ARCH_AARCH64`,
//!   `SCMP_ARCH_ARM`). Listed architectures of the other family are accepted and left out, since
//!   their calls cannot occur. A call made through any other ABI (an i386 `int 0x80` when
//!   `SCMP_ARCH_X86` is not listed, an x32 call when `SCMP_ARCH_X32` is not) kills the process:
//!   libseccomp's "bad architecture" action. libseccomp kills only the thread; Palisade kills the
//!   process, because a foreign-ABI call is the signature of an exploit and a half-killed
//!   process keeps running in an unknown state.
//! - Names unknown on an architecture are skipped there, and reported in
//!   [`SeccompFilter::warnings`].
//! - A rule whose action equals the default action is a no-op, as in runc.
//! - For one system call, an unconditional rule wins over conditional ones (libseccomp's "the
//!   more generic rule wins"); among unconditional rules the first wins. Conditional rules are
//!   tried in profile order and the first whose conditions all hold decides; if none holds, the
//!   default action applies. The conditions of one rule are ANDed (runc ORs them instead when
//!   two of them test the same argument, a compatibility quirk Palisade does not copy).
//! - Argument comparisons are on the full 64-bit value for 64-bit ABIs (high word first, then
//!   low word) and on the low 32 bits for 32-bit ABIs. `SCMP_CMP_MASKED_EQ` tests
//!   `(arg & value) == valueTwo`, with a missing `valueTwo` meaning 0.
//! - When the default action denies (anything but ALLOW, LOG and TRACE), calls numbered above
//!   the newest call the profile names for an ABI fail with `ENOSYS`, as runc does: they are
//!   calls newer than the profile, and `ENOSYS` makes libc fall back to older calls.
//! - `SECCOMP_FILTER_FLAG_NEW_LISTENER` is added when a rule uses `SCMP_ACT_NOTIFY` (with
//!   `SECCOMP_FILTER_FLAG_TSYNC_ESRCH` when TSYNC is also asked for, which the kernel requires).
//!
//! # Program layout
//!
//! ```text
//!     ld  arch
//!     jeq AUDIT_ARCH_<native>, next, section1   ; the native ABI is checked first
//! section1:
//!     ld  nr
//!     <binary search over ranges of syscall numbers>   ; ~log2(ranges) jge, then a leaf:
//!         ret <action>                                  ;   a whole range with one action, or
//!         <conditional rules of one syscall>; ret <default>
//! section2: ...
//!     ret KILL_PROCESS                                   ; no section matched: foreign ABI
//! ```
//!
//! Consecutive system call numbers with the same action form one range, so the search runs over
//! far fewer nodes than there are syscalls, and a common allowed call costs about a dozen
//! instructions. Long jumps are the assembler's concern (the `bpf` module).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};
use palisade_sys::seccomp as sys;

use crate::arch::{self, Abi};
use crate::bpf::{data, AssembleError, Assembler, Comparison, Label, Target};
use crate::filter::SeccompFilter;

/// `SECCOMP_RET_KILL_THREAD`.
const ACTION_KILL_THREAD: u32 = 0x0000_0000;
/// `SECCOMP_RET_KILL_PROCESS`.
const ACTION_KILL_PROCESS: u32 = 0x8000_0000;
/// `SECCOMP_RET_TRAP`.
const ACTION_TRAP: u32 = 0x0003_0000;
/// `SECCOMP_RET_ERRNO`; the low 16 bits carry the errno.
const ACTION_ERRNO: u32 = 0x0005_0000;
/// `SECCOMP_RET_USER_NOTIF`.
const ACTION_USER_NOTIF: u32 = 0x7fc0_0000;
/// `SECCOMP_RET_TRACE`; the low 16 bits are passed to the tracer.
const ACTION_TRACE: u32 = 0x7ff0_0000;
/// `SECCOMP_RET_LOG`.
const ACTION_LOG: u32 = 0x7ffc_0000;
/// `SECCOMP_RET_ALLOW`.
const ACTION_ALLOW: u32 = 0x7fff_0000;

/// What a call through an ABI the filter does not cover gets.
pub(crate) const BAD_ARCH_ACTION: u32 = ACTION_KILL_PROCESS;
/// What a call newer than the profile gets when the default action denies.
pub(crate) const NEWER_THAN_PROFILE_ACTION: u32 = ACTION_ERRNO | libc::ENOSYS as u32;

/// The errno of `SCMP_ACT_ERRNO` and `SCMP_ACT_TRACE` without `errnoRet` (runc's choice).
const DEFAULT_ERRNO: u32 = libc::EPERM as u32;

/// Errors from compiling or installing a seccomp profile.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SeccompError {
    /// `SCMP_ACT_NOTIFY` as the default action: every call, including those the runtime
    /// needs to hand the listener to the agent, would wait for an agent that cannot exist yet.
    #[error("SCMP_ACT_NOTIFY cannot be the default action; use it in rules for specific syscalls")]
    NotifyAsDefaultAction,
    /// A rule uses `SCMP_ACT_NOTIFY` but the profile names no agent.
    #[error("rule {rule} ({name}) uses SCMP_ACT_NOTIFY but the profile has no listenerPath")]
    NotifyWithoutListenerPath {
        /// Position of the rule in `syscalls`, from 0.
        rule: usize,
        /// The rule's first name.
        name: String,
    },
    /// A rule compares an argument that does not exist.
    #[error("rule {rule} ({name}) compares argument {index}; syscalls have arguments 0 to 5")]
    ArgumentIndexOutOfRange {
        /// Position of the rule in `syscalls`, from 0.
        rule: usize,
        /// The rule's first name.
        name: String,
        /// The index given.
        index: usize,
    },
    /// A rule names no system call.
    #[error("rule {rule} names no syscall")]
    RuleWithoutNames {
        /// Position of the rule in `syscalls`, from 0.
        rule: usize,
    },
    /// An errno that does not fit the 16 data bits of a seccomp return value.
    #[error("errno value {value} of {context} is larger than 65535")]
    ErrnoOutOfRange {
        /// `"the default action"` or `"rule N (name)"`.
        context: String,
        /// The value given.
        value: u32,
    },
    /// An architecture without a system call table in Palisade.
    #[error(
        "architecture {arch} is not supported; supported: SCMP_ARCH_X86_64, SCMP_ARCH_X86, \
         SCMP_ARCH_X32, SCMP_ARCH_AARCH64, SCMP_ARCH_ARM, SCMP_ARCH_NATIVE"
    )]
    UnsupportedArchitecture {
        /// The architecture listed.
        arch: Arch,
    },
    /// Filters can be compiled only for x86-64 and arm64 kernels.
    #[error("cannot compile seccomp filters for a {arch} kernel; supported: x86_64, aarch64")]
    UnsupportedNativeArchitecture {
        /// The native architecture asked for.
        arch: String,
    },
    /// The program is longer than the kernel accepts.
    #[error(
        "the seccomp program has {instructions} instructions; the kernel accepts at most 4096 \
         (simplify the profile: fewer argument rules)"
    )]
    ProgramTooLong {
        /// Its length.
        instructions: usize,
    },
    /// A bug in the compiler, not in the profile.
    #[error("internal error while assembling the seccomp program")]
    Assemble {
        /// What the assembler found.
        #[source]
        source: AssembleError,
    },
    /// The kernel refused the filter.
    #[error("failed to install the seccomp filter")]
    Install {
        /// The kernel's error (`EACCES`: no `no_new_privs` and no `CAP_SYS_ADMIN`; `EINVAL`: a
        /// flag or action this kernel does not support).
        #[source]
        source: io::Error,
    },
}

/// Something in a profile that compiled, but not quite as written.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SeccompWarning {
    /// The name is no system call of any architecture Palisade knows (a typo, or a call newer
    /// than Palisade's tables); its rules were skipped, as runc does.
    UnknownSyscall {
        /// The name in the profile.
        name: String,
    },
    /// The name is a system call of other architectures but not of these ones of the filter;
    /// its rules were skipped there. Normal for a profile written for several architectures
    /// (`chown32` exists only on 32-bit ones, `arch_prctl` only on x86).
    SyscallMissingOnArchitectures {
        /// The name in the profile.
        name: String,
        /// The architectures of the filter that have no such call.
        architectures: Vec<Arch>,
    },
    /// `errnoRet` (or `defaultErrnoRet`) given for an action that returns no errno.
    ErrnoRetIgnored {
        /// `"the default action"` or `"rule N (name)"`.
        context: String,
        /// The action that takes no errno.
        action: LinuxSeccompAction,
    },
    /// `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV` without any `SCMP_ACT_NOTIFY` rule: the kernel
    /// accepts the flag only with a listener, so it was dropped.
    WaitKillableRecvWithoutNotify,
}

impl fmt::Display for SeccompWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownSyscall { name } => write!(f, "unknown syscall {name:?} skipped"),
            Self::SyscallMissingOnArchitectures {
                name,
                architectures,
            } => {
                write!(f, "syscall {name:?} skipped on")?;
                for arch in architectures {
                    write!(f, " {arch}")?;
                }
                f.write_str(", which do not have it")
            }
            Self::ErrnoRetIgnored { context, action } => {
                write!(
                    f,
                    "errnoRet of {context} ignored: {action} returns no errno"
                )
            }
            Self::WaitKillableRecvWithoutNotify => f.write_str(
                "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV dropped: no rule uses SCMP_ACT_NOTIFY",
            ),
        }
    }
}

/// Compiles an OCI seccomp profile for the architecture this program runs on.
pub fn compile(profile: &LinuxSeccomp) -> Result<SeccompFilter, SeccompError> {
    let native = arch::native().ok_or_else(|| SeccompError::UnsupportedNativeArchitecture {
        arch: std::env::consts::ARCH.to_owned(),
    })?;
    compile_for(profile, native.oci())
}

/// Compiles an OCI seccomp profile for a kernel whose native architecture is `native`
/// (`SCMP_ARCH_X86_64` or `SCMP_ARCH_AARCH64`), for example to check a profile meant for
/// another machine.
pub fn compile_for(profile: &LinuxSeccomp, native: Arch) -> Result<SeccompFilter, SeccompError> {
    let native = match native {
        Arch::ScmpArchX86_64 => Abi::X86_64,
        Arch::ScmpArchAarch64 => Abi::Aarch64,
        other => {
            return Err(SeccompError::UnsupportedNativeArchitecture {
                arch: other.to_string(),
            })
        }
    };
    let mut warnings = Vec::new();

    if profile.default_action() == LinuxSeccompAction::ScmpActNotify {
        return Err(SeccompError::NotifyAsDefaultAction);
    }
    let default = action_value(
        profile.default_action(),
        profile.default_errno_ret(),
        || "the default action".to_owned(),
        &mut warnings,
    )?;

    let abis = architectures(profile, native)?;
    let rules = parse_rules(profile, default, &mut warnings)?;
    let uses_notify = rules.iter().any(|rule| rule.notify);
    let flags = filter_flags(profile, uses_notify, &mut warnings);

    // Resolve every name on every ABI of the filter.
    let mut tables = BTreeMap::new();
    let mut unknown: BTreeMap<&str, Vec<Arch>> = BTreeMap::new();
    for &abi in &abis {
        let table = AbiTable::build(abi, &rules, &mut unknown);
        tables.insert(abi, table);
    }
    for (name, architectures) in unknown {
        let name = name.to_owned();
        let known_elsewhere = Abi::ALL
            .iter()
            .any(|abi| abi.syscall_number(&name).is_some());
        warnings.push(if known_elsewhere {
            SeccompWarning::SyscallMissingOnArchitectures {
                name,
                architectures,
            }
        } else {
            SeccompWarning::UnknownSyscall { name }
        });
    }

    let stub_newer_calls = !matches!(
        profile.default_action(),
        LinuxSeccompAction::ScmpActAllow
            | LinuxSeccompAction::ScmpActLog
            | LinuxSeccompAction::ScmpActTrace
    );
    let sections = sections(native, &tables, default, stub_newer_calls);
    let program = emit(&sections, default).map_err(|source| SeccompError::Assemble { source })?;
    if program.len() > sys::MAX_INSTRUCTIONS {
        return Err(SeccompError::ProgramTooLong {
            instructions: program.len(),
        });
    }

    Ok(SeccompFilter {
        program,
        flags,
        listener_path: profile.listener_path().clone(),
        listener_metadata: profile.listener_metadata().clone(),
        warnings,
    })
}

/// The seccomp return value of an OCI action.
fn action_value(
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    context: impl Fn() -> String,
    warnings: &mut Vec<SeccompWarning>,
) -> Result<u32, SeccompError> {
    let with_data = |base: u32| -> Result<u32, SeccompError> {
        let value = errno_ret.unwrap_or(DEFAULT_ERRNO);
        if value > u32::from(u16::MAX) {
            return Err(SeccompError::ErrnoOutOfRange {
                context: context(),
                value,
            });
        }
        Ok(base | value)
    };
    let value = match action {
        LinuxSeccompAction::ScmpActErrno => return with_data(ACTION_ERRNO),
        LinuxSeccompAction::ScmpActTrace => return with_data(ACTION_TRACE),
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ACTION_KILL_THREAD
        }
        LinuxSeccompAction::ScmpActKillProcess => ACTION_KILL_PROCESS,
        LinuxSeccompAction::ScmpActTrap => ACTION_TRAP,
        LinuxSeccompAction::ScmpActAllow => ACTION_ALLOW,
        LinuxSeccompAction::ScmpActLog => ACTION_LOG,
        LinuxSeccompAction::ScmpActNotify => ACTION_USER_NOTIF,
    };
    if errno_ret.is_some() {
        warnings.push(SeccompWarning::ErrnoRetIgnored {
            context: context(),
            action,
        });
    }
    Ok(value)
}

/// The ABIs the filter covers: the native one first, then the listed ones of its family.
fn architectures(profile: &LinuxSeccomp, native: Abi) -> Result<Vec<Abi>, SeccompError> {
    let mut listed = BTreeSet::from([native]);
    for &arch in profile.architectures().iter().flatten() {
        let abi =
            Abi::from_oci(arch, native).ok_or(SeccompError::UnsupportedArchitecture { arch })?;
        listed.insert(abi);
    }
    Ok(Abi::family(native)
        .iter()
        .copied()
        .filter(|abi| listed.contains(abi))
        .collect())
}

/// The `seccomp(2)` flags for a profile.
fn filter_flags(
    profile: &LinuxSeccomp,
    uses_notify: bool,
    warnings: &mut Vec<SeccompWarning>,
) -> u32 {
    let mut flags = 0;
    for flag in profile.flags().iter().flatten() {
        flags |= match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => sys::FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => sys::FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => sys::FILTER_FLAG_SPEC_ALLOW,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                sys::FILTER_FLAG_WAIT_KILLABLE_RECV
            }
        };
    }
    if uses_notify {
        flags |= sys::FILTER_FLAG_NEW_LISTENER;
        if flags & sys::FILTER_FLAG_TSYNC != 0 {
            // The kernel refuses TSYNC with NEW_LISTENER unless a failed TSYNC is reported as
            // ESRCH: both would otherwise use the return value.
            flags |= sys::FILTER_FLAG_TSYNC_ESRCH;
        }
    } else if flags & sys::FILTER_FLAG_WAIT_KILLABLE_RECV != 0 {
        flags &= !sys::FILTER_FLAG_WAIT_KILLABLE_RECV;
        warnings.push(SeccompWarning::WaitKillableRecvWithoutNotify);
    }
    flags
}

/// One argument comparison of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Condition {
    index: u8,
    op: LinuxSeccompOperator,
    value: u64,
    value_two: u64,
}

/// A rule's effect once validated: its conditions (ANDed) and its seccomp return value.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Effect {
    conditions: Vec<Condition>,
    action: u32,
}

/// A validated rule of the profile.
#[derive(Debug)]
struct Rule<'a> {
    names: &'a [String],
    /// `None` when the action equals the default action: the rule changes nothing.
    effect: Option<Effect>,
    notify: bool,
}

fn parse_rules<'a>(
    profile: &'a LinuxSeccomp,
    default: u32,
    warnings: &mut Vec<SeccompWarning>,
) -> Result<Vec<Rule<'a>>, SeccompError> {
    let mut rules = Vec::new();
    for (position, syscall) in profile.syscalls().iter().flatten().enumerate() {
        let names = syscall.names().as_slice();
        let name = names
            .first()
            .ok_or(SeccompError::RuleWithoutNames { rule: position })?;
        let context = || format!("rule {position} ({name})");

        let mut conditions = Vec::new();
        for arg in syscall.args().iter().flatten() {
            let index = u8::try_from(arg.index())
                .ok()
                .filter(|&index| index <= 5)
                .ok_or_else(|| SeccompError::ArgumentIndexOutOfRange {
                    rule: position,
                    name: name.clone(),
                    index: arg.index(),
                })?;
            conditions.push(Condition {
                index,
                op: arg.op(),
                value: arg.value(),
                value_two: arg.value_two().unwrap_or(0),
            });
        }

        let notify = syscall.action() == LinuxSeccompAction::ScmpActNotify;
        if notify && profile.listener_path().is_none() {
            return Err(SeccompError::NotifyWithoutListenerPath {
                rule: position,
                name: name.clone(),
            });
        }
        let action = action_value(syscall.action(), syscall.errno_ret(), context, warnings)?;
        rules.push(Rule {
            names,
            effect: (action != default).then_some(Effect { conditions, action }),
            notify,
        });
    }
    Ok(rules)
}

/// What the rules say about one system call.
#[derive(Debug, Default)]
struct SyscallRules {
    /// The first unconditional rule's action; it wins over every conditional rule.
    unconditional: Option<u32>,
    /// Conditional rules in profile order.
    conditional: Vec<Effect>,
}

/// The rules of one ABI, keyed by system call number.
#[derive(Debug, Default)]
struct AbiTable {
    syscalls: BTreeMap<u32, SyscallRules>,
    /// The highest regular number any rule names (no-op rules included, as in runc).
    newest: Option<u32>,
}

impl AbiTable {
    fn build<'a>(
        abi: Abi,
        rules: &[Rule<'a>],
        unknown: &mut BTreeMap<&'a str, Vec<Arch>>,
    ) -> AbiTable {
        let (start, end) = abi.regular_range();
        let mut table = AbiTable::default();
        for rule in rules {
            for name in rule.names {
                let Some(number) = abi.syscall_number(name) else {
                    let archs = unknown.entry(name.as_str()).or_default();
                    if !archs.contains(&abi.oci()) {
                        archs.push(abi.oci());
                    }
                    continue;
                };
                if (start..end).contains(&u64::from(number)) {
                    table.newest = table.newest.max(Some(number));
                }
                let Some(effect) = &rule.effect else { continue };
                let entry = table.syscalls.entry(number).or_default();
                if effect.conditions.is_empty() {
                    entry.unconditional.get_or_insert(effect.action);
                } else {
                    entry.conditional.push(effect.clone());
                }
            }
        }
        table
    }
}

/// What the filter does for one range of system call numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Return(u32),
    /// Conditional rules, tried in order; the default action when none matches.
    Rules(Vec<Effect>),
}

/// Numbers from `start` up to the next interval's start share one outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Interval {
    start: u32,
    outcome: Outcome,
}

/// The part of the program for one `AUDIT_ARCH_*` value.
#[derive(Debug)]
struct Section {
    audit_arch: u32,
    wide_arguments: bool,
    intervals: Vec<Interval>,
}

/// A range `[start, end)` of numbers without rules that returns `action`.
type Fill = (u64, u64, u32);

fn sections(
    native: Abi,
    tables: &BTreeMap<Abi, AbiTable>,
    default: u32,
    stub_newer_calls: bool,
) -> Vec<Section> {
    let newer_than_profile = |abi: Abi, table: &AbiTable| -> Option<Fill> {
        let newest = table.newest?;
        let (_, end) = abi.regular_range();
        (stub_newer_calls && u64::from(newest) + 1 < end).then_some((
            u64::from(newest) + 1,
            end,
            NEWER_THAN_PROFILE_ACTION,
        ))
    };

    let mut sections = Vec::new();
    for &abi in Abi::family(native) {
        // x32 shares the x86-64 section.
        if abi == Abi::X32 {
            continue;
        }
        let Some(table) = tables.get(&abi) else {
            continue;
        };
        let mut points: BTreeMap<u32, Outcome> = outcomes(table);
        let mut fills: Vec<Fill> = newer_than_profile(abi, table).into_iter().collect();
        if abi == Abi::X86_64 {
            let (x32_start, x32_end) = Abi::X32.regular_range();
            match tables.get(&Abi::X32) {
                Some(x32) => {
                    points.extend(outcomes(x32));
                    fills.extend(newer_than_profile(Abi::X32, x32));
                }
                None => fills.push((x32_start, x32_end, BAD_ARCH_ACTION)),
            }
        }
        sections.push(Section {
            audit_arch: abi.audit_arch(),
            wide_arguments: abi.has_wide_arguments(),
            intervals: intervals(&points, &fills, default),
        });
    }
    sections
}

fn outcomes(table: &AbiTable) -> BTreeMap<u32, Outcome> {
    table
        .syscalls
        .iter()
        .map(|(&number, rules)| {
            let outcome = match rules.unconditional {
                Some(action) => Outcome::Return(action),
                None => Outcome::Rules(rules.conditional.clone()),
            };
            (number, outcome)
        })
        .collect()
}

/// Splits the number space `[0, 2^32)` into intervals of one outcome each.
fn intervals(points: &BTreeMap<u32, Outcome>, fills: &[Fill], default: u32) -> Vec<Interval> {
    const END: u64 = 1 << 32;
    let mut boundaries = BTreeSet::from([0u64]);
    for &number in points.keys() {
        boundaries.insert(u64::from(number));
        boundaries.insert(u64::from(number) + 1);
    }
    for &(start, end, _) in fills {
        boundaries.insert(start);
        boundaries.insert(end);
    }
    let gap = |number: u64| {
        fills
            .iter()
            .find(|(start, end, _)| (*start..*end).contains(&number))
            .map_or(default, |&(_, _, action)| action)
    };

    let mut intervals: Vec<Interval> = Vec::new();
    for boundary in boundaries {
        let Ok(start) = u32::try_from(boundary) else {
            continue;
        };
        if boundary >= END {
            continue;
        }
        let outcome = points
            .get(&start)
            .cloned()
            .unwrap_or_else(|| Outcome::Return(gap(boundary)));
        match (intervals.last(), &outcome) {
            (Some(last), Outcome::Return(_)) if last.outcome == outcome => {}
            _ => intervals.push(Interval { start, outcome }),
        }
    }
    intervals
}

fn emit(sections: &[Section], default: u32) -> Result<Vec<crate::Instruction>, AssembleError> {
    let mut asm = Assembler::new();
    asm.load(data::ARCH);
    for section in sections {
        let next_section = asm.label();
        asm.jump(
            Comparison::Equal,
            section.audit_arch,
            Target::Next,
            Target::Label(next_section),
        );
        asm.load(data::NR);
        emit_search(
            &mut asm,
            &section.intervals,
            section.wide_arguments,
            default,
        );
        asm.bind(next_section);
    }
    asm.ret(BAD_ARCH_ACTION);
    asm.finish()
}

/// A binary search over `intervals` (which cover the rest of the number space), with the
/// system call number in the accumulator.
fn emit_search(asm: &mut Assembler, intervals: &[Interval], wide: bool, default: u32) {
    match intervals {
        [] => asm.ret(default),
        [only] => match &only.outcome {
            Outcome::Return(action) => asm.ret(*action),
            Outcome::Rules(rules) => emit_rules(asm, rules, wide, default),
        },
        _ => {
            let middle = intervals.len() / 2;
            let upper = asm.label();
            asm.jump(
                Comparison::GreaterOrEqual,
                intervals[middle].start,
                Target::Label(upper),
                Target::Next,
            );
            emit_search(asm, &intervals[..middle], wide, default);
            asm.bind(upper);
            emit_search(asm, &intervals[middle..], wide, default);
        }
    }
}

/// The conditional rules of one system call: the first rule whose conditions all hold returns
/// its action; if none does, the default action.
fn emit_rules(asm: &mut Assembler, rules: &[Effect], wide: bool, default: u32) {
    for rule in rules {
        let next_rule = asm.label();
        for condition in &rule.conditions {
            emit_condition(asm, condition, wide, next_rule);
        }
        asm.ret(rule.action);
        asm.bind(next_rule);
    }
    asm.ret(default);
}

const fn high(value: u64) -> u32 {
    (value >> 32) as u32
}

const fn low(value: u64) -> u32 {
    value as u32
}

/// Falls through when `condition` holds and jumps to `fail` when it does not.
///
/// For 64-bit arguments, the high words decide unless they are equal; then the low words do.
fn emit_condition(asm: &mut Assembler, condition: &Condition, wide: bool, fail: Label) {
    use Comparison::{Equal, Greater, GreaterOrEqual};
    let fail = Target::Label(fail);
    let next = Target::Next;
    let index = condition.index;
    let (value, value_two) = (condition.value, condition.value_two);

    if !wide {
        asm.load(data::arg_low(index));
        let v = low(value);
        match condition.op {
            LinuxSeccompOperator::ScmpCmpEq => asm.jump(Equal, v, next, fail),
            LinuxSeccompOperator::ScmpCmpNe => asm.jump(Equal, v, fail, next),
            LinuxSeccompOperator::ScmpCmpGt => asm.jump(Greater, v, next, fail),
            LinuxSeccompOperator::ScmpCmpGe => asm.jump(GreaterOrEqual, v, next, fail),
            LinuxSeccompOperator::ScmpCmpLt => asm.jump(GreaterOrEqual, v, fail, next),
            LinuxSeccompOperator::ScmpCmpLe => asm.jump(Greater, v, fail, next),
            LinuxSeccompOperator::ScmpCmpMaskedEq => {
                asm.and(v);
                asm.jump(Equal, low(value_two), next, fail);
            }
        }
        return;
    }

    let pass = asm.label();
    let done = Target::Label(pass);
    let (vh, vl) = (high(value), low(value));
    match condition.op {
        LinuxSeccompOperator::ScmpCmpEq => {
            asm.load(data::arg_high(index));
            asm.jump(Equal, vh, next, fail);
            asm.load(data::arg_low(index));
            asm.jump(Equal, vl, next, fail);
        }
        LinuxSeccompOperator::ScmpCmpNe => {
            asm.load(data::arg_high(index));
            asm.jump(Equal, vh, next, done);
            asm.load(data::arg_low(index));
            asm.jump(Equal, vl, fail, next);
        }
        LinuxSeccompOperator::ScmpCmpGt | LinuxSeccompOperator::ScmpCmpGe => {
            asm.load(data::arg_high(index));
            asm.jump(Greater, vh, done, next);
            asm.jump(Equal, vh, next, fail);
            asm.load(data::arg_low(index));
            let low_comparison = if condition.op == LinuxSeccompOperator::ScmpCmpGt {
                Greater
            } else {
                GreaterOrEqual
            };
            asm.jump(low_comparison, vl, next, fail);
        }
        LinuxSeccompOperator::ScmpCmpLt | LinuxSeccompOperator::ScmpCmpLe => {
            asm.load(data::arg_high(index));
            asm.jump(Greater, vh, fail, next);
            asm.jump(Equal, vh, next, done);
            asm.load(data::arg_low(index));
            // LT fails when low >= value; LE fails when low > value.
            let low_comparison = if condition.op == LinuxSeccompOperator::ScmpCmpLt {
                GreaterOrEqual
            } else {
                Greater
            };
            asm.jump(low_comparison, vl, fail, next);
        }
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            let (mask_high, mask_low) = (high(value), low(value));
            // A zero high mask with a zero high value always holds: skip the high word, as
            // libseccomp does (the common case: flag masks below 2^32).
            if mask_high != 0 || high(value_two) != 0 {
                asm.load(data::arg_high(index));
                if mask_high != u32::MAX {
                    asm.and(mask_high);
                }
                asm.jump(Equal, high(value_two), next, fail);
            }
            asm.load(data::arg_low(index));
            if mask_low != u32::MAX {
                asm.and(mask_low);
            }
            asm.jump(Equal, low(value_two), next, fail);
        }
    }
    asm.bind(pass);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::bpf::interpreter::{check, run, SeccompData};
    use crate::bpf::JMP_JA;
    use proptest::prelude::*;
    use serde_json::json;

    pub(crate) const AUDIT_X86_64: u32 = 0xc000_003e;
    pub(crate) const AUDIT_I386: u32 = 0x4000_0003;
    pub(crate) const AUDIT_AARCH64: u32 = 0xc000_00b7;
    pub(crate) const AUDIT_ARM: u32 = 0x4000_0028;
    const EPERM: u32 = ACTION_ERRNO | 1;
    const EACCES: u32 = ACTION_ERRNO | 13;
    const ENOSYS: u32 = NEWER_THAN_PROFILE_ACTION;

    pub(crate) fn profile(value: serde_json::Value) -> LinuxSeccomp {
        crate::parse_profile(&value.to_string()).unwrap()
    }

    pub(crate) fn x86_64(filter: &SeccompFilter) -> impl Fn(&str, [u64; 6]) -> u32 + '_ {
        move |name, args| {
            let nr = Abi::X86_64.syscall_number(name).unwrap();
            verdict(filter, AUDIT_X86_64, nr, args)
        }
    }

    pub(crate) fn verdict(filter: &SeccompFilter, arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        run(filter.program(), &SeccompData::new(arch, nr, args))
            .unwrap()
            .action
    }

    fn nr(abi: Abi, name: &str) -> u32 {
        abi.syscall_number(name).unwrap()
    }

    fn compile_x86_64(value: serde_json::Value) -> Result<SeccompFilter, SeccompError> {
        compile_for(&profile(value), Arch::ScmpArchX86_64)
    }

    #[test]
    fn names_get_their_rule_and_the_rest_the_default() {
        let filter = compile_x86_64(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                { "names": ["read", "write"], "action": "SCMP_ACT_ALLOW" },
                { "names": ["mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13 },
            ]
        }))
        .unwrap();
        let call = x86_64(&filter);
        assert_eq!(call("read", [0; 6]), ACTION_ALLOW);
        assert_eq!(call("write", [0; 6]), ACTION_ALLOW);
        assert_eq!(call("mkdirat", [0; 6]), EACCES);
        assert_eq!(call("getpid", [0; 6]), EPERM);
        assert!(filter.warnings().is_empty());
    }

    #[test]
    fn default_errno_ret_is_used() {
        let filter = compile_x86_64(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 38,
            "syscalls": [{ "names": ["read"], "action": "SCMP_ACT_ALLOW" }]
        }))
        .unwrap();
        assert_eq!(x86_64(&filter)("getpid", [0; 6]), ACTION_ERRNO | 38);
    }

    #[test]
    fn every_action_has_the_kernel_value() {
        let cases = [
            (json!({"action": "SCMP_ACT_KILL"}), ACTION_KILL_THREAD),
            (
                json!({"action": "SCMP_ACT_KILL_THREAD"}),
                ACTION_KILL_THREAD,
            ),
            (
                json!({"action": "SCMP_ACT_KILL_PROCESS"}),
                ACTION_KILL_PROCESS,
            ),
            (json!({"action": "SCMP_ACT_TRAP"}), ACTION_TRAP),
            (json!({"action": "SCMP_ACT_ERRNO"}), ACTION_ERRNO | 1),
            (
                json!({"action": "SCMP_ACT_ERRNO", "errnoRet": 0}),
                ACTION_ERRNO,
            ),
            (
                json!({"action": "SCMP_ACT_ERRNO", "errnoRet": 95}),
                ACTION_ERRNO | 95,
            ),
            (json!({"action": "SCMP_ACT_TRACE"}), ACTION_TRACE | 1),
            (
                json!({"action": "SCMP_ACT_TRACE", "errnoRet": 7}),
                ACTION_TRACE | 7,
            ),
            (json!({"action": "SCMP_ACT_LOG"}), ACTION_LOG),
            (json!({"action": "SCMP_ACT_NOTIFY"}), ACTION_USER_NOTIF),
            (json!({"action": "SCMP_ACT_ALLOW"}), ACTION_ALLOW),
        ];
        for (rule, expected) in cases {
            let mut rule = rule;
            rule["names"] = json!(["getpid"]);
            let filter = compile_x86_64(json!({
                "defaultAction": "SCMP_ACT_KILL_PROCESS",
                "listenerPath": "/run/agent.sock",
                "syscalls": [rule.clone()]
            }))
            .unwrap();
            assert_eq!(x86_64(&filter)("getpid", [0; 6]), expected, "{rule}");
        }
    }

    /// Edge values around the 32-bit word boundary.
    const EDGES: [u64; 14] = [
        0,
        1,
        0x7fff_ffff,
        0x8000_0000,
        0xffff_fffe,
        0xffff_ffff,
        0x1_0000_0000,
        0x1_0000_0001,
        0x1_ffff_ffff,
        0x2_0000_0000,
        0x8000_0000_0000_0000,
        0xffff_ffff_0000_0000,
        0xffff_ffff_ffff_fffe,
        0xffff_ffff_ffff_ffff,
    ];

    /// An operator's name and its meaning.
    type Operator = (&'static str, fn(u64, u64) -> bool);

    const OPERATORS: [Operator; 6] = [
        ("SCMP_CMP_EQ", |a, v| a == v),
        ("SCMP_CMP_NE", |a, v| a != v),
        ("SCMP_CMP_LT", |a, v| a < v),
        ("SCMP_CMP_LE", |a, v| a <= v),
        ("SCMP_CMP_GT", |a, v| a > v),
        ("SCMP_CMP_GE", |a, v| a >= v),
    ];

    #[test]
    fn comparisons_use_all_64_bits_on_64_bit_abis() {
        for (op, holds) in OPERATORS {
            for value in EDGES {
                for index in [0usize, 3, 5] {
                    let filter = compile_x86_64(json!({
                        "defaultAction": "SCMP_ACT_ERRNO",
                        "syscalls": [{
                            "names": ["ioctl"],
                            "action": "SCMP_ACT_ALLOW",
                            "args": [{ "index": index, "value": value, "op": op }]
                        }]
                    }))
                    .unwrap();
                    for arg in EDGES {
                        let mut args = [0x5555_5555_5555_5555; 6];
                        args[index] = arg;
                        let expected = if holds(arg, value) {
                            ACTION_ALLOW
                        } else {
                            EPERM
                        };
                        assert_eq!(
                            x86_64(&filter)("ioctl", args),
                            expected,
                            "{arg:#x} {op} {value:#x} (argument {index})"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn comparisons_use_the_low_word_on_32_bit_abis() {
        for (op, holds) in OPERATORS {
            for value in EDGES {
                let filter = compile_x86_64(json!({
                    "defaultAction": "SCMP_ACT_ERRNO",
                    "architectures": ["SCMP_ARCH_X86"],
                    "syscalls": [{
                        "names": ["ioctl"],
                        "action": "SCMP_ACT_ALLOW",
                        "args": [{ "index": 1, "value": value, "op": op }]
                    }]
                }))
                .unwrap();
                for arg in EDGES {
                    let expected = if holds(u64::from(low(arg)), u64::from(low(value))) {
                        ACTION_ALLOW
                    } else {
                        EPERM
                    };
                    let i386_ioctl = nr(Abi::X86, "ioctl");
                    assert_eq!(
                        verdict(&filter, AUDIT_I386, i386_ioctl, [0, arg, 0, 0, 0, 0]),
                        expected,
                        "i386 {arg:#x} {op} {value:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn masked_eq_tests_masked_bits_against_value_two() {
        let masks = [
            0u64,
            0xff,
            0x7e02_0000,
            0xffff_ffff,
            0x1_0000_0000,
            u64::MAX,
        ];
        for mask in masks {
            for value_two in [0u64, 0x10, 0x1000_0000, 0x1_0000_0000, 0xff] {
                let filter = compile_x86_64(json!({
                    "defaultAction": "SCMP_ACT_ERRNO",
                    "syscalls": [{
                        "names": ["clone"],
                        "action": "SCMP_ACT_ALLOW",
                        "args": [{
                            "index": 0, "value": mask, "valueTwo": value_two,
                            "op": "SCMP_CMP_MASKED_EQ"
                        }]
                    }]
                }))
                .unwrap();
                for arg in EDGES.iter().copied().chain([0x1000_0000, 0x1_1000_0011]) {
                    let expected = if arg & mask == value_two {
                        ACTION_ALLOW
                    } else {
                        EPERM
                    };
                    assert_eq!(
                        x86_64(&filter)("clone", [arg, 0, 0, 0, 0, 0]),
                        expected,
                        "({arg:#x} & {mask:#x}) == {value_two:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn masked_eq_without_value_two_compares_with_zero() {
        let filter = compile_x86_64(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{
                "names": ["clone"],
                "action": "SCMP_ACT_ALLOW",
                "args": [{ "index": 0, "value": 0x1000_0000u64, "op": "SCMP_CMP_MASKED_EQ" }]
            }]
        }))
        .unwrap();
        let call = x86_64(&filter);
        assert_eq!(call("clone", [0x0011_0000, 0, 0, 0, 0, 0]), ACTION_ALLOW);
        assert_eq!(call("clone", [0x1011_0000, 0, 0, 0, 0, 0]), EPERM);
    }

    #[test]
    fn conditions_of_a_rule_and_together_and_rules_or_together() {
        let filter = compile_x86_64(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {
                    "names": ["ioctl"], "action": "SCMP_ACT_ALLOW",
                    "args": [
                        { "index": 0, "value": 1, "op": "SCMP_CMP_EQ" },
                        { "index": 1, "value": 2, "op": "SCMP_CMP_EQ" }
                    ]
                },
                {
                    "names": ["ioctl"], "action": "SCMP_ACT_ALLOW",
                    "args": [{ "index": 2, "value": 9, "op": "SCMP_CMP_EQ" }]
                },
                {
                    "names": ["ioctl"], "action": "SCMP_ACT_ALLOW",
                    "args": [
                        { "index": 3, "value": 10, "op": "SCMP_CMP_GT" },
                        { "index": 3, "value": 20, "op": "SCMP_CMP_LT" }
                    ]
                }
            ]
        }))
        .unwrap();
        let call = x86_64(&filter);
        assert_eq!(call("ioctl", [1, 2, 0, 0, 0, 0]), ACTION_ALLOW);
        assert_eq!(call("ioctl", [1, 3, 0, 0, 0, 0]), EPERM);
        assert_eq!(call("ioctl", [0, 2, 0, 0, 0, 0]), EPERM);
        assert_eq!(call("ioctl", [0, 0, 9, 0, 0, 0]), ACTION_ALLOW);
        // Two conditions on one argument are ANDed: a range.
        assert_eq!(call("ioctl", [0, 0, 0, 15, 0, 0]), ACTION_ALLOW);
        assert_eq!(call("ioctl", [0, 0, 0, 25, 0, 0]), EPERM);
        assert_eq!(call("ioctl", [0, 0, 0, 5, 0, 0]), EPERM);
    }

    #[test]
    fn the_first_matching_conditional_rule_decides() {
        let filter = compile_x86_64(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {
                    "names": ["ioctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
                    "args": [{ "index": 0, "value": 1, "op": "SCMP_CMP_EQ" }]
                },
                {
                    "names": ["ioctl"], "action": "SCMP_ACT_ALLOW",
                    "args": [{ "index": 0, "value": 5, "op": "SCMP_CMP_LT" }]
                }
            ]
        }))
        .unwrap();
        let call = x86_64(&filter);
        assert_eq!(call("ioctl", [1, 0, 0, 0, 0, 0]), EACCES);
        assert_eq!(call("ioctl", [2, 0, 0, 0, 0, 0]), ACTION_ALLOW);
        assert_eq!(call("ioctl", [7, 0, 0, 0, 0, 0]), EPERM);
    }

    #[test]
    fn an_unconditional_rule_wins_over_conditional_ones_in_any_order() {
        let conditional = json!({
            "names": ["ioctl"], "action": "SCMP_ACT_ALLOW",
            "args": [{ "index": 0, "value": 1, "op": "SCMP_CMP_EQ" }]
        });
        let unconditional =
            json!({ "names": ["ioctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13 });
        for rules in [
            json!([conditional.clone(), unconditional.clone()]),
            json!([unconditional, conditional]),
        ] {
            let filter = compile_x86_64(json!({
                "defaultAction": "SCMP_ACT_ERRNO", "syscalls": rules
            }))
            .unwrap();
            assert_eq!(x86_64(&filter)("ioctl", [1, 0, 0, 0, 0, 0]), EACCES);
        }
    }

    #[test]
    fn rules_with_the_default_action_change_nothing() {
        let filter = compile_x86_64(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                { "names": ["ioctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1 },
                {
                    "names": ["ioctl"], "action": "SCMP_ACT_ALLOW",
                    "args": [{ "index": 0, "value": 1, "op": "SCMP_CMP_EQ" }]
                }
            ]
        }))
        .unwrap();
        // Had the no-op rule counted as unconditional, it would shadow the ALLOW rule.
        assert_eq!(x86_64(&filter)("ioctl", [1, 0, 0, 0, 0, 0]), ACTION_ALLOW);
    }

    #[test]
    fn foreign_architectures_are_killed() {
        let filter = compile_x86_64(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
            "syscalls": [{ "names": ["getpid"], "action": "SCMP_ACT_ALLOW" }]
        }))
        .unwrap();
        // Listed architectures of the other family are left out: they cannot occur.
        assert_eq!(
            verdict(&filter, AUDIT_AARCH64, 172, [0; 6]),
            ACTION_KILL_PROCESS
        );
        assert_eq!(verdict(&filter, AUDIT_ARM, 20, [0; 6]), ACTION_KILL_PROCESS);
        assert_eq!(
            verdict(&filter, AUDIT_I386, 20, [0; 6]),
            ACTION_KILL_PROCESS
        );
        assert_eq!(
            verdict(&filter, 0x1234_5678, 39, [0; 6]),
            ACTION_KILL_PROCESS
        );
        assert_eq!(x86_64(&filter)("getpid", [0; 6]), ACTION_ALLOW);
    }

    #[test]
    fn listed_compat_architectures_use_their_own_numbers() {
        let filter = compile_x86_64(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [{ "names": ["getpid", "socketcall"], "action": "SCMP_ACT_ALLOW" }]
        }))
        .unwrap();
        let getpid_i386 = nr(Abi::X86, "getpid");
        assert_eq!(getpid_i386, 20);
        assert_eq!(
            verdict(&filter, AUDIT_I386, getpid_i386, [0; 6]),
            ACTION_ALLOW
        );
        assert_eq!(verdict(&filter, AUDIT_I386, 102, [0; 6]), ACTION_ALLOW);
        // 39 is getpid on x86-64 but mkdir on i386.
        assert_eq!(verdict(&filter, AUDIT_I386, 39, [0; 6]), EPERM);
        // socketcall does not exist on x86-64: a warning, not an error.
        assert_eq!(
            filter.warnings(),
            [SeccompWarning::SyscallMissingOnArchitectures {
                name: "socketcall".to_owned(),
                architectures: vec![Arch::ScmpArchX86_64]
            }]
        );
    }

    #[test]
    fn x32_calls_are_killed_unless_x32_is_listed() {
        let rules = json!([{ "names": ["read", "ioctl"], "action": "SCMP_ACT_ALLOW" }]);
        let without = compile_x86_64(json!({
            "defaultAction": "SCMP_ACT_ERRNO", "syscalls": rules
        }))
        .unwrap();
        assert_eq!(verdict(&without, AUDIT_X86_64, 0, [0; 6]), ACTION_ALLOW);
        assert_eq!(
            verdict(&without, AUDIT_X86_64, arch::X32_SYSCALL_BIT, [0; 6]),
            ACTION_KILL_PROCESS
        );
        assert_eq!(
            verdict(&without, AUDIT_X86_64, u32::MAX, [0; 6]),
            ACTION_KILL_PROCESS
        );

        let with = compile_x86_64(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X32"],
            "syscalls": rules
        }))
        .unwrap();
        let bit = arch::X32_SYSCALL_BIT;
        assert_eq!(verdict(&with, AUDIT_X86_64, bit, [0; 6]), ACTION_ALLOW);
        // x32's ioctl is 514; x86-64's number 16 with the x32 bit is no x32 call.
        assert_eq!(
            verdict(&with, AUDIT_X86_64, bit | 514, [0; 6]),
            ACTION_ALLOW
        );
        assert_eq!(verdict(&with, AUDIT_X86_64, bit | 16, [0; 6]), EPERM);
        assert_eq!(verdict(&with, AUDIT_X86_64, bit | 1, [0; 6]), EPERM);
        // Above the newest call the profile names: newer than the profile.
        assert_eq!(verdict(&with, AUDIT_X86_64, bit | 600, [0; 6]), ENOSYS);
        // The x86-64 half is unchanged.
        assert_eq!(verdict(&with, AUDIT_X86_64, 16, [0; 6]), ACTION_ALLOW);
        assert_eq!(verdict(&with, AUDIT_X86_64, 514, [0; 6]), ENOSYS);
    }

    #[test]
    fn calls_newer_than_the_profile_get_enosys_when_the_default_denies() {
        let rules = json!([
            { "names": ["read"], "action": "SCMP_ACT_ALLOW" },
            { "names": ["io_uring_setup"], "action": "SCMP_ACT_ERRNO" }
        ]);
        let deny = compile_x86_64(json!({ "defaultAction": "SCMP_ACT_ERRNO", "syscalls": rules }))
            .unwrap();
        // Numbers up to the newest named call (io_uring_setup, 425) get the default ...
        assert_eq!(verdict(&deny, AUDIT_X86_64, 424, [0; 6]), EPERM);
        assert_eq!(verdict(&deny, AUDIT_X86_64, 425, [0; 6]), EPERM);
        // ... numbers above it are newer than the profile.
        assert_eq!(verdict(&deny, AUDIT_X86_64, 426, [0; 6]), ENOSYS);
        assert_eq!(verdict(&deny, AUDIT_X86_64, 0x3fff_ffff, [0; 6]), ENOSYS);

        let allow = compile_x86_64(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{ "names": ["mkdirat"], "action": "SCMP_ACT_ERRNO" }]
        }))
        .unwrap();
        assert_eq!(verdict(&allow, AUDIT_X86_64, 426, [0; 6]), ACTION_ALLOW);
    }

    #[test]
    fn arm64_filters_cover_arm64_and_arm() {
        let filter = compile_for(
            &profile(json!({
                "defaultAction": "SCMP_ACT_ERRNO",
                "architectures": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", "SCMP_ARCH_X86"],
                "syscalls": [
                    { "names": ["mkdirat", "cacheflush"], "action": "SCMP_ACT_ALLOW" },
                    {
                        "names": ["clone"], "action": "SCMP_ACT_ALLOW",
                        "args": [{ "index": 0, "value": 0x1000_0000u64, "op": "SCMP_CMP_MASKED_EQ" }]
                    }
                ]
            })),
            Arch::ScmpArchAarch64,
        )
        .unwrap();
        assert_eq!(verdict(&filter, AUDIT_AARCH64, 34, [0; 6]), ACTION_ALLOW);
        assert_eq!(verdict(&filter, AUDIT_ARM, 323, [0; 6]), ACTION_ALLOW);
        assert_eq!(
            verdict(&filter, AUDIT_ARM, 0x000f_0002, [0; 6]),
            ACTION_ALLOW
        );
        let clone = nr(Abi::Aarch64, "clone");
        assert_eq!(
            verdict(&filter, AUDIT_AARCH64, clone, [0x11, 0, 0, 0, 0, 0]),
            ACTION_ALLOW
        );
        assert_eq!(
            verdict(&filter, AUDIT_AARCH64, clone, [0x1000_0011, 0, 0, 0, 0, 0]),
            EPERM
        );
        assert_eq!(
            verdict(&filter, AUDIT_X86_64, 258, [0; 6]),
            ACTION_KILL_PROCESS
        );
        assert_eq!(
            verdict(&filter, AUDIT_I386, 296, [0; 6]),
            ACTION_KILL_PROCESS
        );
    }

    /// A profile whose program needs jumps far longer than 255 instructions.
    fn long_profile(syscalls: &[&str]) -> serde_json::Value {
        let rules: Vec<_> = syscalls
            .iter()
            .enumerate()
            .flat_map(|(i, name)| {
                let i = i as u64;
                [
                    json!({
                        "names": [name], "action": "SCMP_ACT_ALLOW",
                        "args": [{ "index": 0, "value": i, "op": "SCMP_CMP_EQ" }]
                    }),
                    json!({
                        "names": [name], "action": "SCMP_ACT_ERRNO", "errnoRet": 100 + i,
                        "args": [
                            { "index": 1, "value": 1u64 << 40, "op": "SCMP_CMP_GE" },
                            { "index": 2, "value": 0xf0, "valueTwo": 0x10, "op": "SCMP_CMP_MASKED_EQ" }
                        ]
                    }),
                ]
            })
            .collect();
        json!({ "defaultAction": "SCMP_ACT_KILL_PROCESS", "syscalls": rules })
    }

    #[test]
    fn long_programs_jump_correctly() {
        let names: Vec<&str> = syscalls::x86_64::Sysno::iter()
            .map(|sysno| sysno.name())
            .take(120)
            .collect();
        let filter = compile_x86_64(long_profile(&names)).unwrap();
        assert!(filter.program().len() > 1000, "{}", filter.program().len());
        assert!(filter.program().iter().any(|insn| insn.code == JMP_JA));
        check(filter.program()).unwrap();
        let call = x86_64(&filter);
        for (i, name) in names.iter().enumerate() {
            let i = i as u64;
            assert_eq!(call(name, [i, 0, 0, 0, 0, 0]), ACTION_ALLOW, "{name}");
            assert_eq!(
                call(name, [i + 1, 0, 0, 0, 0, 0]),
                ACTION_KILL_PROCESS,
                "{name}"
            );
            let errno = ACTION_ERRNO | (100 + i as u32);
            assert_eq!(call(name, [i + 1, 1 << 40, 0x1f, 0, 0, 0]), errno, "{name}");
            assert_eq!(
                call(name, [i + 1, 1 << 40, 0x2f, 0, 0, 0]),
                ACTION_KILL_PROCESS
            );
        }
    }

    #[test]
    fn programs_over_the_kernel_limit_are_refused() {
        let names: Vec<&str> = syscalls::x86_64::Sysno::iter()
            .map(|sysno| sysno.name())
            .take(300)
            .collect();
        let error = compile_x86_64(long_profile(&names)).unwrap_err();
        assert!(
            matches!(error, SeccompError::ProgramTooLong { instructions } if instructions > 4096),
            "{error:?}"
        );
    }

    #[test]
    fn profile_mistakes_are_typed_errors() {
        let error = compile_x86_64(json!({ "defaultAction": "SCMP_ACT_NOTIFY" })).unwrap_err();
        assert!(matches!(error, SeccompError::NotifyAsDefaultAction));

        let error = compile_x86_64(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{ "names": ["mkdirat"], "action": "SCMP_ACT_NOTIFY" }]
        }))
        .unwrap_err();
        assert!(matches!(
            error,
            SeccompError::NotifyWithoutListenerPath { rule: 0, .. }
        ));

        let error = compile_x86_64(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                { "names": ["read"], "action": "SCMP_ACT_ERRNO" },
                {
                    "names": ["ioctl"], "action": "SCMP_ACT_ERRNO",
                    "args": [{ "index": 6, "value": 1, "op": "SCMP_CMP_EQ" }]
                }
            ]
        }))
        .unwrap_err();
        assert!(matches!(
            error,
            SeccompError::ArgumentIndexOutOfRange {
                rule: 1,
                index: 6,
                ..
            }
        ));

        let error = compile_x86_64(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_MIPS"]
        }))
        .unwrap_err();
        assert!(matches!(
            error,
            SeccompError::UnsupportedArchitecture {
                arch: Arch::ScmpArchMips
            }
        ));

        let error = compile_x86_64(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{ "names": [], "action": "SCMP_ACT_ERRNO" }]
        }))
        .unwrap_err();
        assert!(matches!(error, SeccompError::RuleWithoutNames { rule: 0 }));

        let error = compile_x86_64(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{ "names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 70000 }]
        }))
        .unwrap_err();
        assert!(matches!(
            error,
            SeccompError::ErrnoOutOfRange { value: 70000, .. }
        ));

        let error = compile_for(
            &profile(json!({ "defaultAction": "SCMP_ACT_ALLOW" })),
            Arch::ScmpArchPpc64le,
        )
        .unwrap_err();
        assert!(matches!(
            error,
            SeccompError::UnsupportedNativeArchitecture { .. }
        ));
        assert_eq!(
            error.to_string(),
            "cannot compile seccomp filters for a SCMP_ARCH_PPC64LE kernel; supported: x86_64, \
             aarch64"
        );
    }

    #[test]
    fn flags_are_translated_and_the_listener_is_added_for_notify() {
        let filter = compile_x86_64(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
        }))
        .unwrap();
        assert_eq!(
            filter.flags(),
            sys::FILTER_FLAG_LOG | sys::FILTER_FLAG_SPEC_ALLOW
        );
        assert!(!filter.needs_listener());

        let filter = compile_x86_64(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
            "listenerPath": "/run/agent.sock",
            "listenerMetadata": "container=abc",
            "syscalls": [{ "names": ["mkdirat"], "action": "SCMP_ACT_NOTIFY" }]
        }))
        .unwrap();
        assert_eq!(
            filter.flags(),
            sys::FILTER_FLAG_TSYNC
                | sys::FILTER_FLAG_TSYNC_ESRCH
                | sys::FILTER_FLAG_NEW_LISTENER
                | sys::FILTER_FLAG_WAIT_KILLABLE_RECV
        );
        assert!(filter.needs_listener());
        assert_eq!(
            filter.listener_path(),
            Some(std::path::Path::new("/run/agent.sock"))
        );
        assert_eq!(filter.listener_metadata(), Some("container=abc"));
        assert_eq!(x86_64(&filter)("mkdirat", [0; 6]), ACTION_USER_NOTIF);
    }

    #[test]
    fn questionable_but_valid_input_gives_warnings() {
        let filter = compile_x86_64(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "defaultErrnoRet": 5,
            "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
            "architectures": ["SCMP_ARCH_X86"],
            "syscalls": [
                { "names": ["no_such_call", "read"], "action": "SCMP_ACT_KILL", "errnoRet": 3 },
                { "names": ["chown32"], "action": "SCMP_ACT_ALLOW" }
            ]
        }))
        .unwrap();
        assert_eq!(filter.flags(), 0);
        let warnings: Vec<String> = filter.warnings().iter().map(ToString::to_string).collect();
        assert_eq!(
            warnings,
            [
                "errnoRet of the default action ignored: SCMP_ACT_ALLOW returns no errno",
                "errnoRet of rule 0 (no_such_call) ignored: SCMP_ACT_KILL returns no errno",
                "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV dropped: no rule uses SCMP_ACT_NOTIFY",
                "syscall \"chown32\" skipped on SCMP_ARCH_X86_64, which do not have it",
                "unknown syscall \"no_such_call\" skipped",
            ]
        );
        assert_eq!(x86_64(&filter)("read", [0; 6]), ACTION_KILL_THREAD);
    }

    /// The semantics of `compile`, written directly: what a call should get.
    fn reference(profile: &LinuxSeccomp, data: &SeccompData) -> u32 {
        let mut ignored = Vec::new();
        let default = action_value(
            profile.default_action(),
            profile.default_errno_ret(),
            String::new,
            &mut ignored,
        )
        .unwrap();
        let listed: Vec<Abi> = profile
            .architectures()
            .iter()
            .flatten()
            .filter_map(|&arch| Abi::from_oci(arch, Abi::X86_64))
            .chain([Abi::X86_64])
            .collect();
        let abi = match data.arch {
            AUDIT_X86_64 if data.nr >= arch::X32_SYSCALL_BIT => Abi::X32,
            AUDIT_X86_64 => Abi::X86_64,
            AUDIT_I386 => Abi::X86,
            _ => return BAD_ARCH_ACTION,
        };
        if !listed.contains(&abi) {
            return BAD_ARCH_ACTION;
        }
        let wide = abi.has_wide_arguments();
        let holds = |arg: &oci_spec::runtime::LinuxSeccompArg| {
            let (mut a, mut v) = (data.args[arg.index()], arg.value());
            let mut two = arg.value_two().unwrap_or(0);
            if !wide {
                (a, v, two) = (a & 0xffff_ffff, v & 0xffff_ffff, two & 0xffff_ffff);
            }
            match arg.op() {
                LinuxSeccompOperator::ScmpCmpEq => a == v,
                LinuxSeccompOperator::ScmpCmpNe => a != v,
                LinuxSeccompOperator::ScmpCmpLt => a < v,
                LinuxSeccompOperator::ScmpCmpLe => a <= v,
                LinuxSeccompOperator::ScmpCmpGt => a > v,
                LinuxSeccompOperator::ScmpCmpGe => a >= v,
                LinuxSeccompOperator::ScmpCmpMaskedEq => a & v == two,
            }
        };
        let mut unconditional = None;
        let mut conditional = None;
        let mut newest = None;
        for rule in profile.syscalls().iter().flatten() {
            let numbers: Vec<u32> = rule
                .names()
                .iter()
                .filter_map(|name| abi.syscall_number(name))
                .collect();
            for &number in &numbers {
                newest = newest.max(Some(number));
            }
            if !numbers.contains(&data.nr) {
                continue;
            }
            let action =
                action_value(rule.action(), rule.errno_ret(), String::new, &mut ignored).unwrap();
            if action == default {
                continue;
            }
            let args = rule.args().clone().unwrap_or_default();
            if args.is_empty() {
                unconditional = unconditional.or(Some(action));
            } else if conditional.is_none() && args.iter().all(holds) {
                conditional = Some(action);
            }
        }
        if let Some(action) = unconditional.or(conditional) {
            return action;
        }
        let denies = !matches!(
            profile.default_action(),
            LinuxSeccompAction::ScmpActAllow
                | LinuxSeccompAction::ScmpActLog
                | LinuxSeccompAction::ScmpActTrace
        );
        let (_, end) = abi.regular_range();
        match newest {
            Some(newest) if denies && data.nr > newest && u64::from(data.nr) < end => ENOSYS,
            _ => default,
        }
    }

    const NAME_POOL: [&str; 16] = [
        "read",
        "write",
        "openat",
        "mkdirat",
        "getpid",
        "clone",
        "socket",
        "ioctl",
        "personality",
        "io_uring_setup",
        "socketcall",
        "chown32",
        "set_thread_area",
        "rseq",
        "no_such_call",
        "file_setattr",
    ];
    const ACTIONS: [&str; 9] = [
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_TRAP",
        "SCMP_ACT_ERRNO",
        "SCMP_ACT_TRACE",
        "SCMP_ACT_ALLOW",
        "SCMP_ACT_LOG",
        "SCMP_ACT_NOTIFY",
    ];
    const OPS: [&str; 7] = [
        "SCMP_CMP_NE",
        "SCMP_CMP_LT",
        "SCMP_CMP_LE",
        "SCMP_CMP_EQ",
        "SCMP_CMP_GE",
        "SCMP_CMP_GT",
        "SCMP_CMP_MASKED_EQ",
    ];
    const ARCHES: [&str; 9] = [
        "SCMP_ARCH_X86_64",
        "SCMP_ARCH_X86",
        "SCMP_ARCH_X32",
        "SCMP_ARCH_AARCH64",
        "SCMP_ARCH_X86_64",
        "SCMP_ARCH_X86",
        "SCMP_ARCH_X32",
        "SCMP_ARCH_NATIVE",
        "SCMP_ARCH_MIPS",
    ];

    fn any_value() -> impl Strategy<Value = u64> {
        prop_oneof![prop::sample::select(EDGES.to_vec()), 0u64..64, any::<u64>()]
    }

    fn any_arg() -> impl Strategy<Value = serde_json::Value> {
        let index = prop_oneof![30 => 0usize..6, 1 => 6usize..8];
        (
            index,
            any_value(),
            prop::option::of(any_value()),
            prop::sample::select(OPS.to_vec()),
        )
            .prop_map(|(index, value, value_two, op)| {
                let mut arg = json!({ "index": index, "value": value, "op": op });
                if let Some(two) = value_two {
                    arg["valueTwo"] = json!(two);
                }
                arg
            })
    }

    fn any_rule() -> impl Strategy<Value = serde_json::Value> {
        (
            prop_oneof![
                30 => prop::collection::vec(prop::sample::select(NAME_POOL.to_vec()), 1..4),
                1 => Just(Vec::new()),
            ],
            prop::sample::select(ACTIONS.to_vec()),
            prop::option::of(prop_oneof![30 => 0u32..200, 1 => Just(70_000u32)]),
            prop::collection::vec(any_arg(), 0..3),
        )
            .prop_map(|(names, action, errno, args)| {
                let mut rule = json!({ "names": names, "action": action });
                if let Some(errno) = errno {
                    rule["errnoRet"] = json!(errno);
                }
                if !args.is_empty() {
                    rule["args"] = json!(args);
                }
                rule
            })
    }

    fn any_profile() -> impl Strategy<Value = serde_json::Value> {
        (
            prop::sample::select(ACTIONS.to_vec()),
            prop::option::of(0u32..100),
            prop::collection::vec(prop::sample::select(ARCHES.to_vec()), 0..3),
            prop::collection::vec(any_rule(), 0..12),
            prop::bool::weighted(0.8),
        )
            .prop_map(|(default, errno, arches, rules, listener)| {
                let mut profile = json!({ "defaultAction": default, "syscalls": rules });
                if let Some(errno) = errno {
                    profile["defaultErrnoRet"] = json!(errno);
                }
                if !arches.is_empty() {
                    profile["architectures"] = json!(arches);
                }
                if listener {
                    profile["listenerPath"] = json!("/run/agent.sock");
                }
                profile
            })
    }

    fn any_call() -> impl Strategy<Value = SeccompData> {
        let arch = prop::sample::select(vec![AUDIT_X86_64, AUDIT_I386, AUDIT_AARCH64, 7]);
        let nr = prop_oneof![
            prop::sample::select(NAME_POOL.to_vec())
                .prop_map(|name| { Abi::X86_64.syscall_number(name).unwrap_or(5000) }),
            prop::sample::select(NAME_POOL.to_vec())
                .prop_map(|name| { Abi::X86.syscall_number(name).unwrap_or(5000) }),
            prop::sample::select(NAME_POOL.to_vec())
                .prop_map(|name| { Abi::X32.syscall_number(name).unwrap_or(5000) }),
            0u32..600,
            any::<u32>(),
        ];
        (arch, nr, prop::array::uniform6(any_value()))
            .prop_map(|(arch, nr, args)| SeccompData::new(arch, nr, args))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Random profiles either compile to a program the kernel's checks accept and that
        /// gives every call what the semantics say, or fail with a typed error: never a panic.
        #[test]
        fn random_profiles_compile_to_programs_that_follow_the_semantics(
            value in any_profile(),
            calls in prop::collection::vec(any_call(), 1..24),
        ) {
            let profile = profile(value);
            match compile_for(&profile, Arch::ScmpArchX86_64) {
                Ok(filter) => {
                    prop_assert!(check(filter.program()).is_ok());
                    for call in &calls {
                        let verdict = run(filter.program(), call).unwrap();
                        prop_assert_eq!(verdict.action, reference(&profile, call), "{:?}", call);
                    }
                }
                Err(
                    SeccompError::NotifyAsDefaultAction
                    | SeccompError::NotifyWithoutListenerPath { .. }
                    | SeccompError::ArgumentIndexOutOfRange { .. }
                    | SeccompError::RuleWithoutNames { .. }
                    | SeccompError::ErrnoOutOfRange { .. }
                    | SeccompError::UnsupportedArchitecture { .. },
                ) => {}
                Err(other) => prop_assert!(false, "unexpected error {other:?}"),
            }
        }
    }
}
