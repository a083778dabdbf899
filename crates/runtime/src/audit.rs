//! The runtime's entries in Palisade's audit log: container lifecycle, the confinement each
//! container got, and every secure default its config relaxed.
//!
//! Audit failures never stop a container operation (the log may live on a full or read-only
//! disk); they are reported as warnings instead.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use palisade_audit::{
    Actor, AuditLog, Confinement, Event, IdMapping, LandlockStatus, SeccompSummary, UserNamespace,
};

use crate::state::PersistedState;

/// Where the runtime's audit stream goes unless told otherwise.
pub fn default_path() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/lib/palisade/audit/runtime.log");
    }
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    base.join("palisade/audit/runtime.log")
}

/// The runtime's audit stream.
#[derive(Debug)]
pub struct Auditor {
    log: Option<AuditLog>,
}

impl Auditor {
    /// Opens the log at `path` with the `PALISADE_AUDIT_*` settings
    /// ([`palisade_audit::LogConfig::from_env`]); on failure, warns and records nothing.
    pub fn open(path: &Path) -> Self {
        let opened = palisade_audit::LogConfig::from_env()
            .map_err(|error| error.to_string())
            .and_then(|config| config.open(path).map_err(|error| error.to_string()));
        match opened {
            Ok(log) => Self { log: Some(log) },
            Err(e) => {
                tracing::warn!(error = %e, path = ?path, "audit log unavailable; continuing without it");
                Self { log: None }
            }
        }
    }

    /// An auditor that records nothing (for tests and `--audit-log none`).
    pub fn disabled() -> Self {
        Self { log: None }
    }

    fn record(&mut self, event: Event) {
        if let Some(log) = self.log.as_mut() {
            if let Err(e) = log.append(event) {
                tracing::warn!(error = %e, "failed to append to the audit log");
            }
        }
    }

    /// A container was created: its confinement, then one entry per relaxed default.
    pub fn created(&mut self, state: &PersistedState) {
        let spec = &state.config;
        self.record(Event::ContainerCreated {
            actor: Actor::current_process(),
            container_id: state.id.clone(),
            bundle: state.bundle.clone(),
            pid: u32::try_from(state.init_pid).ok(),
            user_namespace: user_namespace(spec),
            confinement: confinement(spec),
        });
        for relaxation in relaxations(spec) {
            self.record(Event::PolicyRelaxed {
                actor: Actor::current_process(),
                container_id: Some(state.id.clone()),
                image: None,
                relaxation,
                reason: Some("set in the bundle's config.json".into()),
            });
        }
    }

    /// The container's pids limit refused `hits` forks (from the cgroup's `pids.events`).
    pub fn pids_limit_hit(&mut self, state: &PersistedState, hits: u64, limit: Option<u64>) {
        if hits > 0 {
            self.record(Event::PidsLimitHit {
                actor: Actor::process(u32::try_from(state.init_pid).unwrap_or(0), "container"),
                container_id: Some(state.id.clone()),
                limit,
                count: hits,
            });
        }
    }

    pub fn started(&mut self, state: &PersistedState) {
        self.record(Event::ContainerStarted {
            actor: Actor::current_process(),
            container_id: state.id.clone(),
            pid: u32::try_from(state.init_pid).ok(),
        });
    }

    pub fn killed(&mut self, id: &str, signal: &str, all: bool) {
        self.record(Event::ContainerKilled {
            actor: Actor::current_process(),
            container_id: id.to_owned(),
            signal: signal.to_owned(),
            all,
        });
    }

    /// A container was deleted; an OOM kill seen in its cgroup is recorded first.
    pub fn deleted(
        &mut self,
        state: &PersistedState,
        force: bool,
        oom_kills: u64,
        memory_limit: Option<u64>,
    ) {
        if oom_kills > 0 {
            self.record(Event::OomKilled {
                actor: Actor::process(u32::try_from(state.init_pid).unwrap_or(0), "container"),
                container_id: Some(state.id.clone()),
                memory_limit,
                count: Some(oom_kills),
            });
        }
        self.record(Event::ContainerDeleted {
            actor: Actor::current_process(),
            container_id: state.id.clone(),
            force,
        });
    }

    pub fn executed(&mut self, state: &PersistedState, pid: i32, args: &[String]) {
        self.record(Event::ContainerExecuted {
            actor: Actor::current_process(),
            container_id: state.id.clone(),
            pid: u32::try_from(pid).ok(),
            args: args.to_vec(),
            confinement: confinement(&state.config),
        });
    }
}

fn user_namespace(spec: &Spec) -> Option<UserNamespace> {
    let linux = spec.linux().as_ref()?;
    let has_userns = linux
        .namespaces()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::User);
    if !has_userns {
        return None;
    }
    let map = |m: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| {
        m.as_deref()
            .unwrap_or_default()
            .iter()
            .map(|m| IdMapping {
                container: m.container_id(),
                host: m.host_id(),
                size: m.size(),
            })
            .collect()
    };
    Some(UserNamespace {
        uid_mappings: map(linux.uid_mappings()),
        gid_mappings: map(linux.gid_mappings()),
    })
}

