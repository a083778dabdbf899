//! Seccomp and Landlock policy as data.
//!
//! A seccomp profile is an OCI `LinuxSeccomp` value: parsed from a file with
//! [`parse_profile`], or Palisade's hardened [`default_profile`]. [`compile`] turns it into a
//! [`SeccompFilter`], a classic-BPF program checked against the kernel's limits, which the
//! container's init installs with [`SeccompFilter::install`] as its last step before `execve`.
//! Compiling and installing are separate so that a profile can be compiled and checked (and its
//! warnings reported) long before a container starts.
//!
//! [`landlock`] confines a container's processes to their own rootfs.

#![forbid(unsafe_code)]

mod arch;
mod bpf;
mod compile;
mod filter;
pub mod landlock;
mod profile;

pub use bpf::{AssembleError, Instruction};
pub use compile::{compile, compile_for, SeccompError, SeccompWarning};
pub use filter::SeccompFilter;
pub use profile::{default_profile, default_profile_json, parse_profile, ProfileError};
