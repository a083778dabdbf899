//! A compiled filter, and the one step that installs it.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use palisade_sys::seccomp as sys;

use crate::bpf::Instruction;
use crate::compile::{SeccompError, SeccompWarning};

/// A seccomp profile compiled to a classic-BPF program, ready to install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeccompFilter {
    pub(crate) program: Vec<Instruction>,
    pub(crate) flags: u32,
    pub(crate) listener_path: Option<PathBuf>,
    pub(crate) listener_metadata: Option<String>,
    pub(crate) warnings: Vec<SeccompWarning>,
}

impl SeccompFilter {
    /// The program, at most 4096 instructions.
    pub fn program(&self) -> &[Instruction] {
        &self.program
    }

    /// The `seccomp(2)` flags it is installed with (`SECCOMP_FILTER_FLAG_*`).
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// Whether installing it returns a notification listener for a seccomp agent (some rule
    /// uses `SCMP_ACT_NOTIFY`).
    pub fn needs_listener(&self) -> bool {
        self.flags & sys::FILTER_FLAG_NEW_LISTENER != 0
    }

    /// The UNIX socket of the seccomp agent that receives the listener (`listenerPath`).
    pub fn listener_path(&self) -> Option<&Path> {
        self.listener_path.as_deref()
    }

    /// Opaque data for the agent (`listenerMetadata`).
    pub fn listener_metadata(&self) -> Option<&str> {
        self.listener_metadata.as_deref()
    }

    /// What in the profile compiled differently from how it was written.
    pub fn warnings(&self) -> &[SeccompWarning] {
        &self.warnings
    }

    /// Installs the filter on the calling thread (on every thread with TSYNC) and returns the
    /// notification listener when [`needs_listener`](Self::needs_listener).
    ///
    /// The caller must already have set `no_new_privs` or hold `CAP_SYS_ADMIN`. The filter
    /// applies from the next system call on, stays across `execve`, and is inherited by
    /// children: install it as the last step before handing control to the container's process,
    /// after everything the runtime itself still has to do that the filter may deny.
    pub fn install(&self) -> Result<Option<OwnedFd>, SeccompError> {
        let program: Vec<libc::sock_filter> = self
            .program
            .iter()
            .map(|instruction| instruction.to_sock_filter())
            .collect();
        sys::install_filter(&program, self.flags).map_err(|source| SeccompError::Install { source })
    }
}
