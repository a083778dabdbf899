//! `palisade check`: which of the ten threats of THREATS.md a container's configuration
//! covers, weakens or leaves open, and the setting responsible.
//!
//! A pure function of the OCI config ([`Spec`]) plus what only the engine knows
//! ([`EngineFacts`]: the image signature and scan policies that gate pulls and runs). Rows 3–9
//! follow from the config alone; row 10 (a malicious container) is the worst of rows 3–9;
//! rows 1 and 2 come from the facts; row 8 from the config's network namespace.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use oci_spec::runtime::{LinuxNamespaceType, LinuxSeccompAction, Spec};
use serde::Serialize;

/// How well a threat is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Coverage {
    /// Every defence of the row is in force.
    Covered,
    /// Some defence is missing; others still stand in the way.
    Weakened,
    /// The defence that matters is gone.
    Open,
}

impl fmt::Display for Coverage {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Coverage::Covered => "covered",
            Coverage::Weakened => "weakened",
            Coverage::Open => "open",
        })
    }
}

/// The state of an image gate (signature verification, vulnerability scan) as the engine
/// applies it to the container's image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "detail", rename_all = "snake_case")]
pub enum Gate {
    /// Enforced before pull and run; the text names the policy (e.g. "trusted keys: 2").
    Enforced(String),
    /// Checked, but a failure only warns, or it was relaxed for this container.
    Relaxed(String),
    /// Not checked at all; the text says why.
    Off(String),
}

/// What the engine knows beyond the OCI config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EngineFacts {
    /// Signature verification of the image (row 1).
    pub signatures: Gate,
    /// Vulnerability scanning of the image (row 2).
    pub scan: Gate,
    /// Every blob and manifest is checked against its digest on write and read (row 1).
    pub digests_verified: bool,
}

impl EngineFacts {
    /// What the engine enforces today when nothing else is configured: digests are verified
    /// by the image store; signature and scan gates are not wired into `palisade run` yet.
    pub fn current_defaults() -> EngineFacts {
        EngineFacts {
            signatures: Gate::Off("no signature policy is configured for palisade run".into()),
            scan: Gate::Off("no vulnerability scan policy is configured for palisade run".into()),
            digests_verified: true,
        }
    }

    /// Nothing known (an OCI bundle run by another engine).
    pub fn unknown() -> EngineFacts {
        EngineFacts {
            signatures: Gate::Off("not known for an OCI bundle".into()),
            scan: Gate::Off("not known for an OCI bundle".into()),
            digests_verified: false,
        }
    }
}

/// One row of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ThreatCheck {
    /// The row number in THREATS.md (1–10).
    pub number: u8,
    /// The threat's name.
    pub threat: &'static str,
    /// The verdict.
    pub coverage: Coverage,
    /// The settings responsible: what covers it, or what weakens or opens it.
    pub settings: Vec<String>,
}

/// The ten rows, in THREATS.md order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// Rows 1–10.
    pub threats: Vec<ThreatCheck>,
}

impl CheckReport {
    /// The row numbered `number`.
    pub fn row(&self, number: u8) -> Option<&ThreatCheck> {
        self.threats.iter().find(|row| row.number == number)
    }

    /// The worst verdict of all rows.
    pub fn worst(&self) -> Coverage {
        self.threats
            .iter()
            .map(|row| row.coverage)
            .max()
            .unwrap_or(Coverage::Covered)
    }
}

/// Paths whose masking keeps a container from the host's kernel knobs and memory
/// (`/proc/sysrq-trigger` may be read-only instead).
const CRITICAL_MASKED: &[&str] = &["/proc/kcore", "/proc/sysrq-trigger"];
/// Host paths a writable bind mount of which hands over the host.
const SENSITIVE_HOST_PATHS: &[&str] = &[
    "/", "/etc", "/proc", "/sys", "/dev", "/boot", "/root", "/var/run", "/run", "/var/lib", "/usr",
    "/bin", "/sbin", "/lib",
];
/// Capabilities that undo isolation (a subset of the runtime's dangerous list that matters
/// for escapes).
const ESCAPE_CAPABILITIES: &[&str] = &[
    "SYS_ADMIN",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_PTRACE",
    "DAC_READ_SEARCH",
    "BPF",
    "PERFMON",
    "SYS_BOOT",
    "SYSLOG",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "NET_ADMIN",
];

