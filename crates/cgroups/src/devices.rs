//! Device access rules: the OCI `linux.resources.devices` list as typed values, and the one
//! definition of what they allow.
//!
//! # Semantics (the cgroup v2 eBPF program exactly; cgroup v1 as far as its lists can say it)
//!
//! Rules are read in order and the **last matching rule wins**; when no rule matches, access is
//! **denied**. A request (`type`, `major`, `minor`, `access`) is decided per access bit: each of
//! `r`, `w` and `m` it asks for must be allowed by the last rule that matches the device and
//! names that bit. A rule matches a device when its type is `a` or equal, and its major and minor
//! are wildcards (`*`, OCI `-1` or absent) or equal. This is runc's rule order (its program
//! tests rules from the last to the first) with the access check made exact: runc's "requested
//! access must be a subset" test lets `deny c 1:3 w` miss an `rw` open.
//!
//! An absent or empty `access` means `rwm`, so `{"allow": false}` denies everything as users
//! expect. Type `p` (FIFO) rules are dropped: the device cgroup never checks FIFOs, and the v1
//! kernel refuses the letter. Type `u` is a character device.
//!
//! On cgroup v1 the rules become `devices.allow`/`devices.deny` lines; see `v1_lines` for the
//! one case an exception list cannot express.

use std::fmt;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::error::CgroupError;

/// Largest device major number the kernel uses (12 bits).
const MAJOR_LIMIT: i64 = (1 << 12) - 1;
/// Largest device minor number the kernel uses (20 bits).
const MINOR_LIMIT: i64 = (1 << 20) - 1;

/// What kind of device a rule applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    /// Both block and character devices (OCI `a`).
    All,
    /// Block devices (OCI `b`).
    Block,
    /// Character devices (OCI `c` and `u`).
    Char,
}

impl DeviceKind {
    fn letter(self) -> char {
        match self {
            Self::All => 'a',
            Self::Block => 'b',
            Self::Char => 'c',
        }
    }
}

/// A set of device access rights: read, write, mknod.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct DeviceAccess(u8);

impl DeviceAccess {
    /// `m`: create the device node.
    pub const MKNOD: Self = Self(1);
    /// `r`: open for reading.
    pub const READ: Self = Self(2);
    /// `w`: open for writing.
    pub const WRITE: Self = Self(4);
    /// `rwm`.
    pub const ALL: Self = Self(7);
    /// No access.
    pub const NONE: Self = Self(0);

    /// The bits, in the kernel's `BPF_DEVCG_ACC_*` encoding (`m` = 1, `r` = 2, `w` = 4).
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Builds a set from `BPF_DEVCG_ACC_*` bits; bits other than the low three are dropped.
    pub const fn from_bits(bits: u8) -> Self {
        Self(bits & 7)
    }

    /// Whether every right in `other` is in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Parses an OCI access string made of `r`, `w` and `m`; empty means `rwm`.
    pub fn parse(text: &str) -> Option<Self> {
        if text.is_empty() {
            return Some(Self::ALL);
        }
        let mut bits = 0;
        for letter in text.chars() {
            bits |= match letter {
                'r' => Self::READ.0,
                'w' => Self::WRITE.0,
                'm' => Self::MKNOD.0,
                _ => return None,
            };
        }
        Some(Self(bits))
    }
}

impl fmt::Display for DeviceAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (bit, letter) in [(Self::READ, 'r'), (Self::WRITE, 'w'), (Self::MKNOD, 'm')] {
            if self.contains(bit) {
                write!(f, "{letter}")?;
            }
        }
        Ok(())
    }
}

/// One device rule: allow or deny `access` to devices of `kind` with `major`:`minor`
/// (`None` = any).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DeviceRule {
    /// Allow (`true`) or deny.
    pub allow: bool,
    /// The device kind.
    pub kind: DeviceKind,
    /// The major number, or `None` for any.
    pub major: Option<u32>,
    /// The minor number, or `None` for any.
    pub minor: Option<u32>,
    /// The rights the rule grants or takes away.
    pub access: DeviceAccess,
}

