//! `cbk validate`.

/// Arguments of `cbk validate`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `cbk validate`.
pub async fn run(_args: Args) -> miette::Result<u8> {
    super::not_yet("validate")
}
