//! One function per command; the work happens in `palisade_runtime`.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxResources, Process};
use palisade_runtime::audit::Auditor;
use palisade_runtime::console_socket::ConsoleSocket;
use palisade_runtime::{Container, CreateOptions, ExecOptions, PsOutput, StateRoot, Status};

use crate::cli::{Cli, Command, CreateArgs, ExecArgs, ListFormat, UpdateArgs};

/// How long `run` and `exec` in the foreground wait for the container's process to send its
/// terminal (it has by the time `create` returns; an exec'd process is just starting).
const CONSOLE_WAIT: Duration = Duration::from_secs(30);

pub(crate) fn dispatch(cli: Cli) -> Result<i32> {
    if cli.global.systemd_cgroup {
        bail!("--systemd-cgroup is not supported: palisade-runtime manages cgroupfs directly; run without it (podman: --cgroup-manager=cgroupfs)");
    }
    let root = StateRoot::new(&cli.global.root);
    let mut audit = match &cli.global.audit_log {
        Some(path) if path.as_os_str() == "none" => Auditor::disabled(),
        Some(path) => Auditor::open(path),
        None => Auditor::open(&palisade_runtime::audit::default_path()),
    };
    match cli.command {
        Command::Create(args) => {
            seal_if_needed(&args.bundle)?;
            let container = Container::create(&root, &create_options(&args))?;
            audit.created(container.persisted());
            Ok(0)
        }
        Command::Start { id } => {
            let container = Container::load(&root, &id)?;
            container.start()?;
            audit.started(container.persisted());
            Ok(0)
        }
        Command::Run(args) => {
            seal_if_needed(&args.create.bundle)?;
            run(&root, &args.create, args.detach, args.keep, &mut audit)
        }
        Command::State { id } => {
            let report = Container::load(&root, &id)?.report();
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(0)
        }
        Command::Kill { id, signal, all } => {
            let parsed = palisade_runtime::container::parse_signal(&signal)?;
            Container::load(&root, &id)?.kill(parsed, all)?;
            audit.killed(&id, parsed.as_str(), all);
            Ok(0)
        }
        Command::Delete { id, force } => {
            match Container::load(&root, &id) {
                Ok(container) => delete(container, force, &mut audit)?,
                // runc: deleting a missing container with --force is not an error.
                Err(palisade_runtime::RuntimeError::NotFound(_)) if force => {}
                Err(e) => return Err(e.into()),
            }
            Ok(0)
        }
        Command::Exec(args) => {
            let needed = Container::load(&root, &args.id)
                .map(|c| palisade_runtime::selfexe::needs_sealed_copy(&c.persisted().config))
                .unwrap_or(true);
            if needed {
                palisade_runtime::selfexe::ensure_sealed_copy()?;
            }
            exec(&root, &args, &mut audit)
        }
        Command::Ps {
            id,
            format,
            ps_args,
        } => {
            match Container::load(&root, &id)?.ps(format == ListFormat::Json, &ps_args)? {
                PsOutput::Pids(pids) => println!("{}", serde_json::to_string(&pids)?),
                PsOutput::Table(table) => print!("{table}"),
            }
            Ok(0)
        }
        Command::List { format, quiet } => list(&root, format, quiet),
        Command::Pause { id } => {
            Container::load(&root, &id)?.pause()?;
            Ok(0)
        }
        Command::Resume { id } => {
            Container::load(&root, &id)?.resume()?;
            Ok(0)
        }
        Command::Events {
            id,
            stats,
            interval,
        } => events(&root, &id, stats, &interval),
        Command::Update(args) => update(&root, &args),
        Command::Spec { bundle, rootless } => {
            let path = bundle.join("config.json");
            if path.exists() {
                bail!(
                    "{} already exists: remove it or pick another --bundle",
                    path.display()
                );
            }
            let spec = palisade_runtime::spec::hardened(rootless)?;
            std::fs::write(&path, serde_json::to_string_pretty(&spec)?)
                .with_context(|| format!("write {}", path.display()))?;
            Ok(0)
        }
        Command::Features => {
            println!(
                "{}",
                serde_json::to_string_pretty(&palisade_runtime::features::document())?
            );
            Ok(0)
        }
        Command::Checkpoint { .. } | Command::Restore { .. } => {
            bail!("checkpoint and restore are not supported (CRIU)")
        }
    }
}

