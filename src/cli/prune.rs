//! `cbk prune`.

/// Arguments of `cbk prune`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `cbk prune`.
pub async fn run(_args: Args) -> miette::Result<u8> {
    super::not_yet("prune")
}