/// Checks `spec` against the ten threats.
pub fn check(spec: &Spec, facts: &EngineFacts) -> CheckReport {
    let view = View::new(spec);
    let mut threats = vec![
        image_poisoning(facts),
        image_vulnerabilities(facts),
        view.cross_container(),
        view.denial_of_service(),
        view.ipc(),
        view.file_access(),
        view.devices(),
        view.network(),
        view.privilege_escalation(),
    ];
    threats.push(malicious_container(&threats));
    threats.sort_by_key(|row| row.number);
    CheckReport { threats }
}

fn row(number: u8, threat: &'static str, coverage: Coverage, settings: Vec<String>) -> ThreatCheck {
    ThreatCheck {
        number,
        threat,
        coverage,
        settings,
    }
}

fn image_poisoning(facts: &EngineFacts) -> ThreatCheck {
    let digests = if facts.digests_verified {
        "every blob and manifest verified against its digest"
    } else {
        "digest verification not known"
    };
    let (coverage, gate) = match &facts.signatures {
        Gate::Enforced(policy) => (Coverage::Covered, format!("signatures enforced: {policy}")),
        Gate::Relaxed(why) => (
            Coverage::Weakened,
            format!("signatures not enforced: {why}"),
        ),
        Gate::Off(why) if facts.digests_verified => {
            (Coverage::Weakened, format!("signatures not checked: {why}"))
        }
        Gate::Off(why) => (Coverage::Open, format!("signatures not checked: {why}")),
    };
    row(
        1,
        "image poisoning",
        coverage,
        vec![gate, digests.to_owned()],
    )
}

fn image_vulnerabilities(facts: &EngineFacts) -> ThreatCheck {
    let (coverage, text) = match &facts.scan {
        Gate::Enforced(policy) => (Coverage::Covered, format!("scan policy enforced: {policy}")),
        Gate::Relaxed(why) => (Coverage::Weakened, format!("scan not enforced: {why}")),
        Gate::Off(why) => (Coverage::Open, format!("no scan: {why}")),
    };
    row(2, "image vulnerabilities", coverage, vec![text])
}

fn malicious_container(rows: &[ThreatCheck]) -> ThreatCheck {
    let confinement: Vec<&ThreatCheck> = rows
        .iter()
        .filter(|row| (3..=9).contains(&row.number))
        .collect();
    let coverage = confinement
        .iter()
        .map(|row| row.coverage)
        .max()
        .unwrap_or(Coverage::Open);
    let mut settings: Vec<String> = confinement
        .iter()
        .filter(|row| row.coverage != Coverage::Covered)
        .map(|row| format!("row {} ({}) is {}", row.number, row.threat, row.coverage))
        .collect();
    if settings.is_empty() {
        settings.push("rows 3-9 all covered".into());
    }
    settings.push(
        "seccomp denials, OOM kills and pids-limit hits are recorded in the audit log".into(),
    );
    row(10, "malicious containers", coverage, settings)
}

/// The parts of a config the rows look at.
struct View<'a> {
    spec: &'a Spec,
    namespaces: Vec<(LinuxNamespaceType, Option<String>)>,
    capabilities: HashSet<String>,
}

impl<'a> View<'a> {
    fn new(spec: &'a Spec) -> View<'a> {
        let namespaces = spec
            .linux()
            .as_ref()
            .and_then(|linux| linux.namespaces().clone())
            .unwrap_or_default()
            .iter()
            .map(|ns| {
                (
                    ns.typ(),
                    ns.path().as_ref().map(|path| path.display().to_string()),
                )
            })
            .collect();
        let capabilities = spec
            .process()
            .as_ref()
            .and_then(|process| process.capabilities().as_ref())
            .map(|caps| {
                [caps.bounding(), caps.effective(), caps.permitted()]
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|cap| cap.to_string())
                    .collect()
            })
            .unwrap_or_default();
        View {
            spec,
            namespaces,
            capabilities,
        }
    }

    /// `Ok(())` for a namespace of its own; the reason it is shared otherwise.
    fn own_namespace(&self, typ: LinuxNamespaceType, name: &str) -> Result<(), String> {
        match self.namespaces.iter().find(|(t, _)| *t == typ) {
            Some((_, None)) => Ok(()),
            Some((_, Some(path))) => Err(format!("{name} namespace joined from {path}")),
            None => Err(format!("host {name} namespace")),
        }
    }

