//! `cbk key list|add|remove`: the recipients of an encrypted repository. Adding or removing one
//! re-seals the small objects (data keys, node manifests), never the SSTables.

use super::StoreArgs;
use crate::crypt::Recipients;

/// Arguments of `cbk key`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

/// What to do with the recipients.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Show the repository's recipient fingerprints and the plan's recipients.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Re-seal every data key and manifest to the plan's recipients plus RECIPIENT (needs the
    /// identity: CBK_IDENTITY_FILE); then add RECIPIENT to the plan.
    Add {
        /// The age recipient (`age1...`) to add.
        recipient: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Re-seal every data key and manifest to the plan's recipients minus RECIPIENT (needs the
    /// identity); then remove RECIPIENT from the plan.
    Remove {
        /// The age recipient (`age1...`) to remove.
        recipient: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Runs `cbk key`.
pub async fn run(args: Args) -> miette::Result<u8> {
    match args.action {
        Action::List { store } => list(store).await,
        Action::Add { recipient, store } => change(store, &recipient, true).await,
        Action::Remove { recipient, store } => change(store, &recipient, false).await,
    }
}

async fn list(args: StoreArgs) -> miette::Result<u8> {
    let store = args.open().await?;
    let marker = crate::repo::encrypted::marker_encryption(store.as_ref())
        .await
        .map_err(|e| miette::miette!("{e}"))?;
    let Some(m) = marker else {
        println!("{} is not encrypted", store.describe());
        return Ok(0);
    };
    println!("{} is encrypted ({})", store.describe(), m.scheme);
    let planned = args.recipients()?;
    for f in &m.recipients {
        let name = planned
            .iter()
            .find(|r| &crate::crypt::fingerprint(r) == f)
            .map(|r| format!("  {r}"))
            .unwrap_or_default();
        println!("recipient {f}{name}");
    }
    Ok(0)
}

async fn change(args: StoreArgs, recipient: &str, add: bool) -> miette::Result<u8> {
    let bad = |e: String| miette::miette!("{e}");
    Recipients::parse_one(recipient)
        .map_err(|e| miette::miette!("`{recipient}` is not an age recipient: {e}"))?;
    let current = args.recipients()?;
    if current.is_empty() {
        return Err(miette::miette!(
            help = "pass --plan PLAN.toml of a plan with [encryption] recipients",
            "`cbk key` needs the repository's current recipients from a plan"
        ));
    }
    let mut next: Vec<String> = current.clone();
    if add {
        next.push(recipient.trim().to_string());
    } else {
        next.retain(|r| r.trim() != recipient.trim());
        if next.len() == current.len() {
            return Err(miette::miette!(
                "`{recipient}` is not one of the plan's recipients"
            ));
        }
    }
    next.sort();
    next.dedup();
    if next.is_empty() {
        return Err(miette::miette!(
            "removing `{recipient}` would leave no recipient: nobody could read the backups"
        ));
    }
    let from = Recipients::parse(&current).map_err(bad)?;
    let to = Recipients::parse(&next).map_err(bad)?;
    let store = args.open().await?;
    let ids = args.identity(store.as_ref()).await?.ok_or_else(|| {
        miette::miette!(
            "{} is not encrypted: there are no keys to change",
            store.describe()
        )
    })?;
    let r = crate::repo::rekey::rekey(store.as_ref(), &ids, &from, &to)
        .await
        .map_err(|e| miette::miette!("{e}"))?;
    println!(
        "re-sealed {} data keys and {} manifests to {} recipients; now {} `{recipient}` in the plan's [encryption] recipients",
        r.data_keys,
        r.manifests,
        r.recipients.len(),
        if add { "add" } else { "remove" }
    );
    Ok(0)
}
