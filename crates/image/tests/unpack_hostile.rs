//! Hostile layers (THREATS.md row 6): each one is refused with the expected error, by both the
//! per-layer and the flattening unpack, and nothing outside the target changes (a sentinel
//! directory beside it is compared before and after).

#![allow(clippy::unwrap_used)]

mod unpack_support;

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use palisade_image::unpack::{
    apply_layer, apply_layers, unpack_layer, unpack_layer_atomic, DevicePolicy, HardLinkProblem,
    IdShift, Ownership, UnpackError, UnpackOptions,
};
use proptest::prelude::*;
use unpack_support::{gzip, gzip_zeros_after, zstd, EntryType, Sandbox, Spec, Tar};

/// Options that work for root and for an unprivileged user alike.
fn opts() -> UnpackOptions {
    let ownership = if rustix::process::geteuid().is_root() {
        Ownership::Preserve
    } else {
        Ownership::Ignore
    };
    UnpackOptions {
        ownership,
        ..UnpackOptions::default()
    }
}

/// Unpacks `layer` per-layer and flattened, expects both to fail as `expected` says, and
/// checks nothing outside the target changed. Returns the sandbox for further checks.
fn refused(layer: &[u8], opts: &UnpackOptions, expected: impl Fn(&UnpackError) -> bool) -> Sandbox {
    let sandbox = Sandbox::new();
    let overlay = sandbox.layer_dir("overlay");
    let flat = sandbox.layer_dir("flat");
    let error = unpack_layer(layer, &overlay, opts).expect_err("per-layer unpack must fail");
    assert!(
        expected(&error),
        "per-layer unpack failed with the wrong error: {error:?}"
    );
    let error = apply_layer(layer, &flat, opts).expect_err("flattening must fail");
    assert!(
        expected(&error),
        "flattening failed with the wrong error: {error:?}"
    );
    sandbox.assert_outside_unchanged();
    sandbox
}

/// Applies `layers` in order into one directory and expects layer `index` to fail as `expected`
/// says.
fn stack_refused(
    layers: &[Vec<u8>],
    index: usize,
    expected: impl Fn(&UnpackError) -> bool,
) -> Sandbox {
    let sandbox = Sandbox::new();
    let error = apply_layers(
        layers.iter().map(|layer| &layer[..]),
        &sandbox.target,
        &opts(),
    )
    .expect_err("the stack must fail");
    match &error {
        UnpackError::Layer {
            index: failed,
            source,
        } => {
            assert_eq!(*failed, index, "{error:?}");
            assert!(expected(source), "wrong error: {source:?}");
        }
        other => panic!("expected a layer error, got {other:?}"),
    }
    sandbox.assert_outside_unchanged();
    sandbox
}

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

#[test]
fn dot_dot_paths_are_refused() {
    for name in [
        "../outside/pwned",
        "a/../../outside/pwned",
        "./../outside/pwned",
        "a/..",
    ] {
        let layer = Tar::new().dir("a").file(name, "pwned").bytes();
        refused(&layer, &opts(), |e| {
            matches!(e, UnpackError::PathTraversal { .. })
        });
    }
}

#[test]
fn absolute_paths_are_refused() {
    let sandbox = Sandbox::new();
    let mut name = sandbox.outside_abs();
    name.extend_from_slice(b"/pwned");
    let layer = Tar::new().file(&name, "pwned").bytes();
    refused(&layer, &opts(), |e| {
        matches!(e, UnpackError::AbsolutePath { .. })
    });
    let layer = Tar::new()
        .file("/etc/palisade-unpack-test-must-not-exist", "x")
        .bytes();
    refused(&layer, &opts(), |e| {
        matches!(e, UnpackError::AbsolutePath { .. })
    });
    assert!(!exists(Path::new(
        "/etc/palisade-unpack-test-must-not-exist"
    )));
}

