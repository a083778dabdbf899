//! Bad input gets one clear error and leaves nothing behind: no state directory, no cgroup,
//! no process, no mount on the host.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;

use serde_json::json;
use support::*;

/// Runs `create` and checks that it failed with `expected` in the message and left nothing.
fn assert_refused(rt: &Runtime, bundle: &Path, id: &str, expected: &str) {
    let out = rt.run(&["create", "--bundle", bundle.to_str().unwrap(), id]);
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "create should fail with exit 1: {err}"
    );
    assert!(
        err.contains(expected),
        "error {err:?} does not mention {expected:?}"
    );
    assert_eq!(
        err.lines().count(),
        1,
        "one clear line, not a backtrace: {err}"
    );
    assert!(
        !rt.container_dir(id).exists(),
        "state directory left behind"
    );
    assert!(!cgroup_dir(id).exists(), "cgroup left behind");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(bundle.to_str().unwrap()),
        "mount left behind"
    );
    let procs = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .unwrap();
    assert!(
        !stdout(&procs).contains(bundle.to_str().unwrap()),
        "process left behind"
    );
}

#[test]
fn malformed_config_json() {
    if !privileged() {
        return;
    }
    let rt = Runtime::new();
    let bundle = Bundle::new(&["true"]);
    std::fs::write(
        bundle.path().join("config.json"),
        b"{\"ociVersion\": \"1.2.0\", \"process\": ",
    )
    .unwrap();
    assert_refused(&rt, bundle.path(), &unique_id("malformed"), "config.json");
    std::fs::remove_file(bundle.path().join("config.json")).unwrap();
    assert_refused(
        &rt,
        bundle.path(),
        &unique_id("missing-config"),
        "config.json",
    );
}

#[test]
fn missing_rootfs_and_empty_args() {
    if !privileged() {
        return;
    }
    let rt = Runtime::new();
    let bundle = Bundle::new(&["true"]);
    bundle.edit(|c| c["root"]["path"] = json!("/nonexistent/rootfs"));
    assert_refused(&rt, bundle.path(), &unique_id("norootfs"), "rootfs");
    let bundle = Bundle::new(&["true"]);
    bundle.edit(|c| c["process"]["args"] = json!([]));
    assert_refused(&rt, bundle.path(), &unique_id("noargs"), "process.args");
}

#[test]
fn unknown_namespace_and_bad_mappings() {
    if !privileged() {
        return;
    }
    let rt = Runtime::new();
    let bundle = Bundle::new(&["true"]);
    bundle.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "type": "bogus" }))
    });
    assert_refused(&rt, bundle.path(), &unique_id("badns"), "bogus");
    let bundle = Bundle::new(&["true"]);
    bundle.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "type": "pid" }))
    });
    assert_refused(&rt, bundle.path(), &unique_id("dupns"), "listed twice");
    let bundle = Bundle::new(&["true"]);
    bundle.edit(|c| {
        c["linux"].as_object_mut().unwrap().remove("uidMappings");
    });
    assert_refused(&rt, bundle.path(), &unique_id("nomap"), "uidMappings");
    let bundle = Bundle::new(&["true"]);
    bundle.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "type": "network", "path": "/nonexistent/ns" }))
    });
    // Also a duplicate (network is already new): the first problem found is reported.
    let out = rt.run(&[
        "create",
        "-b",
        bundle.path().to_str().unwrap(),
        &unique_id("nspath"),
    ]);
    assert!(!out.status.success());
}

#[test]
fn invalid_seccomp_rules() {
    if !privileged() {
        return;
    }
    let rt = Runtime::new();
    let bundle = Bundle::new(&["true"]);
    bundle.edit(|c| {
        c["linux"]["seccomp"]["syscalls"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "names": ["getpid"], "action": "SCMP_ACT_BOGUS" }))
    });
    assert_refused(
        &rt,
        bundle.path(),
        &unique_id("badaction"),
        "SCMP_ACT_BOGUS",
    );
    let bundle = Bundle::new(&["true"]);
    bundle.edit(|c| {
        c["linux"]["seccomp"]["syscalls"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "names": ["getpid"], "action": "SCMP_ACT_NOTIFY" }))
    });
    assert_refused(&rt, bundle.path(), &unique_id("notify"), "seccomp");
    let bundle = Bundle::new(&["true"]);
    bundle.edit(|c| c["linux"]["seccomp"]["syscalls"].as_array_mut().unwrap().push(json!({ "names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{ "index": 9, "value": 1, "op": "SCMP_CMP_EQ" }] })));
    assert_refused(&rt, bundle.path(), &unique_id("badarg"), "seccomp");
}

#[test]
fn failing_hook_leaves_nothing_behind() {
    if !privileged() {
        return;
    }
    let rt = Runtime::new();
    for kind in ["prestart", "createRuntime", "createContainer"] {
        let bundle = Bundle::new(&["sleep", "60"]);
        bundle.edit(|c| c["hooks"] = json!({ kind: [{ "path": "/bin/false" }] }));
        assert_refused(
            &rt,
            bundle.path(),
            &unique_id(&format!("hook-{}", kind.to_lowercase())),
            "hook",
        );
    }
}

#[test]
fn dangerous_mounts_and_sysctls_are_refused() {
    if !privileged() {
        return;
    }
    let rt = Runtime::new();
    let bundle = Bundle::new(&["true"]);
    bundle.edit(|c| {
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "destination": "/proc/self", "type": "tmpfs", "source": "tmpfs" }))
    });
    assert_refused(&rt, bundle.path(), &unique_id("procmount"), "/proc/self");
    let bundle = Bundle::new(&["true"]);
    bundle.edit(|c| c["linux"]["sysctl"] = json!({ "kernel.panic": "1" }));
    assert_refused(&rt, bundle.path(), &unique_id("sysctl"), "not namespaced");
    let bundle = Bundle::new(&["true"]);
    bundle.edit(|c| c["linux"]["rootfsPropagation"] = json!("sideways"));
    assert_refused(
        &rt,
        bundle.path(),
        &unique_id("propagation"),
        "rootfsPropagation",
    );
}

