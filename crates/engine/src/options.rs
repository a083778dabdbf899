//! What a user asks of a container, parsed once at the edge into typed values.

use std::str::FromStr;

use oci_spec::runtime::Capability;

use crate::id::ContainerName;
use crate::volumes::VolumeSpec;

/// A flag value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OptionError {
    /// An unknown or unsupported `--security-opt`.
    #[error("unsupported --security-opt {value:?}: supported are seccomp=unconfined, no-new-privileges[=true|false], landlock=off and userns=host")]
    SecurityOption {
        /// The value.
        value: String,
    },
    /// An unknown `--network`.
    #[error("unsupported --network {value:?}: use none (the default: loopback only), bridge (the default bridge network), the name of a network from `palisade network ls`, or host (a relaxation)")]
    Network {
        /// The value.
        value: String,
    },
    /// A `-p` that does not parse, or one without a bridge network.
    #[error("{message}")]
    Port {
        /// What is wrong.
        message: String,
    },
    /// An unknown capability name.
    #[error(
        "unknown capability {value:?} (expected a name like NET_ADMIN or CAP_NET_ADMIN, or ALL)"
    )]
    Capability {
        /// The value.
        value: String,
    },
    /// A size that does not parse.
    #[error("invalid size {value:?}: expected a number of bytes with an optional b, k, m or g suffix, or -1 for no limit")]
    Size {
        /// The value.
        value: String,
    },
    /// A CPU count that does not parse.
    #[error("invalid --cpus {value:?}: expected a positive number such as 0.5 or 2")]
    Cpus {
        /// The value.
        value: String,
    },
    /// A hostname that is not a valid host name.
    #[error("invalid --hostname {value:?}: use letters, digits, '-' and '.', at most 63 characters per label")]
    Hostname {
        /// The value.
        value: String,
    },
    /// A signal name or number that does not exist.
    #[error("unknown signal {value:?} (expected a name like TERM or SIGKILL, or a number)")]
    Signal {
        /// The value.
        value: String,
    },
    /// An environment variable without a name.
    #[error("invalid environment variable {value:?}: expected KEY=VALUE")]
    Env {
        /// The value.
        value: String,
    },
}

/// `--security-opt` values: each one relaxes a secure default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityOption {
    /// `seccomp=unconfined`: no seccomp filter.
    SeccompUnconfined,
    /// `no-new-privileges=false`: the process may gain privileges through exec.
    AllowNewPrivileges,
    /// `no-new-privileges` or `no-new-privileges=true`: the default, accepted.
    NoNewPrivileges,
    /// `landlock=off`: no Landlock ruleset.
    LandlockOff,
    /// `userns=host`: container root is host root.
    HostUserNamespace,
}

impl SecurityOption {
    /// The flag as a user writes it, for warnings and the audit log.
    pub fn flag(self) -> &'static str {
        match self {
            Self::SeccompUnconfined => "--security-opt seccomp=unconfined",
            Self::AllowNewPrivileges => "--security-opt no-new-privileges=false",
            Self::NoNewPrivileges => "--security-opt no-new-privileges",
            Self::LandlockOff => "--security-opt landlock=off",
            Self::HostUserNamespace => "--security-opt userns=host",
        }
    }
}

impl FromStr for SecurityOption {
    type Err = OptionError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        // Docker accepts both `key=value` and the older `key:value`.
        let (key, val) = match value.split_once(['=', ':']) {
            Some((k, v)) => (k, Some(v)),
            None => (value, None),
        };
        match (key, val) {
            ("seccomp", Some("unconfined")) => Ok(Self::SeccompUnconfined),
            ("no-new-privileges", Some("false")) => Ok(Self::AllowNewPrivileges),
            ("no-new-privileges", None | Some("true")) => Ok(Self::NoNewPrivileges),
            ("landlock", Some("off" | "false" | "disabled")) => Ok(Self::LandlockOff),
            ("userns", Some("host")) => Ok(Self::HostUserNamespace),
            _ => Err(OptionError::SecurityOption {
                value: value.to_owned(),
            }),
        }
    }
}

/// `--network`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NetworkMode {
    /// A network namespace of its own with loopback only (the default).
    #[default]
    None,
    /// The host's network namespace (a relaxation).
    Host,
    /// A network namespace of its own on a palisade bridge network (`bridge` names the
    /// default network, created on first use).
    Bridge(palisade_net::NetworkName),
}

impl FromStr for NetworkMode {
    type Err = OptionError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "none" => Ok(Self::None),
            "host" => Ok(Self::Host),
            "bridge" => Ok(Self::Bridge(palisade_net::NetworkName::default_network())),
            name => name
                .parse()
                .map(Self::Bridge)
                .map_err(|_| OptionError::Network {
                    value: value.to_owned(),
                }),
        }
    }
}

/// A limit that may be lifted: `-1` means none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// No limit (a relaxation).
    Unlimited,
    /// This many (bytes, processes).
    Value(i64),
}

