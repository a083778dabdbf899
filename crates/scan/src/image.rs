//! Scanning stored images: the layers of a [`LocalImage`] from the content store, each
//! decompressed and checked against its diff_id while it is read.

use palisade_image::digest::VerifyingReader;
use palisade_image::{LocalImage, Store, StoreError};

use crate::inventory::{self, Inventory, InventoryError};

/// Why an image could not be inventoried.
#[derive(Debug, thiserror::Error)]
pub enum ImageScanError {
    /// A layer blob could not be opened.
    #[error("layer {digest} of the image cannot be opened: {source}")]
    Blob {
        /// The layer blob's digest.
        digest: String,
        /// The store's error.
        #[source]
        source: Box<StoreError>,
    },
    /// A layer could not be decompressed.
    #[error("layer {digest} cannot be decompressed: {source}")]
    Decompress {
        /// The layer blob's digest.
        digest: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A layer is unreadable or does not match its diff_id.
    #[error(transparent)]
    Inventory(#[from] InventoryError),
}

/// Takes the inventory of a stored image, reading each layer once.
pub fn inventory_of_image(store: &Store, image: &LocalImage) -> Result<Inventory, ImageScanError> {
    let mut readers = Vec::with_capacity(image.layers.len());
    for layer in &image.layers {
        let blob = store
            .open_blob(&layer.digest)
            .map_err(|source| ImageScanError::Blob {
                digest: layer.digest.to_string(),
                source: Box::new(source),
            })?;
        let decoded = inventory::decompress(layer.compression, blob).map_err(|source| {
            ImageScanError::Decompress {
                digest: layer.digest.to_string(),
                source,
            }
        })?;
        readers.push(VerifyingReader::new(decoded, layer.diff_id.clone(), None));
    }
    Ok(inventory::scan_layers(readers)?)
}