/// Re-executes from a sealed copy of the binary (CVE-2019-5736) unless the bundle's user
/// namespace already keeps the container from writing the binary.
fn seal_if_needed(bundle: &Path) -> Result<()> {
    let needed = palisade_runtime::config::load_spec(bundle)
        .map(|spec| palisade_runtime::selfexe::needs_sealed_copy(&spec))
        .unwrap_or(true);
    if needed {
        palisade_runtime::selfexe::ensure_sealed_copy()?;
    }
    Ok(())
}

fn create_options(args: &CreateArgs) -> CreateOptions {
    CreateOptions {
        id: args.id.clone(),
        bundle: args.bundle.clone(),
        pid_file: args.pid_file.clone(),
        console_socket: args.console_socket.clone(),
        no_pivot: args.no_pivot,
        preserve_fds: args.preserve_fds,
    }
}

/// Signals a foreground `run` or `exec` forwards to the container's process.
fn forwarded_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGWINCH,
    ] {
        set.add(s);
    }
    set
}

/// Deletes a container, first noting OOM kills and pids-limit hits in its cgroup for the audit
/// log.
fn delete(container: Container, force: bool, audit: &mut Auditor) -> Result<()> {
    let (oom_kills, memory_limit) = container.oom_report();
    let (pids_hits, pids_limit) = container.pids_report();
    let state = container.persisted().clone();
    container.delete(force)?;
    audit.pids_limit_hit(&state, pids_hits, pids_limit);
    audit.deleted(&state, force, oom_kills, memory_limit);
    Ok(())
}

fn run(
    root: &StateRoot,
    args: &CreateArgs,
    detach: bool,
    keep: bool,
    audit: &mut Auditor,
) -> Result<i32> {
    if !detach {
        // The container's init is our grandchild: become its reaper to learn its exit code.
        nix::sys::prctl::set_child_subreaper(true).context("PR_SET_CHILD_SUBREAPER")?;
    }
    let wants_terminal = palisade_runtime::config::load_spec(&args.bundle)
        .ok()
        .and_then(|s| s.process().as_ref().and_then(|p| p.terminal()))
        .unwrap_or(false);
    let mut options = create_options(args);
    let console = if wants_terminal && args.console_socket.is_none() {
        if detach {
            bail!("the process wants a terminal: pass --console-socket to run it detached, or run it in the foreground");
        }
        let console = ConsoleSocket::new("run").context("bind the console socket")?;
        options.console_socket = Some(console.path());
        Some(console)
    } else {
        None
    };
    let container = Container::create(root, &options)?;
    audit.created(container.persisted());
    let master = match console
        .as_ref()
        .map(|c| c.receive(CONSOLE_WAIT))
        .transpose()
    {
        Ok(master) => master,
        Err(e) => {
            let _ = container.delete(true);
            return Err(anyhow::Error::new(e).context("receive the pty master"));
        }
    };
    if let Err(e) = container.start() {
        let _ = container.delete(true);
        return Err(e.into());
    }
    audit.started(container.persisted());
    if detach {
        return Ok(0);
    }
    let pid = Pid::from_raw(container.persisted().init_pid);
    let code = match master {
        Some(master) => crate::tty::proxy(master, pid)?,
        None => wait_forwarding(pid)?,
    };
    if !keep {
        delete(Container::load(root, &args.id)?, true, audit)?;
    }
    Ok(code)
}

/// Waits for `pid`, forwarding signals to it, and returns its exit code (128+n for signal n).
fn wait_forwarding(pid: Pid) -> Result<i32> {
    let set = forwarded_signals();
    set.thread_block().context("block signals")?;
    loop {
        // Reap whatever has exited; stop when our process has.
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(p, code)) if p == pid => return Ok(code),
                Ok(WaitStatus::Signaled(p, sig, _)) if p == pid => return Ok(128 + sig as i32),
                Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => break,
                Ok(_) => continue,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e).context("waitpid"),
            }
        }
        let signal = set.wait().context("sigwait")?;
        if signal != Signal::SIGCHLD {
            let _ = nix::sys::signal::kill(pid, signal);
        }
    }
}

