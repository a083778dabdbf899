//! Privileged tests against the host's real cgroups: a real child process is confined, frozen,
//! killed, and denied devices.
//!
//! They need root and a cgroup filesystem. When the host cannot run them they print
//! `SKIP: <reason>` and pass, unless `PALISADE_REQUIRE_PRIVILEGED=1` (CI) turns the skip into a
//! failure.

use std::fs;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::Duration;

use oci_spec::runtime::{
    LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxDeviceCgroup, LinuxDeviceCgroupBuilder,
    LinuxDeviceType, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResources, LinuxResourcesBuilder,
    LinuxThrottleDeviceBuilder,
};
use palisade_cgroups::{detect_setup, CgroupManager, CgroupSetup, FreezerState, DEFAULT_ROOT};

/// Decides whether a privileged test can run: `Ok(())` runs it; `Err(reason)` prints
/// `SKIP: reason` and skips, or panics when `PALISADE_REQUIRE_PRIVILEGED=1`.
fn runnable(requirement: Result<(), String>) -> bool {
    match requirement {
        Ok(()) => true,
        Err(reason) => {
            if std::env::var("PALISADE_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
                panic!("privileged test required but cannot run: {reason}");
            }
            println!("SKIP: {reason}");
            false
        }
    }
}

/// The host's cgroup setup, if the tests can use it.
fn host_setup() -> Result<CgroupSetup, String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("needs root to manage cgroups".to_owned());
    }
    detect_setup(Path::new(DEFAULT_ROOT))
        .map_err(|error| format!("no usable cgroup filesystem at {DEFAULT_ROOT}: {error}"))
}

/// A cgroups path no other test run uses: `/palisade-test-<pid>-<n>/<name>`.
fn unique_path(name: &str) -> (PathBuf, PathBuf) {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let parent = PathBuf::from(format!(
        "/palisade-test-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    (parent.join(name), parent)
}

/// Removes the test's cgroups (and kills its child) even when an assertion fails.
struct Cleanup {
    root: PathBuf,
    parent: PathBuf,
    manager: CgroupManager,
    child: Option<Child>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = self.manager.destroy();
        if let Ok(parent) = CgroupManager::new(&self.root, &self.parent) {
            let _ = parent.destroy();
        }
    }
}

fn cleanup(root: &Path, name: &str) -> Cleanup {
    let (path, parent) = unique_path(name);
    let manager = CgroupManager::new(root, &path).expect("manager");
    Cleanup {
        root: root.to_owned(),
        parent,
        manager,
        child: None,
    }
}

fn sleeper() -> Child {
    Command::new("sleep")
        .arg("1000")
        .spawn()
        .expect("spawn sleep")
}

/// A shell that waits for a line on stdin, then becomes `sleep`: started after it joined the
/// cgroup, its memory is charged there (cgroup v1 does not move charges with a process).
fn gated_sleeper() -> Child {
    Command::new("sh")
        .arg("-c")
        .arg("read go; exec sleep 1000")
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn sh")
}

/// Lets a gated sleeper go and waits until it has become `sleep`.
fn release(child: &mut Child) {
    let pid = child.id();
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"go\n")
        .expect("release");
    for _ in 0..500 {
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "sleep" {
            return;
        }
        thread::sleep(Duration::from_millis(10));
    }
    panic!("child {pid} did not exec sleep");
}

/// A shell that waits for a line on stdin (so it can be moved into a cgroup first), then
/// opens /dev/null and /dev/zero and reports each result.
fn device_prober() -> Child {
    Command::new("sh")
        .arg("-c")
        .arg(
            "read go; \
             if true </dev/null; then echo null=ok; else echo null=denied; fi; \
             if true </dev/zero; then echo zero=ok; else echo zero=denied; fi",
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sh")
}

/// Releases the prober and returns (stdout, stderr).
fn finish_prober(cleanup: &mut Cleanup) -> (String, String) {
    let mut child = cleanup.child.take().expect("prober");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"go\n")
        .expect("release prober");
    let output = child.wait_with_output().expect("prober output");
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn only_null_rules() -> Vec<LinuxDeviceCgroup> {
    vec![
        LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()
            .expect("rule"),
        LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::C)
            .major(1)
            .minor(3)
            .access("rwm")
            .build()
            .expect("rule"),
    ]
}

