//! A container's OCI config: palisade-runtime's hardened defaults, the image's config, then
//! the user's flags, in that order, so nothing an image says can weaken a default.
//!
//! The image contributes its command (Entrypoint + Cmd), environment, working directory, user
//! and labels. Labels become annotations, except those under `org.palisade.`, which the
//! runtime reads as policy (Landlock): an image must not be able to switch its own defences
//! off. Every flag that relaxes a default is recorded as a [`Relaxation`], named the way
//! `palisade_runtime::audit::relaxations` names it (or, for what that function cannot see,
//! such as Landlock or a lifted limit, in the same style).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{
    Capability, HookBuilder, HooksBuilder, LinuxCpuBuilder, LinuxMemoryBuilder, LinuxNamespaceType,
    LinuxPidsBuilder, LinuxResources, Mount, MountBuilder, Spec,
};

use crate::options::{ContainerOptions, Limit, NetworkMode, SecurityOption};
use crate::users::ResolvedUser;

/// Annotations the image's labels may not set: the runtime's policy lives here.
const RESERVED_ANNOTATION_PREFIX: &str = "org.palisade.";
/// The annotation naming the container.
pub const NAME_ANNOTATION: &str = "org.palisade.container.name";
/// The annotation naming the image.
pub const IMAGE_ANNOTATION: &str = "org.palisade.image";
/// CFS period used with `--cpus`.
const CPU_PERIOD: u64 = 100_000;

/// A config that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// palisade-runtime's hardened template failed to build.
    #[error("failed to build the hardened default config")]
    Hardened {
        /// The cause.
        #[source]
        source: palisade_runtime::RuntimeError,
    },
    /// Neither the image nor the user gives a command.
    #[error(
        "no command specified: the image has no Entrypoint or Cmd; give one after the image name"
    )]
    NoCommand,
    /// A working directory that is not absolute.
    #[error("the working directory {path:?} must be an absolute path")]
    RelativeWorkdir {
        /// The path.
        path: String,
    },
    /// A uid or gid the user namespace does not map.
    #[error("user {uid}:{gid} is outside the container's user namespace (ids 0-{max})")]
    UnmappedUser {
        /// The uid.
        uid: u32,
        /// The gid.
        gid: u32,
        /// The largest mapped id.
        max: u32,
    },
    /// An OCI builder refused a value.
    #[error("invalid container config: {reason}")]
    Invalid {
        /// Why.
        reason: String,
    },
}

fn invalid(e: impl std::fmt::Display) -> SpecError {
    SpecError::Invalid {
        reason: e.to_string(),
    }
}

/// A secure default a container runs without, and the flag that asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relaxation {
    /// What was relaxed (`seccomp_disabled`, `capability:CAP_SYS_ADMIN`, ...).
    pub what: String,
    /// The flag, as the user wrote it (`--privileged`).
    pub flag: String,
}

/// What [`build`] needs besides the options.
#[derive(Debug, Clone)]
pub struct SpecInputs<'a> {
    /// The image's config.
    pub image: &'a ImageConfiguration,
    /// The image reference, for an annotation.
    pub image_name: &'a str,
    /// The container's name, for an annotation.
    pub container_name: &'a str,
    /// The default hostname (the short id).
    pub default_hostname: &'a str,
    /// The user the process runs as (resolved from the image's files).
    pub user: &'a ResolvedUser,
    /// Bind mounts: canonical host path, container path, read-only.
    pub binds: &'a [(PathBuf, String, bool)],
    /// The `createRuntime` hook that sets up the container's network namespace (program,
    /// then its argv): loopback only, or the veth onto its bridge network; used when the
    /// container has a network namespace of its own.
    pub loopback_hook: &'a [String],
}

/// The built config and what it relaxes.
#[derive(Debug, Clone)]
pub struct BuiltSpec {
    /// The OCI config.
    pub spec: Spec,
    /// Relaxed defaults, one per (flag, default) pair.
    pub relaxations: Vec<Relaxation>,
    /// The process's argument vector.
    pub command: Vec<String>,
    /// The working directory.
    pub cwd: String,
    /// The image's StopSignal, or SIGTERM.
    pub stop_signal: String,
}

