//! Per-process limits applied before exec: rlimits, personality, I/O priority, scheduler.

use nix::sys::resource::{setrlimit, Resource};
use oci_spec::runtime::{IOPriorityClass, LinuxPersonalityDomain, PosixRlimitType, Process, Spec};

use crate::error::{Result, RuntimeError};

fn resource(typ: PosixRlimitType) -> Resource {
    match typ {
        PosixRlimitType::RlimitCpu => Resource::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => Resource::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => Resource::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => Resource::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => Resource::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => Resource::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => Resource::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => Resource::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => Resource::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => Resource::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => Resource::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => Resource::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => Resource::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => Resource::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => Resource::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => Resource::RLIMIT_RTTIME,
    }
}

pub(crate) fn apply(spec: &Spec, process: &Process) -> Result<()> {
    for limit in process.rlimits().as_deref().unwrap_or_default() {
        setrlimit(resource(limit.typ()), limit.soft(), limit.hard()).map_err(|e| {
            RuntimeError::sys(
                format!(
                    "set {:?} to {}:{} (raising a hard limit needs CAP_SYS_RESOURCE)",
                    limit.typ(),
                    limit.soft(),
                    limit.hard()
                ),
                e,
            )
        })?;
    }
    if let Some(p) = spec.linux().as_ref().and_then(|l| l.personality().as_ref()) {
        let persona = match p.domain() {
            LinuxPersonalityDomain::PerLinux => nix::sys::personality::Persona::empty(),
            LinuxPersonalityDomain::PerLinux32 => {
                nix::sys::personality::Persona::from_bits_retain(0x0008)
            }
        };
        nix::sys::personality::set(persona).map_err(|e| RuntimeError::sys("personality", e))?;
    }
    if let Some(io) = process.io_priority() {
        let class = match io.class() {
            IOPriorityClass::IoprioClassRt => 1,
            IOPriorityClass::IoprioClassBe => 2,
            IOPriorityClass::IoprioClassIdle => 3,
        };
        let level = u16::try_from(io.priority()).map_err(|_| {
            RuntimeError::InvalidConfig(format!(
                "ioPriority.priority {} is out of range 0-7",
                io.priority()
            ))
        })?;
        palisade_sys::process::set_io_priority(class, level)
            .map_err(|e| RuntimeError::sys("ioprio_set", e))?;
    }
    if let Some(s) = process.scheduler() {
        let policy = match s.policy() {
            oci_spec::runtime::LinuxSchedulerPolicy::SchedOther => libc::SCHED_OTHER,
            oci_spec::runtime::LinuxSchedulerPolicy::SchedFifo => libc::SCHED_FIFO,
            oci_spec::runtime::LinuxSchedulerPolicy::SchedRr => libc::SCHED_RR,
            oci_spec::runtime::LinuxSchedulerPolicy::SchedBatch => libc::SCHED_BATCH,
            oci_spec::runtime::LinuxSchedulerPolicy::SchedIso => 4,
            oci_spec::runtime::LinuxSchedulerPolicy::SchedIdle => libc::SCHED_IDLE,
            oci_spec::runtime::LinuxSchedulerPolicy::SchedDeadline => 6,
        };
        let mut flags = 0u64;
        for f in s.flags().as_deref().unwrap_or_default() {
            use oci_spec::runtime::LinuxSchedulerFlag as F;
            flags |= match f {
                F::SchedResetOnFork => 0x01,
                F::SchedFlagReclaim => 0x02,
                F::SchedFlagDLOverrun => 0x04,
                F::SchedFlagKeepPolicy => 0x08,
                F::SchedFlagKeepParams => 0x10,
                F::SchedFlagUtilClampMin => 0x20,
                F::SchedFlagUtilClampMax => 0x40,
            };
        }
        let attr = palisade_sys::process::SchedAttr {
            policy: policy as u32,
            flags,
            nice: s.nice().unwrap_or(0),
            priority: s.priority().unwrap_or(0) as u32,
            runtime: s.runtime().unwrap_or(0),
            deadline: s.deadline().unwrap_or(0),
            period: s.period().unwrap_or(0),
            ..Default::default()
        };
        palisade_sys::process::set_scheduler(&attr)
            .map_err(|e| RuntimeError::sys("sched_setattr", e))?;
    }
    Ok(())
}
