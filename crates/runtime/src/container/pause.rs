//! `pause` and `resume`: freeze and thaw every process of the container.

use super::Container;
use crate::error::Result;
use crate::state::Status;

impl Container {
    pub fn pause(&self) -> Result<()> {
        let status = self.status();
        if !matches!(status, Status::Running | Status::Created) {
            return Err(self.wrong_status(status, "pause", "running or created"));
        }
        Ok(self.require_cgroup()?.freeze()?)
    }

    pub fn resume(&self) -> Result<()> {
        let status = self.status();
        if status != Status::Paused {
            return Err(self.wrong_status(status, "resume", "paused"));
        }
        Ok(self.require_cgroup()?.thaw()?)
    }
}
