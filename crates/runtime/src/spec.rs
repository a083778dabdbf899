//! `spec`: the hardened config `palisade-runtime spec` writes, stricter than runc's.
//!
//! Differences from runc's template, each a default a shared host wants: container root is an
//! unprivileged host uid (user namespace), only CAP_KILL and CAP_NET_BIND_SERVICE (and
//! CAP_AUDIT_WRITE) are kept, no_new_privs, the default seccomp allow-list, a read-only rootfs
//! with tmpfs /tmp and /run, pids and memory limits, Landlock on, and a time namespace.

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxDeviceCgroupBuilder,
    LinuxIdMappingBuilder, LinuxMemoryBuilder, LinuxNamespaceBuilder, LinuxNamespaceType,
    LinuxPidsBuilder, LinuxResourcesBuilder, Mount, MountBuilder, PosixRlimitBuilder,
    PosixRlimitType, ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};

/// The annotation (value `no-symlinks`) that makes the runtime open every absolute bind
/// source without following symlinks and mount it from that descriptor: set by an engine that
/// checked the canonical source path, so that a symlink swapped in between the check and the
/// mount is refused instead of followed.
pub const PINNED_BIND_SOURCES: &str = "org.palisade.bind-sources";

use crate::error::{Result, RuntimeError};

/// First host uid/gid of the range container ids map to when the runtime runs as root.
pub const DEFAULT_HOST_ID_BASE: u32 = 1_000_000;
/// Size of that range.
pub const DEFAULT_ID_RANGE: u32 = 65_536;
/// Default pids limit.
pub const DEFAULT_PIDS_LIMIT: i64 = 1024;
/// Default memory limit (1 GiB).
pub const DEFAULT_MEMORY_LIMIT: i64 = 1 << 30;

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount> {
    MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|o| (*o).to_owned()).collect::<Vec<_>>())
        .build()
        .map_err(|e| RuntimeError::InvalidConfig(e.to_string()))
}

fn err(e: oci_spec::OciSpecError) -> RuntimeError {
    RuntimeError::InvalidConfig(e.to_string())
}

/// Paths under /proc and /sys the container must not read.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/interrupts",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
    "/sys/kernel/debug",
    "/sys/kernel/security",
];

