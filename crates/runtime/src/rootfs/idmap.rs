//! Id-mapped bind mounts (`idmap`/`ridmap` options, OCI `uidMappings`/`gidMappings` on a
//! mount): the runtime, still in the host's namespaces, clones the source tree, attaches a
//! user namespace carrying the mount's id maps to it, and hands the detached mount to the
//! container's init, which moves it into place.

use std::os::fd::{AsFd, OwnedFd};

use nix::sched::{unshare, CloneFlags};
use oci_spec::runtime::{LinuxIdMapping, Mount, Spec};
use palisade_sys::process::{fork, Forked};
use rustix::mount::{MoveMountFlags, OpenTreeFlags};

use super::options::MountOptions;
use crate::error::{Result, RuntimeError};

/// A detached, id-mapped mount tree for the config's mount number `index`.
#[derive(Debug)]
pub(crate) struct IdmappedMount {
    pub(crate) index: usize,
    pub(crate) tree: OwnedFd,
}

fn maps<'a>(
    own: &'a Option<Vec<LinuxIdMapping>>,
    container: Option<&'a Vec<LinuxIdMapping>>,
) -> Option<&'a [LinuxIdMapping]> {
    own.as_deref()
        .filter(|m| !m.is_empty())
        .or(container.map(Vec::as_slice))
        .filter(|m| !m.is_empty())
}

/// Whether mount `m` asks for an id-mapped mount.
pub(crate) fn wanted(m: &Mount) -> bool {
    MountOptions::parse(m.options().as_deref().unwrap_or_default()).idmap
        || m.uid_mappings().as_ref().is_some_and(|v| !v.is_empty())
}

/// Prepares every id-mapped mount of `spec`.
pub(crate) fn prepare_all(spec: &Spec) -> Result<Vec<IdmappedMount>> {
    let linux = spec.linux().as_ref();
    let mut out = Vec::new();
    for (index, m) in spec
        .mounts()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        if !wanted(m) {
            continue;
        }
        let options = MountOptions::parse(m.options().as_deref().unwrap_or_default());
        if !(options.bind || m.typ().as_deref() == Some("bind")) {
            return Err(RuntimeError::InvalidConfig(format!(
                "id-mapped mount {:?} must be a bind mount",
                m.destination()
            )));
        }
        let uids = maps(
            m.uid_mappings(),
            linux.and_then(|l| l.uid_mappings().as_ref()),
        );
        let gids = maps(
            m.gid_mappings(),
            linux.and_then(|l| l.gid_mappings().as_ref()),
        );
        let (Some(uids), Some(gids)) = (uids, gids) else {
            return Err(RuntimeError::InvalidConfig(format!(
                "id-mapped mount {:?} needs uidMappings and gidMappings (on the mount or in linux)",
                m.destination()
            )));
        };
        let source = m.source().clone().unwrap_or_default();
        let recursive = options.flags.contains(nix::mount::MsFlags::MS_REC)
            || m.options()
                .as_deref()
                .unwrap_or_default()
                .iter()
                .any(|o| o == "ridmap");
        let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
        if recursive {
            flags |= OpenTreeFlags::AT_RECURSIVE;
        }
        let tree = rustix::mount::open_tree(rustix::fs::CWD, &source, flags)
            .map_err(|e| RuntimeError::io("clone mount source", &source, e.into()))?;
        let userns = user_namespace_with(uids, gids)?;
        palisade_sys::mount::set_idmap(
            &tree,
            &userns,
            options.flags.contains(nix::mount::MsFlags::MS_RDONLY),
            recursive,
        )
        .map_err(|e| {
            RuntimeError::io(
                "id-map mount (needs a filesystem and kernel that support idmapped mounts)",
                &source,
                e,
            )
        })?;
        out.push(IdmappedMount { index, tree });
    }
    Ok(out)
}

/// Attaches a prepared tree at `target` inside the container (called by the init).
pub(crate) fn attach(tree: &OwnedFd, target: &OwnedFd) -> Result<()> {
    rustix::mount::move_mount(
        tree.as_fd(),
        "",
        target.as_fd(),
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .map_err(|e| {
        RuntimeError::sys(
            "move the id-mapped mount into place",
            std::io::Error::from(e),
        )
    })
}

/// A user namespace with exactly these id maps, held by its descriptor. A short-lived child
/// creates it; the maps are written from here, where we hold the privileges to write them.
fn user_namespace_with(uids: &[LinuxIdMapping], gids: &[LinuxIdMapping]) -> Result<OwnedFd> {
    let (ready_r, ready_w) = nix::unistd::pipe().map_err(|e| RuntimeError::sys("pipe", e))?;
    let (done_r, done_w) = nix::unistd::pipe().map_err(|e| RuntimeError::sys("pipe", e))?;
    let child = match fork().map_err(|e| RuntimeError::sys("fork", e))? {
        Forked::Child => {
            drop(ready_r);
            drop(done_w);
            let code = match unshare(CloneFlags::CLONE_NEWUSER) {
                Ok(()) => {
                    let _ = nix::unistd::write(&ready_w, b"1");
                    // Stay alive until the parent has opened our namespace.
                    let mut byte = [0u8; 1];
                    let _ = nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(&done_r), &mut byte);
                    0
                }
                Err(_) => 1,
            };
            palisade_sys::process::exit_immediately(code)
        }
        Forked::Parent(pid) => pid,
    };
    drop(ready_w);
    drop(done_r);
    let result = (|| {
        let mut byte = [0u8; 1];
        let n = nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(&ready_r), &mut byte)
            .map_err(|e| RuntimeError::sys("wait for the id-map helper", e))?;
        if n != 1 {
            return Err(RuntimeError::Init(
                "could not create a user namespace for an id-mapped mount".into(),
            ));
        }
        let format = |m: &[LinuxIdMapping]| {
            m.iter()
                .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
                .collect::<String>()
        };
        let base = format!("/proc/{child}");
        std::fs::write(format!("{base}/uid_map"), format(uids))
            .map_err(|e| RuntimeError::io("write", format!("{base}/uid_map"), e))?;
        std::fs::write(format!("{base}/gid_map"), format(gids))
            .map_err(|e| RuntimeError::io("write", format!("{base}/gid_map"), e))?;
        rustix::fs::open(
            format!("{base}/ns/user"),
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| RuntimeError::io("open", format!("{base}/ns/user"), e.into()))
    })();
    drop(done_w);
    let _ = nix::sys::wait::waitpid(child, None);
    result
}
