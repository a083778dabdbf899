//! Which namespaces a container gets: new ones, and existing ones joined by path.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use nix::sched::{setns, CloneFlags};
use oci_spec::runtime::{Linux, LinuxNamespaceType};

use crate::error::{Result, RuntimeError};

/// The namespace plan of a config, checked once.
#[derive(Debug, Clone)]
pub struct NamespacePlan {
    /// Namespaces to create (besides the user namespace).
    pub new: CloneFlags,
    /// Create a new user namespace.
    pub new_user: bool,
    /// Namespaces to join, user namespace first, mount namespace last.
    pub join: Vec<(CloneFlags, PathBuf)>,
}

pub(crate) fn flag(typ: LinuxNamespaceType) -> CloneFlags {
    match typ {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// The name of a namespace under `/proc/<pid>/ns/`.
pub(crate) fn proc_name(flag: CloneFlags) -> &'static str {
    match flag {
        f if f == CloneFlags::CLONE_NEWNS => "mnt",
        f if f == CloneFlags::CLONE_NEWCGROUP => "cgroup",
        f if f == CloneFlags::CLONE_NEWUTS => "uts",
        f if f == CloneFlags::CLONE_NEWIPC => "ipc",
        f if f == CloneFlags::CLONE_NEWUSER => "user",
        f if f == CloneFlags::CLONE_NEWPID => "pid",
        f if f == CloneFlags::CLONE_NEWNET => "net",
        _ => "time",
    }
}

/// Order in which namespaces are joined: user first (it grants the rights to join the
/// others), mount last (it changes how paths resolve).
fn join_rank(flag: CloneFlags) -> u8 {
    match proc_name(flag) {
        "user" => 0,
        "mnt" => 9,
        _ => 5,
    }
}

impl NamespacePlan {
    pub fn from_linux(linux: Option<&Linux>) -> Result<Self> {
        let mut plan = NamespacePlan {
            new: CloneFlags::empty(),
            new_user: false,
            join: Vec::new(),
        };
        let mut seen = CloneFlags::empty();
        let namespaces = linux
            .and_then(|l| l.namespaces().as_deref())
            .unwrap_or_default();
        for ns in namespaces {
            let f = flag(ns.typ());
            if seen.contains(f) {
                return Err(RuntimeError::InvalidConfig(format!(
                    "namespace {:?} is listed twice",
                    proc_name(f)
                )));
            }
            seen |= f;
            match ns.path() {
                Some(path) if !path.as_os_str().is_empty() => {
                    if !path.exists() {
                        return Err(RuntimeError::InvalidConfig(format!(
                            "namespace path {path:?} for {} does not exist",
                            proc_name(f)
                        )));
                    }
                    plan.join.push((f, path.clone()));
                }
                _ if f == CloneFlags::CLONE_NEWUSER => plan.new_user = true,
                _ => plan.new |= f,
            }
        }
        plan.join.sort_by_key(|(f, _)| join_rank(*f));
        if plan
            .new
            .contains(CloneFlags::from_bits_retain(libc::CLONE_NEWTIME))
            && !std::path::Path::new("/proc/self/ns/time").exists()
        {
            return Err(RuntimeError::Unsupported(
                "this kernel has no time namespaces: remove the \"time\" namespace from the config"
                    .into(),
            ));
        }
        let has_mappings = linux
            .map(|l| l.uid_mappings().as_ref().is_some_and(|m| !m.is_empty()))
            .unwrap_or(false);
        if plan.new_user && !has_mappings {
            return Err(RuntimeError::InvalidConfig(
                "a new user namespace needs linux.uidMappings and linux.gidMappings".into(),
            ));
        }
        if has_mappings && !plan.new_user {
            return Err(RuntimeError::InvalidConfig(
                "linux.uidMappings are set but no new user namespace is requested".into(),
            ));
        }
        Ok(plan)
    }

    /// Whether the container lives in a user namespace other than the runtime's.
    pub fn has_user_namespace(&self) -> bool {
        self.new_user
            || self
                .join
                .iter()
                .any(|(f, _)| *f == CloneFlags::CLONE_NEWUSER)
    }

    /// Whether the container gets (or joins) namespace `f`.
    pub fn has(&self, f: CloneFlags) -> bool {
        self.new.contains(f) || self.join.iter().any(|(g, _)| *g == f)
    }
}

/// Opens every namespace to join (before any of them changes how paths resolve).
pub(crate) fn open_all(join: &[(CloneFlags, PathBuf)]) -> Result<Vec<(CloneFlags, OwnedFd)>> {
    join.iter()
        .map(|(f, path)| {
            rustix::fs::open(
                path,
                rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map(|fd| (*f, fd))
            .map_err(|e| RuntimeError::sys(format!("open namespace {path:?}"), e))
        })
        .collect()
}

/// Joins namespaces opened by [`open_all`], in order.
pub(crate) fn join_all(fds: &[(CloneFlags, OwnedFd)]) -> Result<()> {
    for (f, fd) in fds {
        setns(fd.as_fd(), *f)
            .map_err(|e| RuntimeError::sys(format!("join {} namespace", proc_name(*f)), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxBuilder, LinuxIdMappingBuilder, LinuxNamespaceBuilder};

    fn ns(typ: LinuxNamespaceType, path: Option<&str>) -> oci_spec::runtime::LinuxNamespace {
        let mut b = LinuxNamespaceBuilder::default().typ(typ);
        if let Some(p) = path {
            b = b.path(p);
        }
        b.build().unwrap()
    }

    #[test]
    fn plans_new_and_joined_namespaces() {
        let linux = LinuxBuilder::default()
            .namespaces(vec![
                ns(LinuxNamespaceType::Mount, Some("/proc/self/ns/mnt")),
                ns(LinuxNamespaceType::Pid, None),
                ns(LinuxNamespaceType::Network, Some("/proc/self/ns/net")),
            ])
            .build()
            .unwrap();
        let plan = NamespacePlan::from_linux(Some(&linux)).unwrap();
        assert_eq!(plan.new, CloneFlags::CLONE_NEWPID);
        assert_eq!(
            plan.join.last().unwrap().0,
            CloneFlags::CLONE_NEWNS,
            "mnt joins last"
        );
        assert!(!plan.has_user_namespace());
    }

    #[test]
    fn rejects_duplicates_missing_paths_and_mapping_mismatch() {
        let dup = LinuxBuilder::default()
            .namespaces(vec![
                ns(LinuxNamespaceType::Pid, None),
                ns(LinuxNamespaceType::Pid, None),
            ])
            .build()
            .unwrap();
        assert!(NamespacePlan::from_linux(Some(&dup)).is_err());
        let missing = LinuxBuilder::default()
            .namespaces(vec![ns(
                LinuxNamespaceType::Network,
                Some("/nonexistent/ns"),
            )])
            .build()
            .unwrap();
        assert!(NamespacePlan::from_linux(Some(&missing)).is_err());
        let user_no_map = LinuxBuilder::default()
            .namespaces(vec![ns(LinuxNamespaceType::User, None)])
            .build()
            .unwrap();
        assert!(NamespacePlan::from_linux(Some(&user_no_map)).is_err());
        let map_no_user = LinuxBuilder::default()
            .namespaces(vec![])
            .uid_mappings(vec![LinuxIdMappingBuilder::default()
                .host_id(1000u32)
                .container_id(0u32)
                .size(1u32)
                .build()
                .unwrap()])
            .build()
            .unwrap();
        assert!(NamespacePlan::from_linux(Some(&map_no_user)).is_err());
    }
}
