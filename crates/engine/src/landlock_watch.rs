//! Landlock denials of a container reach the audit log.
//!
//! Since Linux 6.15 (Landlock ABI 7) the kernel writes an audit record for each access a
//! Landlock domain refuses: `AUDIT_LANDLOCK_ACCESS` (type 1423: `domain=<id> blockers=<access>
//! path="..."`), preceded once per domain by `AUDIT_LANDLOCK_DOMAIN` (type 1424: `domain=<id>
//! status=allocated ... pid=<creator>`). The runtime creates the container's domain in its init
//! with `LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON`, so the creator pid is the container's init.
//!
//! Without auditd the kernel prints audit records to its log: the [`Watcher`] reads `/dev/kmsg`
//! from the moment the container starts, learns which domains its init created, counts their
//! denials per access and path, and records one `landlock_denied` event per pair, with the
//! count, when it stops. The kernel logs Landlock denials only while audit is enabled (`audit=1`
//! on the kernel command line, or `auditctl -e 1`); without that, or without the right to read
//! `/dev/kmsg` (root), nothing is recorded and nothing fails.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use palisade_audit::{Actor, Event};

/// The kernel log.
const KMSG: &str = "/dev/kmsg";
/// How long the reader sleeps when the kernel log has nothing new.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How long a stopping reader waits for records still on their way to the kernel log.
const STOP_GRACE: Duration = Duration::from_millis(100);
/// The largest kernel log record (the kernel's own limit is 8 KiB minus a header).
const RECORD_MAX: usize = 8192;

/// One Landlock audit record, as the kernel printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LandlockRecord {
    /// `AUDIT_LANDLOCK_ACCESS`: a denial.
    Access {
        /// The domain that refused.
        domain: String,
        /// What was refused, e.g. `"fs.write_file"` (comma-separated when several).
        blockers: String,
        /// The file, when the kernel names one.
        path: Option<String>,
    },
    /// `AUDIT_LANDLOCK_DOMAIN`: the domain's creator, logged with its first denial.
    Domain {
        /// The domain.
        domain: String,
        /// The process that created it.
        pid: i32,
        /// Its command name then.
        comm: Option<String>,
    },
}

impl LandlockRecord {
    /// Parses one `/dev/kmsg` record (`<prio>,<seq>,<usec>,<flags>;audit: type=...`); `None`
    /// for anything that is not a well-formed Landlock record.
    pub fn parse(record: &str) -> Option<LandlockRecord> {
        let message = record.split_once(';').map_or(record, |(_, m)| m);
        let message = message.lines().next()?;
        let rest = message.strip_prefix("audit: type=")?;
        let (kind, rest) = rest.split_once(' ')?;
        // `audit(<time>:<serial>): ` precedes the fields.
        let (_, fields) = rest.split_once("): ")?;
        let fields = parse_fields(fields);
        let domain = fields.get("domain")?.clone();
        match kind {
            "1423" => Some(LandlockRecord::Access {
                domain,
                blockers: fields.get("blockers")?.clone(),
                path: fields.get("path").cloned(),
            }),
            "1424" => Some(LandlockRecord::Domain {
                domain,
                pid: fields.get("pid")?.parse().ok()?,
                comm: fields.get("comm").cloned(),
            }),
            _ => None,
        }
    }
}

/// `key=value` pairs; a value is a word, a `"quoted string"`, or the hex encoding the kernel
/// uses for strings with spaces or control characters (decoded for `path`, `exe`, `comm`).
fn parse_fields(text: &str) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    let mut rest = text.trim_start();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key.trim().to_owned();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.split_once('"') {
                Some((value, next)) => (value.to_owned(), next),
                None => (quoted.to_owned(), ""),
            }
        } else {
            let (word, next) = after.split_once(' ').unwrap_or((after, ""));
            let decoded = match key.as_str() {
                "path" | "exe" | "comm" => decode_hex(word),
                _ => None,
            };
            (decoded.unwrap_or_else(|| word.to_owned()), next)
        };
        fields.insert(key, value);
        rest = next.trim_start();
    }
    fields
}

fn decode_hex(word: &str) -> Option<String> {
    if word.is_empty() || word.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..word.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(word.get(i..i + 2)?, 16).ok())
        .collect();
    Some(String::from_utf8_lossy(&bytes?).into_owned())
}

/// What was refused: blockers and path.
type Denial = (String, Option<String>);
/// How often, and by which creator (pid, comm).
type Count = (u64, i32, Option<String>);

/// Denials of the container's domains, and what is known of their creators.
#[derive(Debug, Default)]
struct Tally {
    /// Domain id → (creator pid, comm).
    domains: BTreeMap<String, (i32, Option<String>)>,
    /// Denials of domains not yet attributed, in order.
    pending: Vec<(String, String, Option<String>)>,
    /// (blockers, path) → (count, pid, comm).
    counts: BTreeMap<Denial, Count>,
}

