//! The user, groups and capabilities the container process runs with.
//!
//! Order matters and follows the kernel's rules: the bounding set is reduced while we still
//! hold CAP_SETPCAP, then ids change with KEEPCAPS so permitted capabilities survive, then the
//! effective, permitted, inheritable and ambient sets are set to exactly what the config lists.

use std::str::FromStr;

use caps::{CapSet, Capability, CapsHashSet};
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{LinuxCapabilities, User};

use crate::error::{Result, RuntimeError};

/// Parses capability names; unknown names are reported so a typo never silently widens or
/// narrows the set.
pub(crate) fn parse_caps<'a>(names: impl IntoIterator<Item = &'a String>) -> Result<CapsHashSet> {
    let mut out = CapsHashSet::new();
    for name in names {
        let cap = Capability::from_str(&name.to_ascii_uppercase())
            .map_err(|_| RuntimeError::InvalidConfig(format!("unknown capability {name:?}")))?;
        out.insert(cap);
    }
    Ok(out)
}

/// Capability sets resolved from the config.
#[derive(Debug, Clone, Default)]
pub(crate) struct CapabilityPlan {
    pub(crate) bounding: CapsHashSet,
    pub(crate) effective: CapsHashSet,
    pub(crate) permitted: CapsHashSet,
    pub(crate) inheritable: CapsHashSet,
    pub(crate) ambient: CapsHashSet,
}

impl CapabilityPlan {
    pub(crate) fn from_spec(caps: Option<&LinuxCapabilities>) -> Result<Self> {
        let Some(caps) = caps else {
            return Ok(Self::default());
        };
        // oci-spec already parsed names into its own enum; go through strings so the caps
        // crate (which does the syscalls) owns the mapping.
        let conv = |set: &Option<oci_spec::runtime::Capabilities>| -> Result<CapsHashSet> {
            let names: Vec<String> = set
                .as_ref()
                .map(|s| s.iter().map(|c| format!("CAP_{c}")).collect())
                .unwrap_or_default();
            parse_caps(names.iter())
        };
        Ok(Self {
            bounding: conv(caps.bounding())?,
            effective: conv(caps.effective())?,
            permitted: conv(caps.permitted())?,
            inheritable: conv(caps.inheritable())?,
            ambient: conv(caps.ambient())?,
        })
    }

    /// Drops every capability not in the bounding set from the bounding set.
    pub(crate) fn apply_bounding(&self) -> Result<()> {
        for cap in caps::runtime::thread_all_supported() {
            if !self.bounding.contains(&cap) {
                caps::drop(None, CapSet::Bounding, cap).map_err(|e| {
                    RuntimeError::sys(
                        format!("drop {cap} from the bounding set"),
                        std::io::Error::other(e.to_string()),
                    )
                })?;
            }
        }
        Ok(())
    }

    /// Sets the effective, permitted, inheritable and ambient sets.
    pub(crate) fn apply_sets(&self) -> Result<()> {
        let err = |what: &str, e: caps::errors::CapsError| {
            RuntimeError::sys(
                format!("set {what} capabilities"),
                std::io::Error::other(e.to_string()),
            )
        };
        // Effective must be a subset of permitted at every step, so shrink effective first.
        caps::set(
            None,
            CapSet::Effective,
            &self
                .effective
                .intersection(&self.permitted)
                .copied()
                .collect(),
        )
        .or_else(|_| caps::clear(None, CapSet::Effective))
        .map_err(|e| err("effective", e))?;
        caps::set(None, CapSet::Permitted, &self.permitted).map_err(|e| err("permitted", e))?;
        caps::set(None, CapSet::Inheritable, &self.inheritable)
            .map_err(|e| err("inheritable", e))?;
        caps::set(None, CapSet::Effective, &self.effective).map_err(|e| err("effective", e))?;
        caps::clear(None, CapSet::Ambient).map_err(|e| err("ambient", e))?;
        for cap in &self.ambient {
            // Ambient needs the capability in both permitted and inheritable; runc skips the
            // ones that are not, and so do we.
            if self.permitted.contains(cap) && self.inheritable.contains(cap) {
                caps::raise(None, CapSet::Ambient, *cap).map_err(|e| err("ambient", e))?;
            }
        }
        Ok(())
    }
}

/// Switches to the config's uid, gid and supplementary groups, keeping capabilities so
/// [`CapabilityPlan::apply_sets`] can set them afterwards.
pub(crate) fn switch_user(user: &User, setgroups_allowed: bool) -> Result<()> {
    nix::sys::prctl::set_keepcaps(true).map_err(|e| RuntimeError::sys("PR_SET_KEEPCAPS", e))?;
    let gid = Gid::from_raw(user.gid());
    let uid = Uid::from_raw(user.uid());
    let groups: Vec<Gid> = user
        .additional_gids()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|g| Gid::from_raw(*g))
        .collect();
    if setgroups_allowed {
        nix::unistd::setgroups(&groups).map_err(|e| RuntimeError::sys("setgroups", e))?;
    } else if !groups.is_empty() {
        return Err(RuntimeError::InvalidConfig(
            "additionalGids cannot be set: setgroups is denied in this user namespace".into(),
        ));
    }
    nix::unistd::setresgid(gid, gid, gid)
        .map_err(|e| RuntimeError::sys(format!("setresgid {gid}"), e))?;
    nix::unistd::setresuid(uid, uid, uid)
        .map_err(|e| RuntimeError::sys(format!("setresuid {uid}"), e))?;
    nix::sys::prctl::set_keepcaps(false).map_err(|e| RuntimeError::sys("PR_SET_KEEPCAPS", e))?;
    if let Some(mask) = user.umask() {
        palisade_sys::process::set_umask(mask);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_names_are_parsed_strictly() {
        let set = parse_caps(["CAP_CHOWN".to_string(), "cap_kill".to_string()].iter()).unwrap();
        assert_eq!(set.len(), 2);
        assert!(parse_caps(["CAP_BOGUS".to_string()].iter()).is_err());
    }

    #[test]
    fn default_spec_caps_convert() {
        let caps = LinuxCapabilities::default();
        let plan = CapabilityPlan::from_spec(Some(&caps)).unwrap();
        assert!(plan.bounding.contains(&Capability::CAP_KILL));
        assert!(!plan.bounding.contains(&Capability::CAP_SYS_ADMIN));
    }
}