impl DeviceRule {
    /// Converts one OCI rule; `Ok(None)` for a FIFO rule, which the device cgroup ignores.
    pub fn from_oci(rule: &LinuxDeviceCgroup) -> Result<Option<Self>, CgroupError> {
        let invalid = |reason: String| CgroupError::InvalidDeviceRule {
            rule: rule.to_string(),
            reason,
        };
        let kind = match rule.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => DeviceKind::All,
            LinuxDeviceType::B => DeviceKind::Block,
            LinuxDeviceType::C | LinuxDeviceType::U => DeviceKind::Char,
            LinuxDeviceType::P => return Ok(None),
        };
        let number = |value: Option<i64>, limit: i64, what: &str| match value {
            None | Some(-1) => Ok(None),
            Some(value) if (0..=limit).contains(&value) => Ok(u32::try_from(value).ok()),
            Some(value) => Err(invalid(format!("{what} {value} is out of range"))),
        };
        let major = number(rule.major(), MAJOR_LIMIT, "major")?;
        let minor = number(rule.minor(), MINOR_LIMIT, "minor")?;
        let access_text = rule.access().as_deref().unwrap_or("");
        let access = DeviceAccess::parse(access_text)
            .ok_or_else(|| invalid(format!("access {access_text:?} is not made of r, w, m")))?;
        Ok(Some(Self {
            allow: rule.allow(),
            kind,
            major,
            minor,
            access,
        }))
    }

    /// Converts an OCI rule list, dropping FIFO rules.
    pub fn from_oci_list(rules: &[LinuxDeviceCgroup]) -> Result<Vec<Self>, CgroupError> {
        let mut converted = Vec::with_capacity(rules.len());
        for rule in rules {
            if let Some(rule) = Self::from_oci(rule)? {
                converted.push(rule);
            } else {
                tracing::debug!(%rule, "ignoring FIFO device rule: the device cgroup never checks FIFOs");
            }
        }
        Ok(converted)
    }

    /// Whether the rule applies to the device `kind` (`Block` or `Char`) `major`:`minor`.
    pub fn matches_device(&self, kind: DeviceKind, major: u32, minor: u32) -> bool {
        (self.kind == DeviceKind::All || self.kind == kind)
            && self.major.is_none_or(|m| m == major)
            && self.minor.is_none_or(|m| m == minor)
    }

    /// Whether this rule is `a *:* rwm`, the rule that sets the default for every device.
    pub fn is_everything(&self) -> bool {
        self.kind == DeviceKind::All
            && self.major.is_none()
            && self.minor.is_none()
            && self.access == DeviceAccess::ALL
    }
}

impl fmt::Display for DeviceRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let number = |n: Option<u32>| n.map_or_else(|| "*".to_owned(), |n| n.to_string());
        write!(
            f,
            "{} {} {}:{} {}",
            if self.allow { "allow" } else { "deny" },
            self.kind.letter(),
            number(self.major),
            number(self.minor),
            self.access
        )
    }
}

/// Decides one access request under `rules` (see the module documentation). `kind` is the
/// device's kind, `Block` or `Char`; an empty `access` is denied.
pub fn is_device_access_allowed(
    rules: &[DeviceRule],
    kind: DeviceKind,
    major: u32,
    minor: u32,
    access: DeviceAccess,
) -> bool {
    if access.is_empty() || kind == DeviceKind::All {
        return false;
    }
    [DeviceAccess::READ, DeviceAccess::WRITE, DeviceAccess::MKNOD]
        .into_iter()
        .filter(|&bit| access.contains(bit))
        .all(|bit| {
            rules
                .iter()
                .rev()
                .find(|rule| rule.matches_device(kind, major, minor) && rule.access.contains(bit))
                .is_some_and(|rule| rule.allow)
        })
}