/// Paths under /proc the container may read but never write.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The hardened default config. `rootless` maps only the caller's own uid and gid and leaves
/// out what an unprivileged user cannot set up (a network namespace of its own with sysfs,
/// device rules).
pub fn hardened(rootless: bool) -> Result<Spec> {
    let caps: std::collections::HashSet<Capability> = [
        Capability::Kill,
        Capability::NetBindService,
        Capability::AuditWrite,
    ]
    .into_iter()
    .collect();
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .inheritable(std::collections::HashSet::new())
        .ambient(std::collections::HashSet::new())
        .build()
        .map_err(err)?;
    let process = ProcessBuilder::default()
        .terminal(false)
        .user(
            UserBuilder::default()
                .uid(0u32)
                .gid(0u32)
                .build()
                .map_err(err)?,
        )
        .args(vec!["sh".to_owned()])
        .env(vec![
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
            "TERM=xterm".to_owned(),
        ])
        .cwd("/")
        .capabilities(capabilities)
        .rlimits(vec![PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitNofile)
            .hard(1024u64)
            .soft(1024u64)
            .build()
            .map_err(err)?])
        .no_new_privileges(true)
        .build()
        .map_err(err)?;

    let mut mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
            ],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/tmp",
            "tmpfs",
            "tmpfs",
            &["nosuid", "nodev", "mode=1777", "size=65536k"],
        )?,
        mount(
            "/run",
            "tmpfs",
            "tmpfs",
            &["nosuid", "nodev", "mode=755", "size=65536k"],
        )?,
    ];
    if rootless {
        mounts.push(mount(
            "/sys",
            "none",
            "/sys",
            &["rbind", "nosuid", "noexec", "nodev", "ro"],
        )?);
    } else {
        mounts.push(mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        )?);
        mounts.push(mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        )?);
    }

    let mut namespaces = vec![
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Cgroup,
        LinuxNamespaceType::User,
    ];
    if !rootless {
        namespaces.push(LinuxNamespaceType::Network);
    }
    if std::path::Path::new("/proc/self/ns/time").exists() {
        namespaces.push(LinuxNamespaceType::Time);
    }
    let namespaces = namespaces
        .into_iter()
        .map(|typ| {
            LinuxNamespaceBuilder::default()
                .typ(typ)
                .build()
                .map_err(err)
        })
        .collect::<Result<Vec<_>>>()?;
    let (uid_host, gid_host, size) = if rootless {
        (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
            1,
        )
    } else {
        (DEFAULT_HOST_ID_BASE, DEFAULT_HOST_ID_BASE, DEFAULT_ID_RANGE)
    };
    let map = |host: u32| {
        LinuxIdMappingBuilder::default()
            .container_id(0u32)
            .host_id(host)
            .size(size)
            .build()
            .map_err(err)
    };

    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .uid_mappings(vec![map(uid_host)?])
        .gid_mappings(vec![map(gid_host)?])
        .masked_paths(
            MASKED_PATHS
                .iter()
                .map(|p| (*p).to_owned())
                .collect::<Vec<_>>(),
        )
        .readonly_paths(
            READONLY_PATHS
                .iter()
                .map(|p| (*p).to_owned())
                .collect::<Vec<_>>(),
        )
        .seccomp(palisade_seccomp::default_profile());
    if !rootless {
        linux = linux.resources(
            LinuxResourcesBuilder::default()
                .devices(vec![LinuxDeviceCgroupBuilder::default()
                    .allow(false)
                    .access("rwm")
                    .build()
                    .map_err(err)?])
                .pids(
                    LinuxPidsBuilder::default()
                        .limit(DEFAULT_PIDS_LIMIT)
                        .build()
                        .map_err(err)?,
                )
                .memory(
                    LinuxMemoryBuilder::default()
                        .limit(DEFAULT_MEMORY_LIMIT)
                        .build()
                        .map_err(err)?,
                )
                .build()
                .map_err(err)?,
        );
    }
    let annotations: std::collections::HashMap<String, String> = [(
        crate::config::LANDLOCK_ANNOTATION.to_owned(),
        "rootfs".to_owned(),
    )]
    .into_iter()
    .collect();
    SpecBuilder::default()
        .version(crate::OCI_VERSION)
        .root(
            RootBuilder::default()
                .path("rootfs")
                .readonly(true)
                .build()
                .map_err(err)?,
        )
        .process(process)
        .hostname("palisade")
        .mounts(mounts)
        .linux({
            let mut linux = linux.build().map_err(err)?;
            if rootless {
                // An unprivileged user gets no cgroup of its own to put limits in.
                linux.set_resources(None);
            }
            linux
        })
        .annotations(annotations)
        .build()
        .map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hardened_spec_has_the_secure_defaults() {
        let spec = hardened(false).unwrap();
        let process = spec.process().as_ref().unwrap();
        assert_eq!(process.no_new_privileges(), Some(true));
        let bounding = process
            .capabilities()
            .as_ref()
            .unwrap()
            .bounding()
            .as_ref()
            .unwrap();
        assert!(!bounding.contains(&Capability::SysAdmin) && bounding.len() == 3);
        let linux = spec.linux().as_ref().unwrap();
        assert!(linux.seccomp().is_some());
        assert!(linux.uid_mappings().as_ref().unwrap()[0].host_id() >= 65_536);
        assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(true));
        assert!(linux
            .masked_paths()
            .as_ref()
            .unwrap()
            .iter()
            .any(|p| p == "/proc/kcore"));
        // It passes our own checks (the rootfs aside).
        let json = serde_json::to_string(&spec).unwrap();
        let back: Spec = serde_json::from_str(&json).unwrap();
        assert_eq!(back, spec);
    }

    #[test]
    fn rootless_spec_maps_only_the_caller() {
        let spec = hardened(true).unwrap();
        let linux = spec.linux().as_ref().unwrap();
        assert_eq!(linux.uid_mappings().as_ref().unwrap()[0].size(), 1);
        assert!(linux.resources().is_none());
    }
}
