//! `cbk agent`: the node agent entry point (the controller starts it, over SSH or locally).
//!
//! Reads one JSON request on stdin and writes JSON-line events on stdout; see
//! [`crate::agent::serve`]. Exit 0 on success, 3 when the operation failed; when the controller
//! went away, the agent exits at once (4), without waiting for work still under way.

use crate::agent::ops::Agent;
use crate::agent::serve::serve;

/// Arguments of `cbk agent` (none: everything, credentials included, arrives on stdin).
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `cbk agent`.
pub async fn run(_args: Args) -> miette::Result<u8> {
    let code = serve(&Agent, tokio::io::stdin(), tokio::io::stdout()).await;
    // Every event is written and flushed. Exit at once: when the controller went away, blocking
    // work (file moves) must not go on while a rerun's agent does the same (a normal return
    // would wait for it); otherwise stdin may still be open for control lines, and the blocking
    // read of tokio's stdin would hold the runtime's shutdown until the controller closes it.
    std::process::exit(i32::from(code));
}