/// The lines to write to cgroup v1's `devices.allow` / `devices.deny`, in order: each item is
/// (`allow`, line).
///
/// The v1 kernel reads a line starting with `a` as "reset everything", whatever follows, so only
/// `a *:* rwm` becomes `a`; any narrower `a` rule is written as its `b` and `c` halves so it means
/// what it says. Unless the rules start by setting the default themselves, a `deny a` comes
/// first: a new v1 cgroup inherits its parent's list (often "allow all"), while the rules mean
/// "denied unless allowed", as on v2.
///
/// v1 keeps an exception list rather than an ordered rule list, so one case differs from v2: a
/// wildcard deny after a narrower allow (`allow c 1:3`, then `deny c *:*`) removes only the
/// identical exception, and `c 1:3` stays allowed.
pub(crate) fn v1_lines(rules: &[DeviceRule]) -> Vec<(bool, String)> {
    let number = |n: Option<u32>| n.map_or_else(|| "*".to_owned(), |n| n.to_string());
    let mut lines = Vec::new();
    if !rules.first().is_some_and(DeviceRule::is_everything) {
        lines.push((false, "a".to_owned()));
    }
    for rule in rules {
        let kinds: &[char] = if rule.is_everything() {
            lines.push((rule.allow, "a".to_owned()));
            continue;
        } else if rule.kind == DeviceKind::All {
            &['c', 'b']
        } else {
            &[rule.kind.letter()]
        };
        for kind in kinds {
            lines.push((
                rule.allow,
                format!(
                    "{kind} {}:{} {}",
                    number(rule.major),
                    number(rule.minor),
                    rule.access
                ),
            ));
        }
    }
    lines
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;

    pub(crate) fn oci(
        allow: bool,
        typ: LinuxDeviceType,
        major: Option<i64>,
        minor: Option<i64>,
        access: &str,
    ) -> LinuxDeviceCgroup {
        let mut builder = LinuxDeviceCgroupBuilder::default()
            .allow(allow)
            .typ(typ)
            .access(access);
        if let Some(major) = major {
            builder = builder.major(major);
        }
        if let Some(minor) = minor {
            builder = builder.minor(minor);
        }
        builder.build().unwrap()
    }

    pub(crate) fn rule(
        allow: bool,
        kind: DeviceKind,
        major: Option<u32>,
        minor: Option<u32>,
        access: &str,
    ) -> DeviceRule {
        DeviceRule {
            allow,
            kind,
            major,
            minor,
            access: DeviceAccess::parse(access).unwrap(),
        }
    }

    /// A typical container allow-list: deny all, then the default devices.
    pub(crate) fn default_container_rules() -> Vec<DeviceRule> {
        vec![
            rule(false, DeviceKind::All, None, None, "rwm"),
            rule(true, DeviceKind::Char, Some(1), Some(3), "rwm"),
            rule(true, DeviceKind::Char, Some(1), Some(5), "rwm"),
            rule(true, DeviceKind::Char, Some(1), Some(7), "rwm"),
            rule(true, DeviceKind::Char, Some(136), None, "rwm"),
            rule(true, DeviceKind::Char, Some(5), Some(2), "rw"),
            rule(true, DeviceKind::All, None, None, "m"),
        ]
    }

    const R: DeviceAccess = DeviceAccess::READ;
    const W: DeviceAccess = DeviceAccess::WRITE;
    const M: DeviceAccess = DeviceAccess::MKNOD;
    const RW: DeviceAccess = DeviceAccess::from_bits(6);

    #[test]
    fn converts_oci_rules() {
        let deny_all = LinuxDeviceCgroupBuilder::default().build().unwrap();
        assert_eq!(
            DeviceRule::from_oci(&deny_all).unwrap().unwrap(),
            rule(false, DeviceKind::All, None, None, "rwm")
        );
        let null = oci(true, LinuxDeviceType::C, Some(1), Some(3), "rw");
        assert_eq!(
            DeviceRule::from_oci(&null).unwrap().unwrap(),
            rule(true, DeviceKind::Char, Some(1), Some(3), "rw")
        );
        let wildcard = oci(true, LinuxDeviceType::U, Some(-1), None, "m");
        assert_eq!(
            DeviceRule::from_oci(&wildcard).unwrap().unwrap(),
            rule(true, DeviceKind::Char, None, None, "m")
        );
        let fifo = oci(true, LinuxDeviceType::P, None, None, "rwm");
        assert_eq!(DeviceRule::from_oci(&fifo).unwrap(), None);
    }

    #[test]
    fn refuses_malformed_oci_rules() {
        for bad in [
            oci(true, LinuxDeviceType::C, Some(1), Some(3), "rwx"),
            oci(true, LinuxDeviceType::C, Some(-2), Some(3), "r"),
            oci(true, LinuxDeviceType::C, Some(4096), Some(3), "r"),
            oci(true, LinuxDeviceType::C, Some(1), Some(1 << 20), "r"),
        ] {
            let error = DeviceRule::from_oci(&bad).unwrap_err();
            assert!(
                matches!(error, CgroupError::InvalidDeviceRule { .. }),
                "{bad}"
            );
        }
    }

    #[test]
    fn default_rules_allow_only_listed_devices() {
        let rules = default_container_rules();
        let allowed = |kind, major, minor, access| {
            is_device_access_allowed(&rules, kind, major, minor, access)
        };
        assert!(allowed(DeviceKind::Char, 1, 3, RW));
        assert!(allowed(DeviceKind::Char, 136, 4, RW));
        assert!(allowed(DeviceKind::Char, 5, 2, RW));
        // `m` for 5:2 comes from the later `a *:* m` rule.
        assert!(allowed(DeviceKind::Char, 5, 2, DeviceAccess::ALL));
        // mknod of anything is allowed by `a *:* m`, opening it is not.
        assert!(allowed(DeviceKind::Block, 8, 0, M));
        assert!(!allowed(DeviceKind::Block, 8, 0, R));
        assert!(!allowed(DeviceKind::Char, 1, 1, W)); // /dev/mem
        assert!(!allowed(DeviceKind::Char, 10, 232, RW)); // /dev/kvm
    }

    #[test]
    fn last_matching_rule_wins_per_access_bit() {
        let rules = [
            rule(true, DeviceKind::Char, Some(1), Some(3), "rwm"),
            rule(false, DeviceKind::Char, Some(1), Some(3), "w"),
        ];
        assert!(is_device_access_allowed(&rules, DeviceKind::Char, 1, 3, R));
        assert!(!is_device_access_allowed(&rules, DeviceKind::Char, 1, 3, W));
        assert!(!is_device_access_allowed(
            &rules,
            DeviceKind::Char,
            1,
            3,
            RW
        ));

        let split = [
            rule(true, DeviceKind::Char, Some(1), Some(3), "r"),
            rule(true, DeviceKind::Char, Some(1), Some(3), "w"),
        ];
        assert!(is_device_access_allowed(&split, DeviceKind::Char, 1, 3, RW));

        let reallow = [
            rule(false, DeviceKind::All, None, None, "rwm"),
            rule(true, DeviceKind::All, None, None, "rwm"),
        ];
        assert!(is_device_access_allowed(
            &reallow,
            DeviceKind::Block,
            8,
            0,
            RW
        ));
        assert!(!is_device_access_allowed(&[], DeviceKind::Char, 1, 3, R));
        assert!(!is_device_access_allowed(
            &reallow,
            DeviceKind::Char,
            1,
            3,
            DeviceAccess::NONE
        ));
    }

    #[test]
    fn v1_lines_keep_order_and_split_narrow_wildcards() {
        let rules = default_container_rules();
        let lines = v1_lines(&rules);
        assert_eq!(lines[0], (false, "a".to_owned()));
        assert_eq!(lines[1], (true, "c 1:3 rwm".to_owned()));
        assert_eq!(lines[4], (true, "c 136:* rwm".to_owned()));
        assert_eq!(lines[5], (true, "c 5:2 rw".to_owned()));
        assert_eq!(lines[6], (true, "c *:* m".to_owned()));
        assert_eq!(lines[7], (true, "b *:* m".to_owned()));
        assert_eq!(lines.len(), 8);
    }

    #[test]
    fn v1_lines_start_from_deny_all_unless_the_rules_set_the_default() {
        assert_eq!(v1_lines(&[]), vec![(false, "a".to_owned())]);
        let only_null = [rule(true, DeviceKind::Char, Some(1), Some(3), "rwm")];
        assert_eq!(
            v1_lines(&only_null),
            vec![(false, "a".to_owned()), (true, "c 1:3 rwm".to_owned())]
        );
        let privileged = [
            rule(true, DeviceKind::All, None, None, "rwm"),
            rule(false, DeviceKind::Block, Some(8), None, "w"),
        ];
        assert_eq!(
            v1_lines(&privileged),
            vec![(true, "a".to_owned()), (false, "b 8:* w".to_owned())]
        );
    }

    #[test]
    fn access_round_trips() {
        assert_eq!(DeviceAccess::parse("mwr").unwrap().to_string(), "rwm");
        assert_eq!(DeviceAccess::parse("").unwrap(), DeviceAccess::ALL);
        assert_eq!(DeviceAccess::parse("x"), None);
        assert_eq!(
            rule(false, DeviceKind::Block, Some(8), None, "w").to_string(),
            "deny b 8:* w"
        );
    }
}
