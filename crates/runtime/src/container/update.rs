//! `update`: change a running container's resource limits.

use oci_spec::runtime::LinuxResources;

use super::Container;
use crate::error::Result;
use crate::state::Status;

impl Container {
    /// Applies `resources` to the container's cgroup and remembers them.
    pub fn update(&mut self, resources: &LinuxResources) -> Result<()> {
        let status = self.status();
        if status == Status::Stopped {
            return Err(self.wrong_status(status, "update", "created, running or paused"));
        }
        self.require_cgroup()?.apply(resources)?;
        if let Some(linux) = self.state.config.linux_mut().as_mut() {
            linux.set_resources(Some(resources.clone()));
        }
        self.root.save(&self.state)
    }
}