fn devices_only(rules: Vec<LinuxDeviceCgroup>) -> LinuxResources {
    LinuxResourcesBuilder::default()
        .devices(rules)
        .build()
        .expect("resources")
}

/// The first non-loop block device's `MAJ:MIN`, for a throttle rule.
fn block_device() -> Option<(i64, i64)> {
    let mut entries: Vec<_> = fs::read_dir("/sys/block").ok()?.flatten().collect();
    entries.sort_by_key(|entry| entry.file_name());
    entries.iter().find_map(|entry| {
        let name = entry.file_name();
        let name = name.to_str()?;
        if name.starts_with("loop") || name.starts_with("ram") {
            return None;
        }
        let dev = fs::read_to_string(entry.path().join("dev")).ok()?;
        let (major, minor) = dev.trim().split_once(':')?;
        Some((major.parse().ok()?, minor.parse().ok()?))
    })
}

fn read(dir: &Path, file: &str) -> String {
    fs::read_to_string(dir.join(file))
        .unwrap_or_else(|error| panic!("read {}: {error}", dir.join(file).display()))
        .trim()
        .to_owned()
}

/// The state letter of `/proc/<pid>/stat` (R, S, D, T, ...).
fn process_state(pid: i32) -> char {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    let after_name = &stat[stat.rfind(')').expect("comm end") + 2..];
    after_name.chars().next().expect("state")
}