fn exec(root: &StateRoot, args: &ExecArgs, audit: &mut Auditor) -> Result<i32> {
    let container = Container::load(root, &args.id)?;
    let mut process: Process = match &args.process {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("read {}", path.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("parse process {}", path.display()))?
        }
        None => {
            if args.command.is_empty() {
                bail!("exec needs a command or --process FILE");
            }
            let mut p = container
                .persisted()
                .config
                .process()
                .clone()
                .context("the container's config has no process")?;
            p.set_args(Some(args.command.clone()));
            p.set_terminal(Some(args.tty));
            p.set_console_size(None);
            p
        }
    };
    if args.process.is_none() || args.tty {
        process.set_terminal(Some(args.tty || process.terminal().unwrap_or(false)));
    }
    if let Some(cwd) = &args.cwd {
        process.set_cwd(cwd.clone());
    }
    if !args.env.is_empty() {
        let mut env = process.env().clone().unwrap_or_default();
        for e in &args.env {
            let key = e.split('=').next().unwrap_or_default();
            env.retain(|old| old.split('=').next() != Some(key));
            env.push(e.clone());
        }
        process.set_env(Some(env));
    }
    if let Some(user) = &args.user {
        let (uid, gid) = match user.split_once(':') {
            Some((u, g)) => (
                u.parse::<u32>().context("--user uid")?,
                Some(g.parse::<u32>().context("--user gid")?),
            ),
            None => (
                user.parse::<u32>().context("--user expects UID[:GID]")?,
                None,
            ),
        };
        process.user_mut().set_uid(uid);
        if let Some(gid) = gid {
            process.user_mut().set_gid(gid);
        }
    }
    if !args.additional_gids.is_empty() {
        process
            .user_mut()
            .set_additional_gids(Some(args.additional_gids.clone()));
    }
    if args.no_new_privs {
        process.set_no_new_privileges(Some(true));
    }
    if !args.cap.is_empty() {
        let mut caps = process.capabilities().clone().unwrap_or_default();
        for name in &args.cap {
            let cap: oci_spec::runtime::Capability = name
                .trim_start_matches("CAP_")
                .parse()
                .or_else(|_| serde_json::from_value(serde_json::Value::String(name.clone())))
                .with_context(|| format!("unknown capability {name:?}"))?;
            let add = |s: &Option<oci_spec::runtime::Capabilities>| {
                let mut s = s.clone().unwrap_or_default();
                s.insert(cap);
                Some(s)
            };
            caps.set_bounding(add(caps.bounding()));
            caps.set_effective(add(caps.effective()));
            caps.set_permitted(add(caps.permitted()));
        }
        process.set_capabilities(Some(caps));
    }
    if !args.detach {
        nix::sys::prctl::set_child_subreaper(true).context("PR_SET_CHILD_SUBREAPER")?;
    }
    let exec_args = process.args().clone().unwrap_or_default();
    let console = if process.terminal().unwrap_or(false) && args.console_socket.is_none() {
        if args.detach {
            bail!("--tty with --detach needs --console-socket");
        }
        Some(ConsoleSocket::new("exec").context("bind the console socket")?)
    } else {
        None
    };
    let outcome = container.exec(&ExecOptions {
        process,
        detach: args.detach,
        pid_file: args.pid_file.clone(),
        console_socket: console
            .as_ref()
            .map(ConsoleSocket::path)
            .or_else(|| args.console_socket.clone()),
        preserve_fds: args.preserve_fds,
    })?;
    audit.executed(container.persisted(), outcome.pid, &exec_args);
    if args.detach {
        return Ok(0);
    }
    match console {
        Some(console) => crate::tty::proxy(
            console
                .receive(CONSOLE_WAIT)
                .context("receive the pty master")?,
            Pid::from_raw(outcome.pid),
        ),
        None => wait_forwarding(Pid::from_raw(outcome.pid)),
    }
}

fn list(root: &StateRoot, format: ListFormat, quiet: bool) -> Result<i32> {
    let mut reports = Vec::new();
    for id in root.ids()? {
        match Container::load(root, &id) {
            Ok(c) => reports.push(c.report()),
            Err(e) => tracing::warn!(id, error = %e, "skipping unreadable container state"),
        }
    }
    if quiet {
        for r in &reports {
            println!("{}", r.id);
        }
        return Ok(0);
    }
    match format {
        ListFormat::Json => println!("{}", serde_json::to_string(&reports)?),
        ListFormat::Table => {
            println!(
                "{:<12} {:<8} {:<10} {:<40} {:<32} OWNER",
                "ID", "PID", "STATUS", "BUNDLE", "CREATED"
            );
            for r in &reports {
                let owner = if r.owner.is_empty() {
                    "root"
                } else {
                    r.owner.as_str()
                };
                println!(
                    "{:<12} {:<8} {:<10} {:<40} {:<32} {}",
                    r.id,
                    r.pid,
                    r.status,
                    r.bundle.display(),
                    r.created,
                    owner
                );
            }
        }
    }
    Ok(0)
}

