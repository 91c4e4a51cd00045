//! `cbk agent`: the node agent entry point (the controller starts it, over SSH or locally).
//!
//! Reads one JSON request on stdin and writes JSON-line events on stdout; see
//! [`crate::agent::serve`]. Exit 0 on success, 3 when the operation failed; when the controller
//! went away, the agent exits at once (4), without waiting for work still under way.

use crate::agent::ops::Agent;
use crate::agent::serve::{EXIT_CONTROLLER_GONE, serve};

/// Arguments of `cbk agent` (none: everything, credentials included, arrives on stdin).
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `cbk agent`.
pub async fn run(_args: Args) -> miette::Result<u8> {
    let code = serve(&Agent, tokio::io::stdin(), tokio::io::stdout()).await;
    if code == EXIT_CONTROLLER_GONE {
        // As if killed with the controller: blocking work (file moves) must not go on while a
        // rerun's agent does the same; a normal return would wait for it.
        std::process::exit(i32::from(code));
    }
    Ok(code)
}