#[test]
fn writing_through_a_symlink_is_refused() {
    // The classic: `evil -> /etc`, then `evil/<file>`.
    let layer = Tar::new()
        .symlink("evil", "/etc")
        .file("evil/palisade-unpack-test-must-not-exist", "pwned")
        .bytes();
    refused(&layer, &opts(), |e| {
        matches!(e, UnpackError::ThroughSymlink { .. })
    });
    assert!(!exists(Path::new(
        "/etc/palisade-unpack-test-must-not-exist"
    )));

    let probe = Sandbox::new();
    for target in [
        b"../outside".to_vec(),
        b"../../outside".to_vec(),
        probe.outside_abs(),
    ] {
        let layer = Tar::new()
            .symlink("evil", &target)
            .file("evil/passwd", "pwned")
            .bytes();
        let sandbox = refused(&layer, &opts(), |e| {
            matches!(e, UnpackError::ThroughSymlink { .. })
        });
        assert_eq!(
            std::fs::read(sandbox.outside.join("passwd")).unwrap(),
            b"root:x:0:0::/root:/bin/sh\n"
        );
    }
    probe.assert_outside_unchanged();
}

#[test]
fn symlink_chains_and_loops_are_never_followed() {
    // a -> b -> ../outside: the chain escapes.
    let layer = Tar::new()
        .symlink("b", "../outside")
        .symlink("a", "b")
        .file("a/pwned", "x")
        .bytes();
    refused(&layer, &opts(), |e| {
        matches!(e, UnpackError::ThroughSymlink { .. })
    });
    // d/up -> .. walks up one level at a time.
    let layer = Tar::new()
        .dir("d")
        .symlink("d/up", "..")
        .file("d/up/up/outside/pwned", "x")
        .bytes();
    refused(&layer, &opts(), |e| {
        matches!(e, UnpackError::ThroughSymlink { .. })
    });
    // Even a symlink to a directory inside the target is not followed.
    let layer = Tar::new()
        .dir("real")
        .symlink("link", "real")
        .file("link/file", "x")
        .bytes();
    refused(&layer, &opts(), |e| {
        matches!(e, UnpackError::ThroughSymlink { .. })
    });
    // A loop.
    let layer = Tar::new()
        .symlink("loop", "loop")
        .file("loop/x", "x")
        .bytes();
    refused(&layer, &opts(), |e| {
        matches!(e, UnpackError::ThroughSymlink { .. })
    });
}

#[test]
fn a_symlink_from_a_lower_layer_is_not_followed_either() {
    let probe = Sandbox::new();
    let lower = Tar::new().symlink("evil", probe.outside_abs()).bytes();
    let upper = Tar::new().file("evil/passwd", "pwned").bytes();
    stack_refused(&[lower.clone(), upper], 1, |e| {
        matches!(e, UnpackError::ThroughSymlink { .. })
    });
    // Whiteouts and opaque markers below the symlink would delete outside.
    for marker in ["evil/.wh.passwd", "evil/.wh..wh..opq", "evil/dir/.wh.keep"] {
        let upper = Tar::new().file(marker, "").bytes();
        stack_refused(&[lower.clone(), upper], 1, |e| {
            matches!(e, UnpackError::ThroughSymlink { .. })
        });
    }
    probe.assert_outside_unchanged();
}

