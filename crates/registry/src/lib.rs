#![forbid(unsafe_code)]
//! Palisade's OCI distribution registry (`palisade registry serve`).
//!
//! - [`auth`]: who is asking (users, passwords, tokens) and what they may do (per-repository
//!   authorization).

pub mod auth;
