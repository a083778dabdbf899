#![forbid(unsafe_code)]
//! OCI images for Palisade.
//!
//! - [`digest`]: content digests and hashing readers/writers that check them while streaming.
//! - [`reference`]: image references (`busybox`, `localhost:5000/a/b:tag@sha256:...`) with
//!   Docker's grammar and normalisation.
//! - [`media_types`] and [`manifest`]: OCI and Docker v2 manifests, indexes and configs, and
//!   choosing the host platform from an index.
//! - [`store`]: the content-addressed image store (an OCI image layout), verified on write and
//!   on read, atomic, safe for several processes.
//! - [`import`] and [`archive`]: a rootfs directory or tarball as an image; OCI archives in and
//!   out (`save`/`load`).
//! - [`distribution`]: the registry client: pull, push, login (OCI distribution spec).
//! - [`unpack`]: safe extraction of layers, one per directory for overlayfs or flattened.

pub mod archive;
pub mod digest;
pub mod distribution;
pub mod import;
pub mod inspect;
pub mod manifest;
pub mod media_types;
pub mod reference;
pub mod store;
mod timestamp;
pub mod unpack;

pub use digest::{Digest, DigestAlgorithm, DigestError};
pub use inspect::{ImageSummary, LocalImage};
pub use reference::{ImageReference, ReferenceError};
pub use store::{Store, StoreError};