#[test]
fn hard_links_out_of_the_layer_are_refused() {
    let cases: [(&[u8], HardLinkProblem); 4] = [
        (b"/etc/shadow", HardLinkProblem::Absolute),
        (b"../outside/shadow", HardLinkProblem::Traversal),
        (b"a/../../outside/shadow", HardLinkProblem::Traversal),
        (b"missing", HardLinkProblem::NotInLayer),
    ];
    for (target, problem) in cases {
        let layer = Tar::new().dir("a").hardlink("link", target).bytes();
        refused(
            &layer,
            &opts(),
            |e| matches!(e, UnpackError::HardLink { problem: p, .. } if *p == problem),
        );
    }
    // To a symlink pointing out, and through one.
    let layer = Tar::new()
        .symlink("s", "../outside/shadow")
        .hardlink("link", "s")
        .bytes();
    refused(&layer, &opts(), |e| {
        matches!(
            e,
            UnpackError::HardLink {
                problem: HardLinkProblem::NotAFile,
                ..
            }
        )
    });
    let layer = Tar::new()
        .symlink("evil", "../outside")
        .hardlink("link", "evil/shadow")
        .bytes();
    refused(&layer, &opts(), |e| {
        matches!(
            e,
            UnpackError::HardLink {
                problem: HardLinkProblem::NotInLayer,
                ..
            }
        )
    });
    // To a directory, and to itself.
    let layer = Tar::new().dir("d").hardlink("link", "d").bytes();
    refused(&layer, &opts(), |e| {
        matches!(
            e,
            UnpackError::HardLink {
                problem: HardLinkProblem::NotAFile,
                ..
            }
        )
    });
    let layer = Tar::new().hardlink("self", "self").bytes();
    refused(&layer, &opts(), |e| {
        matches!(e, UnpackError::HardLink { .. })
    });
    // To a file of a lower layer: layers are unpacked separately, so that is not allowed.
    let lower = Tar::new().file("f", "x").bytes();
    let upper = Tar::new().hardlink("link", "f").bytes();
    stack_refused(&[lower, upper], 1, |e| {
        matches!(
            e,
            UnpackError::HardLink {
                problem: HardLinkProblem::NotInLayer,
                ..
            }
        )
    });
}

#[test]
fn device_nodes_are_dropped_or_refused() {
    let layer = Tar::new()
        .add(Spec::device("dev/sda", EntryType::Block, 8, 0))
        .add(Spec::device("dev/mem", EntryType::Char, 1, 1))
        .add(Spec::device("fake-whiteout", EntryType::Char, 0, 0))
        .file("dev/ok", "x")
        .bytes();
    let refuse = UnpackOptions {
        devices: DevicePolicy::Refuse,
        ..opts()
    };
    refused(&layer, &refuse, |e| {
        matches!(
            e,
            UnpackError::DeviceNode {
                major: 8,
                minor: 0,
                ..
            }
        )
    });

    let sandbox = Sandbox::new();
    let report = unpack_layer(&layer[..], &sandbox.target, &opts()).unwrap();
    let dropped: Vec<_> = report
        .dropped_devices
        .iter()
        .map(|p| p.to_str().unwrap())
        .collect();
    assert_eq!(dropped, ["dev/sda", "dev/mem", "fake-whiteout"]);
    assert!(!exists(&sandbox.target.join("dev/sda")));
    assert!(!exists(&sandbox.target.join("dev/mem")));
    assert!(!exists(&sandbox.target.join("fake-whiteout")));
    assert!(sandbox.target.join("dev/ok").is_file());
    sandbox.assert_outside_unchanged();

    // A hard link to a dropped device does not bring it back.
    let layer = Tar::new()
        .add(Spec::device("sda", EntryType::Block, 8, 0))
        .hardlink("again", "sda")
        .bytes();
    refused(&layer, &opts(), |e| {
        matches!(
            e,
            UnpackError::HardLink {
                problem: HardLinkProblem::NotInLayer,
                ..
            }
        )
    });
}

#[test]
fn setuid_bits_are_dropped_unless_allowed() {
    let layer = Tar::new()
        .add(Spec::file("bin/su", "#!").mode(0o4755))
        .add(Spec::file("bin/wall", "#!").mode(0o2755))
        .add(Spec::dir("var/mail").mode(0o2775))
        .bytes();
    let sandbox = Sandbox::new();
    let report = unpack_layer(&layer[..], &sandbox.target, &opts()).unwrap();
    let mode = |path: &str| std::fs::metadata(sandbox.target.join(path)).unwrap().mode() & 0o7777;
    assert_eq!(mode("bin/su"), 0o755);
    assert_eq!(mode("bin/wall"), 0o755);
    // setgid on a directory only picks the group of new files: kept.
    assert_eq!(mode("var/mail"), 0o2775);
    let dropped: Vec<_> = report
        .dropped_setuid
        .iter()
        .map(|p| p.to_str().unwrap())
        .collect();
    assert_eq!(dropped, ["bin/su", "bin/wall"]);
    sandbox.assert_outside_unchanged();

    let allowed = UnpackOptions {
        allow_setuid: true,
        ..opts()
    };
    let sandbox = Sandbox::new();
    let report = unpack_layer(&layer[..], &sandbox.target, &allowed).unwrap();
    assert!(report.dropped_setuid.is_empty());
    let mode = |path: &str| std::fs::metadata(sandbox.target.join(path)).unwrap().mode() & 0o7777;
    assert_eq!(mode("bin/su"), 0o4755);
    assert_eq!(mode("bin/wall"), 0o2755);
}