/// The command: `--entrypoint` (or the image's), then the user's command (or the image's Cmd,
/// unless `--entrypoint` was given, which clears it, as Docker does).
pub fn command(image: &ImageConfiguration, options: &ContainerOptions) -> Vec<String> {
    let config = image.config().as_ref();
    let entrypoint: Vec<String> = match &options.entrypoint {
        Some(e) if e.is_empty() => Vec::new(),
        Some(e) => vec![e.clone()],
        None => config
            .and_then(|c| c.entrypoint().clone())
            .unwrap_or_default(),
    };
    let cmd: Vec<String> = if !options.command.is_empty() {
        options.command.clone()
    } else if options.entrypoint.is_some() {
        Vec::new()
    } else {
        config.and_then(|c| c.cmd().clone()).unwrap_or_default()
    };
    entrypoint.into_iter().chain(cmd).collect()
}

/// The user the image asks for unless `-u` says otherwise (empty: root).
pub fn requested_user(image: &ImageConfiguration, options: &ContainerOptions) -> String {
    options
        .user
        .clone()
        .or_else(|| image.config().as_ref().and_then(|c| c.user().clone()))
        .unwrap_or_default()
}

/// The working directory: `-w`, the image's, or `/`.
pub fn working_dir(
    image: &ImageConfiguration,
    options: &ContainerOptions,
) -> Result<String, SpecError> {
    let dir = options
        .workdir
        .clone()
        .or_else(|| {
            image
                .config()
                .as_ref()
                .and_then(|c| c.working_dir().clone())
                .filter(|d| !d.is_empty())
        })
        .unwrap_or_else(|| "/".to_owned());
    if !dir.starts_with('/') {
        return Err(SpecError::RelativeWorkdir { path: dir });
    }
    Ok(dir)
}

/// Sets `KEY=VALUE` in `env`, replacing an earlier value of `KEY`.
fn set_env(env: &mut Vec<String>, entry: &str) {
    let key = entry.split('=').next().unwrap_or_default();
    env.retain(|e| e.split('=').next() != Some(key));
    env.push(entry.to_owned());
}

