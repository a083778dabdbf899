//! The typed events Palisade writes to its audit log.
//!
//! Each event is a JSON object whose `kind` names the variant in snake_case
//! (`"kind":"container_created"`), followed by the variant's fields. Every variant has an
//! [`Actor`] (who or what caused it); the container it concerns, if any, is in `container_id`;
//! verdicts carry an explicit [`Decision`], and [`Event::decision`] gives one for every kind.
//!
//! Optional fields are left out of the JSON when they are `None`. Adding an optional field or a
//! new variant keeps old records readable; renaming or removing one does not, so don't.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What Palisade did about the thing an event describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The action was checked and permitted.
    Allow,
    /// The action was refused or blocked.
    Deny,
    /// A secure default was relaxed on explicit request.
    Relax,
    /// A fact worth recording; nothing was decided.
    Info,
}

/// Who or what caused an event: a user, a process, or both. Unknown parts are left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// Numeric user id (on the host, unless the event says otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// User name: a local account, or the authenticated name of a registry client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Process id (on the host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Process name (`comm`) or executable path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
}

impl Actor {
    /// This process: its real uid, pid and executable name.
    pub fn current_process() -> Actor {
        Actor {
            uid: Some(nix::unistd::getuid().as_raw()),
            user: None,
            pid: Some(std::process::id()),
            process: std::env::current_exe().ok().and_then(|exe| {
                exe.file_name()
                    .map(|name| name.to_string_lossy().into_owned())
            }),
        }
    }

    /// A named user, such as an authenticated registry client.
    pub fn user(name: impl Into<String>) -> Actor {
        Actor {
            user: Some(name.into()),
            ..Actor::default()
        }
    }

    /// A process known by pid and name, such as the one a kernel report blames.
    pub fn process(pid: u32, name: impl Into<String>) -> Actor {
        Actor {
            pid: Some(pid),
            process: Some(name.into()),
            ..Actor::default()
        }
    }

    /// Sets the numeric uid.
    pub fn with_uid(mut self, uid: u32) -> Actor {
        self.uid = Some(uid);
        self
    }

    /// Sets the user name.
    pub fn with_user(mut self, user: impl Into<String>) -> Actor {
        self.user = Some(user.into());
        self
    }
}

/// One contiguous range of a user namespace's id map (OCI `linux.uidMappings` entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMapping {
    /// First id inside the container.
    pub container: u32,
    /// The host id `container` maps to.
    pub host: u32,
    /// How many consecutive ids the range covers.
    pub size: u32,
}

/// A container's user namespace mapping.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserNamespace {
    /// uid ranges.
    pub uid_mappings: Vec<IdMapping>,
    /// gid ranges.
    pub gid_mappings: Vec<IdMapping>,
}

/// The seccomp filter a process runs under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeccompSummary {
    /// Profile name or digest, e.g. `"default"` or `"sha256:…"`.
    pub profile: String,
    /// The action for syscalls no rule matches, e.g. `"errno"`.
    pub default_action: String,
    /// How many syscall rules the profile has.
    pub rules: u32,
}

/// How far Landlock confines a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LandlockStatus {
    /// Every requested restriction is in force.
    Enforced,
    /// The kernel's ABI supports only part of the requested restrictions.
    PartiallyEnforced,
    /// The kernel has no Landlock.
    NotSupported,
    /// Landlock was turned off by configuration (a relaxation).
    Disabled,
}

/// The confinement a container process was started with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confinement {
    /// The seccomp filter; `None` means the process runs without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<SeccompSummary>,
    /// Landlock's state.
    pub landlock: LandlockStatus,
    /// The Landlock ABI version in use, when enforced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landlock_abi: Option<u32>,
    /// The capability bounding set, e.g. `["CAP_CHOWN", "CAP_NET_BIND_SERVICE"]`.
    pub capabilities: Vec<String>,
    /// Whether `no_new_privs` is set.
    pub no_new_privileges: bool,
    /// Whether the root filesystem is mounted read-only.
    pub read_only_rootfs: bool,
}