#[test]
fn limits_stats_freeze_kill_destroy_with_a_real_process() {
    let setup = host_setup();
    if !runnable(setup.as_ref().map(drop).map_err(Clone::clone)) {
        return;
    }
    let Ok(setup) = setup else { return };
    let root = Path::new(DEFAULT_ROOT);
    let mut guard = cleanup(root, "lifecycle");
    let manager = &guard.manager;
    manager.create().expect("create");

    let limit: i64 = 64 << 20;
    let paths = manager.paths();
    let swap_accounting = match setup {
        CgroupSetup::Unified => paths["unified"].join("memory.swap.max").exists(),
        _ => paths["memory"].join("memory.memsw.limit_in_bytes").exists(),
    };
    // Kernel memory limits are gone from recent kernels (and from v2): accepted and ignored.
    let mut memory = LinuxMemoryBuilder::default()
        .limit(limit)
        .reservation(limit / 2)
        .kernel(limit)
        .kernel_tcp(16 << 20)
        .use_hierarchy(true);
    if setup != CgroupSetup::Unified {
        memory = memory.swappiness(10u64).disable_oom_killer(false);
    }
    if swap_accounting {
        memory = memory.swap(2 * limit);
    }
    let mut block_io = LinuxBlockIoBuilder::default();
    let device = block_device();
    if let Some((major, minor)) = device {
        block_io = block_io.throttle_read_bps_device(vec![LinuxThrottleDeviceBuilder::default()
            .major(major)
            .minor(minor)
            .rate(1u64 << 20)
            .build()
            .expect("throttle")]);
    }
    let resources = LinuxResourcesBuilder::default()
        .memory(memory.build().expect("memory"))
        .pids(LinuxPidsBuilder::default().limit(32).build().expect("pids"))
        .cpu(
            LinuxCpuBuilder::default()
                .shares(512u64)
                .quota(50_000)
                .period(100_000u64)
                .cpus("0")
                .mems("0")
                .build()
                .expect("cpu"),
        )
        .block_io(block_io.build().expect("blkio"))
        .build()
        .expect("resources");
    manager.apply(&resources).expect("apply");
    // Applying the same resources again (an `update`) must also work.
    manager.apply(&resources).expect("apply again");

    guard.child = Some(gated_sleeper());
    let pid = i32::try_from(guard.child.as_ref().expect("child").id()).expect("pid");
    guard.manager.add_process(pid).expect("add process");
    release(guard.child.as_mut().expect("child"));
    let manager = &guard.manager;
    assert_eq!(manager.pids().expect("pids"), vec![pid]);

    match setup {
        CgroupSetup::Unified => {
            let dir = &paths["unified"];
            assert_eq!(read(dir, "memory.max"), limit.to_string());
            assert_eq!(read(dir, "pids.max"), "32");
            assert_eq!(read(dir, "cpu.max"), "50000 100000");
            assert_eq!(read(dir, "cpuset.cpus"), "0");
        }
        CgroupSetup::Legacy | CgroupSetup::Hybrid => {
            assert_eq!(
                read(&paths["memory"], "memory.limit_in_bytes"),
                limit.to_string()
            );
            assert_eq!(
                read(&paths["memory"], "memory.soft_limit_in_bytes"),
                (limit / 2).to_string()
            );
            if swap_accounting {
                assert_eq!(
                    read(&paths["memory"], "memory.memsw.limit_in_bytes"),
                    (2 * limit).to_string()
                );
            }
            assert_eq!(read(&paths["memory"], "memory.swappiness"), "10");
            assert!(read(&paths["memory"], "memory.oom_control").contains("oom_kill_disable 0"));
            assert_eq!(read(&paths["pids"], "pids.max"), "32");
            assert_eq!(read(&paths["cpu"], "cpu.shares"), "512");
            assert_eq!(read(&paths["cpu"], "cpu.cfs_quota_us"), "50000");
            assert_eq!(read(&paths["cpu"], "cpu.cfs_period_us"), "100000");
            assert_eq!(read(&paths["cpuset"], "cpuset.cpus"), "0");
            assert_eq!(read(&paths["cpuset"], "cpuset.mems"), "0");
            if let Some((major, minor)) = device {
                assert_eq!(
                    read(&paths["blkio"], "blkio.throttle.read_bps_device"),
                    format!("{major}:{minor} 1048576")
                );
            }
            if setup == CgroupSetup::Hybrid {
                let procs = read(&paths["unified"], "cgroup.procs");
                assert_eq!(procs, pid.to_string(), "joined the unified hierarchy too");
            }
            // Lowering memory and swap together exercises the write order.
            if swap_accounting {
                let lower = LinuxResourcesBuilder::default()
                    .memory(
                        LinuxMemoryBuilder::default()
                            .limit(limit / 2)
                            .swap(limit / 2)
                            .build()
                            .expect("memory"),
                    )
                    .build()
                    .expect("resources");
                manager.apply(&lower).expect("lower memory and swap");
                assert_eq!(
                    read(&paths["memory"], "memory.memsw.limit_in_bytes"),
                    (limit / 2).to_string()
                );
                manager.apply(&resources).expect("raise memory and swap");
                assert_eq!(
                    read(&paths["memory"], "memory.memsw.limit_in_bytes"),
                    (2 * limit).to_string()
                );
            }
        }
    }

    let stats = manager.stats().expect("stats");
    assert_eq!(stats.pids.current, 1);
    assert_eq!(stats.pids.limit, 32);
    assert_eq!(
        stats.memory.usage.limit,
        u64::try_from(limit).expect("limit")
    );
    assert!(
        stats.memory.usage.usage > 0,
        "memory usage {:?}",
        stats.memory
    );
    assert_eq!(stats.cpuset.cpus, vec![0]);
    let json = serde_json::to_value(&stats).expect("stats serialize");
    assert!(json["memory"]["usage"]["limit"].is_u64());
    manager.memory_events().expect("memory events");

    assert_eq!(
        manager.freezer_state().expect("state"),
        FreezerState::Thawed
    );
    assert_eq!(process_state(pid), 'S', "sleep sleeps before the freeze");
    manager.freeze().expect("freeze");
    assert_eq!(
        manager.freezer_state().expect("state"),
        FreezerState::Frozen
    );
    let frozen_state = process_state(pid);
    println!("process state while frozen: {frozen_state}");
    if setup != CgroupSetup::Unified {
        // The v1 freezer parks tasks uninterruptibly (TASK_FROZEN shows as D).
        assert_eq!(
            frozen_state, 'D',
            "a v1-frozen process is in the refrigerator"
        );
    }
    manager.thaw().expect("thaw");
    assert_eq!(
        manager.freezer_state().expect("state"),
        FreezerState::Thawed
    );
    thread::sleep(Duration::from_millis(20));
    assert_eq!(process_state(pid), 'S', "sleep sleeps again after the thaw");

    manager.kill_all(libc::SIGKILL).expect("kill all");
    let status = guard.child.take().expect("child").wait().expect("wait");
    assert_eq!(status.signal(), Some(libc::SIGKILL));

    let manager = &guard.manager;
    manager.destroy().expect("destroy");
    for (controller, dir) in manager.paths() {
        assert!(
            !dir.exists(),
            "{controller}: {} still exists",
            dir.display()
        );
    }
    manager.destroy().expect("destroy is idempotent");
}

