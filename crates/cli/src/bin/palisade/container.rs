//! The container commands: `run`, `create`, `start`, `stop`, `kill`, `rm`, `ps`, `logs`,
//! `exec`, `inspect`, `wait`, and the hidden `container-monitor`. Argument structs and output
//! only; the work is in `palisade-engine`.
//!
//! Exit codes follow Docker's: `run` and `create` exit 125 when palisade itself fails, 126 or
//! 127 when the command cannot be invoked or found, and otherwise with the container's own
//! code; the other commands exit 1 on failure.

use std::ffi::OsString;
use std::io::{self, IsTerminal, Read};
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, Subcommand};
use palisade_engine::engine::{Created, ExecRequest};
use palisade_engine::exit::ENGINE_FAILURE;
use palisade_engine::monitor::StdinMode;
use palisade_engine::options::{self, CapabilityName};
use palisade_engine::{
    ContainerId, ContainerName, ContainerOptions, ContainerRecord, ContainerState, Engine,
    EngineConfig, EngineError, NetworkMode, SecurityOption,
};

use crate::cli::Format;
use crate::output;
use crate::Session;

/// Exit code of a container command that failed (other than `run`/`create`).
const EXIT_FAILURE: i32 = 1;

#[derive(Debug, Subcommand)]
pub(crate) enum ContainerCommand {
    /// Create and start a container from an image, with every secure default on
    ///
    /// Defaults: own user namespace (root inside is host uid 1000000), all namespaces new,
    /// network none (loopback only), minimal capabilities, no_new_privs, seccomp, Landlock,
    /// read-only rootfs with tmpfs /tmp and /run, pids and memory limits. Each option that
    /// relaxes one prints a warning and is written to the audit log.
    Run(Box<RunArgs>),
    /// Create a container without starting it (prints its id)
    Create(Box<CreateArgs>),
    /// Start created or stopped containers (in the background)
    Start(StartArgs),
    /// Stop running containers: the stop signal, then SIGKILL after a timeout
    Stop(StopArgs),
    /// Send a signal to running containers
    Kill(KillArgs),
    /// Remove containers
    Rm(RemoveArgs),
    /// List containers
    Ps(PsArgs),
    /// Print a container's output (stdout and stderr)
    Logs(LogsArgs),
    /// Run a command in a running container
    Exec(ExecArgs),
    /// Show containers' records and configs as JSON
    Inspect(InspectContainerArgs),
    /// Wait for containers to stop and print their exit codes
    Wait(WaitArgs),
    /// Watch one container (started by `run -d` and `start`; not for direct use)
    #[command(name = "container-monitor", hide = true)]
    Monitor(MonitorArgs),
    /// An OCI hook the runtime runs for palisade's containers (not for direct use)
    #[command(name = "container-hook", hide = true)]
    Hook(HookArgs),
}

/// Where the runtime is.
#[derive(Debug, Clone, Args)]
pub(crate) struct RuntimeArgs {
    /// The palisade-runtime binary [default: next to palisade, then PATH]
    #[arg(long, value_name = "PATH", env = "PALISADE_RUNTIME")]
    runtime: Option<PathBuf>,
    /// The runtime's state directory
    #[arg(long, value_name = "DIR", env = "PALISADE_RUNTIME_ROOT", default_value = palisade_engine::runtime::DEFAULT_STATE_ROOT)]
    runtime_root: PathBuf,
}

