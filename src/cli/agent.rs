//! `cbk agent`: the node agent entry point (the controller starts it, over SSH or locally).
//!
//! Reads one JSON request on stdin and writes JSON-line events on stdout; see
//! [`crate::agent::serve`]. Exit 0 on success, 3 when the operation failed.

use crate::agent::serve::{Registry, serve};

/// Arguments of `cbk agent` (none: everything, credentials included, arrives on stdin).
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `cbk agent`.
pub async fn run(_args: Args) -> miette::Result<u8> {
    let mut registry = Registry::with_builtins();
    crate::agent::ops::register(&mut registry);
    Ok(serve(&registry, tokio::io::stdin(), tokio::io::stdout()).await)
}