    fn has_cap(&self, name: &str) -> bool {
        self.capabilities.contains(name)
    }

    fn masked_paths(&self) -> Vec<String> {
        self.spec
            .linux()
            .as_ref()
            .and_then(|linux| linux.masked_paths().clone())
            .unwrap_or_default()
    }

    fn readonly_paths(&self) -> Vec<String> {
        self.spec
            .linux()
            .as_ref()
            .and_then(|linux| linux.readonly_paths().clone())
            .unwrap_or_default()
    }

    fn seccomp(&self) -> Option<LinuxSeccompAction> {
        self.spec
            .linux()
            .as_ref()
            .and_then(|linux| linux.seccomp().as_ref())
            .map(|seccomp| seccomp.default_action())
    }

    fn cross_container(&self) -> ThreatCheck {
        let mut settings = Vec::new();
        let coverage = match self.own_namespace(LinuxNamespaceType::Pid, "pid") {
            Ok(()) => {
                settings.push("pid namespace of its own".to_owned());
                if self.has_cap("SYS_PTRACE") {
                    settings.push("CAP_SYS_PTRACE granted".to_owned());
                    Coverage::Weakened
                } else {
                    Coverage::Covered
                }
            }
            Err(why) => {
                settings.push(why);
                Coverage::Open
            }
        };
        row(3, "cross-container interference", coverage, settings)
    }

    fn denial_of_service(&self) -> ThreatCheck {
        let resources = self
            .spec
            .linux()
            .as_ref()
            .and_then(|linux| linux.resources().as_ref());
        let memory = resources
            .and_then(|r| r.memory().as_ref())
            .and_then(|m| m.limit())
            .filter(|limit| *limit > 0);
        let pids = resources
            .and_then(|r| r.pids().as_ref())
            .map(|p| p.limit())
            .filter(|limit| *limit > 0);
        let cpu = resources
            .and_then(|r| r.cpu().as_ref())
            .is_some_and(|cpu| cpu.quota().is_some_and(|q| q > 0) || cpu.shares().is_some());
        let io = resources.and_then(|r| r.block_io().as_ref()).is_some();
        let mut settings = vec![
            memory.map_or_else(
                || "no memory limit".to_owned(),
                |limit| format!("memory limit {} MiB", limit / (1 << 20)),
            ),
            pids.map_or_else(
                || "no pids limit".to_owned(),
                |limit| format!("pids limit {limit}"),
            ),
        ];
        if !cpu {
            settings.push("no cpu quota (fair share only)".to_owned());
        }
        if !io {
            settings.push("no io limit".to_owned());
        }
        let coverage = match (memory.is_some(), pids.is_some()) {
            (true, true) => Coverage::Covered,
            (false, false) => Coverage::Open,
            _ => Coverage::Weakened,
        };
        row(4, "denial of service", coverage, settings)
    }

    fn ipc(&self) -> ThreatCheck {
        let ipc = self.own_namespace(LinuxNamespaceType::Ipc, "ipc");
        let net = self.own_namespace(LinuxNamespaceType::Network, "network");
        let mut settings = Vec::new();
        match &ipc {
            Ok(()) => settings.push("ipc namespace of its own (SysV, POSIX queues)".to_owned()),
            Err(why) => settings.push(why.clone()),
        }
        match &net {
            Ok(()) => settings.push("network namespace of its own (abstract sockets)".to_owned()),
            Err(why) => settings.push(format!("{why}: host abstract unix sockets reachable")),
        }
        let coverage = match (ipc.is_ok(), net.is_ok()) {
            (true, true) => Coverage::Covered,
            (false, false) => Coverage::Open,
            _ => Coverage::Weakened,
        };
        row(5, "IPC interference", coverage, settings)
    }

