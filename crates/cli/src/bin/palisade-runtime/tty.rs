//! A terminal for `run` and `exec` in the foreground when the process wants one and no
//! `--console-socket` was given: we become the console socket ourselves, receive the pty
//! master, and copy bytes between it and our own stdin/stdout (raw mode when stdin is a tty),
//! forwarding window-size changes and signals, like runc does.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};

use anyhow::{Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

fn copy_window_size(to: &OwnedFd) {
    if let Ok(size) = rustix::termios::tcgetwinsize(std::io::stdin()) {
        let _ = rustix::termios::tcsetwinsize(to, size);
    }
}

/// Copies between our stdio and `master` until `pid` exits; returns its exit code.
pub(crate) fn proxy(master: OwnedFd, pid: Pid) -> Result<i32> {
    let mut signals = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGWINCH,
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        signals.add(s);
    }
    signals.thread_block().context("block signals")?;
    let sfd = SignalFd::with_flags(&signals, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .context("signalfd")?;
    let _raw = palisade_runtime::console_socket::RawTerminal::enter();
    copy_window_size(&master);
    let mut master_file = std::fs::File::from(master.try_clone().context("dup pty master")?);
    let mut stdin_open = true;
    let mut buf = [0u8; 8192];
    let mut exit: Option<i32> = None;
    // Once the pty reports end-of-file it stays readable (POLLHUP): stop polling it, or the
    // loop would spin until the child's exit is noticed.
    let mut master_open = true;
    loop {
        // A child that exited before SIGCHLD was blocked left no signal behind: reap first,
        // as `wait_forwarding` does, instead of waiting for a SIGCHLD that never comes.
        if exit.is_none() {
            exit = reap(pid);
        }
        if exit.is_some() && !master_open {
            return Ok(exit.unwrap_or(0));
        }
        let stdin = std::io::stdin();
        let master_events = if master_open {
            PollFlags::POLLIN
        } else {
            PollFlags::empty()
        };
        let mut fds = vec![
            PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
            PollFd::new(master.as_fd(), master_events),
        ];
        if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        let timeout = if exit.is_some() {
            PollTimeout::from(50u16)
        } else {
            PollTimeout::NONE
        };
        match poll(&mut fds, timeout) {
            Ok(0) => return Ok(exit.unwrap_or(0)),
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).context("poll"),
        }
        let ready = |i: usize| {
            fds.get(i)
                .and_then(|f| f.revents())
                .unwrap_or(PollFlags::empty())
        };
        let (sig_ready, master_ready, stdin_ready) = (ready(0), ready(1), ready(2));
        if master_ready.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
            match master_file.read(&mut buf) {
                Ok(0) | Err(_) if exit.is_some() => return Ok(exit.unwrap_or(0)),
                Ok(0) | Err(_) => master_open = false,
                Ok(n) => {
                    let mut out = std::io::stdout();
                    let _ = out.write_all(&buf[..n]);
                    let _ = out.flush();
                }
            }
        }
        if stdin_ready.intersects(PollFlags::POLLIN | PollFlags::POLLHUP) {
            match std::io::stdin().read(&mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    let _ = master_file.write_all(&buf[..n]);
                }
            }
        }
        if sig_ready.contains(PollFlags::POLLIN) {
            while let Ok(Some(info)) = sfd.read_signal() {
                match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGCHLD) => {
                        if let Some(code) = reap(pid) {
                            exit = Some(code);
                        }
                    }
                    Ok(Signal::SIGWINCH) => copy_window_size(&master),
                    Ok(other) => {
                        let _ = nix::sys::signal::kill(pid, other);
                    }
                    Err(_) => {}
                }
            }
        }
    }
}

/// Reaps every exited child; returns `pid`'s exit code (128+n for signal n) if it was one.
fn reap(pid: Pid) -> Option<i32> {
    let mut exit = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, code)) if p == pid => exit = Some(code),
            Ok(WaitStatus::Signaled(p, sig, _)) if p == pid => exit = Some(128 + sig as i32),
            Ok(WaitStatus::StillAlive) | Err(_) => return exit,
            Ok(_) => {}
        }
    }
}