/// The options `run` and `create` share.
#[derive(Debug, Args)]
pub(crate) struct ContainerArgs {
    /// Remove the container when it exits
    #[arg(long)]
    rm: bool,
    /// Keep stdin open
    #[arg(short, long)]
    interactive: bool,
    /// Give the process a terminal
    #[arg(short, long)]
    tty: bool,
    /// Name the container (unique)
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Set an environment variable (KEY=VALUE, or KEY to copy it from here)
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Mount a volume: HOST-PATH:CONTAINER-PATH[:ro] (bind) or NAME:CONTAINER-PATH[:ro]
    #[arg(short, long = "volume", value_name = "SRC:DEST[:ro]")]
    volume: Vec<String>,
    /// Working directory inside the container
    #[arg(short, long, value_name = "DIR")]
    workdir: Option<String>,
    /// User to run as: NAME, UID, NAME:GROUP or UID:GID (from the image's /etc/passwd)
    #[arg(short, long, value_name = "USER")]
    user: Option<String>,
    /// Root filesystem read-only (default); --read-only=false relaxes it
    #[arg(long, value_name = "BOOL", default_value_t = true, action = ArgAction::Set,
          num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    read_only: bool,
    /// Memory limit (64m, 1g; -1 for none, a relaxation) [default: 1g]
    #[arg(short, long, value_name = "BYTES", allow_hyphen_values = true)]
    memory: Option<String>,
    /// Most processes (-1 for none, a relaxation) [default: 1024]
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pids_limit: Option<i64>,
    /// CPUs the container may use (1.5 = one and a half)
    #[arg(long, value_name = "N")]
    cpus: Option<String>,
    /// Add a capability (NET_ADMIN, ALL), a relaxation
    #[arg(long, value_name = "CAP")]
    cap_add: Vec<String>,
    /// Drop a capability (CHOWN, ALL)
    #[arg(long, value_name = "CAP")]
    cap_drop: Vec<String>,
    /// Relax a default: seccomp=unconfined, no-new-privileges=false, landlock=off, userns=host
    #[arg(long, value_name = "OPT")]
    security_opt: Vec<String>,
    /// All capabilities, no seccomp, no Landlock, no masked paths (still in a user namespace)
    #[arg(long)]
    privileged: bool,
    /// Network: none (default, loopback only), bridge (the default bridge network), a network
    /// NAME (see `palisade network ls`), or host (a relaxation)
    #[arg(long, alias = "net", value_name = "MODE", default_value = "none")]
    network: String,
    /// Publish a container port on the host: [HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|udp]
    /// (bridge networks only; HOST_IP limits it to one local address)
    #[arg(long = "publish", short = 'p', value_name = "PORT")]
    publish: Vec<String>,
    /// Host name inside the container [default: the short id]
    #[arg(long, value_name = "NAME")]
    hostname: Option<String>,
    /// Replace the image's entrypoint ("" clears it)
    #[arg(long, value_name = "CMD")]
    entrypoint: Option<String>,
    #[command(flatten)]
    runtime: RuntimeArgs,
    #[command(flatten)]
    registry: crate::pull::RegistryArgs,
    /// When to pull the image: missing (only if the store lacks it), never, or always
    #[arg(long, value_enum, default_value_t = PullPolicy::Missing)]
    pull: PullPolicy,
    /// The image
    #[arg(value_name = "IMAGE")]
    image: String,
    /// The command and its arguments (replace the image's Cmd)
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    command: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Run in the background and print the container id
    #[arg(short, long)]
    detach: bool,
    #[command(flatten)]
    container: ContainerArgs,
}

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    #[command(flatten)]
    container: ContainerArgs,
}