/// What a signature check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureOutcome {
    /// A trusted key's valid signature covers the digest.
    Verified,
    /// No trusted, valid signature covers the digest.
    Refused,
}

/// Whether a scan result satisfies the vulnerability policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyOutcome {
    /// Within policy.
    Passed,
    /// Above the policy's limits.
    Failed,
}

/// Vulnerability counts per severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeverityCounts {
    /// Critical findings.
    pub critical: u64,
    /// High findings.
    pub high: u64,
    /// Medium findings.
    pub medium: u64,
    /// Low and negligible findings.
    pub low: u64,
    /// Findings without a severity.
    pub unknown: u64,
}

/// The operation a registry client attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegistryAction {
    /// Read manifests or blobs.
    Pull,
    /// Upload manifests or blobs.
    Push,
    /// Delete manifests, tags or blobs.
    Delete,
    /// List repositories or tags.
    List,
}

/// The kind of forgery anti-spoofing rules dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpoofKind {
    /// An ARP packet claiming an address the port is not bound to.
    Arp,
    /// An IP packet with a source address the port is not bound to.
    Ip,
    /// A frame with a source MAC the port is not bound to.
    Mac,
}

/// One audit event. See the module documentation for the JSON shape.
///
/// Non-exhaustive: new kinds will be added, so matches elsewhere need a catch-all arm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// A container was created (namespaces set up, init waiting for `start`).
    ContainerCreated {
        /// Who asked.
        actor: Actor,
        /// Container id.
        container_id: String,
        /// The OCI bundle directory.
        #[serde(with = "lossy_path")]
        bundle: PathBuf,
        /// The container init's host pid.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pid: Option<u32>,
        /// The user namespace mapping; `None` when the container shares the host's (a relaxation).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_namespace: Option<UserNamespace>,
        /// Seccomp, Landlock, capabilities and related settings.
        confinement: Confinement,
    },
    /// A created container's user process was started.
    ContainerStarted {
        /// Who asked.
        actor: Actor,
        /// Container id.
        container_id: String,
        /// The user process's host pid.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pid: Option<u32>,
    },
    /// A signal was sent to a container.
    ContainerKilled {
        /// Who asked.
        actor: Actor,
        /// Container id.
        container_id: String,
        /// Signal name, e.g. `"SIGKILL"`.
        signal: String,
        /// Whether every process in the container was signalled, not just init.
        all: bool,
    },
    /// A container was deleted.
    ContainerDeleted {
        /// Who asked.
        actor: Actor,
        /// Container id.
        container_id: String,
        /// Whether a running container was killed to delete it.
        force: bool,
    },
    /// An extra process was started inside a running container.
    ContainerExecuted {
        /// Who asked.
        actor: Actor,
        /// Container id.
        container_id: String,
        /// The new process's host pid.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pid: Option<u32>,
        /// Its argument vector. Pass secrets only through [`crate::Redacted`]'s text form.
        args: Vec<String>,
        /// Its confinement.
        confinement: Confinement,
    },
    /// A secure default was relaxed through an explicit, loudly named option.
    PolicyRelaxed {
        /// Who relaxed it.
        actor: Actor,
        /// The container it applies to, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        container_id: Option<String>,
        /// The image it applies to, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image: Option<String>,
        /// What was relaxed: the option's name, e.g. `"allow_unsigned_images"`.
        relaxation: String,
        /// The reason given, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// An image was pulled into the local store.
    ImagePulled {
        /// Who pulled it.
        actor: Actor,
        /// The reference as requested, e.g. `"registry.example/app:1.2"`.
        reference: String,
        /// The manifest digest it resolved to.
        digest: String,
    },
    /// An image was pushed to a registry (logged by the client or the registry).
    ImagePushed {
        /// Who pushed it.
        actor: Actor,
        /// The reference pushed to.
        reference: String,
        /// The manifest digest.
        digest: String,
    },
    /// The outcome of checking an image's signature against the trust policy.
    SignatureVerdict {
        /// Who checked.
        actor: Actor,
        /// Image reference.
        reference: String,
        /// Manifest digest that was checked.
        digest: String,
        /// What the check found.
        verdict: SignatureOutcome,
        /// What was done (normally allow for verified, deny for refused).
        decision: Decision,
        /// The key that verified, or the key expected.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key_id: Option<String>,
        /// Why, especially for a refusal.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The outcome of checking an image's vulnerability scan against the policy.
    ScanVerdict {
        /// Who checked.
        actor: Actor,
        /// Image reference.
        reference: String,
        /// Manifest digest that was scanned.
        digest: String,
        /// Findings per severity.
        counts: SeverityCounts,
        /// The vulnerability policy's name.
        policy: String,
        /// Whether the findings are within the policy.
        verdict: PolicyOutcome,
        /// What was done.
        decision: Decision,
    },
    /// The registry refused a request.
    RegistryRequestDenied {
        /// The client, as authenticated (`user`) or anonymous.
        actor: Actor,
        /// Repository name.
        repository: String,
        /// What the client tried.
        action: RegistryAction,
        /// The client's address.
        remote_addr: IpAddr,
        /// Why, e.g. `"no push permission"`.
        reason: String,
    },
    /// The kernel reported a seccomp action on a container process (`SCMP_ACT_LOG`, or a
    /// logged errno/kill).
    SeccompViolation {
        /// The offending process.
        actor: Actor,
        /// Its container, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        container_id: Option<String>,
        /// Syscall number, as the kernel reports it.
        syscall_number: u32,
        /// Syscall name, when resolved.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        syscall: Option<String>,
        /// Audit architecture, e.g. `"x86_64"`.
        arch: String,
        /// The filter's action, e.g. `"log"`, `"errno"`, `"kill_process"`.
        action: String,
        /// Deny for errno/kill, info for log.
        decision: Decision,
        /// How many times the syscall was attempted since the previous report of the same
        /// syscall for the same container (reports are aggregated); absent means once.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        count: Option<u64>,
    },
    /// The kernel's OOM killer killed a container process.
    OomKilled {
        /// The killed process.
        actor: Actor,
        /// Its container, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        container_id: Option<String>,
        /// The memory limit in bytes in force, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        memory_limit: Option<u64>,
        /// How many OOM kills the cgroup counted since the previous report; absent means one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        count: Option<u64>,
    },
    /// The device cgroup refused a container process access to a device.
    DeviceAccessDenied {
        /// The process that tried.
        actor: Actor,
        /// Its container, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        container_id: Option<String>,
        /// The device, as `"c 1:1"` or a path.
        device: String,
        /// The access asked for, a subset of `"rwm"`.
        access: String,
    },
    /// A container's bridge port was bound to its MAC and addresses (anti-spoofing installed).
    NetworkPortBound {
        /// Who set it up.
        actor: Actor,
        /// Container id.
        container_id: String,
        /// Host-side interface name.
        interface: String,
        /// The bound MAC address.
        mac: String,
        /// The bound IP addresses.
        addresses: Vec<IpAddr>,
    },
    /// Anti-spoofing rules dropped forged traffic from a container.
    SpoofingBlocked {
        /// Who observed it (the network component).
        actor: Actor,
        /// The container the traffic came from, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        container_id: Option<String>,
        /// Host-side interface name.
        interface: String,
        /// What was forged.
        spoof: SpoofKind,
        /// The address the traffic claimed.
        claimed: String,
        /// The address the port is bound to.
        bound: String,
        /// Packets dropped since the previous report.
        packets: u64,
    },
    /// A rate limiter dropped events of one key; written once per window that dropped any.
    EventsSuppressed {
        /// The component that suppressed them.
        actor: Actor,
        /// The rate-limit key, e.g. `"registry_request_denied:10.0.0.7"`.
        key: String,
        /// The `kind` of the suppressed events.
        suppressed_kind: String,
        /// How many were dropped.
        count: u64,
    },
    /// This file continues a rotated log; its `prev` is the archived file's last hash.
    LogRotated {
        /// Who rotated it.
        actor: Actor,
        /// Where the previous file was moved.
        #[serde(with = "lossy_path")]
        archive: PathBuf,
    },
    /// A container's process exited (init, so the container stopped).
    ContainerStopped {
        /// Who observed it (the engine's monitor or the runtime).
        actor: Actor,
        /// Container id.
        container_id: String,
        /// Exit status, when it exited normally.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        /// The signal that killed it, e.g. `"SIGKILL"`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signal: Option<String>,
    },
    /// A client logged in to a registry (or a registry accepted or refused its credentials).
    RegistryLogin {
        /// The user name given.
        actor: Actor,
        /// The registry host, e.g. `"127.0.0.1:5000"`.
        registry: String,
        /// Whether the credentials were accepted.
        decision: Decision,
        /// The client's address, when the registry records it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        remote_addr: Option<IpAddr>,
        /// Why it was refused.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A container hit its pids limit: a `fork`/`clone` failed (cgroup `pids.events` max).
    PidsLimitHit {
        /// The container's init, when known.
        actor: Actor,
        /// Its container, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        container_id: Option<String>,
        /// The pids limit in force, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u64>,
        /// Refused forks since the previous report.
        count: u64,
    },
    /// Landlock refused a container process access to a file.
    LandlockDenied {
        /// The offending process.
        actor: Actor,
        /// Its container, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        container_id: Option<String>,
        /// The path, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        /// The access refused, e.g. `"write_file"`.
        access: String,
        /// How many such denials this record stands for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        count: Option<u64>,
    },
    /// Starting a container failed before its program ran (the runtime binary could not be
    /// executed, or container setup was refused).
    ContainerStartFailed {
        /// Who tried.
        actor: Actor,
        /// Container id.
        container_id: String,
        /// What failed.
        reason: String,
    },
    /// A rule of the anomaly rule file matched: `count` events of `matched_kind` within
    /// `window_secs` reached its threshold.
    Alert {
        /// The component that evaluated the rule.
        actor: Actor,
        /// The rule's name.
        rule: String,
        /// The container the matching events concern, when they share one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        container_id: Option<String>,
        /// The kind of the events that matched.
        matched_kind: String,
        /// How many matched within the window.
        count: u64,
        /// The window, in seconds.
        window_secs: u64,
        /// The `seq` of the record that crossed the threshold.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trigger_seq: Option<u64>,
    },
    /// A signed checkpoint: a signature over the previous record's `seq` and `hash` (the chain's
    /// head), so a chain rewritten by someone without the key no longer verifies. See
    /// [`crate::checkpoint`] for the signed message.
    Checkpoint {
        /// Who signed.
        actor: Actor,
        /// The `seq` of the record signed (this record's `seq` − 1).
        covers_seq: u64,
        /// The signing key's id: `sha256:` and the hex SHA-256 of its SubjectPublicKeyInfo DER.
        key_id: String,
        /// The signature algorithm, e.g. `"ecdsa-p256-sha256"`.
        algorithm: String,
        /// The signature, hex (DER for ECDSA).
        signature: String,
    },
    /// An event no typed kind covers yet. Prefer adding a typed kind.
    Other {
        /// Who caused it.
        #[serde(default)]
        actor: Actor,
        /// A snake_case name for the event.
        name: String,
        /// Its fields. Put secrets in only as `Redacted::new(secret).into()`.
        #[serde(default)]
        fields: serde_json::Map<String, serde_json::Value>,
    },
}

impl Event {
    /// The `kind` written to the log, e.g. `"container_created"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::ContainerCreated { .. } => "container_created",
            Event::ContainerStarted { .. } => "container_started",
            Event::ContainerKilled { .. } => "container_killed",
            Event::ContainerDeleted { .. } => "container_deleted",
            Event::ContainerExecuted { .. } => "container_executed",
            Event::PolicyRelaxed { .. } => "policy_relaxed",
            Event::ImagePulled { .. } => "image_pulled",
            Event::ImagePushed { .. } => "image_pushed",
            Event::SignatureVerdict { .. } => "signature_verdict",
            Event::ScanVerdict { .. } => "scan_verdict",
            Event::RegistryRequestDenied { .. } => "registry_request_denied",
            Event::SeccompViolation { .. } => "seccomp_violation",
            Event::OomKilled { .. } => "oom_killed",
            Event::DeviceAccessDenied { .. } => "device_access_denied",
            Event::NetworkPortBound { .. } => "network_port_bound",
            Event::SpoofingBlocked { .. } => "spoofing_blocked",
            Event::EventsSuppressed { .. } => "events_suppressed",
            Event::LogRotated { .. } => "log_rotated",
            Event::ContainerStopped { .. } => "container_stopped",
            Event::RegistryLogin { .. } => "registry_login",
            Event::PidsLimitHit { .. } => "pids_limit_hit",
            Event::LandlockDenied { .. } => "landlock_denied",
            Event::ContainerStartFailed { .. } => "container_start_failed",
            Event::Alert { .. } => "alert",
            Event::Checkpoint { .. } => "checkpoint",
            Event::Other { .. } => "other",
        }
    }

    /// Who or what caused the event.
    pub fn actor(&self) -> &Actor {
        match self {
            Event::ContainerCreated { actor, .. }
            | Event::ContainerStarted { actor, .. }
            | Event::ContainerKilled { actor, .. }
            | Event::ContainerDeleted { actor, .. }
            | Event::ContainerExecuted { actor, .. }
            | Event::PolicyRelaxed { actor, .. }
            | Event::ImagePulled { actor, .. }
            | Event::ImagePushed { actor, .. }
            | Event::SignatureVerdict { actor, .. }
            | Event::ScanVerdict { actor, .. }
            | Event::RegistryRequestDenied { actor, .. }
            | Event::SeccompViolation { actor, .. }
            | Event::OomKilled { actor, .. }
            | Event::DeviceAccessDenied { actor, .. }
            | Event::NetworkPortBound { actor, .. }
            | Event::SpoofingBlocked { actor, .. }
            | Event::EventsSuppressed { actor, .. }
            | Event::LogRotated { actor, .. }
            | Event::ContainerStopped { actor, .. }
            | Event::RegistryLogin { actor, .. }
            | Event::PidsLimitHit { actor, .. }
            | Event::LandlockDenied { actor, .. }
            | Event::ContainerStartFailed { actor, .. }
            | Event::Alert { actor, .. }
            | Event::Checkpoint { actor, .. }
            | Event::Other { actor, .. } => actor,
        }
    }

    /// The container the event concerns, if any. For [`Event::Other`], a string
    /// `container_id` field counts.
    pub fn container_id(&self) -> Option<&str> {
        match self {
            Event::ContainerCreated { container_id, .. }
            | Event::ContainerStarted { container_id, .. }
            | Event::ContainerKilled { container_id, .. }
            | Event::ContainerDeleted { container_id, .. }
            | Event::ContainerExecuted { container_id, .. }
            | Event::NetworkPortBound { container_id, .. }
            | Event::ContainerStopped { container_id, .. }
            | Event::ContainerStartFailed { container_id, .. } => Some(container_id),
            Event::PolicyRelaxed { container_id, .. }
            | Event::SeccompViolation { container_id, .. }
            | Event::OomKilled { container_id, .. }
            | Event::DeviceAccessDenied { container_id, .. }
            | Event::SpoofingBlocked { container_id, .. }
            | Event::PidsLimitHit { container_id, .. }
            | Event::LandlockDenied { container_id, .. }
            | Event::Alert { container_id, .. } => container_id.as_deref(),
            Event::Other { fields, .. } => fields
                .get("container_id")
                .and_then(serde_json::Value::as_str),
            Event::ImagePulled { .. }
            | Event::ImagePushed { .. }
            | Event::SignatureVerdict { .. }
            | Event::ScanVerdict { .. }
            | Event::RegistryRequestDenied { .. }
            | Event::EventsSuppressed { .. }
            | Event::LogRotated { .. }
            | Event::RegistryLogin { .. }
            | Event::Checkpoint { .. } => None,
        }
    }

    /// The image the event concerns, if any: a reference or digest. For
    /// [`Event::Other`], a string `image` field counts.
    pub fn image(&self) -> Option<&str> {
        match self {
            Event::ImagePulled { reference, .. }
            | Event::ImagePushed { reference, .. }
            | Event::SignatureVerdict { reference, .. }
            | Event::ScanVerdict { reference, .. } => Some(reference),
            Event::PolicyRelaxed { image, .. } => image.as_deref(),
            Event::Other { fields, .. } => fields.get("image").and_then(serde_json::Value::as_str),
            _ => None,
        }
    }

    /// The image digest the event names, if any.
    pub fn digest(&self) -> Option<&str> {
        match self {
            Event::ImagePulled { digest, .. }
            | Event::ImagePushed { digest, .. }
            | Event::SignatureVerdict { digest, .. }
            | Event::ScanVerdict { digest, .. } => Some(digest),
            _ => None,
        }
    }

    /// What Palisade decided: the recorded decision for verdicts, and the one the kind implies
    /// otherwise (deny for refusals and blocks, relax for relaxations, info for facts).
    pub fn decision(&self) -> Decision {
        match self {
            Event::SignatureVerdict { decision, .. }
            | Event::ScanVerdict { decision, .. }
            | Event::SeccompViolation { decision, .. }
            | Event::RegistryLogin { decision, .. } => *decision,
            Event::PolicyRelaxed { .. } => Decision::Relax,
            Event::RegistryRequestDenied { .. }
            | Event::DeviceAccessDenied { .. }
            | Event::SpoofingBlocked { .. }
            | Event::EventsSuppressed { .. }
            | Event::PidsLimitHit { .. }
            | Event::LandlockDenied { .. } => Decision::Deny,
            Event::ContainerCreated { .. }
            | Event::ContainerStarted { .. }
            | Event::ContainerKilled { .. }
            | Event::ContainerDeleted { .. }
            | Event::ContainerExecuted { .. }
            | Event::ImagePulled { .. }
            | Event::ImagePushed { .. }
            | Event::OomKilled { .. }
            | Event::NetworkPortBound { .. }
            | Event::LogRotated { .. }
            | Event::ContainerStopped { .. }
            | Event::ContainerStartFailed { .. }
            | Event::Alert { .. }
            | Event::Checkpoint { .. }
            | Event::Other { .. } => Decision::Info,
        }
    }
}

