#![forbid(unsafe_code)]
//! Palisade's OCI distribution registry (`palisade registry serve`).
//!
//! - [`auth`]: who is asking (users, passwords, tokens) and what they may do (per-repository
//!   authorization).
//! - [`name`], [`range`], [`manifest`]: the request parsers (names, tags, digests references,
//!   `Content-Range`/`Range`, pushed manifests).
//! - [`storage`]: where blobs, uploads and repository metadata live ([`storage::fs::FsStorage`]).
//! - [`server`]: the distribution API over a storage ([`server::Registry`]) and the network
//!   listener ([`serve`]).

pub mod auth;
pub mod error;
pub mod manifest;
pub mod name;
pub mod range;
pub mod serve;
pub mod server;
pub mod storage;
