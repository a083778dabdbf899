//! The command line, shaped like runc's so containerd, podman and ctr can drive us.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// palisade-runtime runs OCI containers with every isolation switched on by default:
/// namespaces (a user namespace included), pivot_root, masked /proc and /sys paths, minimal
/// capabilities, no_new_privs, a seccomp allow-list, Landlock and cgroup limits.
///
/// It is a drop-in for runc: point containerd's runc shim (BinaryName), `podman --runtime`
/// or `ctr run --runtime-binary`-style tools at it.
#[derive(Debug, Parser)]
#[command(name = "palisade-runtime", version, about, long_about = None, propagate_version = true)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalOptions,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct GlobalOptions {
    /// Directory for container state (tmpfs recommended)
    #[arg(
        long,
        global = true,
        env = "PALISADE_RUNTIME_ROOT",
        default_value = "/run/palisade"
    )]
    pub(crate) root: PathBuf,
    /// Write log messages to this file instead of stderr
    #[arg(long, global = true)]
    pub(crate) log: Option<PathBuf>,
    /// Log format: text or json
    #[arg(long = "log-format", global = true, value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
    /// Use systemd to manage cgroups (not supported: palisade manages cgroupfs directly)
    #[arg(long = "systemd-cgroup", global = true)]
    pub(crate) systemd_cgroup: bool,
    /// Audit log for container lifecycle and relaxed defaults ("none" to disable)
    /// [default: /var/lib/palisade/audit/runtime.log, or under $XDG_DATA_HOME when rootless]
    #[arg(long = "audit-log", global = true, env = "PALISADE_AUDIT_LOG")]
    pub(crate) audit_log: Option<PathBuf>,
    /// Log debug messages
    #[arg(long, global = true)]
    pub(crate) debug: bool,
    /// Accepted for runc compatibility; checkpointing is not supported
    #[arg(long, hide = true)]
    pub(crate) criu: Option<String>,
    /// Accepted for runc compatibility (rootless mode is detected from the euid)
    #[arg(long = "rootless", id = "global-rootless", hide = true)]
    pub(crate) rootless_mode: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ListFormat {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create a container from a bundle; it waits for `start`
    Create(CreateArgs),
    /// Start the user process of a created container
    Start { id: String },
    /// Create and start a container, then wait for it (unless --detach)
    Run(RunArgs),
    /// Print the state of a container as JSON
    State { id: String },
    /// Send a signal (default SIGTERM) to a container's init
    Kill {
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
        /// Send the signal to every process in the container
        #[arg(short, long)]
        all: bool,
    },
    /// Delete a stopped container and everything made for it
    Delete {
        id: String,
        /// Kill and delete a running container
        #[arg(short, long)]
        force: bool,
    },
    /// Run a new process inside a running container
    Exec(ExecArgs),
    /// List the processes of a container
    Ps {
        id: String,
        /// Output format
        #[arg(short, long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        /// Arguments passed to ps(1) (default -ef)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// List containers under --root
    List {
        /// Output format
        #[arg(short, long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        /// Print only the ids
        #[arg(short, long)]
        quiet: bool,
    },
    /// Freeze every process of a container
    Pause { id: String },
    /// Thaw a paused container
    Resume { id: String },
    /// Print resource statistics of a container
    Events {
        id: String,
        /// Print the statistics once and exit
        #[arg(long)]
        stats: bool,
        /// Interval between statistics
        #[arg(long, default_value = "5s")]
        interval: String,
    },
    /// Change the resource limits of a running container
    Update(UpdateArgs),
    /// Write a hardened config.json template into the bundle
    Spec {
        /// Bundle directory
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        /// A config for running as an unprivileged user
        #[arg(long)]
        rootless: bool,
    },
    /// Print the features this runtime supports (JSON)
    Features,
    /// Not supported (CRIU does not work on this kernel)
    #[command(hide = true)]
    Checkpoint {
        /// runc's options and the id, taken as they come so the caller (containerd's
        /// `ctr task checkpoint`, podman) hears "not supported", not "unexpected argument"
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Not supported (CRIU does not work on this kernel)
    #[command(hide = true)]
    Restore {
        /// runc's options and the id, taken as they come
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Debug, Clone, Args)]
pub(crate) struct CreateArgs {
    pub(crate) id: String,
    /// Bundle directory (holds config.json)
    #[arg(short, long, default_value = ".")]
    pub(crate) bundle: PathBuf,
    /// Write the init's pid to this file
    #[arg(long = "pid-file")]
    pub(crate) pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master when process.terminal is set
    #[arg(long = "console-socket")]
    pub(crate) console_socket: Option<PathBuf>,
    /// Use MS_MOVE and chroot instead of pivot_root (weaker; for ramdisk roots)
    #[arg(long = "no-pivot")]
    pub(crate) no_pivot: bool,
    /// Accepted for runc compatibility (no session keyring is ever created)
    #[arg(long = "no-new-keyring")]
    pub(crate) no_new_keyring: bool,
    /// Pass this many extra descriptors (from 3) to the container
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub(crate) preserve_fds: u32,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) create: CreateArgs,
    /// Return after starting the container instead of waiting for it
    #[arg(short, long)]
    pub(crate) detach: bool,
    /// Keep the container's state after it exits
    #[arg(long)]
    pub(crate) keep: bool,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct ExecArgs {
    pub(crate) id: String,
    /// The command and its arguments (unless --process is given)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub(crate) command: Vec<String>,
    /// A process.json describing the process
    #[arg(short, long)]
    pub(crate) process: Option<PathBuf>,
    /// Do not wait for the process
    #[arg(short, long)]
    pub(crate) detach: bool,
    /// Write the process's pid to this file
    #[arg(long = "pid-file")]
    pub(crate) pid_file: Option<PathBuf>,
    /// Allocate a pseudo-terminal
    #[arg(short, long)]
    pub(crate) tty: bool,
    /// Unix socket that receives the pty master
    #[arg(long = "console-socket")]
    pub(crate) console_socket: Option<PathBuf>,
    /// Working directory inside the container
    #[arg(long)]
    pub(crate) cwd: Option<PathBuf>,
    /// Extra environment variables (KEY=VALUE)
    #[arg(short, long)]
    pub(crate) env: Vec<String>,
    /// User to run as: UID[:GID]
    #[arg(short, long)]
    pub(crate) user: Option<String>,
    /// Additional supplementary group ids
    #[arg(short = 'g', long = "additional-gids")]
    pub(crate) additional_gids: Vec<u32>,
    /// Add a capability (e.g. CAP_NET_ADMIN) to the process
    #[arg(short, long)]
    pub(crate) cap: Vec<String>,
    /// Set no_new_privs for the process
    #[arg(long = "no-new-privs")]
    pub(crate) no_new_privs: bool,
    /// Pass this many extra descriptors (from 3) to the process
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub(crate) preserve_fds: u32,
    /// Accepted for runc compatibility (no AppArmor/SELinux support)
    #[arg(long = "process-label", hide = true)]
    pub(crate) process_label: Option<String>,
    /// Accepted for runc compatibility (no AppArmor/SELinux support)
    #[arg(long, hide = true)]
    pub(crate) apparmor: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct UpdateArgs {
    pub(crate) id: String,
    /// A JSON file with linux.resources ("-" for stdin)
    #[arg(short, long)]
    pub(crate) resources: Option<PathBuf>,
    /// Memory limit in bytes (suffixes k, m, g allowed)
    #[arg(short, long)]
    pub(crate) memory: Option<String>,
    /// Memory+swap limit in bytes (-1 for unlimited)
    #[arg(long = "memory-swap")]
    pub(crate) memory_swap: Option<String>,
    /// Memory reservation (soft limit)
    #[arg(long = "memory-reservation")]
    pub(crate) memory_reservation: Option<String>,
    /// CPU shares (relative weight)
    #[arg(long = "cpu-shares")]
    pub(crate) cpu_shares: Option<u64>,
    /// CPU CFS period in microseconds
    #[arg(long = "cpu-period")]
    pub(crate) cpu_period: Option<u64>,
    /// CPU CFS quota in microseconds
    #[arg(long = "cpu-quota")]
    pub(crate) cpu_quota: Option<i64>,
    /// CPUs the container may use (0-3, 0,1)
    #[arg(long = "cpuset-cpus")]
    pub(crate) cpuset_cpus: Option<String>,
    /// Memory nodes the container may use
    #[arg(long = "cpuset-mems")]
    pub(crate) cpuset_mems: Option<String>,
    /// Maximum number of processes (-1 for unlimited)
    #[arg(long = "pids-limit")]
    pub(crate) pids_limit: Option<i64>,
    /// Block I/O weight (10-1000)
    #[arg(long = "blkio-weight")]
    pub(crate) blkio_weight: Option<u16>,
}
