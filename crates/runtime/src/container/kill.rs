//! `kill`: send a signal to the container's init, or with `--all` to all its processes.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::Container;
use crate::error::{Result, RuntimeError};
use crate::state::Status;

/// Parses `KILL`, `SIGKILL` or `9`.
pub fn parse_signal(text: &str) -> Result<Signal> {
    let invalid = || RuntimeError::InvalidConfig(format!("unknown signal {text:?}"));
    if let Ok(number) = text.parse::<i32>() {
        return Signal::try_from(number).map_err(|_| invalid());
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<Signal>().map_err(|_| invalid())
}

impl Container {
    /// Signals the init (or, with `all`, every process in the container's cgroup).
    pub fn kill(&self, signal: Signal, all: bool) -> Result<()> {
        let status = self.status();
        if status == Status::Stopped && !all {
            return Err(self.wrong_status(status, "kill", "created, running or paused"));
        }
        if all {
            if let Some(cgroup) = self.cgroup()? {
                return Ok(cgroup.kill_all(signal as i32)?);
            }
        }
        if status == Status::Stopped {
            return Ok(());
        }
        kill(Pid::from_raw(self.state.init_pid), signal)
            .map_err(|e| RuntimeError::sys(format!("send {signal} to the init"), e))?;
        // A paused container would never act on the signal: thaw it for SIGKILL, as runc does.
        if signal == Signal::SIGKILL && status == Status::Paused {
            if let Some(cgroup) = self.cgroup()? {
                cgroup.thaw()?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_in_every_form() {
        assert_eq!(parse_signal("KILL").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("sigterm").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("999").is_err());
    }
}
