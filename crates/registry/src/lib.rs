#![forbid(unsafe_code)]
//! Palisade's OCI distribution registry (`palisade registry serve`).
//!
//! - [`auth`]: who is asking (users, passwords, tokens) and what they may do (per-repository
//!   authorization).
//! - [`name`], [`range`], [`manifest`]: the request parsers (names, tags, references,
//!   `Content-Range`/`Range`, pushed manifests).
//! - [`storage`]: where blobs, uploads and repository metadata live ([`storage::fs::FsStorage`]).
//! - [`server`]: the distribution API over a storage ([`server::Registry`]); [`serve`]: the
//!   network listener (TLS, graceful shutdown).
//! - [`gate`]: policy checks on pulls ([`gate::Gate`], [`gate::RegistryView`]); [`scan`]: scan
//!   on push ([`scan::Scanner`], [`scan::ScanQueue`], [`scan::ScanGate`]).
//! - [`signature`]: the `signature` gate (palisade-trust); [`vuln`]: the scan-on-push
//!   [`scan::Scanner`] (palisade-scan).
//! - [`config`]: the TOML configuration file.

pub mod audit;
pub mod auth;
pub mod config;
pub mod daemon;
pub mod error;
pub mod gate;
pub mod glob;
pub mod manifest;
pub mod metrics;
pub mod name;
pub mod range;
pub mod scan;
pub mod serve;
pub mod server;
pub mod signature;
pub mod storage;
pub mod vuln;
