//! `cbk verify`.

/// Arguments of `cbk verify`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `cbk verify`.
pub async fn run(_args: Args) -> miette::Result<u8> {
    super::not_yet("verify")
}