#[test]
fn gzip_bombs_stop_at_the_size_limit() {
    // 64 MiB of zeros in a ~70 KiB gzip stream.
    let header = Tar::new()
        .add(Spec::file("zeros", "").size_field(64 << 20))
        .unterminated();
    let bomb = gzip_zeros_after(&header, 64);
    assert!(bomb.len() < 200 << 10);
    let small = UnpackOptions {
        max_total_bytes: 8 << 20,
        ..opts()
    };
    let sandbox = refused(
        &bomb,
        &small,
        |e| matches!(e, UnpackError::TooLarge { limit } if *limit == 8 << 20),
    );
    let written = std::fs::metadata(sandbox.target.join("overlay/zeros")).map_or(0, |m| m.len());
    assert!(written <= 8 << 20, "wrote {written} bytes past the limit");
}

#[test]
fn gzip_bombs_stop_at_the_ratio_limit() {
    let header = Tar::new()
        .add(Spec::file("zeros", "").size_field(80 << 20))
        .unterminated();
    let bomb = gzip_zeros_after(&header, 80);
    let strict = UnpackOptions {
        max_compression_ratio: Some(100),
        ..opts()
    };
    refused(&bomb, &strict, |e| {
        matches!(e, UnpackError::CompressionRatio { limit: 100 })
    });
}

#[test]
fn zstd_bombs_stop_at_the_size_limit() {
    let layer = Tar::new().file("zeros", vec![0u8; 16 << 20]).bytes();
    let bomb = zstd(&layer);
    let small = UnpackOptions {
        max_total_bytes: 4 << 20,
        ..opts()
    };
    refused(&bomb, &small, |e| matches!(e, UnpackError::TooLarge { .. }));
}

#[test]
fn sparse_files_count_what_they_write() {
    // A GNU sparse entry: 1 byte of data stored, 1 GiB written (the hole is filled with zeros).
    let mut header = tar::Header::new_gnu();
    header.as_old_mut().name[..6].copy_from_slice(b"sparse");
    header.set_entry_type(EntryType::GNUSparse);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(512);
    let gnu = header.as_gnu_mut().unwrap();
    gnu.sparse[0].set_offset(1 << 30);
    gnu.sparse[0].set_length(512);
    gnu.set_real_size((1 << 30) + 512);
    header.set_cksum();
    let mut tar = Tar::new();
    tar.raw(header.as_bytes()).raw(&[1u8; 512]);
    let small = UnpackOptions {
        max_total_bytes: 16 << 20,
        ..opts()
    };
    refused(&tar.bytes(), &small, |e| {
        matches!(e, UnpackError::TooLarge { .. })
    });
}

#[test]
fn too_many_entries_are_refused() {
    let mut tar = Tar::new();
    for i in 0..3000 {
        tar.file(format!("f{i}"), "");
    }
    let limited = UnpackOptions {
        max_entries: 1000,
        ..opts()
    };
    refused(&gzip(&tar.bytes()), &limited, |e| {
        matches!(e, UnpackError::TooManyEntries { limit: 1000 })
    });
}

