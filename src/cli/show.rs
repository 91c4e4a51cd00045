//! `cbk show`.

/// Arguments of `cbk show`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `cbk show`.
pub async fn run(_args: Args) -> miette::Result<u8> {
    super::not_yet("show")
}
