#![forbid(unsafe_code)]
//! `palisade-runtime`: an OCI runtime with runc's command line, secure by default.

mod cli;
mod commands;
mod log;
mod tty;

use clap::Parser;

fn main() {
    let args = cli::Cli::parse();
    log::init(&args.global);
    let code = match commands::dispatch(args) {
        Ok(code) => code,
        Err(e) => {
            log::error(&e);
            1
        }
    };
    std::process::exit(code);
}
