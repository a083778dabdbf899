//! The operations behind the container commands: create, start, run, stop, kill, rm, ps,
//! logs, exec, inspect, wait.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicI32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use palisade_image::{ImageReference, LocalImage, ReferenceError, Store, StoreError};

use crate::audit::warnings;
use crate::exit;
use crate::id::{ContainerId, ContainerName, IdError};
use crate::layers::{LayerCache, LayerError, LayerOwnership};
use crate::logs::LogError;
use crate::monitor::{self, StartReport, StdinMode};
use crate::options::{ContainerOptions, NetworkMode, OptionError, SecurityOption};
use crate::paths::{EnginePaths, PathsError};
use crate::record::{now, ContainerRecord, ContainerState, MountRecord, RecordError, Records};
use crate::rootfs::{Overlay, RootDir, RootfsError};
use crate::runtime::{RuntimeBinary, RuntimeCommandError};
use crate::spec::{self, SpecError, SpecInputs};
use crate::users::{self, UserError};
use crate::volumes::{self, VolumeError, VolumeSource};

/// How long `rm -f` and `stop` wait for a killed container's monitor to record the exit.
const KILL_GRACE: Duration = Duration::from_secs(10);

/// Why an engine operation failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The image reference does not parse.
    #[error("invalid image reference {reference:?}")]
    Reference {
        /// The reference.
        reference: String,
        /// The cause.
        #[source]
        source: ReferenceError,
    },
    /// The image is not in the store, or is damaged.
    #[error("cannot use image {reference}")]
    Image {
        /// The reference.
        reference: String,
        /// The cause.
        #[source]
        source: Box<StoreError>,
    },
    /// The image store could not be opened.
    #[error("cannot open the image store at {root:?}")]
    Store {
        /// The root.
        root: PathBuf,
        /// The cause.
        #[source]
        source: Box<StoreError>,
    },
    /// See [`PathsError`].
    #[error(transparent)]
    Paths(#[from] PathsError),
    /// A relaxed default could not be recorded in the audit log, so it was refused.
    #[error("cannot record a relaxed default in the audit log; the container was not created (free disk space or fix the audit log, then retry)")]
    Audit {
        /// The cause.
        #[source]
        source: Box<palisade_audit::AuditError>,
    },
    /// See [`IdError`].
    #[error(transparent)]
    Id(#[from] IdError),
    /// See [`LayerError`].
    #[error(transparent)]
    Layer(#[from] LayerError),
    /// See [`RootfsError`].
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    /// See [`RecordError`].
    #[error(transparent)]
    Record(#[from] RecordError),
    /// See [`SpecError`].
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// See [`VolumeError`].
    #[error(transparent)]
    Volume(#[from] VolumeError),
    /// See [`UserError`].
    #[error(transparent)]
    User(#[from] UserError),
    /// See [`OptionError`].
    #[error(transparent)]
    Option(#[from] OptionError),
    /// See [`RuntimeCommandError`].
    #[error(transparent)]
    Runtime(#[from] RuntimeCommandError),
    /// See [`LogError`].
    #[error(transparent)]
    Log(#[from] LogError),
    /// See [`palisade_net::NetError`].
    #[error(transparent)]
    Network(#[from] palisade_net::NetError),
    /// A file operation failed.
    #[error("failed to {operation} {path:?}")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The operation needs a running container.
    #[error("container {name} is not running")]
    NotRunning {
        /// The container.
        name: String,
    },
    /// The container already runs.
    #[error("container {name} is already running")]
    AlreadyRunning {
        /// The container.
        name: String,
    },
    /// `rm` of a running container without `-f`.
    #[error(
        "container {name} is running: stop it first (palisade stop {name}) or remove it with rm -f"
    )]
    StillRunning {
        /// The container.
        name: String,
    },
    /// The container is being removed.
    #[error("container {name} is being removed")]
    Removing {
        /// The container.
        name: String,
    },
    /// The container did not stop after SIGKILL.
    #[error("container {name} did not stop within {seconds} seconds of SIGKILL")]
    StopTimeout {
        /// The container.
        name: String,
        /// How long we waited.
        seconds: u64,
    },
    /// The container's process could not be started (the code is 125, 126 or 127).
    #[error("{message}")]
    StartFailed {
        /// The exit code to give.
        code: i32,
        /// Why.
        message: String,
    },
    /// The monitor failed.
    #[error("container monitor: {message}")]
    Monitor {
        /// What happened.
        message: String,
    },
    /// Not supported (yet).
    #[error("{what} is not supported yet")]
    Unsupported {
        /// What.
        what: String,
    },
}

/// Where things are and how to call the runtime and the monitor.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The store root (`--root`).
    pub store_root: PathBuf,
    /// The runtime binary, if given (`--runtime` or `PALISADE_RUNTIME`).
    pub runtime: Option<PathBuf>,
    /// The runtime's state root.
    pub runtime_root: PathBuf,
    /// The command that runs a detached container's monitor; the container id is appended.
    pub monitor_command: Vec<OsString>,
    /// The `createRuntime` hook that brings up loopback: program, then its argv (the
    /// `palisade` binary's hidden `container-hook loopback`); empty for none.
    pub loopback_hook: Vec<String>,
}

/// A container record as read from disk, or why it could not be.
type LoadedRecord = Result<ContainerRecord, RecordError>;

/// What [`Engine::check`] found.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct EngineCheck {
    /// Container records looked at.
    pub containers_checked: usize,
    /// Unpacked layer directories found.
    pub layers_checked: usize,
    /// What is wrong.
    pub problems: Vec<String>,
    /// What `repair` fixed.
    pub repaired: Vec<String>,
}

/// A container just created, with the warnings its flags produced.
#[derive(Debug, Clone)]
pub struct Created {
    /// The record.
    pub record: ContainerRecord,
    /// One line per relaxing flag.
    pub warnings: Vec<String>,
}

/// `palisade exec`'s request.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    /// The command and its arguments.
    pub command: Vec<String>,
    /// `-t`.
    pub tty: bool,
    /// `-i`.
    pub interactive: bool,
    /// `-d`.
    pub detach: bool,
    /// `-e KEY=VALUE`.
    pub env: Vec<String>,
    /// `-u`.
    pub user: Option<String>,
    /// `-w`.
    pub workdir: Option<String>,
}

/// The engine over one store.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    paths: EnginePaths,
    store: Store,
    records: Records,
    layers: LayerCache,
}

fn io_error(operation: &'static str, path: &Path) -> impl FnOnce(io::Error) -> EngineError {
    let path = path.to_owned();
    move |source| EngineError::Io {
        operation,
        path,
        source,
    }
}

impl Engine {
    /// Opens the store at `config.store_root` and prepares the engine's directories.
    pub fn open(config: EngineConfig) -> Result<Self, EngineError> {
        let store = Store::open(&config.store_root).map_err(|source| EngineError::Store {
            root: config.store_root.clone(),
            source: Box::new(source),
        })?;
        let root = fs::canonicalize(&config.store_root)
            .map_err(io_error("resolve", &config.store_root))?;
        let paths = EnginePaths::new(root);
        paths.prepare()?;
        Ok(Self {
            records: Records::new(paths.clone()),
            layers: LayerCache::new(&paths),
            config,
            paths,
            store,
        })
    }

    /// The engine's directories.
    pub fn paths(&self) -> &EnginePaths {
        &self.paths
    }

    /// The container records.
    pub fn records(&self) -> &Records {
        &self.records
    }

    /// The image store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The layer cache.
    pub fn layers(&self) -> &LayerCache {
        &self.layers
    }

    /// The bridge networks under this store.
    pub fn networks(&self) -> Result<palisade_net::Networks, EngineError> {
        Ok(palisade_net::Networks::open(self.paths.root())?)
    }

    /// Leases `options.network`'s address to the container, writes its `/etc/hosts` and
    /// `/etc/resolv.conf` (bind-mounted read-only), and returns the `createRuntime` hook
    /// that attaches it (the CLI's `container-hook network`). First, a cleanup pass
    /// releases what containers removed by a crash left behind.
    fn connect_network(
        &self,
        id: &ContainerId,
        name: &ContainerName,
        network: &palisade_net::NetworkName,
        options: &ContainerOptions,
        binds: &mut Vec<(PathBuf, String, bool)>,
    ) -> Result<Vec<String>, EngineError> {
        let networks = self.networks()?;
        let containers = self.paths.containers();
        let report = networks.cleanup(&|container| containers.join(container).is_dir())?;
        if report != palisade_net::Cleanup::default() {
            tracing::info!(leases = ?report.leases, interfaces = ?report.interfaces, "network cleanup pass");
        }
        let (definition, lease) =
            networks.connect(network, id.as_str(), name.as_str(), &options.ports)?;
        let dir = self.paths.container(id);
        let hostname = options
            .hostname
            .clone()
            .unwrap_or_else(|| id.short().to_owned());
        let host_resolv = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let files = [
            (
                "hosts",
                "/etc/hosts",
                palisade_net::files::hosts(&hostname, &lease, definition.gateway.into()),
            ),
            (
                "resolv.conf",
                "/etc/resolv.conf",
                palisade_net::files::resolv_conf(&host_resolv),
            ),
        ];
        for (file, destination, text) in files {
            let path = dir.join(file);
            crate::record::write_atomic(&path, text.as_bytes(), 0o644)?;
            binds.push((path, destination.to_owned(), true));
        }
        let program =
            self.config
                .loopback_hook
                .first()
                .ok_or_else(|| EngineError::Unsupported {
                    what: "a bridge network without the palisade binary's network hook".into(),
                })?;
        Ok(vec![
            program.clone(),
            "--root".into(),
            self.paths.root().display().to_string(),
            "container-hook".into(),
            "network".into(),
        ])
    }

    /// How to call the runtime (found on first use, so `ps` works without one).
    pub fn runtime(&self) -> Result<RuntimeBinary, EngineError> {
        Ok(RuntimeBinary {
            path: crate::runtime::locate(self.config.runtime.as_deref())?,
            state_root: self.config.runtime_root.clone(),
            audit_log: self.paths.runtime_audit_log(),
        })
    }

    /// The overlay of a container.
    pub fn overlay(&self, record: &ContainerRecord) -> Overlay {
        Overlay::new(&self.paths.container(&record.id), record.layers.clone())
    }

    /// Finds a container by id, unique id prefix or name.
    pub fn find(&self, query: &str) -> Result<ContainerRecord, EngineError> {
        Ok(self.records.find(query)?)
    }

    /// The containers, newest first; only running ones unless `all`.
    pub fn list(&self, all: bool) -> Result<Vec<ContainerRecord>, EngineError> {
        let mut records = self.records.list()?;
        if !all {
            records.retain(ContainerRecord::is_running);
        }
        Ok(records)
    }

    /// Creates a container: layers unpacked (once), the overlay mounted, the hardened config
    /// written, every relaxation audited. It does not start.
    pub fn create(&self, options: &ContainerOptions) -> Result<Created, EngineError> {
        let reference =
            ImageReference::parse(&options.image).map_err(|source| EngineError::Reference {
                reference: options.image.clone(),
                source,
            })?;
        let image = LocalImage::open(&self.store, &reference, None).map_err(|source| {
            EngineError::Image {
                reference: reference.familiar(),
                source: Box::new(source),
            }
        })?;
        let ownership = if options.has(SecurityOption::HostUserNamespace) {
            LayerOwnership::Host
        } else {
            LayerOwnership::default_shift()
        };
        // Until the record names its layers, a prune must not take them away.
        let _hold = self.layers.hold()?;
        let layers = self.layers.ensure(&self.store, &image, ownership)?;

        let _all = self.records.lock_all()?;
        let id = ContainerId::generate()?;
        let name = match &options.name {
            Some(name) => {
                self.records.check_name_free(name)?;
                name.clone()
            }
            None => self.free_name(&id)?,
        };
        let dir = self.paths.container(&id);
        crate::paths::ensure_dir(&dir, 0o711)?;
        crate::paths::ensure_dir(&dir.join("bundle"), 0o711)?;
        let result = self.fill(&id, &name, &reference, &image, layers, ownership, options);
        if result.is_err() && matches!(options.network, NetworkMode::Bridge(_)) {
            if let Err(e) = self.networks().and_then(|n| Ok(n.disconnect(id.as_str())?)) {
                tracing::warn!(error = %e, "could not release the network lease of a failed create");
            }
        }
        if result.is_err() {
            let overlay = Overlay::new(&dir, Vec::new());
            if overlay.unmount().is_ok() && !overlay.is_mounted() {
                let _ = fs::remove_dir_all(&dir);
            }
        }
        result
    }

    fn free_name(&self, id: &ContainerId) -> Result<ContainerName, EngineError> {
        let taken: Vec<ContainerName> = self.records.list()?.into_iter().map(|r| r.name).collect();
        let mut attempt = 0;
        loop {
            let name = ContainerName::generate(id, attempt);
            if !taken.contains(&name) {
                return Ok(name);
            }
            attempt += 1;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn fill(
        &self,
        id: &ContainerId,
        name: &ContainerName,
        reference: &ImageReference,
        image: &LocalImage,
        layers: Vec<PathBuf>,
        ownership: LayerOwnership,
        options: &ContainerOptions,
    ) -> Result<Created, EngineError> {
        let dir = self.paths.container(id);
        let (root_uid, root_gid) = ownership.root();
        let overlay = Overlay::new(&dir, layers.clone());
        overlay.prepare(root_uid, root_gid)?;
        overlay.mount()?;
        let rootfs = RootDir::open(&overlay.target)?;

        let requested = spec::requested_user(&image.config, options);
        let text = |path| -> Result<Option<String>, EngineError> {
            Ok(rootfs
                .read_file(path, users::MAX_ACCOUNT_FILE)?
                .map(|b| String::from_utf8_lossy(&b).into_owned()))
        };
        let (passwd, group) = if requested.is_empty() {
            (text("/etc/passwd").unwrap_or(None), None)
        } else {
            (text("/etc/passwd")?, text("/etc/group")?)
        };
        let user = users::resolve(&requested, passwd.as_deref(), group.as_deref())?;
        let cwd = spec::working_dir(&image.config, options)?;
        if !rootfs.is_dir(&cwd) {
            rootfs.create_dir_all(&cwd, root_uid + user.uid, root_gid + user.gid)?;
        }

        let protected = [self.paths.root(), self.config.runtime_root.as_path()];
        let mut binds = Vec::new();
        let mut mounts = Vec::new();
        for volume in &options.volumes {
            let (source, record_name, kind) = match &volume.source {
                VolumeSource::Bind(path) => {
                    (volumes::check_bind_source(path, &protected)?, None, "bind")
                }
                VolumeSource::Named(volume_name) => (
                    volumes::ensure_named_volume(&self.paths, volume_name, root_uid, root_gid)?,
                    Some(volume_name.clone()),
                    "volume",
                ),
            };
            binds.push((source.clone(), volume.destination.clone(), volume.read_only));
            mounts.push(MountRecord {
                kind: kind.to_owned(),
                source,
                destination: volume.destination.clone(),
                name: record_name,
                read_only: volume.read_only,
            });
        }
        // The image's VOLUME paths not given a volume above get an anonymous one, as with
        // Docker: the rootfs is read-only, and these are where the image expects to write.
        let declared = image
            .config
            .config()
            .as_ref()
            .and_then(|c| c.volumes().clone())
            .unwrap_or_default();
        for (index, destination) in declared.iter().enumerate() {
            volumes::check_destination(destination)?;
            let destination = match destination.trim_end_matches('/') {
                "" => destination.clone(),
                trimmed => trimmed.to_owned(),
            };
            if mounts.iter().any(|m| m.destination == destination) {
                continue;
            }
            let source = volumes::anonymous_volume(&dir, index, root_uid, root_gid)?;
            binds.push((source.clone(), destination.clone(), false));
            mounts.push(MountRecord {
                kind: "anonymous".to_owned(),
                source,
                destination,
                name: None,
                read_only: false,
            });
        }

        let network_hook = match &options.network {
            NetworkMode::Bridge(network) => {
                self.connect_network(id, name, network, options, &mut binds)?
            }
            _ if !options.ports.is_empty() => {
                return Err(OptionError::Port {
                    message: "-p needs a bridge network: add --network bridge (or a network from `palisade network ls`)".into(),
                }
                .into())
            }
            _ => self.config.loopback_hook.clone(),
        };
        let image_name = reference.familiar();
        let built = spec::build(
            &SpecInputs {
                image: &image.config,
                image_name: &image_name,
                container_name: name.as_str(),
                default_hostname: id.short(),
                user: &user,
                binds: &binds,
                loopback_hook: &network_hook,
            },
            options,
        )?;
        let mut built = built;
        if nix::unistd::geteuid().is_root() {
            // Denied dangerous syscalls go to the monitor's seccomp agent, which records them.
            crate::seccomp_agent::route_denials(
                &mut built.spec,
                &crate::seccomp_agent::listener_path(id.as_str()),
            );
        }
        let config_path = dir.join("bundle").join("config.json");
        let bytes = serde_json::to_vec_pretty(&built.spec).map_err(|e| EngineError::Io {
            operation: "encode",
            path: config_path.clone(),
            source: io::Error::other(e),
        })?;
        crate::record::write_atomic(&config_path, &bytes, 0o600)?;

        let (created_unix, created) = now();
        let record = ContainerRecord {
            id: id.clone(),
            name: name.clone(),
            image: reference.to_string(),
            image_digest: image.digest.to_string(),
            image_id: image.config_digest.to_string(),
            created,
            created_unix,
            command: built.command.clone(),
            state: ContainerState::Created,
            exit_code: None,
            started: None,
            started_unix: None,
            finished: None,
            finished_unix: None,
            error: None,
            ports: options.ports.iter().map(ToString::to_string).collect(),
            auto_remove: options.auto_remove,
            interactive: options.interactive,
            tty: options.tty,
            layers,
            root_uid,
            root_gid,
            mounts,
            relaxations: built
                .relaxations
                .iter()
                .map(|r| format!("{} ({})", r.what, r.flag))
                .collect(),
            stop_signal: built.stop_signal.clone(),
            monitor: None,
            init: None,
        };
        if !built.relaxations.is_empty() {
            crate::audit::record_relaxations(
                &self.paths.engine_audit_log(),
                id.as_str(),
                &image_name,
                &built.relaxations,
            )
            .map_err(|source| EngineError::Audit {
                source: Box::new(source),
            })?;
        }
        self.records.save(&record)?;
        Ok(Created {
            record,
            warnings: warnings(&built.relaxations),
        })
    }

    /// Removes unpacked layers that no image in the store and no container uses (after
    /// `image rm`/`prune`, their blobs are gone and nothing can run from them again).
    pub fn prune_layers(&self) -> Result<crate::layers::LayerPruneReport, EngineError> {
        let mut images = std::collections::HashSet::new();
        for tagged in self
            .store
            .list_images()
            .map_err(|source| EngineError::Image {
                reference: "(every image)".into(),
                source: Box::new(source),
            })?
        {
            if let Ok(image) = LocalImage::open(&self.store, &tagged.reference, None) {
                images.extend(image.layers.iter().map(|l| l.diff_id.hex().to_owned()));
            }
        }
        // A record that cannot be read may name layers in use: then nothing is pruned.
        let mut used = std::collections::HashSet::new();
        for (_, record) in self.every_record()? {
            let record = record?;
            used.extend(
                record
                    .layers
                    .iter()
                    .filter_map(|path| path.file_name())
                    .map(|name| name.to_string_lossy().into_owned()),
            );
        }
        Ok(self.layers.remove_unused(|name| {
            used.contains(name) || images.contains(name.get(..64).unwrap_or(name))
        })?)
    }

    /// Every container record with its id, or why it cannot be read; containers removed
    /// while this runs are left out.
    fn every_record(&self) -> Result<Vec<(ContainerId, LoadedRecord)>, EngineError> {
        Ok(self
            .records
            .ids()?
            .into_iter()
            .filter_map(|id| match self.records.load(&id) {
                Err(_) if !self.paths.container(&id).exists() => None,
                loaded => Some((id, loaded)),
            })
            .collect())
    }

    /// Checks the containers and the unpacked layers: unreadable records, layers a container
    /// needs that are gone, interrupted unpacks (removed with `repair`).
    pub fn check(&self, repair: bool) -> Result<EngineCheck, EngineError> {
        let mut report = EngineCheck::default();
        for (id, record) in self.every_record()? {
            report.containers_checked += 1;
            let record = match record {
                Ok(record) => record,
                Err(e) => {
                    report.problems.push(format!(
                        "container {id}: its record cannot be read ({e}); remove it with `palisade rm -f {id}`"
                    ));
                    continue;
                }
            };
            for layer in &record.layers {
                if !layer.is_dir() {
                    report.problems.push(format!(
                        "container {}: its layer {} is missing; remove the container and run it again",
                        record.name,
                        layer.display()
                    ));
                }
            }
        }
        let mut interrupted = Vec::new();
        if let Ok(entries) = fs::read_dir(self.paths.layers()) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with(".tmp-") {
                    interrupted.push(name);
                } else if !name.starts_with('.') {
                    report.layers_checked += 1;
                }
            }
        }
        if repair && !interrupted.is_empty() {
            // Keeping every finished layer removes only the interrupted unpacks.
            let removed = self.layers.remove_unused(|_| true)?;
            report.repaired.extend(
                removed
                    .removed
                    .into_iter()
                    .map(|name| format!("removed the interrupted layer unpack {name}")),
            );
        } else {
            report.problems.extend(
                interrupted
                    .into_iter()
                    .map(|name| format!("an interrupted layer unpack was left behind: {name}")),
            );
        }
        Ok(report)
    }

    /// Runs a created container in the foreground: its output goes to our stdout and stderr
    /// and to its log, our signals go to it; returns its exit code.
    pub fn run_attached(&self, id: &ContainerId, stdin: StdinMode) -> Result<i32, EngineError> {
        let target = Arc::new(AtomicI32::new(0));
        monitor::run(self, id, stdin, true, &target, &mut |_| {})
    }

    /// Runs a created container with a terminal (`-t`) in the foreground: the runtime's `run`
    /// gives it a pty and copies it to ours; what it prints is also logged.
    pub fn run_terminal(&self, id: &ContainerId) -> Result<i32, EngineError> {
        let records = &self.records;
        let record = {
            let _lock = records.lock(id)?;
            let mut record = records.load(id)?;
            if record.is_running() {
                return Err(EngineError::AlreadyRunning {
                    name: record.name.to_string(),
                });
            }
            let (unix, text) = now();
            record.state = ContainerState::Running;
            record.monitor = crate::record::ProcessRef::current();
            record.exit_code = None;
            record.error = None;
            record.started = Some(text);
            record.started_unix = Some(unix);
            records.save(&record)?;
            record
        };
        let dir = self.paths.container(id);
        let runtime_log = dir.join("runtime.log");
        let _ = fs::remove_file(&runtime_log);
        let result = (|| -> Result<i32, EngineError> {
            let runtime = self.runtime()?;
            self.overlay(&record).mount()?;
            if runtime.has_state(id.as_str()) {
                let _ = runtime.delete_force(id.as_str());
            }
            // The runtime's terminal proxy writes the container's output into a pipe that
            // is copied to our stdout and into the log.
            let log = Arc::new(std::sync::Mutex::new(
                crate::logs::LogWriter::open(&dir.join("ctr.log"), crate::logs::DEFAULT_MAX_SIZE)
                    .map_err(|e| tracing::warn!(error = %e, "container output will not be logged"))
                    .ok(),
            ));
            let (out_read, out_write) = nix::unistd::pipe().map_err(|e| EngineError::Monitor {
                message: format!("failed to create a pipe: {e}"),
            })?;
            let spawn_error = |source| RuntimeCommandError::Spawn {
                path: runtime.path.clone(),
                source,
            };
            // Listening before the runtime connects; stopped (and flushed) when this returns.
            let _agent = monitor::start_seccomp_agent(self, &dir, id)?;
            let raw = palisade_runtime::console_socket::RawTerminal::enter();
            let pump = monitor::pump(out_read, crate::logs::Stream::Stdout, log, true)
                .map_err(spawn_error)?;
            let mut command = runtime.command(Some(&runtime_log));
            command
                .arg("run")
                .arg("--bundle")
                .arg(dir.join("bundle"))
                .arg(id.as_str())
                .stdout(std::process::Stdio::from(out_write));
            let spawned = command.spawn();
            // Only the runtime holds the pipe's write end now.
            drop(command);
            let mut child = spawned.map_err(spawn_error)?;
            // Forward only now: the runtime (and the container) must not inherit a mask.
            let target = Arc::new(AtomicI32::new(i32::try_from(child.id()).unwrap_or(0)));
            monitor::forward_signals(Arc::clone(&target))?;
            let status = child.wait().map_err(io_error("wait for", &runtime.path))?;
            target.store(0, std::sync::atomic::Ordering::SeqCst);
            monitor::drain(vec![pump]);
            drop(raw);
            Ok(match crate::runtime::last_error(&runtime_log) {
                Some(message) => {
                    let _ = records.update(id, |r| r.error = Some(message.clone()));
                    exit::for_start_error(&message)
                }
                None => exit::for_status(status),
            })
        })();
        if let Ok(runtime) = self.runtime() {
            if runtime.has_state(id.as_str()) {
                let _ = runtime.delete_force(id.as_str());
            }
        }
        let unmounted = self.overlay(&record).unmount();
        let (unix, text) = now();
        let updated = records.update(id, |r| {
            r.state = ContainerState::Exited;
            r.exit_code = result.as_ref().ok().copied().or(Some(exit::ENGINE_FAILURE));
            r.finished = Some(text);
            r.finished_unix = Some(unix);
            r.monitor = None;
            r.init = None;
        })?;
        if updated.auto_remove {
            self.remove_stopped(&updated)?;
        }
        unmounted?;
        result
    }

    /// Starts a container under a detached monitor; returns once it runs (or failed to).
    pub fn start_detached(&self, id: &ContainerId) -> Result<StartReport, EngineError> {
        let record = self.records.load(id)?;
        if record.is_running() {
            return Err(EngineError::AlreadyRunning {
                name: record.name.to_string(),
            });
        }
        let mut parts = self.config.monitor_command.iter();
        let program = parts.next().ok_or_else(|| EngineError::Monitor {
            message: "no monitor command configured".into(),
        })?;
        let mut command = Command::new(program);
        command.args(parts).arg(id.as_str());
        monitor::spawn_detached(&mut command, &self.paths.container(id))
    }

    /// The body of a detached monitor: starts the container, reports on `report` (one JSON
    /// line), and watches it until it exits.
    pub fn monitor(&self, id: &ContainerId, report: &mut dyn Write) -> Result<i32, EngineError> {
        nix::unistd::setsid().map_err(|e| EngineError::Monitor {
            message: format!("setsid: {e}"),
        })?;
        let record = self.records.load(id)?;
        let stdin = if record.interactive {
            StdinMode::KeepOpen
        } else {
            StdinMode::Null
        };
        let target = Arc::new(AtomicI32::new(0));
        monitor::run(self, id, stdin, false, &target, &mut |start| {
            if let Ok(line) = serde_json::to_string(start) {
                let _ = writeln!(report, "{line}");
                let _ = report.flush();
            }
        })
    }

    /// Sends `signal` to a running container's init.
    pub fn kill(&self, query: &str, signal: &str) -> Result<ContainerRecord, EngineError> {
        let record = self.find(query)?;
        if !record.is_running() {
            return Err(EngineError::NotRunning {
                name: record.name.to_string(),
            });
        }
        let signal =
            palisade_runtime::container::parse_signal(signal).map_err(|_| OptionError::Signal {
                value: signal.to_owned(),
            })?;
        self.runtime()?
            .kill(record.id.as_str(), signal.as_str(), false)?;
        Ok(record)
    }

    /// Stops a container: its stop signal, then SIGKILL to every process after `timeout`.
    pub fn stop(&self, query: &str, timeout: Duration) -> Result<ContainerRecord, EngineError> {
        let record = self.find(query)?;
        if !record.is_running() {
            return Ok(record);
        }
        let runtime = self.runtime()?;
        if let Err(e) = runtime.kill(record.id.as_str(), &record.stop_signal, false) {
            tracing::debug!(error = %e, "stop signal not delivered");
        }
        if !self.wait_stopped(&record.id, timeout)? {
            self.kill_and_wait(&record)?;
        }
        match self.records.load(&record.id) {
            Ok(stopped) => Ok(stopped),
            // A --rm container is gone once it stopped.
            Err(RecordError::NotFound { .. }) => Ok(record),
            Err(e) => Err(e.into()),
        }
    }

    /// SIGKILL to every process of the container, then wait for its monitor to record the
    /// exit; if the monitor is gone, tidy up ourselves.
    fn kill_and_wait(&self, record: &ContainerRecord) -> Result<(), EngineError> {
        let runtime = self.runtime()?;
        if let Err(e) = runtime.kill(record.id.as_str(), "SIGKILL", true) {
            tracing::debug!(error = %e, "SIGKILL not delivered");
        }
        if self.wait_stopped(&record.id, KILL_GRACE)? {
            return Ok(());
        }
        Err(EngineError::StopTimeout {
            name: record.name.to_string(),
            seconds: KILL_GRACE.as_secs(),
        })
    }

    /// Polls until the container is no longer running (true) or `timeout` passes (false).
    fn wait_stopped(&self, id: &ContainerId, timeout: Duration) -> Result<bool, EngineError> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.records.load(id) {
                Ok(record) if record.is_running() => {}
                Ok(record) => {
                    // The monitor died without recording the exit: the container may still
                    // run under the runtime; finish its bookkeeping here.
                    if record.state == ContainerState::Running {
                        self.orphaned(&record)?;
                    }
                    return Ok(true);
                }
                Err(RecordError::NotFound { .. }) => return Ok(true),
                Err(e) => return Err(e.into()),
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Cleans up after a container whose monitor died.
    fn orphaned(&self, record: &ContainerRecord) -> Result<(), EngineError> {
        if let Ok(runtime) = self.runtime() {
            if runtime.has_state(record.id.as_str()) {
                let _ = runtime.kill(record.id.as_str(), "SIGKILL", true);
                runtime.delete_force(record.id.as_str())?;
            }
        }
        self.overlay(record).unmount()?;
        let (unix, text) = now();
        self.records.update(&record.id, |r| {
            if r.state == ContainerState::Running {
                r.state = ContainerState::Exited;
                r.finished = Some(text);
                r.finished_unix = Some(unix);
                r.monitor = None;
                r.init = None;
            }
        })?;
        Ok(())
    }

    /// Removes a container; a running one only with `force` (it is killed first).
    pub fn remove(&self, query: &str, force: bool) -> Result<ContainerRecord, EngineError> {
        let record = self.find(query)?;
        if record.is_running() {
            if !force {
                return Err(EngineError::StillRunning {
                    name: record.name.to_string(),
                });
            }
            self.kill_and_wait(&record)?;
        } else if record.state == ContainerState::Running {
            self.orphaned(&record)?;
        }
        match self.records.load(&record.id) {
            Ok(current) => self.remove_stopped(&current)?,
            // Its monitor removed it (--rm).
            Err(RecordError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(record)
    }

    /// Removes a container that does not run: runtime state, overlay mount, directory.
    pub fn remove_stopped(&self, record: &ContainerRecord) -> Result<(), EngineError> {
        let _all = self.records.lock_all()?;
        let dir = self.paths.container(&record.id);
        if !dir.exists() {
            return Ok(());
        }
        self.records
            .update(&record.id, |r| r.state = ContainerState::Removing)?;
        if let Ok(runtime) = self.runtime() {
            if runtime.has_state(record.id.as_str()) {
                runtime.delete_force(record.id.as_str())?;
            }
        }
        if self.paths.root().join("networks").is_dir() {
            self.networks()?.disconnect(record.id.as_str())?;
        }
        let overlay = self.overlay(record);
        overlay.unmount()?;
        if overlay.is_mounted() {
            // Never recurse into a mounted rootfs.
            return Err(RootfsError::Unmount {
                target: overlay.target,
                source: io::Error::from(io::ErrorKind::ResourceBusy),
            }
            .into());
        }
        // The seccomp agent's socket, left behind if its monitor was killed.
        let _ = fs::remove_file(crate::seccomp_agent::listener_path(record.id.as_str()));
        fs::remove_dir_all(&dir).map_err(io_error("remove", &dir))
    }

    /// Prints a container's log; with `follow`, keeps printing until it stops.
    pub fn logs(
        &self,
        query: &str,
        follow: bool,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> Result<(), EngineError> {
        let record = self.find(query)?;
        let path = self.paths.container(&record.id).join("ctr.log");
        if follow {
            let records = self.records.clone();
            let id = record.id.clone();
            crate::logs::follow(&path, out, err, || {
                !records.load(&id).is_ok_and(|r| r.is_running())
            })?;
        } else {
            let entries = crate::logs::read_all(&path)?;
            crate::logs::print(&entries, out, err).map_err(io_error("print", &path))?;
        }
        Ok(())
    }

    /// Waits for a container to stop; returns its exit code.
    pub fn wait(&self, query: &str) -> Result<i32, EngineError> {
        let record = self.find(query)?;
        loop {
            match self.records.load(&record.id) {
                Ok(current) if current.effective_state() == ContainerState::Exited => {
                    return Ok(current.exit_code.unwrap_or(-1));
                }
                Ok(_) => {}
                Err(RecordError::NotFound { .. }) => {
                    return Err(RecordError::NotFound {
                        query: query.to_owned(),
                    }
                    .into())
                }
                Err(e) => return Err(e.into()),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The record and the OCI config of a container, as JSON.
    pub fn inspect(&self, query: &str) -> Result<serde_json::Value, EngineError> {
        let record = self.find(query)?;
        let dir = self.paths.container(&record.id);
        let config_path = dir.join("bundle").join("config.json");
        let config: serde_json::Value = fs::read(&config_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(serde_json::Value::Null);
        let mut value = serde_json::to_value(&record).map_err(|e| EngineError::Io {
            operation: "encode",
            path: dir.clone(),
            source: io::Error::other(e),
        })?;
        value["state"] = serde_json::Value::String(record.effective_state().as_str().to_owned());
        value["bundle"] = serde_json::Value::String(dir.join("bundle").display().to_string());
        value["log_path"] = serde_json::Value::String(dir.join("ctr.log").display().to_string());
        value["config"] = config;
        if self.paths.root().join("networks").is_dir() {
            if let Some((network, lease)) = self.networks()?.store().lease_of(record.id.as_str())? {
                value["network"] = serde_json::json!({
                    "name": network.name,
                    "bridge": network.bridge,
                    "ipv4": lease.ipv4,
                    "ipv6": lease.ipv6,
                    "mac": lease.mac,
                    "gateway": network.gateway,
                    "host_veth": lease.host_veth,
                    "ports": lease.ports.iter().map(ToString::to_string).collect::<Vec<_>>(),
                });
            }
        }
        Ok(value)
    }

    /// Runs a command in a running container; returns its exit code.
    pub fn exec(&self, query: &str, request: &ExecRequest) -> Result<i32, EngineError> {
        let record = self.find(query)?;
        if !record.is_running() {
            return Err(EngineError::NotRunning {
                name: record.name.to_string(),
            });
        }
        let runtime = self.runtime()?;
        let dir = self.paths.container(&record.id);
        let exec_log = dir.join(format!("exec-{}.log", std::process::id()));
        // A container whose monitor is gone has no seccomp agent: serve this exec's filter
        // from here while it runs (afterwards the kernel answers ENOSYS: still refused).
        let monitored = record.monitor.is_some_and(|monitor| monitor.alive());
        let _agent = if monitored {
            None
        } else {
            monitor::start_seccomp_agent(self, &dir, &record.id)?
        };
        let mut command = runtime.command(Some(&exec_log));
        command.arg("exec");
        if request.tty {
            command.arg("--tty");
        }
        if request.detach {
            command.arg("--detach");
        }
        for env in &request.env {
            command.arg("--env").arg(crate::options::parse_env(env)?);
        }
        if let Some(user) = &request.user {
            let rootfs = RootDir::open(&self.overlay(&record).target)?;
            let read = |path| -> Result<Option<String>, EngineError> {
                Ok(rootfs
                    .read_file(path, users::MAX_ACCOUNT_FILE)?
                    .map(|b| String::from_utf8_lossy(&b).into_owned()))
            };
            let resolved = users::resolve(
                user,
                read("/etc/passwd")?.as_deref(),
                read("/etc/group")?.as_deref(),
            )?;
            command
                .arg("--user")
                .arg(format!("{}:{}", resolved.uid, resolved.gid));
            for gid in &resolved.additional_gids {
                command.arg("--additional-gids").arg(gid.to_string());
            }
        }
        if let Some(workdir) = &request.workdir {
            command.arg("--cwd").arg(workdir);
        }
        command
            .arg(record.id.as_str())
            .arg("--")
            .args(&request.command);
        if request.detach {
            command
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
        } else if !request.interactive {
            command.stdin(Stdio::null());
        }
        let mut child = command
            .spawn()
            .map_err(|source| RuntimeCommandError::Spawn {
                path: runtime.path.clone(),
                source,
            })?;
        // Forward only now: the runtime (and the new process) must not inherit a mask.
        let target = Arc::new(AtomicI32::new(i32::try_from(child.id()).unwrap_or(0)));
        monitor::forward_signals(Arc::clone(&target))?;
        let status = child.wait().map_err(io_error("wait for", &runtime.path));
        target.store(0, std::sync::atomic::Ordering::SeqCst);
        let error = crate::runtime::last_error(&exec_log);
        let _ = fs::remove_file(&exec_log);
        let status = status?;
        match error {
            Some(message) => Err(EngineError::StartFailed {
                code: exit::for_start_error(&message),
                message,
            }),
            None => Ok(exit::for_status(status)),
        }
    }
}