/// Builds the config. See the module documentation for the order of precedence.
pub fn build(inputs: &SpecInputs<'_>, options: &ContainerOptions) -> Result<BuiltSpec, SpecError> {
    let mut spec =
        palisade_runtime::spec::hardened(false).map_err(|source| SpecError::Hardened { source })?;
    let mut relaxed = Relaxations::default();
    let config = inputs.image.config().as_ref();

    let args = command(inputs.image, options);
    if args.is_empty() {
        return Err(SpecError::NoCommand);
    }
    let cwd = working_dir(inputs.image, options)?;
    let hostname = options
        .hostname
        .clone()
        .unwrap_or_else(|| inputs.default_hostname.to_owned());

    let process = spec
        .process_mut()
        .as_mut()
        .ok_or_else(|| invalid("the hardened config has no process"))?;
    let mut env = process.env().clone().unwrap_or_default();
    for entry in config.and_then(|c| c.env().clone()).unwrap_or_default() {
        set_env(&mut env, &entry);
    }
    set_env(&mut env, &format!("HOSTNAME={hostname}"));
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        let home = inputs.user.home.clone().unwrap_or_else(|| "/".to_owned());
        set_env(&mut env, &format!("HOME={home}"));
    }
    for entry in &options.env {
        set_env(&mut env, entry);
    }
    process.set_env(Some(env));
    process.set_args(Some(args.clone()));
    process.set_cwd(PathBuf::from(&cwd));
    process.set_terminal(Some(options.tty));
    let user = process.user_mut();
    user.set_uid(inputs.user.uid);
    user.set_gid(inputs.user.gid);
    user.set_additional_gids(
        (!inputs.user.additional_gids.is_empty()).then(|| inputs.user.additional_gids.clone()),
    );
    spec.set_hostname(Some(hostname));

    // Labels first, then our own annotations, so a label cannot replace them.
    let mut annotations: HashMap<String, String> = config
        .and_then(|c| c.labels().clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|(key, _)| {
            let reserved = key.starts_with(RESERVED_ANNOTATION_PREFIX);
            if reserved {
                tracing::warn!(label = %key, "ignoring an image label in palisade's reserved annotation namespace");
            }
            !reserved
        })
        .collect();
    annotations.extend(spec.annotations().clone().unwrap_or_default());
    annotations.insert(NAME_ANNOTATION.to_owned(), inputs.container_name.to_owned());
    annotations.insert(IMAGE_ANNOTATION.to_owned(), inputs.image_name.to_owned());
    // Bind sources were checked as canonical paths: the runtime refuses any symlink in them.
    annotations.insert(
        palisade_runtime::spec::PINNED_BIND_SOURCES.to_owned(),
        "no-symlinks".to_owned(),
    );
    spec.set_annotations(Some(annotations));

    let mut mounts = spec.mounts().clone().unwrap_or_default();
    for (source, destination, read_only) in inputs.binds {
        mounts.push(bind_mount(source, destination, *read_only)?);
    }
    spec.set_mounts(Some(mounts));

    if options.network != NetworkMode::Host {
        if let Some((program, _)) = inputs.loopback_hook.split_first() {
            let hook = HookBuilder::default()
                .path(program)
                .args(inputs.loopback_hook.to_vec())
                .timeout(10i64)
                .build()
                .map_err(invalid)?;
            let hooks = HooksBuilder::default()
                .create_runtime(vec![hook])
                .build()
                .map_err(invalid)?;
            spec.set_hooks(Some(hooks));
        }
    }

    apply_limits(&mut spec, options, &mut relaxed)?;
    apply_capabilities(&mut spec, options, &mut relaxed)?;
    apply_security(&mut spec, options, &mut relaxed)?;

    if !options.read_only {
        relaxed.apply(&mut spec, "--read-only=false", |spec| {
            if let Some(root) = spec.root_mut().as_mut() {
                root.set_readonly(Some(false));
            }
            Vec::new()
        });
    }

    // The user must be mapped by the user namespace, if there is one.
    let has_userns = namespaces(&spec).contains(&LinuxNamespaceType::User);
    if has_userns {
        let max = palisade_runtime::spec::DEFAULT_ID_RANGE - 1;
        let ids = [inputs.user.uid, inputs.user.gid]
            .into_iter()
            .chain(inputs.user.additional_gids.iter().copied());
        for id in ids {
            if id > max {
                return Err(SpecError::UnmappedUser {
                    uid: inputs.user.uid,
                    gid: inputs.user.gid,
                    max,
                });
            }
        }
    }

    let stop_signal = config
        .and_then(|c| c.stop_signal().clone())
        .filter(|s| palisade_runtime::container::parse_signal(s).is_ok())
        .unwrap_or_else(|| "SIGTERM".to_owned());
    Ok(BuiltSpec {
        spec,
        relaxations: relaxed.list,
        command: args,
        cwd,
        stop_signal,
    })
}

fn bind_mount(
    source: &std::path::Path,
    destination: &str,
    read_only: bool,
) -> Result<Mount, SpecError> {
    let options = vec![
        "rbind".to_owned(),
        "nosuid".to_owned(),
        "nodev".to_owned(),
        if read_only { "ro" } else { "rw" }.to_owned(),
    ];
    MountBuilder::default()
        .destination(destination)
        .typ("bind")
        .source(source)
        .options(options)
        .build()
        .map_err(invalid)
}

fn namespaces(spec: &Spec) -> Vec<LinuxNamespaceType> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default()
        .iter()
        .map(|n| n.typ())
        .collect()
}

