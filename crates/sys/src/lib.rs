//! The only crate in Palisade allowed to use `unsafe`.
//!
//! Each function here is a thin wrapper over one Linux system call that the safe crates
//! (`nix`, `rustix`) do not cover, or cover only through an `unsafe` API. Every `unsafe` block
//! carries a `// SAFETY:` comment naming the invariant it relies on.

pub mod bpf;
pub mod ipc;
pub mod landlock;
pub mod mount;
pub mod packet;
pub mod process;
pub mod seccomp;
