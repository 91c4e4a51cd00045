//! Where a restored backup comes from, behind one trait: the restore flow
//! ([`super::restore`]) drives `resolve` and `fetch` through [`RestoreSource`] and never names a
//! source. Two sources exist: cbk's own repository backups ([`repository`]) and the buckets of
//! the old `cassandra_backups` tool (`legacy:<base>/<name>`, [`legacy`]). A third implements
//! the trait in a module of its own and gets one arm in [`open`], the only place that tells the
//! sources apart; what the later tasks need it writes into the common journal types of
//! [`super::restore_state`].

pub mod legacy;
mod repository;

use super::Runtime;
use super::restore_state::{Resolved, ResolvedHost, StagedTable};
use crate::agent::ops::fetch::FetchFile;
use crate::cassandra::layout::TableFilter;
use crate::exec::TaskError;
use crate::plan::model::RestoreConfig;
use async_trait::async_trait;
use std::collections::BTreeMap;

/// What a source's `resolve` decided: the `resolve` checkpoint and the task's summary.
#[derive(Debug)]
pub struct Resolution {
    pub resolved: Resolved,
    pub summary: String,
}

/// One backed-up host that `fetch` stages on its target.
#[derive(Debug, Clone, Copy)]
pub struct HostToStage<'a> {
    pub source: &'a ResolvedHost,
    /// Folder of this source under the staging root: `src-<name>/` when the target restores
    /// several sources (`loader`), else empty.
    pub prefix: &'a str,
    /// Whether the target restores several sources.
    pub several: bool,
}

/// What `fetch` stages on one target, filled by the source of each backed-up host.
#[derive(Debug, Default)]
pub struct Staging {
    /// Destination (relative to the staging root) -> the object staged there.
    pub files: BTreeMap<String, FetchFile>,
    /// Staged table folder (relative to the staging root) -> the table.
    pub tables: BTreeMap<String, StagedTable>,
    /// Incremental files left out because the snapshot already holds their data.
    pub covered: u64,
}

/// A kind of backup a restore reads. Everything after `fetch` (matching tables, moving,
/// loading, repair) works on the staged folders and the journal types alone.
#[async_trait]
pub trait RestoreSource: Send + Sync {
    /// Picks the backup and assigns its hosts to `targets` (the plan's hosts), before any
    /// node is touched; refuses what cannot be restored.
    async fn resolve(
        &self,
        rt: &Runtime,
        cfg: &RestoreConfig,
        targets: &[String],
    ) -> Result<Resolution, TaskError>;

    /// Adds the files and tables (with their schema when the source has one) of one
    /// backed-up host that pass `filter` to `staging`.
    async fn stage(
        &self,
        rt: &Runtime,
        cfg: &RestoreConfig,
        filter: &TableFilter,
        host: HostToStage<'_>,
        staging: &mut Staging,
    ) -> Result<(), TaskError>;
}

/// The source `restore.source` names: `legacy:<base>/<name>` or a backup of the repository
/// (`latest`, `latest-before:<time>`, a name).
pub fn open(source: &str) -> Box<dyn RestoreSource> {
    match crate::repo::legacy::source_spec(source) {
        Some(spec) => Box::new(legacy::Legacy::new(spec)),
        None => Box::new(repository::Repository::new(source)),
    }
}