/// Paths as UTF-8 text, replacing invalid bytes with U+FFFD rather than failing: an audit event
/// must never be lost because a caller's path is not UTF-8.
mod lossy_path {
    use std::path::{Path, PathBuf};

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(path: &Path, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&path.to_string_lossy())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<PathBuf, D::Error> {
        String::deserialize(deserializer).map(PathBuf::from)
    }
}

/// One example of every kind, for tests in this crate.
#[cfg(test)]
pub(crate) fn examples() -> Vec<Event> {
    let actor = Actor::current_process();
    let confinement = Confinement {
        seccomp: Some(SeccompSummary {
            profile: "default".into(),
            default_action: "errno".into(),
            rules: 312,
        }),
        landlock: LandlockStatus::Enforced,
        landlock_abi: Some(4),
        capabilities: vec!["CAP_CHOWN".into(), "CAP_NET_BIND_SERVICE".into()],
        no_new_privileges: true,
        read_only_rootfs: true,
    };
    let digest = format!("sha256:{}", "ab".repeat(32));
    vec![
        Event::ContainerCreated {
            actor: actor.clone(),
            container_id: "web-1".into(),
            bundle: "/var/lib/palisade/containers/web-1".into(),
            pid: Some(4242),
            user_namespace: Some(UserNamespace {
                uid_mappings: vec![IdMapping {
                    container: 0,
                    host: 100_000,
                    size: 65_536,
                }],
                gid_mappings: vec![IdMapping {
                    container: 0,
                    host: 100_000,
                    size: 65_536,
                }],
            }),
            confinement: confinement.clone(),
        },
        Event::ContainerStarted {
            actor: actor.clone(),
            container_id: "web-1".into(),
            pid: Some(4243),
        },
        Event::ContainerKilled {
            actor: actor.clone(),
            container_id: "web-1".into(),
            signal: "SIGTERM".into(),
            all: false,
        },
        Event::ContainerDeleted {
            actor: actor.clone(),
            container_id: "web-1".into(),
            force: true,
        },
        Event::ContainerExecuted {
            actor: actor.clone(),
            container_id: "web-1".into(),
            pid: Some(5000),
            args: vec!["/bin/sh".into(), "-c".into(), "echo \"hi\"\n\u{1}é".into()],
            confinement,
        },
        Event::PolicyRelaxed {
            actor: Actor::user("alice").with_uid(1000),
            container_id: Some("web-1".into()),
            image: None,
            relaxation: "allow_unsigned_images".into(),
            reason: Some("local build".into()),
        },
        Event::ImagePulled {
            actor: actor.clone(),
            reference: "registry.example/app:1.2".into(),
            digest: digest.clone(),
        },
        Event::ImagePushed {
            actor: Actor::user("ci"),
            reference: "registry.example/app:1.3".into(),
            digest: digest.clone(),
        },
        Event::SignatureVerdict {
            actor: actor.clone(),
            reference: "registry.example/app:1.2".into(),
            digest: digest.clone(),
            verdict: SignatureOutcome::Refused,
            decision: Decision::Deny,
            key_id: Some("cosign:abcd".into()),
            reason: Some("no signature".into()),
        },
        Event::ScanVerdict {
            actor: actor.clone(),
            reference: "registry.example/app:1.2".into(),
            digest,
            counts: SeverityCounts {
                critical: 1,
                high: 2,
                medium: 3,
                low: 4,
                unknown: 0,
            },
            policy: "default".into(),
            verdict: PolicyOutcome::Failed,
            decision: Decision::Deny,
        },
        Event::RegistryRequestDenied {
            actor: Actor::user("mallory"),
            repository: "team/app".into(),
            action: RegistryAction::Push,
            remote_addr: "192.0.2.7".parse().expect("valid address"),
            reason: "no push permission".into(),
        },
        Event::SeccompViolation {
            actor: Actor::process(7000, "exploit"),
            container_id: Some("web-1".into()),
            syscall_number: 321,
            syscall: Some("bpf".into()),
            arch: "x86_64".into(),
            action: "errno".into(),
            decision: Decision::Deny,
            count: Some(3),
        },
        Event::OomKilled {
            actor: Actor::process(7001, "hog"),
            container_id: Some("web-1".into()),
            memory_limit: Some(256 << 20),
            count: None,
        },
        Event::DeviceAccessDenied {
            actor: Actor::process(7002, "dd"),
            container_id: None,
            device: "b 8:0".into(),
            access: "r".into(),
        },
        Event::NetworkPortBound {
            actor: actor.clone(),
            container_id: "web-1".into(),
            interface: "veth1a2b".into(),
            mac: "02:42:ac:11:00:02".into(),
            addresses: vec!["10.88.0.2".parse().expect("valid address")],
        },
        Event::SpoofingBlocked {
            actor: actor.clone(),
            container_id: Some("web-1".into()),
            interface: "veth1a2b".into(),
            spoof: SpoofKind::Arp,
            claimed: "10.88.0.3".into(),
            bound: "10.88.0.2".into(),
            packets: 17,
        },
        Event::EventsSuppressed {
            actor: actor.clone(),
            key: "198.51.100.1".into(),
            suppressed_kind: "registry_request_denied".into(),
            count: 99,
        },
        Event::LogRotated {
            actor: actor.clone(),
            archive: "/var/lib/palisade/audit/runtime.1.log".into(),
        },
        Event::Other {
            actor,
            name: "experiment".into(),
            fields: serde_json::json!({"container_id": "web-2", "n": 1.5, "nested": {"b": 1, "a": [true, null]}})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        },
        Event::ContainerStopped {
            actor: Actor::current_process(),
            container_id: "web-1".into(),
            exit_code: None,
            signal: Some("SIGKILL".into()),
        },
        Event::RegistryLogin {
            actor: Actor::user("mallory"),
            registry: "127.0.0.1:5000".into(),
            decision: Decision::Deny,
            remote_addr: Some("192.0.2.7".parse().expect("valid address")),
            reason: Some("bad password".into()),
        },
        Event::PidsLimitHit {
            actor: Actor::process(7003, "sh"),
            container_id: Some("web-1".into()),
            limit: Some(1024),
            count: 12,
        },
        Event::LandlockDenied {
            actor: Actor::process(7004, "sh"),
            container_id: Some("web-1".into()),
            path: Some("/etc/shadow".into()),
            access: "write_file".into(),
            count: Some(3),
        },
        Event::ContainerStartFailed {
            actor: Actor::current_process(),
            container_id: "web-1".into(),
            reason: "palisade-runtime: exec format error".into(),
        },
        Event::Alert {
            actor: Actor::current_process(),
            rule: "seccomp-burst".into(),
            container_id: Some("web-1".into()),
            matched_kind: "seccomp_violation".into(),
            count: 10,
            window_secs: 60,
            trigger_seq: Some(41),
        },
        Event::Checkpoint {
            actor: Actor::current_process(),
            covers_seq: 41,
            key_id: format!("sha256:{}", "cd".repeat(32)),
            algorithm: "ecdsa-p256-sha256".into(),
            signature: "3045".into(),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_matches_the_serialized_tag_and_every_kind_round_trips() {
        let events = examples();
        let mut kinds = std::collections::BTreeSet::new();
        for event in &events {
            let value = serde_json::to_value(event).unwrap();
            assert_eq!(value["kind"], event.kind());
            assert_eq!(&serde_json::from_value::<Event>(value).unwrap(), event);
            kinds.insert(event.kind());
        }
        assert_eq!(kinds.len(), events.len(), "one example per kind");
    }

    #[test]
    fn accessors_expose_the_common_fields() {
        let events = examples();
        assert_eq!(events[0].container_id(), Some("web-1"));
        assert_eq!(events[6].container_id(), None);
        assert_eq!(events[18].container_id(), Some("web-2"));
        assert_eq!(events[5].decision(), Decision::Relax);
        assert_eq!(events[8].decision(), Decision::Deny);
        assert_eq!(events[10].actor().user.as_deref(), Some("mallory"));
        assert_eq!(events[0].decision(), Decision::Info);
    }

    #[test]
    fn json_shape_is_flat_and_omits_missing_fields() {
        let event = Event::ContainerStarted {
            actor: Actor::user("root").with_uid(0),
            container_id: "c1".into(),
            pid: None,
        };
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            r#"{"kind":"container_started","actor":{"uid":0,"user":"root"},"container_id":"c1"}"#
        );
    }

    #[test]
    fn unknown_kinds_and_missing_fields_are_refused() {
        assert!(serde_json::from_str::<Event>(r#"{"kind":"container_teleported"}"#).is_err());
        assert!(serde_json::from_str::<Event>(r#"{"kind":"container_started"}"#).is_err());
        let other: Event = serde_json::from_str(r#"{"kind":"other","name":"x"}"#).unwrap();
        assert_eq!(other.actor(), &Actor::default());
    }

    #[test]
    fn non_utf8_paths_are_written_lossily_instead_of_failing() {
        use std::os::unix::ffi::OsStrExt;
        let event = Event::LogRotated {
            actor: Actor::default(),
            archive: std::ffi::OsStr::from_bytes(b"/tmp/a\xffb").into(),
        };
        let json = serde_json::to_string(&event).unwrap();
        assert!(json.contains("/tmp/a\u{fffd}b"), "{json}");
    }
}