impl Tally {
    fn add(&mut self, record: LandlockRecord, init: i32) {
        match record {
            LandlockRecord::Domain { domain, pid, comm } => {
                self.domains.insert(domain, (pid, comm));
            }
            LandlockRecord::Access {
                domain,
                blockers,
                path,
            } => self.pending.push((domain, blockers, path)),
        }
        self.attribute(init);
    }

    /// Counts the pending denials of domains the container's init (`init`, 0 while unknown)
    /// created; drops those of other domains.
    fn attribute(&mut self, init: i32) {
        if init <= 0 {
            return;
        }
        for (domain, blockers, path) in std::mem::take(&mut self.pending) {
            match self.domains.get(&domain) {
                Some((pid, comm)) if *pid == init => {
                    let entry =
                        self.counts
                            .entry((blockers, path))
                            .or_insert((0, *pid, comm.clone()));
                    entry.0 += 1;
                }
                Some(_) => {}
                // Its domain record has not been read yet.
                None => self.pending.push((domain, blockers, path)),
            }
        }
    }

    fn events(&mut self, container_id: &str) -> Vec<Event> {
        std::mem::take(&mut self.counts)
            .into_iter()
            .map(
                |((blockers, path), (count, pid, comm))| Event::LandlockDenied {
                    actor: Actor::process(
                        u32::try_from(pid).unwrap_or_default(),
                        comm.unwrap_or_default(),
                    ),
                    container_id: Some(container_id.to_owned()),
                    path,
                    access: blockers,
                    count: Some(count),
                },
            )
            .collect()
    }
}

/// Reads the kernel log while a container runs; [`Watcher::stop`] records what it counted.
#[derive(Debug)]
pub struct Watcher {
    stop: Arc<AtomicBool>,
    init: Arc<AtomicI32>,
    thread: Option<JoinHandle<Vec<Event>>>,
    audit_log: PathBuf,
}