#[test]
fn kill_all_with_sigterm_reaches_every_process() {
    let setup = host_setup();
    if !runnable(setup.as_ref().map(drop).map_err(Clone::clone)) {
        return;
    }
    let mut guard = cleanup(Path::new(DEFAULT_ROOT), "sigterm");
    guard.manager.create().expect("create");
    guard.child = Some(sleeper());
    let pid = i32::try_from(guard.child.as_ref().expect("child").id()).expect("pid");
    guard.manager.add_process(pid).expect("add process");
    guard.manager.kill_all(libc::SIGTERM).expect("kill all");
    let status = guard.child.take().expect("child").wait().expect("wait");
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    assert_eq!(
        guard.manager.freezer_state().expect("state"),
        FreezerState::Thawed,
        "kill_all leaves the cgroup thawed"
    );
}

#[test]
fn v1_device_list_denies_all_but_null() {
    let setup = host_setup();
    let requirement = match &setup {
        Ok(CgroupSetup::Legacy | CgroupSetup::Hybrid) => Ok(()),
        Ok(CgroupSetup::Unified) => Err("the host has no cgroup v1 devices hierarchy".to_owned()),
        Err(reason) => Err(reason.clone()),
    };
    if !runnable(requirement) {
        return;
    }
    let mut guard = cleanup(Path::new(DEFAULT_ROOT), "devices");
    guard.manager.create().expect("create");
    guard
        .manager
        .apply(&devices_only(only_null_rules()))
        .expect("apply devices");
    let devices = guard.manager.paths()["devices"].clone();
    assert_eq!(read(&devices, "devices.list"), "c 1:3 rwm");

    guard.child = Some(device_prober());
    let pid = i32::try_from(guard.child.as_ref().expect("child").id()).expect("pid");
    guard.manager.add_process(pid).expect("add process");
    let (stdout, stderr) = finish_prober(&mut guard);
    assert!(
        stdout.contains("null=ok"),
        "stdout {stdout:?} stderr {stderr:?}"
    );
    assert!(
        stdout.contains("zero=denied"),
        "stdout {stdout:?} stderr {stderr:?}"
    );
    assert!(
        stderr.contains("Operation not permitted"),
        "stderr {stderr:?}"
    );
}

#[test]
fn v2_device_program_denies_all_but_null() {
    let unified_root = unified_root();
    if !runnable(unified_root.as_ref().map(drop).map_err(Clone::clone)) {
        return;
    }
    let Ok(unified_root) = unified_root else {
        return;
    };
    let mut guard = cleanup(&unified_root, "bpf");
    assert_eq!(guard.manager.setup(), CgroupSetup::Unified);
    guard.manager.create().expect("create");
    guard
        .manager
        .apply(&devices_only(only_null_rules()))
        .expect("attach device program");
    assert_eq!(guard.manager.device_programs().expect("query").len(), 1);
    // An update replaces our program instead of stacking another one.
    guard
        .manager
        .apply(&devices_only(only_null_rules()))
        .expect("replace device program");
    let programs = guard.manager.device_programs().expect("query");
    assert_eq!(programs.len(), 1, "programs {programs:?}");

    guard.child = Some(device_prober());
    let pid = i32::try_from(guard.child.as_ref().expect("child").id()).expect("pid");
    guard.manager.add_process(pid).expect("add process");
    let (stdout, stderr) = finish_prober(&mut guard);
    assert!(
        stdout.contains("null=ok"),
        "stdout {stdout:?} stderr {stderr:?}"
    );
    assert!(
        stdout.contains("zero=denied"),
        "stdout {stdout:?} stderr {stderr:?}"
    );
    assert!(
        stderr.contains("Operation not permitted"),
        "stderr {stderr:?}"
    );

    // The legitimate case on the same cgroup: allowing everything again lets /dev/zero open.
    let allow_all = LinuxDeviceCgroupBuilder::default()
        .allow(true)
        .access("rwm")
        .build()
        .expect("rule");
    guard
        .manager
        .apply(&devices_only(vec![allow_all]))
        .expect("allow all");
    guard.child = Some(device_prober());
    let pid = i32::try_from(guard.child.as_ref().expect("child").id()).expect("pid");
    guard.manager.add_process(pid).expect("add process");
    let (stdout, stderr) = finish_prober(&mut guard);
    assert!(
        stdout.contains("zero=ok"),
        "stdout {stdout:?} stderr {stderr:?}"
    );
    // Give the kernel a moment to drop the exited children before rmdir.
    thread::sleep(Duration::from_millis(20));
}

