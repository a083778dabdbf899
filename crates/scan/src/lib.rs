//! Palisade's vulnerability scanner.
//!
//! - [`version`]: version ordering, one module per ecosystem.
//! - [`osv`]: the OSV record model; [`db`]: the local database built from OSV records.
//! - [`advisory`]: a stored advisory and its evaluation against an installed version.
//! - [`inventory`]: what an image holds, from a directory or layer tar streams.
//! - [`report`]: matching an inventory against the database; [`formats`]: SARIF, CycloneDX, SPDX.
//! - [`policy`]: the vulnerability policy and its serializable verdict; [`gate`]: the check
//!   the engine runs before it uses an image.
//!
//! # Integration
//!
//! The engine: `gate::check_image(&store, &local_image, reference, &GateConfig)` returns
//! `Ok(GateOutcome)` to proceed or `Err(GateError)` to refuse (its `Display` lists the worst
//! findings).
//!
//! A registry, on push, with the layer blobs of a manifest (lowest first):
//!
//! ```no_run
//! # fn demo(blobs: Vec<(palisade_image::media_types::LayerCompression, std::fs::File)>) -> Result<(), Box<dyn std::error::Error>> {
//! use palisade_scan::{db::Database, inventory, policy::VulnPolicy};
//! let readers = blobs
//!     .into_iter()
//!     .map(|(compression, blob)| inventory::decompress(compression, blob))
//!     .collect::<Result<Vec<_>, _>>()?;
//! let inventory = inventory::scan_layers(readers)?;
//! let db = Database::open(palisade_scan::db::default_path())?;
//! let mut report = db.match_inventory(&inventory)?;
//! report.target = "registry.example/app@sha256:...".into();
//! let verdict = VulnPolicy::load("/etc/palisade/vuln-policy.toml".as_ref())?.evaluate(&report);
//! let stored = serde_json::to_vec(&verdict)?; // media type policy::VERDICT_MEDIA_TYPE
//! // Later: `verdict.is_current(&db)` is false once the database is rebuilt: rescan.
//! # let _ = stored; Ok(()) }
//! ```

pub mod advisory;
pub mod cvss;
pub mod db;
pub mod formats;
pub mod gate;
pub mod image;
pub mod inventory;
pub mod osv;
pub mod policy;
pub mod report;
pub mod version;

pub use advisory::Advisory;
pub use cvss::Severity;
pub use db::{Database, DbError};
pub use image::inventory_of_image;
pub use inventory::{scan_dir, scan_layers, Inventory, Package};
pub use policy::{Verdict, VulnPolicy};
pub use report::{Finding, Report};
