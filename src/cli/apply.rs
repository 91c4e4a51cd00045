//! `cbk apply`.

/// Arguments of `cbk apply`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `cbk apply`.
pub async fn run(_args: Args) -> miette::Result<u8> {
    super::not_yet("apply")
}
