//! Palisade's vulnerability scanner.
//!
//! - [`version`]: version ordering, one module per ecosystem.
//! - [`osv`]: the OSV record model; [`db`]: the local database built from OSV records.
//! - [`advisory`]: a stored advisory and its evaluation against an installed version.

pub mod advisory;
pub mod cvss;
pub mod db;
pub mod osv;
pub mod version;

pub use advisory::Advisory;
pub use cvss::Severity;
pub use db::{Database, DbError};
pub mod inventory;

pub use inventory::{scan_dir, scan_layers, Inventory, Package};
pub mod report;

pub use report::{Finding, Report};
pub mod image;

pub use image::inventory_of_image;
pub mod formats;
pub mod policy;

pub use policy::{Verdict, VulnPolicy};
pub mod gate;