#[test]
fn duplicate_entries_are_refused() {
    let layers = [
        Tar::new().file("a", "1").file("a", "2").bytes(),
        Tar::new().file("./a", "1").file("a", "2").bytes(),
        Tar::new().dir("d").dir("d/").bytes(),
        Tar::new()
            .file("x", "1")
            .symlink("x", "/etc/passwd")
            .bytes(),
        Tar::new()
            .symlink("x", "/etc/passwd")
            .file("x", "pwned")
            .bytes(),
        Tar::new()
            .file("a", "")
            .hardlink("b", "a")
            .file("b", "")
            .bytes(),
        Tar::new().file(".wh.a", "").file(".wh.a", "").bytes(),
        Tar::new().dir("./").dir(".").bytes(),
        Tar::new().dir("d").file("d/f", "x").file("d", "x").bytes(),
    ];
    for layer in layers {
        refused(&layer, &opts(), |e| {
            matches!(e, UnpackError::DuplicateEntry { .. })
        });
    }
}

#[test]
fn a_file_cannot_replace_a_directory_of_the_same_layer() {
    let layers = [
        // `e` was created for `e/f`, without an entry of its own.
        Tar::new().file("e/f", "x").file("e", "x").bytes(),
        Tar::new()
            .file("e/f", "x")
            .symlink("e", "../outside")
            .bytes(),
        Tar::new().file("./", "x").bytes(),
    ];
    for layer in layers {
        refused(&layer, &opts(), |e| {
            matches!(e, UnpackError::ReplacesDirectory { .. })
        });
    }
    // And a directory cannot go below a file.
    let layer = Tar::new().file("f", "x").file("f/g", "x").bytes();
    refused(&layer, &opts(), |e| {
        matches!(e, UnpackError::ParentNotDirectory { .. })
    });
}

#[test]
fn truncated_gzip_is_refused() {
    let layer = gzip(
        &Tar::new()
            .file("a", vec![7u8; 100_000])
            .file("b", "x")
            .bytes(),
    );
    for cut in [layer.len() / 2, layer.len() - 4, 12] {
        refused(&layer[..cut], &opts(), |e| {
            matches!(e, UnpackError::Truncated { .. })
        });
    }
    let layer = zstd(&Tar::new().file("a", vec![7u8; 100_000]).bytes());
    refused(&layer[..layer.len() - 5], &opts(), |e| {
        matches!(e, UnpackError::Truncated { .. })
    });
}

#[test]
fn truncated_tar_is_refused() {
    let tar = Tar::new().file("a", vec![1u8; 2000]).file("b", "x").bytes();
    // Inside the data, inside a header, at an entry boundary (no end marker), empty.
    for cut in [1200, 2560 + 100, 3072 + 512, 0] {
        refused(&tar[..cut], &opts(), |e| {
            matches!(e, UnpackError::Truncated { .. })
        });
    }
    // A header that announces more data than the stream has.
    let mut short = Tar::new();
    short.add(Spec::file("big", vec![1u8; 100]).size_field(1 << 20));
    refused(&short.unterminated(), &opts(), |e| {
        matches!(e, UnpackError::Truncated { .. })
    });
}

#[test]
fn data_longer_than_its_header_says_is_refused() {
    // The surplus lands where the next header should be.
    let layer = Tar::new()
        .add(Spec::file("a", vec![b'x'; 2000]).size_field(10))
        .bytes();
    refused(&layer, &opts(), |e| {
        matches!(e, UnpackError::MalformedArchive { .. })
    });
    let mut garbage = Tar::new();
    garbage.file("a", "x").raw(&[0xab; 512]);
    refused(&garbage.bytes(), &opts(), |e| {
        matches!(e, UnpackError::MalformedArchive { .. })
    });
}

