//! The one error type of this crate.

use std::io;
use std::path::PathBuf;

/// Errors from creating, configuring, inspecting and removing cgroups.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// The root holds neither a cgroup2 mount nor cgroup v1 hierarchies.
    #[error("no cgroup filesystem found at {root:?}")]
    NoCgroupFilesystem {
        /// The root that was inspected (normally `/sys/fs/cgroup`).
        root: PathBuf,
    },
    /// Reading the directory that holds the cgroup mounts failed.
    #[error("failed to list cgroup hierarchies in {root:?}")]
    ListHierarchies {
        /// The root that was listed.
        root: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// `linux.cgroupsPath` is empty or tries to leave the hierarchy.
    #[error("invalid cgroups path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: PathBuf,
        /// Why it was refused.
        reason: &'static str,
    },
    /// Creating a cgroup directory failed.
    #[error("failed to create cgroup directory {path:?}")]
    CreateDirectory {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Writing a cgroup control file failed.
    #[error("failed to write {value:?} to {path:?}")]
    Write {
        /// The control file.
        path: PathBuf,
        /// What was written.
        value: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Reading a cgroup control file or directory failed.
    #[error("failed to read {path:?}")]
    Read {
        /// The control file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A control file held something this crate cannot parse.
    #[error("failed to parse {path:?}: {reason}")]
    Parse {
        /// The control file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// Removing a cgroup directory failed (after retries, for `EBUSY`).
    #[error("failed to remove cgroup directory {path:?}")]
    Remove {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A resource was requested whose controller is not mounted or not enabled.
    #[error(
        "cgroup controller {controller:?} is not available under {path:?} (needed for {resource})"
    )]
    ControllerUnavailable {
        /// The controller (`hugetlb`, `memory`, ...).
        controller: &'static str,
        /// Where it was looked for.
        path: PathBuf,
        /// The OCI resource that needs it.
        resource: &'static str,
    },
    /// A resource value is out of range or malformed.
    #[error("invalid value for {resource} in {path:?}: {reason}")]
    InvalidResource {
        /// The OCI resource (`memory.swap`, `cpu.shares`, ...).
        resource: &'static str,
        /// The cgroup the value was meant for.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A resource exists only in the other cgroup version.
    #[error("{resource} is not supported on cgroup {version} ({path:?})")]
    Unsupported {
        /// The OCI resource.
        resource: String,
        /// `v1` or `v2`.
        version: &'static str,
        /// The cgroup it was meant for.
        path: PathBuf,
    },
    /// An OCI device rule cannot be expressed.
    #[error("invalid device rule {rule}: {reason}")]
    InvalidDeviceRule {
        /// The rule, as `type major:minor access`.
        rule: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Loading, attaching or replacing the cgroup v2 device program failed.
    #[error("failed to install the device filter on {path:?}")]
    DeviceFilter {
        /// The cgroup directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: palisade_sys::bpf::BpfError,
    },
    /// The cgroup did not reach the frozen state in time.
    #[error("cgroup {path:?} did not freeze in time (last state {state})")]
    FreezeTimeout {
        /// The cgroup directory.
        path: PathBuf,
        /// The last state read.
        state: String,
    },
    /// Sending a signal to a process of the cgroup failed.
    #[error("failed to send signal {signal} to process {pid} of cgroup {path:?}")]
    Signal {
        /// The cgroup directory.
        path: PathBuf,
        /// The process.
        pid: i32,
        /// The signal number.
        signal: i32,
        /// The underlying error.
        #[source]
        source: nix::Error,
    },
}

impl CgroupError {
    /// The OS error number behind this error, if it wraps one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Self::ListHierarchies { source, .. }
            | Self::CreateDirectory { source, .. }
            | Self::Write { source, .. }
            | Self::Read { source, .. }
            | Self::Remove { source, .. } => source.raw_os_error(),
            Self::Signal { source, .. } => Some(*source as i32),
            _ => None,
        }
    }

    /// Whether this error says a file or directory does not exist.
    pub fn is_not_found(&self) -> bool {
        self.raw_os_error() == Some(libc::ENOENT)
    }
}
