//! `delete`: remove a stopped container (or, with force, kill it first) and everything the
//! runtime made for it.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::Container;
use crate::error::{Result, RuntimeError};
use crate::state::{self, Status};

impl Container {
    /// Deletes the container. A running or paused one needs `force`.
    pub fn delete(self, force: bool) -> Result<()> {
        let status = self.status();
        match status {
            Status::Stopped => {}
            Status::Created => self.kill_and_wait()?,
            Status::Running | Status::Paused | Status::Creating if force => self.kill_and_wait()?,
            _ => return Err(self.wrong_status(status, "delete", "stopped (or use --force)")),
        }
        let mut problems = Vec::new();
        if let Some(cgroup) = self.cgroup().ok().flatten() {
            if self.state.cgroup_created {
                if let Err(e) = cgroup.destroy() {
                    problems.push(format!(
                        "remove cgroup: {}",
                        crate::process::launch::error_chain(&e)
                    ));
                }
            }
        }
        let dir = self.dir();
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                problems.push(format!("remove {dir:?}: {e}"));
            }
        }
        if let Some(hooks) = self
            .state
            .config
            .hooks()
            .as_ref()
            .and_then(|h| h.poststop().as_deref())
        {
            // Poststop failures are logged, never fatal, and the remaining hooks still run
            // (OCI spec).
            crate::hooks::run_hooks_warn("poststop", hooks, &self.hook_state("stopped"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(RuntimeError::Init(format!(
                "delete left things behind: {}",
                problems.join("; ")
            )))
        }
    }

    fn kill_and_wait(&self) -> Result<()> {
        let _ = self.kill(Signal::SIGKILL, true);
        let _ = self.kill(Signal::SIGKILL, false);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut pause = Duration::from_micros(100);
        while state::init_alive(&self.state) {
            if Instant::now() > deadline {
                return Err(RuntimeError::Init(format!(
                    "container {:?} did not die after SIGKILL",
                    self.state.id
                )));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(10));
        }
        if let Some(cgroup) = self.cgroup().ok().flatten() {
            // Processes outside the init's pid namespace may linger in the cgroup.
            let deadline = Instant::now() + Duration::from_secs(5);
            while cgroup.pids().map(|p| !p.is_empty()).unwrap_or(false) && Instant::now() < deadline
            {
                let _ = cgroup.kill_all(Signal::SIGKILL as i32);
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        Ok(())
    }
}