#[test]
fn whiteouts_cannot_reach_outside() {
    let layers = [
        Tar::new().file("../.wh.outside", "").bytes(),
        Tar::new().file(".wh...", "").bytes(),
        Tar::new().file("a/.wh...", "").bytes(),
    ];
    for layer in layers {
        refused(&layer, &opts(), |e| {
            matches!(e, UnpackError::PathTraversal { .. })
        });
    }
    let layers = [
        Tar::new().file(".wh.", "").bytes(),
        Tar::new().file("a/.wh..", "").bytes(),
        Tar::new().file("a/.wh..wh.plnk", "").bytes(),
        Tar::new().file(".wh.dir/child", "").bytes(),
    ];
    for layer in layers {
        refused(&layer, &opts(), |e| {
            matches!(e, UnpackError::InvalidWhiteout { .. })
        });
    }
    let probe = Sandbox::new();
    let layer = Tar::new()
        .symlink("evil", probe.outside_abs())
        .file("evil/.wh.passwd", "")
        .bytes();
    refused(&layer, &opts(), |e| {
        matches!(e, UnpackError::ThroughSymlink { .. })
    });
    probe.assert_outside_unchanged();
}

#[test]
fn overlay_xattrs_cannot_be_smuggled() {
    for name in [
        "trusted.overlay.opaque",
        "trusted.overlay.redirect",
        "trusted.overlay.metacopy",
        "user.overlay.opaque",
        "user.overlay.whiteout",
    ] {
        let layer = Tar::new().add(Spec::dir("d").xattr(name, "y")).bytes();
        refused(
            &layer,
            &opts(),
            |e| matches!(e, UnpackError::ReservedXattr { name: n, .. } if n == name),
        );
    }
}

#[test]
fn other_privileged_xattrs_are_dropped_and_reported() {
    let layer = Tar::new()
        .add(
            Spec::file("f", "x")
                .xattr("security.selinux", "system_u:object_r:shadow_t:s0")
                .xattr("trusted.secret", "x")
                .xattr("security.capability", [0u8; 20]),
        )
        .bytes();
    let sandbox = Sandbox::new();
    let report = unpack_layer(&layer[..], &sandbox.target, &opts()).unwrap();
    let names: Vec<_> = report
        .dropped_xattrs
        .iter()
        .map(|x| x.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["security.selinux", "trusted.secret", "security.capability"]
    );
    let mut buf = [0u8; 64];
    let target = sandbox.target.join("f");
    assert!(rustix::fs::lgetxattr(&target, "security.capability", &mut buf[..]).is_err());
    assert!(rustix::fs::lgetxattr(&target, "trusted.secret", &mut buf[..]).is_err());
}

#[test]
fn bad_names_are_refused() {
    let long = "x/".repeat(3000);
    let layer = Tar::new().file(&long, "").bytes();
    refused(&layer, &opts(), |e| {
        matches!(e, UnpackError::NameTooLong { .. })
    });
    let layer = Tar::new().file("a".repeat(256), "").bytes();
    refused(&layer, &opts(), |e| {
        matches!(e, UnpackError::NameTooLong { .. })
    });
    let layer = Tar::new().symlink("s", "y".repeat(5000)).bytes();
    refused(&layer, &opts(), |e| {
        matches!(e, UnpackError::NameTooLong { .. })
    });
    let layer = Tar::new()
        .add(Spec::file("a", "").pax("path", b"ok\0/../../outside/pwned"))
        .bytes();
    refused(&layer, &opts(), |e| {
        matches!(e, UnpackError::NulInName { .. })
    });
    let layer = Tar::new()
        .add(Spec::symlink("s", "x").pax("linkpath", b"x\0y"))
        .bytes();
    refused(&layer, &opts(), |e| {
        matches!(e, UnpackError::NulInName { .. })
    });
    let layer = Tar::new().add(Spec::file("", "x")).bytes();
    refused(&layer, &opts(), |e| matches!(e, UnpackError::EmptyName));
}