/// Parses a byte size: `1024`, `512k`, `64m`, `1g` (binary units, as Docker), or `-1`.
pub fn parse_size(value: &str) -> Result<Limit, OptionError> {
    let fail = || OptionError::Size {
        value: value.to_owned(),
    };
    let text = value.trim().to_ascii_lowercase();
    if text == "-1" {
        return Ok(Limit::Unlimited);
    }
    let text = text.strip_suffix('b').unwrap_or(&text);
    let (number, shift) = match text.chars().last() {
        Some('k') => (&text[..text.len() - 1], 10),
        Some('m') => (&text[..text.len() - 1], 20),
        Some('g') => (&text[..text.len() - 1], 30),
        Some('t') => (&text[..text.len() - 1], 40),
        _ => (text, 0),
    };
    let number: u64 = number.parse().map_err(|_| fail())?;
    let bytes = number
        .checked_shl(shift)
        .filter(|b| b >> shift == number)
        .ok_or_else(fail)?;
    let bytes = i64::try_from(bytes).map_err(|_| fail())?;
    if bytes == 0 {
        return Err(fail());
    }
    Ok(Limit::Value(bytes))
}

/// Parses `--pids-limit`: a positive count, or `-1`/`0` for none.
pub fn parse_pids(value: i64) -> Limit {
    if value <= 0 {
        Limit::Unlimited
    } else {
        Limit::Value(value)
    }
}

/// Parses `--cpus` into a CFS quota for a 100 ms period.
pub fn parse_cpus(value: &str) -> Result<i64, OptionError> {
    let cpus: f64 = value.trim().parse().map_err(|_| OptionError::Cpus {
        value: value.to_owned(),
    })?;
    if !cpus.is_finite() || cpus <= 0.0 || cpus > 4096.0 {
        return Err(OptionError::Cpus {
            value: value.to_owned(),
        });
    }
    // At least the kernel's minimum quota of 1 ms.
    Ok(((cpus * 100_000.0).round() as i64).max(1000))
}

/// Every capability, for `--cap-add ALL` and `--privileged`.
pub const ALL_CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// A `--cap-add`/`--cap-drop` value: one capability, or all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CapabilityName {
    /// `ALL`.
    All,
    /// One capability.
    One(Capability),
}

impl FromStr for CapabilityName {
    type Err = OptionError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let upper = value.trim().to_ascii_uppercase();
        let name = upper.strip_prefix("CAP_").unwrap_or(&upper);
        if name == "ALL" {
            return Ok(Self::All);
        }
        name.parse::<Capability>()
            .map(Self::One)
            .map_err(|_| OptionError::Capability {
                value: value.to_owned(),
            })
    }
}

impl CapabilityName {
    /// The capabilities it names.
    pub fn expand(&self) -> Vec<Capability> {
        match self {
            Self::One(cap) => vec![*cap],
            Self::All => ALL_CAPABILITIES
                .iter()
                .filter_map(|c| c.parse().ok())
                .collect(),
        }
    }
}

/// Checks a `--hostname`.
pub fn parse_hostname(value: &str) -> Result<String, OptionError> {
    let valid = !value.is_empty()
        && value.len() <= 253
        && value.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if valid {
        Ok(value.to_owned())
    } else {
        Err(OptionError::Hostname {
            value: value.to_owned(),
        })
    }
}

/// Checks a `KEY=VALUE` environment entry.
pub fn parse_env(value: &str) -> Result<String, OptionError> {
    match value.split_once('=') {
        Some((key, _)) if !key.is_empty() && !key.contains('\0') && !value.contains('\0') => {
            Ok(value.to_owned())
        }
        _ => Err(OptionError::Env {
            value: value.to_owned(),
        }),
    }
}

/// Everything `palisade create`/`run` can say about a container. The defaults are the
/// secure ones; every field that relaxes one is named after the flag that does.
#[derive(Debug, Clone)]
pub struct ContainerOptions {
    /// The image, as the user named it.
    pub image: String,
    /// `--name`.
    pub name: Option<ContainerName>,
    /// The command (replaces the image's Cmd).
    pub command: Vec<String>,
    /// `--entrypoint` (replaces the image's Entrypoint; an empty string clears it).
    pub entrypoint: Option<String>,
    /// `-e KEY=VALUE`, in order (later ones win).
    pub env: Vec<String>,
    /// `-v`.
    pub volumes: Vec<VolumeSpec>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `-u`.
    pub user: Option<String>,
    /// `--read-only` (default true; `--read-only=false` relaxes).
    pub read_only: bool,
    /// `--memory`.
    pub memory: Option<Limit>,
    /// `--pids-limit`.
    pub pids_limit: Option<Limit>,
    /// `--cpus`, as a CFS quota per 100 ms.
    pub cpu_quota: Option<i64>,
    /// `--cap-add`.
    pub cap_add: Vec<CapabilityName>,
    /// `--cap-drop`.
    pub cap_drop: Vec<CapabilityName>,
    /// `--security-opt`.
    pub security: Vec<SecurityOption>,
    /// `--privileged`.
    pub privileged: bool,
    /// `--network`.
    pub network: NetworkMode,
    /// `-p`: published ports (bridge networks only).
    pub ports: Vec<palisade_net::PortMapping>,
    /// `--hostname`.
    pub hostname: Option<String>,
    /// `--rm`.
    pub auto_remove: bool,
    /// `-i`.
    pub interactive: bool,
    /// `-t`.
    pub tty: bool,
}