#[test]
fn missing_or_invalid_requests_fail_clearly_on_the_host() {
    let setup = host_setup();
    if !runnable(setup.as_ref().map(drop).map_err(Clone::clone)) {
        return;
    }
    let guard = cleanup(Path::new(DEFAULT_ROOT), "invalid");
    guard.manager.create().expect("create");
    let resources = LinuxResourcesBuilder::default()
        .pids(LinuxPidsBuilder::default().limit(5).build().expect("pids"))
        .memory(
            LinuxMemoryBuilder::default()
                .limit(100 << 20)
                .swap(50 << 20)
                .build()
                .expect("memory"),
        )
        .build()
        .expect("resources");
    let error = guard
        .manager
        .apply(&resources)
        .expect_err("swap below limit");
    assert!(error.to_string().contains("memory"), "{error}");
    assert!(CgroupManager::new(Path::new(DEFAULT_ROOT), Path::new("/../../etc")).is_err());
}

#[test]
fn hugetlb_limit_is_applied_or_refused_by_name() {
    let setup = host_setup();
    if !runnable(setup.as_ref().map(drop).map_err(Clone::clone)) {
        return;
    }
    let guard = cleanup(Path::new(DEFAULT_ROOT), "hugetlb");
    guard.manager.create().expect("create");
    let paths = guard.manager.paths();
    let dir = paths.get("hugetlb").or_else(|| paths.get("unified"));
    let size = dir.and_then(|dir| {
        ["2MB", "1GB"].into_iter().find(|size| {
            dir.join(format!("hugetlb.{size}.limit_in_bytes")).exists()
                || dir.join(format!("hugetlb.{size}.max")).exists()
        })
    });
    let resources = LinuxResourcesBuilder::default()
        .hugepage_limits(vec![oci_spec::runtime::LinuxHugepageLimitBuilder::default(
        )
        .page_size(size.unwrap_or("2MB"))
        .limit(1i64 << 30)
        .build()
        .expect("limit")])
        .build()
        .expect("resources");
    match (dir, size) {
        (Some(dir), Some(size)) => {
            guard.manager.apply(&resources).expect("hugetlb limit");
            let file = if dir.join(format!("hugetlb.{size}.max")).exists() {
                format!("hugetlb.{size}.max")
            } else {
                format!("hugetlb.{size}.limit_in_bytes")
            };
            assert_eq!(read(dir, &file), (1u64 << 30).to_string());
            let stats = guard.manager.stats().expect("stats");
            assert!(stats.hugetlb.contains_key(size), "{:?}", stats.hugetlb);
        }
        _ => {
            let error = guard
                .manager
                .apply(&resources)
                .expect_err("no hugetlb controller");
            assert!(error.to_string().contains("hugetlb"), "{error}");
        }
    }
}

/// The unified hierarchy of this host (the root itself on pure v2 hosts).
fn unified_root() -> Result<PathBuf, String> {
    match host_setup()? {
        CgroupSetup::Unified => Ok(PathBuf::from(DEFAULT_ROOT)),
        CgroupSetup::Hybrid => Ok(Path::new(DEFAULT_ROOT).join("unified")),
        CgroupSetup::Legacy => Err("the host has no unified (cgroup2) hierarchy".to_owned()),
    }
}

