//! Loading a bundle's `config.json` and checking it before anything is created.
//!
//! Every check that can fail runs here, in the runtime, before a state directory, cgroup,
//! mount or process exists, so bad input leaves nothing behind.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use crate::error::{Result, RuntimeError};
use crate::namespaces::NamespacePlan;
use crate::process::identity::CapabilityPlan;
use crate::rootfs;

/// Annotation that switches Landlock on for any bundle.
pub const LANDLOCK_ANNOTATION: &str = palisade_seccomp::landlock::LANDLOCK_ANNOTATION;

/// A config that passed every check, with what was derived from it.
#[derive(Debug)]
pub struct CheckedConfig {
    pub spec: Spec,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub namespaces: NamespacePlan,
    pub(crate) caps: CapabilityPlan,
    pub seccomp: Option<palisade_seccomp::SeccompFilter>,
    pub landlock: Option<palisade_seccomp::landlock::LandlockPolicy>,
}

/// Reads and parses `<bundle>/config.json`.
pub fn load_spec(bundle: &Path) -> Result<Spec> {
    let path = bundle.join("config.json");
    let bytes = std::fs::read(&path).map_err(|source| RuntimeError::ReadConfig {
        path: path.clone(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|e| RuntimeError::ParseConfig {
        path,
        message: e.to_string(),
    })
}

/// Loads and checks the config of `bundle`.
pub fn check_bundle(bundle: &Path) -> Result<CheckedConfig> {
    let bundle = std::path::absolute(bundle)
        .map_err(|e| RuntimeError::io("resolve bundle path", bundle, e))?;
    let spec = load_spec(&bundle)?;
    check_spec(spec, bundle)
}

/// Checks a parsed config.
pub fn check_spec(spec: Spec, bundle: PathBuf) -> Result<CheckedConfig> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| RuntimeError::InvalidConfig("root is missing".into()))?;
    let rootfs = if root.path().is_absolute() {
        root.path().clone()
    } else {
        bundle.join(root.path())
    };
    if !rootfs.is_dir() {
        return Err(RuntimeError::MissingRootfs { path: rootfs });
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| RuntimeError::InvalidConfig("process is missing".into()))?;
    if let Some(profile) = process
        .apparmor_profile()
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        if !apparmor_enabled() {
            return Err(RuntimeError::InvalidConfig(format!(
                "process.apparmorProfile {profile:?} is set but AppArmor is not enabled on this host: remove it"
            )));
        }
    }
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(RuntimeError::InvalidConfig(
            "process.args must name a program".into(),
        ));
    }
    if !process.cwd().is_absolute() {
        return Err(RuntimeError::InvalidConfig(format!(
            "process.cwd {:?} must be absolute",
            process.cwd()
        )));
    }
    let linux = spec.linux().as_ref();
    let namespaces = NamespacePlan::from_linux(linux)?;
    if !namespaces.has(nix::sched::CloneFlags::CLONE_NEWNS) {
        return Err(RuntimeError::InvalidConfig(
            "the config must create or join a mount namespace".into(),
        ));
    }
    for m in spec.mounts().as_deref().unwrap_or_default() {
        rootfs::mounts::check_destination(m)?;
    }
    for device in linux
        .and_then(|l| l.devices().as_deref())
        .unwrap_or_default()
    {
        rootfs::devices::DeviceNode::from_spec(device)?;
    }
    if let Some(sysctl) = linux.and_then(|l| l.sysctl().as_ref()) {
        for key in sysctl.keys() {
            check_sysctl(key, &namespaces)?;
        }
    }
    if let Some(p) = linux.and_then(|l| l.rootfs_propagation().as_deref()) {
        if !p.is_empty() && rootfs::options::rootfs_propagation(p).is_none() {
            return Err(RuntimeError::InvalidConfig(format!(
                "unknown rootfsPropagation {p:?}"
            )));
        }
    }
    let caps = CapabilityPlan::from_spec(process.capabilities().as_ref())?;
    let (seccomp, landlock) = confinement_policies(&spec)?;
    Ok(CheckedConfig {
        spec,
        bundle,
        rootfs,
        namespaces,
        caps,
        seccomp,
        landlock,
    })
}

/// The seccomp filter and Landlock policy of a config, compiled once for the init and again
/// for every `exec` (which gets the same confinement).
pub(crate) fn confinement_policies(
    spec: &Spec,
) -> Result<(
    Option<palisade_seccomp::SeccompFilter>,
    Option<palisade_seccomp::landlock::LandlockPolicy>,
)> {
    let seccomp = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(profile) => Some(palisade_seccomp::compile(profile)?),
        None => None,
    };
    let landlock = palisade_seccomp::landlock::LandlockPolicy::from_annotations(
        spec.annotations().as_ref().unwrap_or(&Default::default()),
    )
    .map_err(|e| RuntimeError::InvalidConfig(format!("landlock annotation: {e}")))?;
    Ok((seccomp, landlock.is_enabled().then_some(landlock)))
}

/// Whether the kernel enforces AppArmor profiles.
pub(crate) fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|v| v.trim() == "Y")
}

/// Only namespaced sysctls may be set, and only when the container owns that namespace:
/// anything else would change the host for everyone.
fn check_sysctl(key: &str, ns: &NamespacePlan) -> Result<()> {
    use nix::sched::CloneFlags as F;
    let ipc = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let needed = if ipc.contains(&key) || key.starts_with("fs.mqueue.") {
        F::CLONE_NEWIPC
    } else if key.starts_with("net.") {
        F::CLONE_NEWNET
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        F::CLONE_NEWUTS
    } else {
        return Err(RuntimeError::InvalidConfig(format!(
            "sysctl {key:?} is not namespaced: it would change the host"
        )));
    };
    if !ns.new.contains(needed) && !ns.has(needed) {
        return Err(RuntimeError::InvalidConfig(format!(
            "sysctl {key:?} needs the container's own {} namespace",
            crate::namespaces::proc_name(needed)
        )));
    }
    Ok(())
}
