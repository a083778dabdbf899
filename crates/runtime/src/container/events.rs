//! `events`: resource statistics of a container, once or at an interval.

use serde::Serialize;

use super::Container;
use crate::error::Result;

/// One event, in runc's `events` JSON shape.
#[derive(Debug, Serialize)]
pub struct Event<T: Serialize> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<T>,
}

impl Container {
    /// A `stats` event with the container's current cgroup statistics.
    pub fn stats_event(&self) -> Result<Event<palisade_cgroups::Stats>> {
        let stats = self.require_cgroup()?.stats()?;
        Ok(Event {
            kind: "stats",
            id: self.state.id.clone(),
            data: Some(stats),
        })
    }
}