#[test]
fn v2_freeze_kill_and_destroy_on_the_unified_hierarchy() {
    let root = unified_root();
    if !runnable(root.as_ref().map(drop).map_err(Clone::clone)) {
        return;
    }
    let Ok(root) = root else { return };
    // cgroup.freeze, cgroup.kill, cgroup.procs and cpu.stat are core files: they exist even
    // where no controller is enabled, so the v2 manager's core paths run for real here.
    let mut guard = cleanup(&root, "v2core");
    guard.manager.create().expect("create");
    guard.child = Some(gated_sleeper());
    let pid = i32::try_from(guard.child.as_ref().expect("child").id()).expect("pid");
    guard.manager.add_process(pid).expect("add process");
    release(guard.child.as_mut().expect("child"));
    assert_eq!(guard.manager.pids().expect("pids"), vec![pid]);

    guard.manager.freeze().expect("freeze");
    assert_eq!(
        guard.manager.freezer_state().expect("state"),
        FreezerState::Frozen
    );
    guard.manager.thaw().expect("thaw");
    assert_eq!(
        guard.manager.freezer_state().expect("state"),
        FreezerState::Thawed
    );
    let stats = guard.manager.stats().expect("stats");
    let json = serde_json::to_value(&stats).expect("serialize");
    assert!(json["cpu"]["usage"].is_object());

    // SIGTERM goes through freeze, signal, thaw; SIGKILL through cgroup.kill.
    guard.manager.kill_all(libc::SIGTERM).expect("sigterm");
    let status = guard.child.take().expect("child").wait().expect("wait");
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    guard.child = Some(gated_sleeper());
    let pid = i32::try_from(guard.child.as_ref().expect("child").id()).expect("pid");
    guard.manager.add_process(pid).expect("add process");
    guard.manager.kill_all(libc::SIGKILL).expect("sigkill");
    let status = guard.child.take().expect("child").wait().expect("wait");
    assert_eq!(status.signal(), Some(libc::SIGKILL));

    guard.manager.destroy().expect("destroy");
    assert!(!guard.manager.paths()["unified"].exists());
    guard.manager.destroy().expect("destroy again");
}

fn rule(
    allow: bool,
    typ: LinuxDeviceType,
    major: i64,
    minor: i64,
    access: &str,
) -> LinuxDeviceCgroup {
    LinuxDeviceCgroupBuilder::default()
        .allow(allow)
        .typ(typ)
        .major(major)
        .minor(minor)
        .access(access)
        .build()
        .expect("rule")
}

#[test]
fn v2_device_programs_pass_the_verifier_and_the_last_rule_wins() {
    let root = unified_root();
    if !runnable(root.as_ref().map(drop).map_err(Clone::clone)) {
        return;
    }
    let Ok(root) = root else { return };
    let mut guard = cleanup(&root, "bpf-rules");
    guard.manager.create().expect("create");
    let deny_all = LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .build()
        .expect("rule");
    // Every rule shape the compiler emits: type a/b/c/p, wildcards, partial access, allow and
    // deny, empty list.
    let shapes = vec![
        vec![],
        vec![deny_all.clone()],
        vec![
            deny_all.clone(),
            rule(true, LinuxDeviceType::C, -1, -1, "m"),
            rule(true, LinuxDeviceType::B, -1, -1, "m"),
            rule(true, LinuxDeviceType::C, 136, -1, "rwm"),
            rule(true, LinuxDeviceType::C, 5, 2, "rw"),
            rule(false, LinuxDeviceType::B, 8, 0, "w"),
            rule(true, LinuxDeviceType::A, 1, -1, "r"),
            rule(true, LinuxDeviceType::P, -1, -1, "rwm"),
            rule(true, LinuxDeviceType::U, 1, 9, "rwm"),
        ],
    ];
    for rules in shapes {
        guard
            .manager
            .apply(&devices_only(rules.clone()))
            .unwrap_or_else(|error| panic!("rules {rules:?}: {error:?}"));
        assert_eq!(guard.manager.device_programs().expect("query").len(), 1);
    }
    // Allow all character devices, then take /dev/zero away again: the later rule wins.
    let rules = vec![
        deny_all,
        rule(true, LinuxDeviceType::C, -1, -1, "rwm"),
        rule(false, LinuxDeviceType::C, 1, 5, "r"),
    ];
    guard
        .manager
        .apply(&devices_only(rules))
        .expect("apply rules");
    guard.child = Some(device_prober());
    let pid = i32::try_from(guard.child.as_ref().expect("child").id()).expect("pid");
    guard.manager.add_process(pid).expect("add process");
    let (stdout, stderr) = finish_prober(&mut guard);
    assert!(
        stdout.contains("null=ok"),
        "stdout {stdout:?} stderr {stderr:?}"
    );
    assert!(
        stdout.contains("zero=denied"),
        "stdout {stdout:?} stderr {stderr:?}"
    );
}