#[derive(Debug, Args)]
pub(crate) struct StartArgs {
    #[command(flatten)]
    runtime: RuntimeArgs,
    /// Containers (id, id prefix or name)
    #[arg(value_name = "CONTAINER", required = true)]
    containers: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct StopArgs {
    /// Seconds to wait before SIGKILL
    #[arg(
        short = 't',
        long = "time",
        alias = "timeout",
        value_name = "SECONDS",
        default_value_t = 10
    )]
    time: u64,
    #[command(flatten)]
    runtime: RuntimeArgs,
    /// Containers
    #[arg(value_name = "CONTAINER", required = true)]
    containers: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct KillArgs {
    /// The signal (name or number)
    #[arg(short, long, value_name = "SIGNAL", default_value = "SIGKILL")]
    signal: String,
    #[command(flatten)]
    runtime: RuntimeArgs,
    /// Containers
    #[arg(value_name = "CONTAINER", required = true)]
    containers: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct RemoveArgs {
    /// Kill running containers first
    #[arg(short, long)]
    force: bool,
    #[command(flatten)]
    runtime: RuntimeArgs,
    /// Containers
    #[arg(value_name = "CONTAINER", required = true)]
    containers: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct PsArgs {
    /// Show all containers, not just running ones
    #[arg(short, long)]
    all: bool,
    /// Print only ids
    #[arg(short, long)]
    quiet: bool,
    /// Show full ids and commands
    #[arg(long)]
    no_trunc: bool,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

#[derive(Debug, Args)]
pub(crate) struct LogsArgs {
    /// Keep printing new output until the container stops
    #[arg(short, long)]
    follow: bool,
    #[command(flatten)]
    runtime: RuntimeArgs,
    /// The container
    #[arg(value_name = "CONTAINER")]
    container: String,
}

#[derive(Debug, Args)]
pub(crate) struct ExecArgs {
    /// Keep stdin open
    #[arg(short, long)]
    interactive: bool,
    /// Give the process a terminal
    #[arg(short, long)]
    tty: bool,
    /// Run in the background
    #[arg(short, long)]
    detach: bool,
    /// Set an environment variable (KEY=VALUE, or KEY to copy it from here)
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// User to run as: NAME, UID, NAME:GROUP or UID:GID
    #[arg(short, long, value_name = "USER")]
    user: Option<String>,
    /// Working directory inside the container
    #[arg(short, long, value_name = "DIR")]
    workdir: Option<String>,
    #[command(flatten)]
    runtime: RuntimeArgs,
    /// The container
    #[arg(value_name = "CONTAINER")]
    container: String,
    /// The command and its arguments
    #[arg(
        value_name = "COMMAND",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    command: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct InspectContainerArgs {
    #[command(flatten)]
    runtime: RuntimeArgs,
    /// Containers
    #[arg(value_name = "CONTAINER", required = true)]
    containers: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct WaitArgs {
    #[command(flatten)]
    runtime: RuntimeArgs,
    /// Containers
    #[arg(value_name = "CONTAINER", required = true)]
    containers: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct MonitorArgs {
    #[command(flatten)]
    runtime: RuntimeArgs,
    /// The container's full id
    #[arg(value_name = "ID")]
    id: String,
}

#[derive(Debug, Args)]
pub(crate) struct HookArgs {
    /// What to do: `loopback` brings up the container's loopback interface; `network`
    /// attaches it to the bridge network it holds a lease on
    #[arg(value_name = "HOOK", value_parser = ["loopback", "network"])]
    hook: String,
}

/// Runs a container command; returns the exit code (errors are reported here).
pub(crate) fn run(session: &Session, command: ContainerCommand) -> anyhow::Result<i32> {
    let (code, error) = match dispatch(session, command) {
        Ok(code) => (code, None),
        Err(Failure { code, error }) => (code, Some(error)),
    };
    if let Some(error) = error {
        crate::report_error(&error);
    }
    Ok(code)
}

/// `--pull`: when `run`/`create` fetch the image from its registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum PullPolicy {
    Missing,
    Never,
    Always,
}

/// Pulls the image first when the store does not have it, as `docker run` does. Which
/// registries may be reached over plain HTTP comes from `--insecure-registry`, as for pull.
/// Then the trust policy is checked for the stored image (crate::trust).
fn pull_if_missing(session: &Session, args: &ContainerArgs) -> Result<(), Failure> {
    let fail = |e: anyhow::Error| Failure::new(ENGINE_FAILURE, e);
    pull_missing_image(session, args)?;
    let store = session.store().map_err(fail)?;
    crate::trust::check_before_run(&store, &args.image).map_err(fail)
}

fn pull_missing_image(session: &Session, args: &ContainerArgs) -> Result<(), Failure> {
    let fail = |e: anyhow::Error| Failure::new(ENGINE_FAILURE, e);
    let Ok(reference) = palisade_image::ImageReference::parse(&args.image) else {
        // The engine reports a bad reference with its own message.
        return Ok(());
    };
    if args.pull == PullPolicy::Never {
        return Ok(());
    }
    let store = session.store().map_err(fail)?;
    let present = store
        .resolve(&reference)
        .map_err(|e| fail(e.into()))?
        .is_some();
    if present && args.pull == PullPolicy::Missing {
        return Ok(());
    }
    if !present {
        eprintln!("Unable to find image '{reference}' locally; pulling it");
    }
    let options = args.registry.client_options().map_err(fail)?;
    let bars = crate::pull::TransferBars::new(false, "pulling");
    let report = crate::trust::pull_verified(&store, &reference, &options, &bars)
        .map_err(|e| fail(e.context(format!("failed to pull {reference}"))))?;
    crate::audit::record(
        session,
        palisade_audit::Event::ImagePulled {
            actor: palisade_audit::Actor::current_process(),
            reference: reference.to_string(),
            digest: report.digest.to_string(),
        },
    )
    .map_err(fail)?;
    Ok(())
}

/// An error with the exit code it calls for.
struct Failure {
    code: i32,
    error: anyhow::Error,
}

impl Failure {
    fn new(code: i32, error: impl Into<anyhow::Error>) -> Self {
        Self {
            code,
            error: error.into(),
        }
    }
}

/// `?` on engine errors in run/create: 125, or 126/127 for a command that could not start.
fn engine_failure(error: EngineError) -> Failure {
    match error {
        EngineError::StartFailed { code, message } => Failure::new(code, anyhow::anyhow!(message)),
        other => Failure::new(ENGINE_FAILURE, other),
    }
}

/// `?` on errors of the other commands: exit 1.
fn failure(error: impl Into<anyhow::Error>) -> Failure {
    Failure::new(EXIT_FAILURE, error)
}

/// The engine for commands that do not run containers (prune, check): the runtime is found
/// as `run` would find it, from the environment or the defaults.
pub(crate) fn open_default(session: &Session) -> anyhow::Result<Engine> {
    let runtime = RuntimeArgs {
        runtime: std::env::var_os("PALISADE_RUNTIME").map(PathBuf::from),
        runtime_root: std::env::var_os("PALISADE_RUNTIME_ROOT").map_or_else(
            || PathBuf::from(palisade_engine::runtime::DEFAULT_STATE_ROOT),
            PathBuf::from,
        ),
    };
    open(session, &runtime)
}

fn open(session: &Session, runtime: &RuntimeArgs) -> anyhow::Result<Engine> {
    let store_root = match &session.root {
        Some(root) => root.clone(),
        None => palisade_image::store::default_root()?,
    };
    let exe = std::env::current_exe()?;
    let mut monitor_command: Vec<OsString> = vec![
        exe.clone().into_os_string(),
        "--root".into(),
        store_root.clone().into_os_string(),
        "container-monitor".into(),
        "--runtime-root".into(),
        runtime.runtime_root.clone().into_os_string(),
    ];
    if let Some(path) = &runtime.runtime {
        monitor_command.push("--runtime".into());
        monitor_command.push(path.clone().into_os_string());
    }
    let loopback_hook = match exe.to_str() {
        Some(exe) => vec![exe.to_owned(), "container-hook".into(), "loopback".into()],
        None => Vec::new(),
    };
    Ok(Engine::open(EngineConfig {
        store_root,
        runtime: runtime.runtime.clone(),
        runtime_root: runtime.runtime_root.clone(),
        monitor_command,
        loopback_hook,
    })?)
}

fn dispatch(session: &Session, command: ContainerCommand) -> Result<i32, Failure> {
    match command {
        ContainerCommand::Run(args) => run_container(session, *args),
        ContainerCommand::Create(args) => {
            let engine = open(session, &args.container.runtime)
                .map_err(|e| Failure::new(ENGINE_FAILURE, e))?;
            let options =
                container_options(&args.container).map_err(|e| Failure::new(ENGINE_FAILURE, e))?;
            pull_if_missing(session, &args.container)?;
            crate::scan::gate(session.root.as_deref(), &args.container.image, false)
                .map_err(|e| Failure::new(ENGINE_FAILURE, e))?;
            let created = engine.create(&options).map_err(engine_failure)?;
            print_warnings(&created);
            println!("{}", created.record.id);
            Ok(0)
        }
        ContainerCommand::Start(args) => {
            let engine = open(session, &args.runtime).map_err(failure)?;
            let mut code = 0;
            for query in &args.containers {
                match start(&engine, query) {
                    Ok(()) => println!("{query}"),
                    Err(e) => {
                        crate::report_error(&e.error);
                        code = e.code;
                    }
                }
            }
            Ok(code)
        }
        ContainerCommand::Stop(args) => {
            let engine = open(session, &args.runtime).map_err(failure)?;
            each(&args.containers, |query| {
                engine.stop(query, Duration::from_secs(args.time))?;
                Ok(())
            })
        }
        ContainerCommand::Kill(args) => {
            let engine = open(session, &args.runtime).map_err(failure)?;
            each(&args.containers, |query| {
                engine.kill(query, &args.signal)?;
                Ok(())
            })
        }
        ContainerCommand::Rm(args) => {
            let engine = open(session, &args.runtime).map_err(failure)?;
            each(&args.containers, |query| {
                engine.remove(query, args.force)?;
                Ok(())
            })
        }
        ContainerCommand::Ps(args) => {
            let engine = open(session, &args.runtime).map_err(failure)?;
            let records = engine.list(args.all).map_err(failure)?;
            ps(session.format, &args, &records).map_err(failure)?;
            Ok(0)
        }
        ContainerCommand::Logs(args) => {
            let engine = open(session, &args.runtime).map_err(failure)?;
            engine
                .logs(
                    &args.container,
                    args.follow,
                    &mut io::stdout().lock(),
                    &mut io::stderr().lock(),
                )
                .map_err(failure)?;
            Ok(0)
        }
        ContainerCommand::Exec(args) => {
            let engine = open(session, &args.runtime).map_err(failure)?;
            let mut env = Vec::new();
            for entry in &args.env {
                let entry = env_entry(entry).map_err(failure)?;
                if !entry.is_empty() {
                    env.push(entry);
                }
            }
            let request = ExecRequest {
                command: args.command,
                tty: args.tty,
                interactive: args.interactive,
                detach: args.detach,
                env,
                user: args.user,
                workdir: args.workdir,
            };
            match engine.exec(&args.container, &request) {
                Ok(code) => Ok(code),
                // The runtime has said why on our stderr already.
                Err(EngineError::StartFailed { code, .. }) => Ok(code),
                Err(e) => Err(Failure::new(ENGINE_FAILURE, e)),
            }
        }
        ContainerCommand::Inspect(args) => {
            let engine = open(session, &args.runtime).map_err(failure)?;
            let mut values = Vec::new();
            let mut code = 0;
            for query in &args.containers {
                match engine.inspect(query) {
                    Ok(value) => values.push(value),
                    Err(e) => {
                        crate::report_error(&e.into());
                        code = EXIT_FAILURE;
                    }
                }
            }
            output::json(&values).map_err(failure)?;
            Ok(code)
        }
        ContainerCommand::Wait(args) => {
            let engine = open(session, &args.runtime).map_err(failure)?;
            let mut code = 0;
            for query in &args.containers {
                match engine.wait(query) {
                    Ok(exit) => output::line(exit).map_err(failure)?,
                    Err(e) => {
                        crate::report_error(&e.into());
                        code = EXIT_FAILURE;
                    }
                }
            }
            Ok(code)
        }
        ContainerCommand::Hook(args) => {
            let mut state = Vec::new();
            io::stdin()
                .lock()
                .take(1 << 20)
                .read_to_end(&mut state)
                .map_err(failure)?;
            let pid = palisade_engine::network::pid_from_hook_state(&state)
                .ok_or_else(|| failure(anyhow::anyhow!("the hook's state on stdin has no pid")))?;
            if args.hook == "network" {
                let id = serde_json::from_slice::<serde_json::Value>(&state)
                    .ok()
                    .and_then(|v| Some(v.get("id")?.as_str()?.to_owned()))
                    .ok_or_else(|| {
                        failure(anyhow::anyhow!("the hook's state on stdin has no id"))
                    })?;
                let root = session
                    .root
                    .clone()
                    .ok_or_else(|| failure(anyhow::anyhow!("the network hook needs --root")))?;
                palisade_net::Networks::open(&root)
                    .and_then(|n| n.attach(&id, pid))
                    .map_err(failure)?;
            } else {
                palisade_engine::network::bring_up_loopback(pid).map_err(failure)?;
            }
            Ok(0)
        }
        ContainerCommand::Monitor(args) => {
            let engine = open(session, &args.runtime).map_err(failure)?;
            let id = ContainerId::parse(&args.id).map_err(failure)?;
            let code = engine.monitor(&id, &mut io::stdout()).map_err(failure)?;
            Ok(code)
        }
    }
}

/// Runs `action` for each container; prints each name on success (as Docker does) and
/// reports failures one line each; exit 1 if any failed.
fn each(
    queries: &[String],
    mut action: impl FnMut(&str) -> anyhow::Result<()>,
) -> Result<i32, Failure> {
    let mut code = 0;
    for query in queries {
        match action(query) {
            Ok(()) => println!("{query}"),
            Err(e) => {
                crate::report_error(&e);
                code = EXIT_FAILURE;
                continue;
            }
        }
    }
    Ok(code)
}

fn start(engine: &Engine, query: &str) -> Result<(), Failure> {
    let record = engine.find(query).map_err(failure)?;
    let report = engine.start_detached(&record.id).map_err(failure)?;
    if report.started {
        Ok(())
    } else {
        Err(Failure::new(
            report.code.unwrap_or(ENGINE_FAILURE),
            anyhow::anyhow!(report
                .message
                .unwrap_or_else(|| "the container did not start".into())),
        ))
    }
}

fn print_warnings(created: &Created) {
    for warning in &created.warnings {
        eprintln!("palisade: warning: {warning}");
    }
}

fn run_container(session: &Session, args: RunArgs) -> Result<i32, Failure> {
    let engine =
        open(session, &args.container.runtime).map_err(|e| Failure::new(ENGINE_FAILURE, e))?;
    let options =
        container_options(&args.container).map_err(|e| Failure::new(ENGINE_FAILURE, e))?;
    if options.tty && !args.detach && !io::stdin().is_terminal() {
        return Err(Failure::new(
            ENGINE_FAILURE,
            anyhow::anyhow!("-t needs standard input to be a terminal"),
        ));
    }
    pull_if_missing(session, &args.container)?;
    crate::scan::gate(session.root.as_deref(), &args.container.image, false)
        .map_err(|e| Failure::new(ENGINE_FAILURE, e))?;
    let created = engine.create(&options).map_err(engine_failure)?;
    print_warnings(&created);
    let id = created.record.id.clone();
    if args.detach {
        let report = engine.start_detached(&id).map_err(engine_failure)?;
        if !report.started {
            return Err(Failure::new(
                report.code.unwrap_or(ENGINE_FAILURE),
                anyhow::anyhow!(report
                    .message
                    .unwrap_or_else(|| "the container did not start".into())),
            ));
        }
        println!("{id}");
        return Ok(0);
    }
    let result = if options.tty {
        engine.run_terminal(&id)
    } else {
        let stdin = if options.interactive {
            StdinMode::Inherit
        } else {
            StdinMode::Null
        };
        engine.run_attached(&id, stdin)
    };
    result.map_err(engine_failure)
}

/// `-e KEY` copies KEY from our environment (and is dropped if we do not have it).
fn env_entry(entry: &str) -> anyhow::Result<String> {
    if entry.contains('=') {
        return Ok(options::parse_env(entry)?);
    }
    match std::env::var(entry) {
        Ok(value) => Ok(options::parse_env(&format!("{entry}={value}"))?),
        Err(_) => Ok(String::new()),
    }
}

fn container_options(args: &ContainerArgs) -> anyhow::Result<ContainerOptions> {
    let mut options = ContainerOptions::new(&args.image);
    options.name = args.name.as_deref().map(ContainerName::parse).transpose()?;
    options.command = args.command.clone();
    options.entrypoint = args.entrypoint.clone();
    for entry in &args.env {
        let entry = env_entry(entry)?;
        if !entry.is_empty() {
            options.env.push(entry);
        }
    }
    options.volumes = args
        .volume
        .iter()
        .map(|v| v.parse())
        .collect::<Result<_, _>>()?;
    options.workdir = args.workdir.clone();
    options.user = args.user.clone();
    options.read_only = args.read_only;
    options.memory = args
        .memory
        .as_deref()
        .map(options::parse_size)
        .transpose()?;
    options.pids_limit = args.pids_limit.map(options::parse_pids);
    options.cpu_quota = args.cpus.as_deref().map(options::parse_cpus).transpose()?;
    options.cap_add = args
        .cap_add
        .iter()
        .map(|c| c.parse::<CapabilityName>())
        .collect::<Result<_, _>>()?;
    options.cap_drop = args
        .cap_drop
        .iter()
        .map(|c| c.parse::<CapabilityName>())
        .collect::<Result<_, _>>()?;
    options.security = args
        .security_opt
        .iter()
        .map(|s| s.parse::<SecurityOption>())
        .collect::<Result<_, _>>()?;
    options.privileged = args.privileged;
    options.network = args.network.parse::<NetworkMode>()?;
    options.ports = args
        .publish
        .iter()
        .map(|p| p.parse::<palisade_net::PortMapping>())
        .collect::<Result<_, _>>()?;
    options.hostname = args
        .hostname
        .as_deref()
        .map(options::parse_hostname)
        .transpose()?;
    options.auto_remove = args.rm;
    options.interactive = args.interactive;
    options.tty = args.tty;
    Ok(options)
}

/// `Up 5 seconds`, `Exited (0) 3 minutes ago`, `Created`.
fn status(record: &ContainerRecord) -> String {
    match record.effective_state() {
        ContainerState::Running => {
            let since = output::age(record.started_unix.or(Some(record.created_unix)));
            let since = since.strip_suffix(" ago").unwrap_or(&since).to_owned();
            format!("Up {since}")
        }
        ContainerState::Exited => match (record.exit_code, record.finished_unix) {
            (Some(code), finished) => format!("Exited ({code}) {}", output::age(finished)),
            (None, _) => "Exited (unknown)".to_owned(),
        },
        ContainerState::Created => "Created".to_owned(),
        ContainerState::Removing => "Removing".to_owned(),
    }
}

fn image_name(record: &ContainerRecord) -> String {
    palisade_image::ImageReference::parse(&record.image)
        .map(|r| r.familiar())
        .unwrap_or_else(|_| record.image.clone())
}

fn ps(format: Format, args: &PsArgs, records: &[ContainerRecord]) -> anyhow::Result<()> {
    if args.quiet {
        for record in records {
            let id = if args.no_trunc {
                record.id.as_str()
            } else {
                record.id.short()
            };
            output::line(id)?;
        }
        return Ok(());
    }
    if format == Format::Json {
        let values: Vec<serde_json::Value> = records
            .iter()
            .map(|r| {
                serde_json::json!({
                    "id": r.id,
                    "names": [r.name],
                    "image": image_name(r),
                    "image_digest": r.image_digest,
                    "command": r.command,
                    "created": r.created,
                    "state": r.effective_state().as_str(),
                    "status": status(r),
                    "exit_code": r.exit_code,
                    "ports": r.ports,
                })
            })
            .collect();
        return output::json(&values);
    }
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            let command = shell_words(&r.command);
            vec![
                if args.no_trunc {
                    r.id.to_string()
                } else {
                    r.id.short().to_owned()
                },
                image_name(r),
                if args.no_trunc {
                    command
                } else {
                    output::truncate(&format!("\"{command}\""), 22)
                },
                output::age(Some(r.created_unix)),
                status(r),
                r.ports.join(", "),
                r.name.to_string(),
            ]
        })
        .collect();
    output::table(
        &[
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "CREATED",
            "STATUS",
            "PORTS",
            "NAMES",
        ],
        &rows,
    )
}

fn shell_words(words: &[String]) -> String {
    words.join(" ")
}

/// For `palisade check --run`: the options `palisade run ARGS` would use.
pub(crate) fn run_options(args: &[String]) -> anyhow::Result<ContainerOptions> {
    #[derive(Debug, clap::Parser)]
    #[command(name = "palisade run", no_binary_name = true)]
    struct Run {
        #[command(flatten)]
        run: RunArgs,
    }
    let parsed = <Run as clap::Parser>::try_parse_from(args)
        .map_err(|error| crate::UsageError(error.render().to_string().trim().to_owned()))?;
    container_options(&parsed.run.container)
}

/// For `palisade check CONTAINER`: the container's id and its OCI config.
pub(crate) fn container_config(
    session: &Session,
    query: &str,
) -> anyhow::Result<(String, serde_json::Value)> {
    let runtime = RuntimeArgs {
        runtime: None,
        runtime_root: PathBuf::from(palisade_engine::runtime::DEFAULT_STATE_ROOT),
    };
    let engine = open(session, &runtime)?;
    let value = engine.inspect(query)?;
    let id = value["id"].as_str().unwrap_or(query).to_owned();
    Ok((id, value["config"].clone()))
}