#[test]
fn huge_headers_are_refused_before_they_fill_memory() {
    // A PAX path of 4 MiB, cheap to send gzipped.
    let layer = Tar::new()
        .add(Spec::file("a", "").pax("comment", vec![b'a'; 4 << 20]))
        .bytes();
    refused(&gzip(&layer), &opts(), |e| {
        matches!(e, UnpackError::HeaderTooLarge { .. })
    });
    // The same with a GNU long name.
    let mut tar = Tar::new();
    let mut header = tar::Header::new_gnu();
    header.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
    header.set_entry_type(EntryType::GNULongName);
    header.set_size(4 << 20);
    header.set_cksum();
    tar.raw(header.as_bytes())
        .raw(&vec![b'n'; 4 << 20])
        .file("a", "");
    refused(&gzip(&tar.bytes()), &opts(), |e| {
        matches!(e, UnpackError::HeaderTooLarge { .. })
    });
}

#[test]
fn ids_outside_the_shift_are_refused() {
    let shift = IdShift {
        uid_base: 200_000,
        gid_base: 200_000,
        size: 1000,
    };
    let shifted = UnpackOptions {
        ownership: Ownership::Shift(shift),
        ..opts()
    };
    let layer = Tar::new().add(Spec::file("f", "x").owner(5000, 0)).bytes();
    refused(&layer, &shifted, |e| {
        matches!(
            e,
            UnpackError::IdOutOfRange {
                kind: "uid",
                id: 5000,
                ..
            }
        )
    });
    let layer = Tar::new()
        .add(Spec::file("f", "x").owner(0, 0).pax("gid", "4294967295"))
        .bytes();
    refused(&layer, &shifted, |e| {
        matches!(e, UnpackError::IdOutOfRange { kind: "gid", .. })
    });
    let preserve = UnpackOptions {
        ownership: Ownership::Preserve,
        ..opts()
    };
    refused(&layer, &preserve, |e| {
        matches!(e, UnpackError::IdOutOfRange { kind: "gid", .. })
    });
}

#[test]
fn unsupported_compression_and_entries_are_refused() {
    let xz = [0xfd, b'7', b'z', b'X', b'Z', 0, 0, 0];
    refused(&xz, &opts(), |e| {
        matches!(e, UnpackError::UnsupportedCompression { format: "xz" })
    });
    let layer = Tar::new()
        .add(Spec::new("label", EntryType::new(b'V')))
        .bytes();
    refused(&layer, &opts(), |e| {
        matches!(e, UnpackError::UnsupportedEntry { .. })
    });
    let layer = Tar::new()
        .add(Spec::file("s", "").pax("GNU.sparse.major", "1"))
        .bytes();
    refused(&layer, &opts(), |e| {
        matches!(e, UnpackError::UnsupportedEntry { .. })
    });
}

#[test]
fn per_layer_unpack_needs_an_empty_target() {
    let sandbox = Sandbox::new();
    std::fs::write(sandbox.target.join("old"), "x").unwrap();
    let layer = Tar::new().file("a", "x").bytes();
    let error = unpack_layer(&layer[..], &sandbox.target, &opts()).unwrap_err();
    assert!(
        matches!(error, UnpackError::TargetNotEmpty { .. }),
        "{error:?}"
    );
}

#[test]
fn atomic_unpack_leaves_nothing_behind_on_failure() {
    let sandbox = Sandbox::new();
    let final_dir = sandbox.target.join("layer");
    let hostile = Tar::new()
        .file("ok", "x")
        .file("../outside/pwned", "x")
        .bytes();
    let error = unpack_layer_atomic(&hostile[..], &final_dir, &opts()).unwrap_err();
    assert!(
        matches!(error, UnpackError::PathTraversal { .. }),
        "{error:?}"
    );
    assert_eq!(
        std::fs::read_dir(&sandbox.target).unwrap().count(),
        0,
        "a partial directory is left"
    );
    let truncated = gzip(&Tar::new().file("ok", "x").bytes());
    let error =
        unpack_layer_atomic(&truncated[..truncated.len() - 3], &final_dir, &opts()).unwrap_err();
    assert!(matches!(error, UnpackError::Truncated { .. }), "{error:?}");
    assert_eq!(
        std::fs::read_dir(&sandbox.target).unwrap().count(),
        0,
        "a partial directory is left"
    );
    sandbox.assert_outside_unchanged();

    // An existing final directory is never replaced.
    std::fs::create_dir(&final_dir).unwrap();
    let layer = Tar::new().file("ok", "x").bytes();
    let error = unpack_layer_atomic(&layer[..], &final_dir, &opts()).unwrap_err();
    assert!(
        matches!(error, UnpackError::TargetExists { .. }),
        "{error:?}"
    );
    assert_eq!(std::fs::read_dir(&sandbox.target).unwrap().count(), 1);
}

