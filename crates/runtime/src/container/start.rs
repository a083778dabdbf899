//! `start`: release a created container's init to run the user's program.

use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::Container;
use crate::error::{Result, RuntimeError};
use crate::state::{self, Status};

impl Container {
    /// Starts the user process of a created container and runs the poststart hooks.
    pub fn start(&self) -> Result<()> {
        let status = self.status();
        if status != Status::Created {
            return Err(self.wrong_status(status, "start", "created"));
        }
        let fifo = self.fifo();
        // Non-blocking open: if the init died, a blocking open would wait forever.
        let reader = rustix::fs::open(
            &fifo,
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| RuntimeError::io("open", &fifo, e.into()))?;
        // The init writes one byte, then keeps the write end open until its execve closes
        // it: waiting for that EOF makes the poststart hooks below run after the user's
        // program has been executed, as the OCI spec requires.
        let mut signalled = false;
        loop {
            let mut fds = [PollFd::new(
                std::os::fd::AsFd::as_fd(&reader),
                PollFlags::POLLIN,
            )];
            match poll(&mut fds, PollTimeout::from(100u16)) {
                Ok(0) | Err(nix::errno::Errno::EINTR) => {
                    if !state::init_alive(&self.state) {
                        if signalled {
                            break;
                        }
                        return Err(RuntimeError::Init(
                            "the container's init exited before start".into(),
                        ));
                    }
                }
                Ok(_) => {
                    let mut byte = [0u8; 1];
                    match rustix::io::read(&reader, &mut byte) {
                        Ok(1) => signalled = true,
                        // No writer: the init has exec'd (or died) after signalling.
                        Ok(_) if signalled => break,
                        // No writer yet: the init has not opened the FIFO.
                        Ok(_) => std::thread::sleep(Duration::from_millis(1)),
                        Err(rustix::io::Errno::AGAIN) => {}
                        Err(e) => return Err(RuntimeError::io("read", &fifo, e.into())),
                    }
                }
                Err(e) => return Err(RuntimeError::sys("poll exec fifo", e)),
            }
        }
        std::fs::remove_file(&fifo).map_err(|e| RuntimeError::io("remove", &fifo, e))?;
        if let Some(hooks) = self
            .state
            .config
            .hooks()
            .as_ref()
            .and_then(|h| h.poststart().as_deref())
        {
            // A failing poststart hook is logged; the remaining hooks still run and the
            // container is not stopped (OCI spec).
            crate::hooks::run_hooks_warn("poststart", hooks, &self.hook_state("running"));
        }
        Ok(())
    }
}
