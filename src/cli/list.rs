//! `cbk list`.

/// Arguments of `cbk list`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `cbk list`.
pub async fn run(_args: Args) -> miette::Result<u8> {
    super::not_yet("list")
}
