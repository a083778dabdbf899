#![forbid(unsafe_code)]
//! The engine behind `palisade run`: containers from images, with every secure default on.
//!
//! A container is made of pieces other crates own, put together here:
//!
//! - [`layers`]: each image layer unpacked once (by `palisade_image::unpack`), its ownership
//!   shifted into the user-namespace range, checked against the config's diff_id, and shared
//!   read-only by every container of every image that has it (`<store>/layers/<diffid-hex>`).
//! - [`rootfs`]: an overlay mount of those layers with a per-container upper directory, and
//!   reads of the image's files (`/etc/passwd`) that never leave the rootfs.
//! - [`spec`]: the OCI config: `palisade_runtime::spec::hardened` plus the image config
//!   (entrypoint, cmd, env, workdir, user, labels) plus the user's flags, each relaxation named.
//! - [`record`]: `container.json`, the container's identity and lifecycle state.
//! - [`monitor`]: the process that drives `palisade-runtime create/start`, reaps the
//!   container, writes its output to [`logs`] and records its exit (a small conmon).
//! - [`engine`]: the operations the CLI calls (create, start, run, stop, kill, rm, ps, logs,
//!   exec, inspect, wait).
//!
//! Containers themselves are run by the `palisade-runtime` binary ([`runtime`]), as podman
//! runs runc: this crate never enters a namespace or applies a seccomp filter itself.
//!
//! ```text
//! <store>/                         0711: the container's root (an unprivileged host uid)
//!   layers/<diffid-hex>/           0700 parent: unpacked, shifted, read-only layers
//!   containers/<id>/               0711
//!     container.json               the record (0600)
//!     bundle/config.json           the hardened OCI config (0600)
//!     bundle/rootfs/               the overlay mount point
//!     overlay/{upper,work}/        the container's writable layer (parent 0700)
//!     ctr.log, ctr.log.1           the container's output, JSON lines, rotated
//!     runtime.log                  palisade-runtime's errors (JSON lines)
//!   volumes/<name>/                named volumes, owned by the container root's host uid
//!   audit/engine.log               PolicyRelaxed events (the runtime writes audit/runtime.log)
//! ```

pub mod audit;
pub mod check;
pub mod engine;
pub mod exit;
pub mod id;
pub mod landlock_watch;
pub mod layers;
pub mod logs;
pub mod monitor;
pub mod network;
pub mod options;
pub mod paths;
pub mod record;
pub mod rootfs;
pub mod runtime;
pub mod seccomp_agent;
pub mod spec;
pub mod users;
pub mod volumes;

pub use engine::{Engine, EngineConfig, EngineError};
pub use id::{ContainerId, ContainerName};
pub use options::{ContainerOptions, NetworkMode, SecurityOption};
pub use record::{ContainerRecord, ContainerState};
