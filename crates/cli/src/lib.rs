#![forbid(unsafe_code)]
//! Shared helpers for the `palisade` and `palisade-runtime` binaries.
