//! A bare registry for development and the conformance suite: `serve <root> <addr>`, no auth.
//! The real entry point is `palisade registry serve --config FILE`.

use std::sync::Arc;
use std::time::Duration;

use palisade_registry::server::{Limits, Registry};
use palisade_registry::storage::fs::FsStorage;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let root = args.next().ok_or("usage: serve <root> <addr>")?;
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:5000".into());
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let reg = Arc::new(Registry::new(FsStorage::open(root)?, Limits::default()));
        let l = tokio::net::TcpListener::bind(&addr).await?;
        let stop = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        palisade_registry::serve::serve(reg, l, None, stop, Duration::from_secs(30)).await?;
        Ok(())
    })
}