fn parse_duration(text: &str) -> Result<Duration> {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(text.len()),
    );
    let value: f64 = number
        .parse()
        .with_context(|| format!("invalid duration {text:?}"))?;
    let secs = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        other => bail!("invalid duration unit {other:?} (use ms, s or m)"),
    };
    Ok(Duration::from_secs_f64(secs.max(0.001)))
}

fn events(root: &StateRoot, id: &str, once: bool, interval: &str) -> Result<i32> {
    let interval = parse_duration(interval)?;
    loop {
        let container = Container::load(root, id)?;
        if container.status() == Status::Stopped {
            bail!("container {id:?} is not running");
        }
        println!("{}", serde_json::to_string(&container.stats_event()?)?);
        if once {
            return Ok(0);
        }
        std::thread::sleep(interval);
    }
}

fn parse_bytes(text: &str) -> Result<i64> {
    if text == "-1" {
        return Ok(-1);
    }
    let lower = text.to_ascii_lowercase();
    let (digits, mult) = match lower.trim_end_matches('b').chars().last() {
        Some('k') => (&lower[..lower.trim_end_matches('b').len() - 1], 1i64 << 10),
        Some('m') => (&lower[..lower.trim_end_matches('b').len() - 1], 1 << 20),
        Some('g') => (&lower[..lower.trim_end_matches('b').len() - 1], 1 << 30),
        _ => (lower.trim_end_matches('b'), 1),
    };
    let n: i64 = digits
        .parse()
        .with_context(|| format!("invalid size {text:?}"))?;
    n.checked_mul(mult)
        .with_context(|| format!("size {text:?} is too large"))
}

fn update(root: &StateRoot, args: &UpdateArgs) -> Result<i32> {
    let mut container = Container::load(root, &args.id)?;
    let mut resources: LinuxResources = match &args.resources {
        Some(path) => {
            let mut text = String::new();
            if path == Path::new("-") {
                std::io::stdin().read_to_string(&mut text)?;
            } else {
                text = std::fs::read_to_string(path)
                    .with_context(|| format!("read {}", path.display()))?;
            }
            serde_json::from_str(&text).context("parse resources JSON")?
        }
        None => container
            .persisted()
            .config
            .linux()
            .as_ref()
            .and_then(|l| l.resources().clone())
            .unwrap_or_default(),
    };
    let mut memory = resources.memory().unwrap_or_default();
    if let Some(m) = &args.memory {
        memory.set_limit(Some(parse_bytes(m)?));
    }
    if let Some(m) = &args.memory_swap {
        memory.set_swap(Some(parse_bytes(m)?));
    }
    if let Some(m) = &args.memory_reservation {
        memory.set_reservation(Some(parse_bytes(m)?));
    }
    resources.set_memory(Some(memory));
    let mut cpu = resources.cpu().clone().unwrap_or_default();
    if let Some(v) = args.cpu_shares {
        cpu.set_shares(Some(v));
    }
    if let Some(v) = args.cpu_period {
        cpu.set_period(Some(v));
    }
    if let Some(v) = args.cpu_quota {
        cpu.set_quota(Some(v));
    }
    if let Some(v) = &args.cpuset_cpus {
        cpu.set_cpus(Some(v.clone()));
    }
    if let Some(v) = &args.cpuset_mems {
        cpu.set_mems(Some(v.clone()));
    }
    resources.set_cpu(Some(cpu));
    if let Some(limit) = args.pids_limit {
        resources.set_pids(Some(
            oci_spec::runtime::LinuxPidsBuilder::default()
                .limit(limit)
                .build()?,
        ));
    }
    if let Some(weight) = args.blkio_weight {
        let mut blkio = resources.block_io().clone().unwrap_or_default();
        blkio.set_weight(Some(weight));
        resources.set_block_io(Some(blkio));
    }
    // Device rules are fixed at create time; an update never widens them.
    resources.set_devices(None);
    container.update(&resources)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_parse() {
        assert_eq!(parse_bytes("64m").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("1G").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert_eq!(parse_bytes("-1").unwrap(), -1);
        assert!(parse_bytes("lots").is_err());
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("5h").is_err());
    }
}