impl ContainerOptions {
    /// The secure defaults for `image`.
    pub fn new(image: impl Into<String>) -> Self {
        Self {
            image: image.into(),
            name: None,
            command: Vec::new(),
            entrypoint: None,
            env: Vec::new(),
            volumes: Vec::new(),
            workdir: None,
            user: None,
            read_only: true,
            memory: None,
            pids_limit: None,
            cpu_quota: None,
            cap_add: Vec::new(),
            cap_drop: Vec::new(),
            security: Vec::new(),
            privileged: false,
            network: NetworkMode::None,
            ports: Vec::new(),
            hostname: None,
            auto_remove: false,
            interactive: false,
            tty: false,
        }
    }

    /// Whether `--security-opt` includes `option`.
    pub fn has(&self, option: SecurityOption) -> bool {
        self.security.contains(&option)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_options_parse_in_both_syntaxes() {
        assert_eq!(
            "seccomp=unconfined".parse::<SecurityOption>().unwrap(),
            SecurityOption::SeccompUnconfined
        );
        assert_eq!(
            "seccomp:unconfined".parse::<SecurityOption>().unwrap(),
            SecurityOption::SeccompUnconfined
        );
        assert_eq!(
            "no-new-privileges=false".parse::<SecurityOption>().unwrap(),
            SecurityOption::AllowNewPrivileges
        );
        assert_eq!(
            "no-new-privileges".parse::<SecurityOption>().unwrap(),
            SecurityOption::NoNewPrivileges
        );
        assert_eq!(
            "landlock=off".parse::<SecurityOption>().unwrap(),
            SecurityOption::LandlockOff
        );
        assert_eq!(
            "userns=host".parse::<SecurityOption>().unwrap(),
            SecurityOption::HostUserNamespace
        );
        for bad in [
            "apparmor=unconfined",
            "seccomp=/x.json",
            "userns=keep-id",
            "",
        ] {
            assert!(bad.parse::<SecurityOption>().is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_cpus_and_capabilities_parse() {
        assert_eq!(parse_size("64m").unwrap(), Limit::Value(64 << 20));
        assert_eq!(parse_size("1G").unwrap(), Limit::Value(1 << 30));
        assert_eq!(parse_size("512kb").unwrap(), Limit::Value(512 << 10));
        assert_eq!(parse_size("4096").unwrap(), Limit::Value(4096));
        assert_eq!(parse_size("-1").unwrap(), Limit::Unlimited);
        for bad in [
            "",
            "m",
            "0",
            "-5",
            "1x",
            "99999999999999999999g",
            "18446744073709551615k",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_pids(0), Limit::Unlimited);
        assert_eq!(parse_pids(50), Limit::Value(50));
        assert_eq!(parse_cpus("1.5").unwrap(), 150_000);
        assert_eq!(parse_cpus("0.001").unwrap(), 1000);
        for bad in ["0", "-1", "nan", "inf", "x"] {
            assert!(parse_cpus(bad).is_err(), "{bad}");
        }
        assert_eq!(
            "net_admin".parse::<CapabilityName>().unwrap(),
            CapabilityName::One(Capability::NetAdmin)
        );
        assert_eq!(
            "CAP_SYS_ADMIN".parse::<CapabilityName>().unwrap(),
            CapabilityName::One(Capability::SysAdmin)
        );
        assert_eq!(CapabilityName::All.expand().len(), ALL_CAPABILITIES.len());
        assert!("CAP_NOPE".parse::<CapabilityName>().is_err());
    }

    #[test]
    fn hostnames_and_env_are_checked() {
        parse_hostname("web-1.example").unwrap();
        for bad in ["", "-x", "a..b", "a b", &"x".repeat(64)] {
            assert!(parse_hostname(bad).is_err(), "{bad}");
        }
        parse_env("A=1").unwrap();
        parse_env("A=").unwrap();
        for bad in ["=1", "A", "A\0=1"] {
            assert!(parse_env(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            "bridge".parse::<NetworkMode>().unwrap(),
            NetworkMode::Bridge(palisade_net::NetworkName::default_network())
        );
        assert!(matches!(
            "backend".parse::<NetworkMode>().unwrap(),
            NetworkMode::Bridge(_)
        ));
        assert!("Not A Network".parse::<NetworkMode>().is_err());
    }
}