    fn file_access(&self) -> ThreatCheck {
        let mut open = Vec::new();
        let mut weak = Vec::new();
        let mut good = Vec::new();
        match self.own_namespace(LinuxNamespaceType::Mount, "mount") {
            Ok(()) => good.push("mount namespace and pivot_root".to_owned()),
            Err(why) => open.push(why),
        }
        let masked = self.masked_paths();
        let readonly = self.readonly_paths();
        let missing: Vec<&str> = CRITICAL_MASKED
            .iter()
            .copied()
            .filter(|path| {
                let protected = masked.iter().any(|m| m == path)
                    || (*path == "/proc/sysrq-trigger" && readonly.iter().any(|r| r == path));
                !protected
            })
            .collect();
        if missing.is_empty() {
            good.push(format!("{} masked /proc and /sys paths", masked.len()));
        } else {
            open.push(format!("not masked: {}", missing.join(", ")));
        }
        if readonly.iter().any(|p| p == "/proc/sys") {
            good.push("/proc/sys and friends read-only".to_owned());
        } else {
            open.push("/proc/sys writable (no readonly paths)".to_owned());
        }
        let root_readonly = self
            .spec
            .root()
            .as_ref()
            .and_then(|root| root.readonly())
            .unwrap_or(false);
        if root_readonly {
            good.push("read-only rootfs".to_owned());
        } else {
            weak.push("writable rootfs".to_owned());
        }
        let landlock = self.spec.annotations().as_ref().is_some_and(|annotations| {
            annotations.contains_key(palisade_runtime::config::LANDLOCK_ANNOTATION)
        });
        if landlock {
            good.push("Landlock".to_owned());
        } else {
            weak.push("no Landlock".to_owned());
        }
        if self.has_cap("DAC_READ_SEARCH") {
            open.push(
                "CAP_DAC_READ_SEARCH granted (open_by_handle_at reads host files)".to_owned(),
            );
        }
        if self.has_cap("SYS_ADMIN") {
            open.push("CAP_SYS_ADMIN granted (mount)".to_owned());
        }
        for mount in self.spec.mounts().as_ref().into_iter().flatten() {
            let options = mount.options().clone().unwrap_or_default();
            let bind = mount.typ().as_deref() == Some("bind")
                || options.iter().any(|o| o == "bind" || o == "rbind");
            if !bind {
                continue;
            }
            let source = mount
                .source()
                .as_ref()
                .map(|s| s.display().to_string())
                .unwrap_or_default();
            let read_only = options.iter().any(|o| o == "ro");
            let destination = mount.destination().display().to_string();
            // The host's /sys bound read-only under --network host is expected.
            if read_only && destination == "/sys" {
                continue;
            }
            let sensitive = SENSITIVE_HOST_PATHS
                .iter()
                .any(|p| Path::new(&source) == Path::new(p))
                || source.ends_with(".sock");
            match (sensitive, read_only) {
                (true, false) => open.push(format!(
                    "host {source} bind-mounted writable at {destination}"
                )),
                (true, true) => weak.push(format!(
                    "host {source} bind-mounted read-only at {destination}"
                )),
                (false, false) => weak.push(format!(
                    "host {source} bind-mounted writable at {destination}"
                )),
                (false, true) => good.push(format!("host {source} bind-mounted read-only")),
            }
        }
        let coverage = if !open.is_empty() {
            Coverage::Open
        } else if !weak.is_empty() {
            Coverage::Weakened
        } else {
            Coverage::Covered
        };
        let settings = if coverage == Coverage::Covered {
            good
        } else {
            open.into_iter().chain(weak).collect()
        };
        row(6, "unauthorized file access", coverage, settings)
    }