fn confinement(spec: &Spec) -> Confinement {
    let process = spec.process().as_ref();
    let seccomp = spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .map(|s| SeccompSummary {
            profile: "config".into(),
            default_action: format!("{:?}", s.default_action()),
            rules: u32::try_from(s.syscalls().as_ref().map_or(0, Vec::len)).unwrap_or(u32::MAX),
        });
    let landlock_on = spec
        .annotations()
        .as_ref()
        .is_some_and(|a| a.contains_key(crate::config::LANDLOCK_ANNOTATION));
    let mut capabilities: Vec<String> = process
        .and_then(|p| p.capabilities().as_ref())
        .and_then(|c| c.bounding().as_ref())
        .map(|set| set.iter().map(|c| format!("CAP_{c}")).collect())
        .unwrap_or_default();
    capabilities.sort();
    Confinement {
        seccomp,
        landlock: if landlock_on {
            LandlockStatus::Enforced
        } else {
            LandlockStatus::Disabled
        },
        landlock_abi: None,
        capabilities,
        no_new_privileges: process.and_then(|p| p.no_new_privileges()).unwrap_or(false),
        read_only_rootfs: spec
            .root()
            .as_ref()
            .and_then(|r| r.readonly())
            .unwrap_or(false),
    }
}

/// Capabilities that give a container power over the host or its neighbours.
const DANGEROUS_CAPABILITIES: &[&str] = &[
    "CAP_SYS_ADMIN",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_PTRACE",
    "CAP_SYS_TIME",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_MKNOD",
    "CAP_DAC_READ_SEARCH",
    "CAP_BPF",
    "CAP_PERFMON",
    "CAP_SYS_BOOT",
    "CAP_MAC_ADMIN",
];

/// The secure defaults `spec` does without, each named the way the audit log reports it.
pub fn relaxations(spec: &Spec) -> Vec<String> {
    let mut out = Vec::new();
    let linux = spec.linux().as_ref();
    let namespaces: Vec<_> = linux
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    for (typ, name) in [
        (
            oci_spec::runtime::LinuxNamespaceType::User,
            "host_user_namespace",
        ),
        (
            oci_spec::runtime::LinuxNamespaceType::Pid,
            "host_pid_namespace",
        ),
        (
            oci_spec::runtime::LinuxNamespaceType::Network,
            "host_network_namespace",
        ),
        (
            oci_spec::runtime::LinuxNamespaceType::Ipc,
            "host_ipc_namespace",
        ),
    ] {
        match namespaces.iter().find(|n| n.typ() == typ) {
            None => out.push(name.to_owned()),
            Some(ns) if ns.path().is_some() => out.push(format!(
                "{name}_joined:{}",
                ns.path().as_deref().unwrap_or(Path::new("")).display()
            )),
            Some(_) => {}
        }
    }
    if linux.and_then(|l| l.seccomp().as_ref()).is_none() {
        out.push("seccomp_disabled".into());
    }
    let process = spec.process().as_ref();
    if !process.and_then(|p| p.no_new_privileges()).unwrap_or(false) {
        out.push("no_new_privileges_disabled".into());
    }
    let caps = confinement(spec).capabilities;
    for cap in caps
        .iter()
        .filter(|c| DANGEROUS_CAPABILITIES.contains(&c.as_str()))
    {
        out.push(format!("capability:{cap}"));
    }
    let all_devices = linux
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.devices().as_ref())
        .is_some_and(|rules| {
            rules
                .last()
                .is_some_and(|r| r.allow() && r.typ().is_none() && r.major().is_none())
        });
    if all_devices {
        out.push("all_devices_allowed".into());
    }
    if !spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        out.push("writable_rootfs".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hardened_spec_relaxes_nothing_and_runc_style_relaxes_a_lot() {
        let hardened = crate::spec::hardened(false).unwrap();
        assert_eq!(relaxations(&hardened), Vec::<String>::new());
        let mut loose = Spec::default();
        if let Some(root) = loose.root_mut().as_mut() {
            root.set_readonly(Some(false));
        }
        let r = relaxations(&loose);
        for expected in ["host_user_namespace", "seccomp_disabled", "writable_rootfs"] {
            assert!(
                r.iter().any(|x| x == expected),
                "{expected} missing from {r:?}"
            );
        }
    }

    #[test]
    fn events_are_appended_and_verify() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runtime.log");
        let mut auditor = Auditor::open(&path);
        let state = PersistedState {
            id: "c1".into(),
            init_pid: 42,
            init_start_time: 1,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: String::new(),
            owner: String::new(),
            cgroup_path: PathBuf::new(),
            cgroup_created: false,
            config: Spec::default(),
        };
        auditor.created(&state);
        auditor.started(&state);
        auditor.killed("c1", "SIGKILL", false);
        auditor.deleted(&state, true, 1, Some(1 << 20));
        let report = palisade_audit::verify(&[&path]).unwrap();
        assert!(report.intact);
        let text = std::fs::read_to_string(&path).unwrap();
        for kind in [
            "container_created",
            "policy_relaxed",
            "container_started",
            "container_killed",
            "oom_killed",
            "container_deleted",
        ] {
            assert!(text.contains(kind), "{kind} missing");
        }
    }
}