impl Watcher {
    /// Starts reading the kernel log from its current end, for the container `container_id`.
    /// `None` when the log cannot be read (not root, no `/dev/kmsg`).
    pub fn start(audit_log: &Path, container_id: &str) -> Option<Watcher> {
        let mut kmsg = match OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
            .open(KMSG)
        {
            Ok(file) => file,
            Err(error) => {
                tracing::debug!(%error, "Landlock denials are not collected: cannot read {KMSG}");
                return None;
            }
        };
        kmsg.seek(SeekFrom::End(0)).ok()?;
        let stop = Arc::new(AtomicBool::new(false));
        let init = Arc::new(AtomicI32::new(0));
        let (thread_stop, thread_init) = (Arc::clone(&stop), Arc::clone(&init));
        let container_id = container_id.to_owned();
        // Signals are for the monitor's forwarder: the thread starts with all of them blocked.
        use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow};
        let mut previous = SigSet::empty();
        pthread_sigmask(
            SigmaskHow::SIG_BLOCK,
            Some(&SigSet::all()),
            Some(&mut previous),
        )
        .ok()?;
        let thread = std::thread::Builder::new()
            .name("landlock-watch".into())
            .spawn(move || read_loop(kmsg, &thread_stop, &thread_init, &container_id));
        let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&previous), None);
        Some(Watcher {
            stop,
            init,
            thread: thread.ok(),
            audit_log: audit_log.to_path_buf(),
        })
    }

    /// Tells the watcher the pid of the container's init, which creates its Landlock domain.
    pub fn set_init(&self, pid: i32) {
        self.init.store(pid, Ordering::SeqCst);
    }

    /// Reads what the kernel has logged so far, stops, and appends one `landlock_denied` event
    /// per access and path to the audit log.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let Some(thread) = self.thread.take() else {
            return;
        };
        let events = thread.join().unwrap_or_default();
        if events.is_empty() {
            return;
        }
        let mut log = match crate::audit::open_log(&self.audit_log) {
            Ok(log) => log,
            Err(error) => {
                tracing::warn!(%error, "Landlock denials: cannot open the audit log");
                return;
            }
        };
        for event in events {
            if let Err(error) = log.append(event) {
                tracing::warn!(%error, "failed to record a Landlock denial");
            }
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn read_loop(
    mut kmsg: File,
    stop: &AtomicBool,
    init: &AtomicI32,
    container_id: &str,
) -> Vec<Event> {
    let mut tally = Tally::default();
    let mut buf = vec![0u8; RECORD_MAX];
    let mut grace_taken = false;
    loop {
        // Read until the log is drained; only then look at the stop flag, so that what the
        // kernel logged before the container ended is counted.
        let stopping = stop.load(Ordering::SeqCst);
        match kmsg.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => {
                if let Some(record) = LandlockRecord::parse(&String::from_utf8_lossy(&buf[..n])) {
                    tally.add(record, init.load(Ordering::SeqCst));
                }
                continue;
            }
            // Records were overwritten before we read them: carry on with the next ones.
            Err(error) if error.raw_os_error() == Some(nix::libc::EPIPE) => continue,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(error) => {
                tracing::warn!(%error, "Landlock denials: reading {KMSG} failed");
                break;
            }
        }
        if stopping {
            if grace_taken {
                break;
            }
            // The kernel's audit thread prints records a moment after the denial: one more
            // round catches those of the container's last moments.
            grace_taken = true;
            std::thread::sleep(STOP_GRACE);
            continue;
        }
        tally.attribute(init.load(Ordering::SeqCst));
        std::thread::sleep(POLL_INTERVAL);
    }
    tally.attribute(init.load(Ordering::SeqCst));
    tally.events(container_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOMAIN: &str = "6,2041,15620775903,-;audit: type=1424 audit(1764387000.123:812): \
        domain=1a2b3c4d5 status=allocated mode=enforcing pid=4242 uid=1000000 \
        exe=\"/proc/self/fd/5\" comm=\"palisade-runtim\"";
    const ACCESS: &str = "6,2042,15620775904,-;audit: type=1423 audit(1764387000.123:812): \
        domain=1a2b3c4d5 blockers=fs.read_file path=\"/tmp/host/secret\" dev=\"vda\" ino=77";

    #[test]
    fn kernel_records_parse_and_other_lines_do_not() {
        assert_eq!(
            LandlockRecord::parse(DOMAIN),
            Some(LandlockRecord::Domain {
                domain: "1a2b3c4d5".into(),
                pid: 4242,
                comm: Some("palisade-runtim".into()),
            })
        );
        assert_eq!(
            LandlockRecord::parse(ACCESS),
            Some(LandlockRecord::Access {
                domain: "1a2b3c4d5".into(),
                blockers: "fs.read_file".into(),
                path: Some("/tmp/host/secret".into()),
            })
        );
        // A path with a space comes hex-encoded.
        let hex = "6,1,1,-;audit: type=1423 audit(1.2:3): domain=9 \
            blockers=fs.write_file,fs.truncate path=2F746D702F612062 dev=\"vda\" ino=1";
        assert_eq!(
            LandlockRecord::parse(hex),
            Some(LandlockRecord::Access {
                domain: "9".into(),
                blockers: "fs.write_file,fs.truncate".into(),
                path: Some("/tmp/a b".into()),
            })
        );
        for other in [
            "6,1,1,-;audit: type=1326 audit(1.2:3): pid=1 comm=\"x\" syscall=63",
            "6,1,1,-;audit: type=1423 audit(1.2:3): blockers=fs.read_file",
            "6,1,1,-;audit: type=1424 audit(1.2:3): domain=1 pid=notanumber",
            "6,1,1,-;audit: type=1423",
            "4,1,1,-;eth0: link up",
            "",
            "garbage;;;===\"",
        ] {
            assert_eq!(LandlockRecord::parse(other), None, "{other}");
        }
    }

    #[test]
    fn denials_of_the_init_domain_are_counted_per_access_and_path() {
        let mut tally = Tally::default();
        // The access record may be read before the init's pid is known.
        tally.add(LandlockRecord::parse(DOMAIN).unwrap(), 0);
        tally.add(LandlockRecord::parse(ACCESS).unwrap(), 0);
        tally.add(LandlockRecord::parse(ACCESS).unwrap(), 4242);
        // Another container's domain is not ours.
        tally.add(
            LandlockRecord::Domain {
                domain: "ff".into(),
                pid: 99,
                comm: None,
            },
            4242,
        );
        tally.add(
            LandlockRecord::Access {
                domain: "ff".into(),
                blockers: "fs.read_file".into(),
                path: Some("/elsewhere".into()),
            },
            4242,
        );
        let events = tally.events("c1");
        assert_eq!(events.len(), 1, "{events:?}");
        match &events[0] {
            Event::LandlockDenied {
                actor,
                container_id,
                path,
                access,
                count,
            } => {
                assert_eq!(actor.pid, Some(4242));
                assert_eq!(container_id.as_deref(), Some("c1"));
                assert_eq!(path.as_deref(), Some("/tmp/host/secret"));
                assert_eq!(access, "fs.read_file");
                assert_eq!(*count, Some(2));
            }
            other => panic!("{other:?}"),
        }
        assert!(tally.events("c1").is_empty());
    }
}