    fn devices(&self) -> ThreatCheck {
        let rules = self
            .spec
            .linux()
            .as_ref()
            .and_then(|linux| linux.resources().as_ref())
            .and_then(|r| r.devices().clone())
            .unwrap_or_default();
        let denies_first = rules
            .first()
            .is_some_and(|rule| !rule.allow() && rule.typ().is_none() && rule.major().is_none());
        let allows_all = rules.iter().any(|rule| {
            rule.allow()
                && rule.major().is_none()
                && rule.minor().is_none()
                && matches!(
                    rule.typ(),
                    None | Some(oci_spec::runtime::LinuxDeviceType::A)
                )
        });
        let nodes: Vec<String> = self
            .spec
            .linux()
            .as_ref()
            .and_then(|linux| linux.devices().clone())
            .unwrap_or_default()
            .iter()
            .filter(|device| {
                matches!(device.typ(), oci_spec::runtime::LinuxDeviceType::B)
                    || [
                        "/dev/mem",
                        "/dev/kmem",
                        "/dev/port",
                        "/dev/kmsg",
                        "/dev/kvm",
                    ]
                    .iter()
                    .any(|p| device.path() == Path::new(p))
            })
            .map(|device| device.path().display().to_string())
            .collect();
        let mut settings = Vec::new();
        let userns = self.own_namespace(LinuxNamespaceType::User, "user").is_ok();
        let mut coverage = Coverage::Covered;
        if allows_all {
            settings.push("device cgroup allows every device".to_owned());
            coverage = Coverage::Open;
        } else if denies_first {
            settings.push("device cgroup denies all but the allow-list".to_owned());
        } else if rules.is_empty() && userns {
            settings
                .push("no device cgroup rules; the user namespace forbids device nodes".to_owned());
            coverage = Coverage::Weakened;
        } else {
            settings.push("device cgroup does not start with deny-all".to_owned());
            coverage = Coverage::Weakened;
        }
        if !nodes.is_empty() {
            settings.push(format!("host device nodes given: {}", nodes.join(", ")));
            coverage = Coverage::Open;
        }
        if self.has_cap("MKNOD") {
            settings.push("CAP_MKNOD granted".to_owned());
            coverage = coverage.max(Coverage::Weakened);
        } else {
            settings.push("no CAP_MKNOD".to_owned());
        }
        row(7, "unauthorized host device access", coverage, settings)
    }

    fn network(&self) -> ThreatCheck {
        let mut settings = Vec::new();
        let coverage = match self.own_namespace(LinuxNamespaceType::Network, "network") {
            Ok(()) => {
                settings.push(
                    "network namespace of its own (loopback only unless a network is attached)"
                        .to_owned(),
                );
                if self.has_cap("NET_RAW") || self.has_cap("NET_ADMIN") {
                    settings.push("CAP_NET_RAW/CAP_NET_ADMIN granted (forged frames possible on attached interfaces)".to_owned());
                    Coverage::Weakened
                } else {
                    Coverage::Covered
                }
            }
            Err(why) => {
                settings.push(format!(
                    "{why}: the host's interfaces and traffic are reachable"
                ));
                Coverage::Open
            }
        };
        row(8, "network attacks", coverage, settings)
    }

    fn privilege_escalation(&self) -> ThreatCheck {
        let mut open = Vec::new();
        let mut weak = Vec::new();
        let mut good = Vec::new();
        match self.own_namespace(LinuxNamespaceType::User, "user") {
            Ok(()) => {
                let root_maps_to = self
                    .spec
                    .linux()
                    .as_ref()
                    .and_then(|linux| linux.uid_mappings().clone())
                    .unwrap_or_default()
                    .iter()
                    .find(|m| m.container_id() == 0)
                    .map(|m| m.host_id());
                match root_maps_to {
                    Some(0) => open.push("user namespace maps root to host root".to_owned()),
                    Some(host) => good.push(format!("user namespace (root is host uid {host})")),
                    None => good.push("user namespace (root unmapped)".to_owned()),
                }
            }
            Err(why) => weak.push(format!("{why}: root inside is host root")),
        }
        match self.seccomp() {
            Some(LinuxSeccompAction::ScmpActAllow | LinuxSeccompAction::ScmpActLog) => {
                open.push("seccomp default action allows every syscall".to_owned())
            }
            Some(_) => good.push("seccomp allow-list".to_owned()),
            None => open.push("no seccomp filter".to_owned()),
        }
        let nnp = self
            .spec
            .process()
            .as_ref()
            .and_then(|process| process.no_new_privileges())
            .unwrap_or(false);
        if nnp {
            good.push("no_new_privs".to_owned());
        } else {
            weak.push("no_new_privs off".to_owned());
        }
        let mut escape: Vec<&str> = ESCAPE_CAPABILITIES
            .iter()
            .copied()
            .filter(|cap| self.has_cap(cap))
            .collect();
        escape.sort_unstable();
        if escape.is_empty() {
            good.push(format!(
                "{} capabilities, none dangerous",
                self.bounding_count()
            ));
        } else if escape.contains(&"SYS_ADMIN") || escape.contains(&"SYS_MODULE") {
            open.push(format!(
                "dangerous capabilities: CAP_{}",
                escape.join(", CAP_")
            ));
        } else {
            weak.push(format!(
                "dangerous capabilities: CAP_{}",
                escape.join(", CAP_")
            ));
        }
        // Without a user namespace, missing seccomp and capabilities, root inside is host root
        // with nothing in between.
        let coverage = if !open.is_empty() {
            Coverage::Open
        } else if !weak.is_empty() {
            Coverage::Weakened
        } else {
            Coverage::Covered
        };
        let settings = if coverage == Coverage::Covered {
            good
        } else {
            open.into_iter().chain(weak).collect()
        };
        row(9, "privilege escalation", coverage, settings)
    }

