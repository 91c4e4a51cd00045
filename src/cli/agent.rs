//! `cbk agent`.

/// Arguments of `cbk agent`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `cbk agent`.
pub async fn run(_args: Args) -> miette::Result<u8> {
    super::not_yet("agent")
}