/// Names from a small alphabet that contains every trap: `..`, `.`, empty components, a
/// leading `/`, whiteout prefixes.
fn component() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        4 => Just("a"),
        3 => Just("b"),
        1 => Just(".."),
        1 => Just("."),
        1 => Just(""),
        1 => Just(".wh.a"),
        1 => Just(".wh..wh..opq"),
        1 => Just("outside"),
    ]
}

fn entry_name() -> impl Strategy<Value = String> {
    (
        prop::bool::weighted(0.1),
        prop::collection::vec(component(), 1..4),
    )
        .prop_map(|(absolute, parts)| {
            format!("{}{}", if absolute { "/" } else { "" }, parts.join("/"))
        })
}

#[derive(Debug, Clone)]
enum Op {
    File(String),
    Dir(String),
    Symlink(String, usize),
    Hardlink(String, String),
    Fifo(String),
}

/// Symlink targets; `<outside>` is the sentinel directory's absolute path.
const LINK_TARGETS: [&str; 9] = [
    "<outside>",
    "<outside>",
    "..",
    "../..",
    "../outside",
    "../../outside",
    "/",
    "a",
    "/etc",
];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        entry_name().prop_map(Op::File),
        entry_name().prop_map(Op::Dir),
        (entry_name(), 0..LINK_TARGETS.len()).prop_map(|(n, t)| Op::Symlink(n, t)),
        (entry_name(), entry_name()).prop_map(|(n, t)| Op::Hardlink(n, t)),
        entry_name().prop_map(Op::Fifo),
    ]
}

fn build(ops: &[Op], outside: &[u8]) -> Vec<u8> {
    let mut tar = Tar::new();
    for op in ops {
        match op {
            Op::File(name) => tar.file(name, "pwned"),
            Op::Dir(name) => tar.dir(name),
            Op::Symlink(name, target) => match LINK_TARGETS[*target] {
                "<outside>" => tar.symlink(name, outside),
                target => tar.symlink(name, target),
            },
            Op::Hardlink(name, target) => tar.hardlink(name, target),
            Op::Fifo(name) => tar.add(Spec::new(name, EntryType::Fifo)),
        };
    }
    tar.bytes()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the entries, unpacking never panics and never writes outside the target, in
    /// either form, and a second layer on top of the first does not either.
    #[test]
    fn random_layers_never_escape(lower in prop::collection::vec(op(), 1..10), upper in prop::collection::vec(op(), 1..10)) {
        let sandbox = Sandbox::new();
        let lower = build(&lower, &sandbox.outside_abs());
        let upper = build(&upper, &sandbox.outside_abs());
        let overlay = sandbox.layer_dir("overlay");
        let flat = sandbox.layer_dir("flat");
        let _ = unpack_layer(&lower[..], &overlay, &opts());
        let _ = apply_layer(&lower[..], &flat, &opts());
        let _ = apply_layer(&upper[..], &flat, &opts());
        sandbox.assert_outside_unchanged();
        for name in ["a", "b", "outside"] {
            prop_assert!(!Path::new("/etc").join(name).exists());
        }
        // The overlay form never contains a device other than a whiteout.
        for entry in walk(&overlay) {
            let meta = std::fs::symlink_metadata(&entry).unwrap();
            if meta.file_type().is_char_device() {
                prop_assert_eq!(meta.rdev(), 0);
            }
            prop_assert!(!meta.file_type().is_block_device());
        }
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if std::fs::symlink_metadata(&path).unwrap().is_dir() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}
