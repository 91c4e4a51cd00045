//! `cbk state`.

/// Arguments of `cbk state`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `cbk state`.
pub async fn run(_args: Args) -> miette::Result<u8> {
    super::not_yet("state")
}

/// Arguments of `cbk unlock`.
#[derive(Debug, clap::Args)]
pub struct UnlockArgs {
    /// The lock id printed by the refused apply.
    pub lock_id: String,
}

/// Runs `cbk unlock`.
pub async fn unlock(_args: UnlockArgs) -> miette::Result<u8> {
    super::not_yet("unlock")
}