/// Relaxations collected while flags are applied: what `relaxations()` reports after a flag
/// that it did not before is that flag's doing.
#[derive(Debug, Default)]
struct Relaxations {
    list: Vec<Relaxation>,
}

impl Relaxations {
    fn apply(
        &mut self,
        spec: &mut Spec,
        flag: &str,
        change: impl FnOnce(&mut Spec) -> Vec<String>,
    ) {
        let before: HashSet<String> = palisade_runtime::audit::relaxations(spec)
            .into_iter()
            .collect();
        let extra = change(spec);
        let after = palisade_runtime::audit::relaxations(spec);
        for what in after
            .into_iter()
            .filter(|r| !before.contains(r))
            .chain(extra)
        {
            if !self.list.iter().any(|r| r.what == what && r.flag == flag) {
                self.list.push(Relaxation {
                    what,
                    flag: flag.to_owned(),
                });
            }
        }
    }
}

fn resources_mut(spec: &mut Spec) -> Result<&mut LinuxResources, SpecError> {
    let linux = spec
        .linux_mut()
        .as_mut()
        .ok_or_else(|| invalid("the hardened config has no linux section"))?;
    if linux.resources().is_none() {
        linux.set_resources(Some(LinuxResources::default()));
    }
    linux
        .resources_mut()
        .as_mut()
        .ok_or_else(|| invalid("the hardened config has no resources"))
}

fn apply_limits(
    spec: &mut Spec,
    options: &ContainerOptions,
    relaxed: &mut Relaxations,
) -> Result<(), SpecError> {
    match options.memory {
        Some(Limit::Value(bytes)) => {
            let memory = LinuxMemoryBuilder::default()
                .limit(bytes)
                .build()
                .map_err(invalid)?;
            resources_mut(spec)?.set_memory(Some(memory));
        }
        Some(Limit::Unlimited) => {
            resources_mut(spec)?;
            relaxed.apply(spec, "--memory -1", |spec| {
                if let Ok(resources) = resources_mut(spec) {
                    resources.set_memory(None);
                }
                vec!["memory_limit_removed".to_owned()]
            });
        }
        None => {}
    }
    match options.pids_limit {
        Some(Limit::Value(count)) => {
            let pids = LinuxPidsBuilder::default()
                .limit(count)
                .build()
                .map_err(invalid)?;
            resources_mut(spec)?.set_pids(Some(pids));
        }
        Some(Limit::Unlimited) => {
            resources_mut(spec)?;
            relaxed.apply(spec, "--pids-limit -1", |spec| {
                if let Ok(resources) = resources_mut(spec) {
                    resources.set_pids(None);
                }
                vec!["pids_limit_removed".to_owned()]
            });
        }
        None => {}
    }
    if let Some(quota) = options.cpu_quota {
        let cpu = LinuxCpuBuilder::default()
            .quota(quota)
            .period(CPU_PERIOD)
            .build()
            .map_err(invalid)?;
        resources_mut(spec)?.set_cpu(Some(cpu));
    }
    Ok(())
}

fn capability_sets(spec: &Spec) -> HashSet<Capability> {
    spec.process()
        .as_ref()
        .and_then(|p| p.capabilities().as_ref())
        .and_then(|c| c.bounding().clone())
        .unwrap_or_default()
}

fn set_capabilities(spec: &mut Spec, caps: &HashSet<Capability>) {
    if let Some(process) = spec.process_mut().as_mut() {
        let mut all = process.capabilities().clone().unwrap_or_default();
        all.set_bounding(Some(caps.clone()));
        all.set_effective(Some(caps.clone()));
        all.set_permitted(Some(caps.clone()));
        all.set_inheritable(Some(HashSet::new()));
        all.set_ambient(Some(HashSet::new()));
        process.set_capabilities(Some(all));
    }
}