    fn bounding_count(&self) -> usize {
        self.spec
            .process()
            .as_ref()
            .and_then(|process| process.capabilities().as_ref())
            .and_then(|caps| caps.bounding().as_ref())
            .map_or(0, HashSet::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{ContainerOptions, NetworkMode, SecurityOption};
    use crate::spec::{build, SpecInputs};
    use crate::users::ResolvedUser;

    fn spec_for(options: &ContainerOptions) -> Spec {
        let image: oci_spec::image::ImageConfiguration = serde_json::from_value(
            serde_json::json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}, "config": {"Cmd": ["/bin/sh"]}}),
        )
        .unwrap();
        let user = ResolvedUser {
            uid: 0,
            gid: 0,
            additional_gids: Vec::new(),
            home: None,
        };
        let hook = vec!["/usr/bin/palisade".to_owned(), "container-hook".to_owned()];
        build(
            &SpecInputs {
                image: &image,
                image_name: "busybox",
                container_name: "c",
                default_hostname: "c",
                user: &user,
                binds: &[],
                loopback_hook: &hook,
            },
            options,
        )
        .unwrap()
        .spec
    }

    fn verdicts(report: &CheckReport) -> Vec<(u8, Coverage)> {
        report
            .threats
            .iter()
            .map(|row| (row.number, row.coverage))
            .collect()
    }

    fn coverage(report: &CheckReport, number: u8) -> Coverage {
        report.row(number).unwrap().coverage
    }

    #[test]
    fn the_hardened_defaults_cover_rows_3_to_10() {
        let report = check(
            &spec_for(&ContainerOptions::new("busybox")),
            &EngineFacts::current_defaults(),
        );
        assert_eq!(report.threats.len(), 10);
        for number in 3..=10 {
            assert_eq!(
                coverage(&report, number),
                Coverage::Covered,
                "{:?}",
                report.row(number)
            );
        }
        // Rows 1 and 2 are honest about what is not wired yet.
        assert_eq!(coverage(&report, 1), Coverage::Weakened);
        assert_eq!(coverage(&report, 2), Coverage::Open);
        let facts = EngineFacts {
            signatures: Gate::Enforced("trusted keys: 1".into()),
            scan: Gate::Enforced("refuse critical".into()),
            digests_verified: true,
        };
        let report = check(&spec_for(&ContainerOptions::new("busybox")), &facts);
        assert_eq!(report.worst(), Coverage::Covered, "{report:#?}");
        // The runtime's own hardened spec (no engine) covers them too.
        let runtime = palisade_runtime::spec::hardened(false).unwrap();
        let report = check(&runtime, &facts);
        assert_eq!(report.worst(), Coverage::Covered, "{report:#?}");
    }

    #[test]
    fn privileged_opens_file_device_and_privilege_rows() {
        let mut options = ContainerOptions::new("busybox");
        options.privileged = true;
        let report = check(&spec_for(&options), &EngineFacts::current_defaults());
        assert_eq!(coverage(&report, 6), Coverage::Open);
        assert_eq!(coverage(&report, 9), Coverage::Open);
        assert_eq!(coverage(&report, 10), Coverage::Open);
        let row9 = report.row(9).unwrap().settings.join("; ");
        assert!(
            row9.contains("no seccomp filter") && row9.contains("CAP_SYS_ADMIN"),
            "{row9}"
        );
        let row6 = report.row(6).unwrap().settings.join("; ");
        assert!(row6.contains("not masked: /proc/kcore"), "{row6}");
        assert!(matches!(
            coverage(&report, 7),
            Coverage::Weakened | Coverage::Open
        ));
        // Namespaces stay: rows 3, 5 and 8 hold.
        assert_eq!(coverage(&report, 3), Coverage::Weakened, "CAP_SYS_PTRACE");
        assert_eq!(coverage(&report, 5), Coverage::Covered);
    }

    #[test]
    fn each_flag_weakens_or_opens_its_row() {
        type Change = Box<dyn Fn(&mut ContainerOptions)>;
        let cases: Vec<(&str, Change, u8, Coverage, &str)> = vec![
            (
                "seccomp",
                Box::new(|o| o.security.push(SecurityOption::SeccompUnconfined)),
                9,
                Coverage::Open,
                "no seccomp filter",
            ),
            (
                "nnp",
                Box::new(|o| o.security.push(SecurityOption::AllowNewPrivileges)),
                9,
                Coverage::Weakened,
                "no_new_privs off",
            ),
            (
                "userns",
                Box::new(|o| o.security.push(SecurityOption::HostUserNamespace)),
                9,
                Coverage::Weakened,
                "host user namespace",
            ),
            (
                "landlock",
                Box::new(|o| o.security.push(SecurityOption::LandlockOff)),
                6,
                Coverage::Weakened,
                "no Landlock",
            ),
            (
                "rw",
                Box::new(|o| o.read_only = false),
                6,
                Coverage::Weakened,
                "writable rootfs",
            ),
            (
                "net",
                Box::new(|o| o.network = NetworkMode::Host),
                8,
                Coverage::Open,
                "host network namespace",
            ),
            (
                "net-ipc",
                Box::new(|o| o.network = NetworkMode::Host),
                5,
                Coverage::Weakened,
                "abstract unix sockets",
            ),
            (
                "mem",
                Box::new(|o| o.memory = Some(crate::options::Limit::Unlimited)),
                4,
                Coverage::Weakened,
                "no memory limit",
            ),
            (
                "pids",
                Box::new(|o| o.pids_limit = Some(crate::options::Limit::Unlimited)),
                4,
                Coverage::Weakened,
                "no pids limit",
            ),
            (
                "cap",
                Box::new(|o| o.cap_add.push("SYS_ADMIN".parse().unwrap())),
                9,
                Coverage::Open,
                "CAP_SYS_ADMIN",
            ),
            (
                "mknod",
                Box::new(|o| o.cap_add.push("MKNOD".parse().unwrap())),
                7,
                Coverage::Weakened,
                "CAP_MKNOD",
            ),
        ];
        for (name, change, number, expected, text) in cases {
            let mut options = ContainerOptions::new("busybox");
            change(&mut options);
            let report = check(&spec_for(&options), &EngineFacts::current_defaults());
            let row = report.row(number).unwrap();
            assert_eq!(row.coverage, expected, "{name}: {row:?}");
            assert!(row.settings.join("; ").contains(text), "{name}: {row:?}");
            assert!(
                coverage(&report, 10) >= Coverage::Weakened,
                "{name}: row 10 follows"
            );
        }
    }

    #[test]
    fn a_runc_style_config_is_checked_from_the_bundle_alone() {
        // `runc spec` defaults: no user or network namespace, no seccomp, no limits.
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {"user": {"uid": 0, "gid": 0}, "args": ["sh"], "cwd": "/",
                "capabilities": {"bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]},
                "noNewPrivileges": true},
            "root": {"path": "rootfs", "readonly": true},
            "linux": {
                "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
                "resources": {"devices": [{"allow": false, "access": "rwm"}]},
                "maskedPaths": ["/proc/kcore", "/proc/sysrq-trigger"],
                "readonlyPaths": ["/proc/sys"]
            }
        }))
        .unwrap();
        let report = check(&spec, &EngineFacts::unknown());
        assert_eq!(
            verdicts(&report),
            vec![
                (1, Coverage::Open),
                (2, Coverage::Open),
                (3, Coverage::Covered),
                (4, Coverage::Open),
                (5, Coverage::Covered),
                (6, Coverage::Weakened),
                (7, Coverage::Covered),
                (8, Coverage::Covered),
                (9, Coverage::Open),
                (10, Coverage::Open),
            ]
        );
        // An empty config is all open, and nothing panics.
        let empty = check(&Spec::default(), &EngineFacts::unknown());
        assert_eq!(
            empty.row(3).unwrap().coverage,
            Coverage::Covered,
            "Spec::default has namespaces"
        );
    }
}
