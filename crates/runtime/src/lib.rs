#![forbid(unsafe_code)]
//! `palisade-runtime`'s library: the OCI container lifecycle.
//!
//! The runtime is handed a bundle (a rootfs and a `config.json`) and turns it into an isolated
//! process tree: namespaces, pivot_root, masked paths, capabilities, no_new_privs, seccomp,
//! Landlock, cgroups and a device allow-list. It is synchronous and single-threaded (it forks),
//! links no network code, and keeps its state under a root directory like runc's `--root`.

pub mod audit;
pub mod config;
pub mod console_socket;
pub mod container;
pub mod error;
pub mod features;
pub mod hooks;
pub mod namespaces;
pub(crate) mod process;
pub(crate) mod rootfs;
pub mod selfexe;
pub mod spec;
pub mod state;
pub mod time;

pub use container::{Container, CreateOptions, ExecOptions, ExecOutcome, PsOutput, StateReport};
pub use error::{Result, RuntimeError};
pub use state::{StateRoot, Status};

/// The OCI runtime spec version this runtime implements.
pub const OCI_VERSION: &str = "1.2.0";
