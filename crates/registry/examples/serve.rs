//! A registry for development, the conformance suite and benchmarks without building the whole
//! CLI: `serve <root> [addr]` (no auth), or `serve --config FILE` (exactly what
//! `palisade registry serve --config FILE` runs).

use std::sync::Arc;
use std::time::Duration;

use palisade_registry::server::{Limits, Registry};
use palisade_registry::storage::fs::FsStorage;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let first = args
        .next()
        .ok_or("usage: serve <root> [addr] | serve --config FILE")?;
    if first == "--config" {
        let path = args.next().ok_or("--config needs a file")?;
        palisade_registry::daemon::run(
            std::path::Path::new(&path),
            palisade_registry::daemon::Extensions::default(),
            |addr| eprintln!("listening on {addr}"),
        )?;
        return Ok(());
    }
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:5000".into());
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let reg = Arc::new(Registry::new(FsStorage::open(first)?, Limits::default()));
        let l = tokio::net::TcpListener::bind(&addr).await?;
        let stop = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        palisade_registry::serve::serve(reg, l, None, stop, Duration::from_secs(30)).await?;
        Ok(())
    })
}
