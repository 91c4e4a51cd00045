//! `cbk plan`.

/// Arguments of `cbk plan`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `cbk plan`.
pub async fn run(_args: Args) -> miette::Result<u8> {
    super::not_yet("plan")
}