#[test]
fn missing_executable_and_bad_ids() {
    if !privileged() {
        return;
    }
    let rt = Runtime::new();
    let bundle = Bundle::new(&["no-such-program"]);
    assert_refused(
        &rt,
        bundle.path(),
        &unique_id("noexe"),
        "executable file not found",
    );
    let bundle = Bundle::new(&["true"]);
    for id in ["../escape", "a/b", ".hidden", ""] {
        let out = rt.run(&["create", "-b", bundle.path().to_str().unwrap(), id]);
        assert!(!out.status.success(), "id {id:?} accepted");
        assert!(stderr(&out).contains("invalid"), "{}", stderr(&out));
    }
    assert!(!rt.root.path().join("..").join("escape").exists());
}

#[test]
fn symlinks_in_the_rootfs_cannot_redirect_mounts_to_the_host() {
    if !privileged() {
        return;
    }
    let rt = Runtime::new();
    // A private copy of the rootfs with a hostile symlink pointing at a host directory.
    let rootfs = host_dir("hostile-rootfs");
    let status = std::process::Command::new("cp")
        .args([
            "-a",
            &format!("{}/.", rootfs_dir().display()),
            rootfs.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let target = host_dir("symlink-target");
    std::os::unix::fs::symlink(&target, rootfs.join("escape")).unwrap();
    std::os::unix::fs::symlink("../../../../../../../..", rootfs.join("up")).unwrap();
    let bundle = Bundle::new(&["true"]);
    let rootfs_path = rootfs.display().to_string();
    bundle.edit(|c| {
        c["root"]["path"] = json!(rootfs_path);
        c["root"]["readonly"] = json!(false);
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.push(json!({ "destination": "/escape/inner", "type": "tmpfs", "source": "tmpfs" }));
        mounts.push(
            json!({ "destination": "/up/tmp/palisade-up", "type": "tmpfs", "source": "tmpfs" }),
        );
    });
    // Mount targets are created as the container's root (an unprivileged host uid), so make
    // the rootfs writable for it; the point is where they land.
    let _ = std::process::Command::new("chown")
        .args(["-R", "1000000:1000000", rootfs.to_str().unwrap()])
        .status();
    let out = rt.run(&[
        "run",
        "-b",
        bundle.path().to_str().unwrap(),
        &unique_id("symlinks"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !target.join("inner").exists(),
        "mount target created through the symlink on the host"
    );
    assert!(
        !Path::new("/tmp/palisade-up").exists(),
        "a '..' symlink reached the host's /tmp"
    );
}

fn rootfs_dir() -> &'static Path {
    rootfs()
}

#[test]
fn apparmor_profile_without_apparmor_is_refused() {
    if !privileged() {
        return;
    }
    if std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|v| v.trim() == "Y")
    {
        // With AppArmor on, the profile is applied instead (the refusal case cannot arise).
        eprintln!("note: AppArmor is enabled here; the refusal cannot be exercised");
        return;
    }
    let rt = Runtime::new();
    let bundle = Bundle::new(&["true"]);
    bundle.edit(|c| c["process"]["apparmorProfile"] = json!("docker-default"));
    assert_refused(
        &rt,
        bundle.path(),
        &unique_id("apparmor"),
        "AppArmor is not enabled",
    );
}

#[test]
fn pinned_bind_sources_refuse_a_symlink_swapped_in() {
    if !privileged() {
        return;
    }
    let rt = Runtime::new();
    // What an engine checked as a real directory, replaced by a symlink to a host secret
    // before the runtime mounts it (the check-then-mount race, won by the attacker).
    let secret = host_dir("pinned-secret");
    std::fs::write(secret.join("shadow"), "host secret").unwrap();
    let parent = host_dir("pinned-parent");
    let checked = parent.join("data");
    std::os::unix::fs::symlink(&secret, &checked).unwrap();
    let source = checked.display().to_string();
    let mount = json!({ "destination": "/hostout", "type": "bind", "source": source,
                        "options": ["rbind", "ro"] });

    // With the annotation the runtime refuses the symlink, in one line, leaving nothing.
    let bundle = Bundle::new(&["cat", "/hostout/shadow"]);
    let pinned = mount.clone();
    bundle.edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(pinned);
        c["annotations"] = json!({ "org.palisade.bind-sources": "no-symlinks" });
    });
    assert_refused(
        &rt,
        bundle.path(),
        &unique_id("pinned"),
        "without following symlinks",
    );

    // Without it (plain OCI, as runc does) the symlink is followed: the control run.
    let bundle = Bundle::new(&["cat", "/hostout/shadow"]);
    bundle.edit(|c| c["mounts"].as_array_mut().unwrap().push(mount));
    let out = rt.run(&[
        "run",
        "-b",
        bundle.path().to_str().unwrap(),
        &unique_id("unpinned"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "host secret");
}