fn apply_capabilities(
    spec: &mut Spec,
    options: &ContainerOptions,
    relaxed: &mut Relaxations,
) -> Result<(), SpecError> {
    let defaults = capability_sets(spec);
    for name in &options.cap_add {
        let added: Vec<Capability> = name
            .expand()
            .into_iter()
            .filter(|c| !defaults.contains(c))
            .collect();
        if added.is_empty() {
            continue;
        }
        let flag = match name {
            crate::options::CapabilityName::All => "--cap-add ALL".to_owned(),
            crate::options::CapabilityName::One(cap) => format!("--cap-add {cap}"),
        };
        relaxed.apply(spec, &flag, |spec| {
            let mut caps = capability_sets(spec);
            caps.extend(added.iter().copied());
            set_capabilities(spec, &caps);
            // relaxations() names the dangerous ones; any addition widens the minimal set.
            added
                .iter()
                .map(|c| format!("capability:CAP_{c}"))
                .collect()
        });
    }
    if !options.cap_drop.is_empty() {
        let mut caps = capability_sets(spec);
        for name in &options.cap_drop {
            for cap in name.expand() {
                caps.remove(&cap);
            }
        }
        set_capabilities(spec, &caps);
    }
    Ok(())
}

fn apply_security(
    spec: &mut Spec,
    options: &ContainerOptions,
    relaxed: &mut Relaxations,
) -> Result<(), SpecError> {
    let disable_landlock = |spec: &mut Spec| {
        if let Some(annotations) = spec.annotations_mut().as_mut() {
            annotations.remove(palisade_runtime::config::LANDLOCK_ANNOTATION);
        }
    };
    if options.privileged {
        relaxed.apply(spec, "--privileged", |spec| {
            let all: HashSet<Capability> = crate::options::CapabilityName::All
                .expand()
                .into_iter()
                .collect();
            set_capabilities(spec, &all);
            if let Some(process) = spec.process_mut().as_mut() {
                process.set_no_new_privileges(Some(false));
            }
            if let Some(linux) = spec.linux_mut().as_mut() {
                linux.set_seccomp(None);
                linux.set_masked_paths(None);
                linux.set_readonly_paths(None);
            }
            disable_landlock(spec);
            let mut extra: Vec<String> =
                all.iter().map(|c| format!("capability:CAP_{c}")).collect();
            extra.sort();
            extra.push("masked_paths_removed".to_owned());
            extra.push("landlock_disabled".to_owned());
            extra
        });
    }
    for option in &options.security {
        match option {
            SecurityOption::NoNewPrivileges => {}
            SecurityOption::SeccompUnconfined => relaxed.apply(spec, option.flag(), |spec| {
                if let Some(linux) = spec.linux_mut().as_mut() {
                    linux.set_seccomp(None);
                }
                Vec::new()
            }),
            SecurityOption::AllowNewPrivileges => relaxed.apply(spec, option.flag(), |spec| {
                if let Some(process) = spec.process_mut().as_mut() {
                    process.set_no_new_privileges(Some(false));
                }
                Vec::new()
            }),
            SecurityOption::LandlockOff => relaxed.apply(spec, option.flag(), |spec| {
                disable_landlock(spec);
                vec!["landlock_disabled".to_owned()]
            }),
            SecurityOption::HostUserNamespace => relaxed.apply(spec, option.flag(), |spec| {
                if let Some(linux) = spec.linux_mut().as_mut() {
                    if let Some(namespaces) = linux.namespaces_mut().as_mut() {
                        namespaces.retain(|n| n.typ() != LinuxNamespaceType::User);
                    }
                    linux.set_uid_mappings(None);
                    linux.set_gid_mappings(None);
                }
                Vec::new()
            }),
        }
    }
    if options.network == NetworkMode::Host {
        relaxed.apply(spec, "--network host", |spec| {
            if let Some(linux) = spec.linux_mut().as_mut() {
                if let Some(namespaces) = linux.namespaces_mut().as_mut() {
                    namespaces.retain(|n| n.typ() != LinuxNamespaceType::Network);
                }
            }
            // A fresh sysfs needs a network namespace of our own: bind the host's, read-only.
            if let Some(mounts) = spec.mounts_mut().as_mut() {
                for mount in mounts.iter_mut() {
                    if mount.destination() == std::path::Path::new("/sys") {
                        mount.set_typ(Some("bind".to_owned()));
                        mount.set_source(Some(PathBuf::from("/sys")));
                        mount.set_options(Some(
                            ["rbind", "nosuid", "noexec", "nodev", "ro"]
                                .iter()
                                .map(|o| (*o).to_owned())
                                .collect(),
                        ));
                    }
                }
            }
            Vec::new()
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::CapabilityName;

    fn image(json: serde_json::Value) -> ImageConfiguration {
        let mut base = serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []}
        });
        base["config"] = json;
        serde_json::from_value(base).unwrap()
    }

    fn build_with(
        image: &ImageConfiguration,
        options: &ContainerOptions,
    ) -> Result<BuiltSpec, SpecError> {
        let user = ResolvedUser::default();
        build(
            &SpecInputs {
                image,
                image_name: "busybox",
                container_name: "c1",
                default_hostname: "0123456789ab",
                user: &user,
                binds: &[],
                loopback_hook: &[],
            },
            options,
        )
    }

    #[test]
    fn the_image_config_fills_in_the_hardened_defaults() {
        let image = image(serde_json::json!({
            "Entrypoint": ["/bin/entry"], "Cmd": ["serve", "--port", "80"],
            "Env": ["PATH=/opt/bin:/bin", "MODE=prod"], "WorkingDir": "/srv",
            "Labels": {"team": "web", "org.palisade.landlock": "off-please"},
            "StopSignal": "SIGQUIT"
        }));
        let mut options = ContainerOptions::new("busybox");
        options.env.push("MODE=dev".into());
        let built = build_with(&image, &options).unwrap();
        let process = built.spec.process().as_ref().unwrap();
        assert_eq!(
            process.args().as_ref().unwrap(),
            &["/bin/entry", "serve", "--port", "80"]
        );
        let env = process.env().as_ref().unwrap();
        assert!(env.contains(&"PATH=/opt/bin:/bin".to_owned()));
        assert!(env.contains(&"MODE=dev".to_owned()));
        assert!(!env.contains(&"MODE=prod".to_owned()));
        assert!(env.contains(&"HOSTNAME=0123456789ab".to_owned()));
        assert_eq!(process.cwd(), std::path::Path::new("/srv"));
        assert_eq!(built.stop_signal, "SIGQUIT");
        let annotations = built.spec.annotations().as_ref().unwrap();
        assert_eq!(annotations["team"], "web");
        // The image cannot switch Landlock off through a label.
        assert_eq!(
            annotations[palisade_runtime::config::LANDLOCK_ANNOTATION],
            "rootfs"
        );
        assert!(built.relaxations.is_empty());
        assert!(palisade_runtime::audit::relaxations(&built.spec).is_empty());
    }

    #[test]
    fn user_command_and_entrypoint_override_the_image() {
        let image = image(serde_json::json!({"Entrypoint": ["/e"], "Cmd": ["c"]}));
        let mut options = ContainerOptions::new("x");
        options.command = vec!["id".into(), "-u".into()];
        assert_eq!(command(&image, &options), ["/e", "id", "-u"]);
        options.entrypoint = Some(String::new());
        assert_eq!(command(&image, &options), ["id", "-u"]);
        options.command.clear();
        assert!(matches!(
            build_with(&image, &options),
            Err(SpecError::NoCommand)
        ));
        let mut options = ContainerOptions::new("x");
        options.workdir = Some("relative".into());
        assert!(matches!(
            build_with(&image, &options),
            Err(SpecError::RelativeWorkdir { .. })
        ));
    }

    #[test]
    fn every_relaxing_flag_is_named() {
        let image = image(serde_json::json!({"Cmd": ["sh"]}));
        type Case = (
            Box<dyn Fn(&mut ContainerOptions)>,
            &'static str,
            &'static str,
        );
        let cases: Vec<Case> = vec![
            (
                Box::new(|o| o.privileged = true),
                "--privileged",
                "seccomp_disabled",
            ),
            (
                Box::new(|o| o.privileged = true),
                "--privileged",
                "capability:CAP_SYS_ADMIN",
            ),
            (
                Box::new(|o| o.privileged = true),
                "--privileged",
                "landlock_disabled",
            ),
            (
                Box::new(|o| o.security.push(SecurityOption::SeccompUnconfined)),
                "--security-opt seccomp=unconfined",
                "seccomp_disabled",
            ),
            (
                Box::new(|o| o.security.push(SecurityOption::AllowNewPrivileges)),
                "--security-opt no-new-privileges=false",
                "no_new_privileges_disabled",
            ),
            (
                Box::new(|o| o.security.push(SecurityOption::LandlockOff)),
                "--security-opt landlock=off",
                "landlock_disabled",
            ),
            (
                Box::new(|o| o.security.push(SecurityOption::HostUserNamespace)),
                "--security-opt userns=host",
                "host_user_namespace",
            ),
            (
                Box::new(|o| o.network = NetworkMode::Host),
                "--network host",
                "host_network_namespace",
            ),
            (
                Box::new(|o| o.read_only = false),
                "--read-only=false",
                "writable_rootfs",
            ),
            (
                Box::new(|o| o.cap_add.push(CapabilityName::One(Capability::NetAdmin))),
                "--cap-add NET_ADMIN",
                "capability:CAP_NET_ADMIN",
            ),
            (
                Box::new(|o| o.cap_add.push(CapabilityName::One(Capability::Chown))),
                "--cap-add CHOWN",
                "capability:CAP_CHOWN",
            ),
            (
                Box::new(|o| o.memory = Some(Limit::Unlimited)),
                "--memory -1",
                "memory_limit_removed",
            ),
            (
                Box::new(|o| o.pids_limit = Some(Limit::Unlimited)),
                "--pids-limit -1",
                "pids_limit_removed",
            ),
        ];
        for (set, flag, what) in cases {
            let mut options = ContainerOptions::new("x");
            set(&mut options);
            let built = build_with(&image, &options).unwrap();
            assert!(
                built
                    .relaxations
                    .iter()
                    .any(|r| r.flag == flag && r.what == what),
                "{flag}: {what} missing from {:?}",
                built.relaxations
            );
        }
    }

    #[test]
    fn limits_and_tightening_flags_are_not_relaxations() {
        let image = image(serde_json::json!({"Cmd": ["sh"]}));
        let mut options = ContainerOptions::new("x");
        options.memory = Some(Limit::Value(64 << 20));
        options.pids_limit = Some(Limit::Value(20));
        options.cpu_quota = Some(50_000);
        options.cap_drop.push(CapabilityName::All);
        options.security.push(SecurityOption::NoNewPrivileges);
        let built = build_with(&image, &options).unwrap();
        assert!(built.relaxations.is_empty(), "{:?}", built.relaxations);
        let resources = built
            .spec
            .linux()
            .as_ref()
            .unwrap()
            .resources()
            .as_ref()
            .unwrap();
        assert_eq!(resources.memory().unwrap().limit(), Some(64 << 20));
        assert_eq!(resources.pids().unwrap().limit(), 20);
        assert_eq!(resources.cpu().as_ref().unwrap().quota(), Some(50_000));
        assert!(capability_sets(&built.spec).is_empty());
    }

    #[test]
    fn users_outside_the_namespace_are_refused() {
        let image = image(serde_json::json!({"Cmd": ["sh"]}));
        let user = ResolvedUser {
            uid: 70_000,
            ..ResolvedUser::default()
        };
        let options = ContainerOptions::new("x");
        let result = build(
            &SpecInputs {
                image: &image,
                image_name: "x",
                container_name: "c",
                default_hostname: "h",
                user: &user,
                binds: &[],
                loopback_hook: &[],
            },
            &options,
        );
        assert!(matches!(result, Err(SpecError::UnmappedUser { .. })));
    }
}
