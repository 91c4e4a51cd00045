//! Task implementations behind the engine's [`TaskRunner`]: one module per family, dispatched
//! by [`TaskKind`]. Tasks reach nodes through [`crate::remote`] transports (data work runs in
//! the node agent) and keep what they learn in the store or in their journaled outcome, so a
//! resumed run finds it again.

pub mod backup;
pub mod custom;
pub mod loader;
pub mod node;
pub mod restore;
mod restore_delta;
pub mod restore_legacy;

use crate::exec::{Check, Outcome, TaskContext, TaskError, TaskRunner};
use crate::graph::run::{PlannedRun, PlannedTask, TaskKind};
use crate::plan::model::HostSpec;
use crate::remote::Transport;
use crate::store::{Credentials, Store};
use async_trait::async_trait;
use std::sync::Arc;
use tokio::sync::OnceCell;

/// Shared state of one apply: the plan, connections and the store.
pub struct Runtime {
    pub run: Arc<PlannedRun>,
    /// Connections, at most `parallelism` open at once.
    transports: crate::remote::pool::Pool,
    store: OnceCell<Arc<dyn Store>>,
    credentials: Option<Credentials>,
    /// The identity, read once when the repository turns out to be encrypted (restore).
    identities: OnceCell<Option<crate::crypt::Identities>>,
}

impl Runtime {
    /// A runtime for `run`; credentials come from the environment variables the plan names.
    /// At most `parallelism` connections stay open (the tasks running at once).
    pub fn new(run: Arc<PlannedRun>, parallelism: usize) -> Result<Runtime, TaskError> {
        let credentials = match &run.plan.storage {
            Some(s) => crate::store::credentials_from_env(s)
                .map_err(|e| TaskError::fatal(e.to_string()))?,
            None => None,
        };
        Ok(Runtime {
            run,
            transports: crate::remote::pool::Pool::new(parallelism),
            store: OnceCell::new(),
            credentials,
            identities: OnceCell::new(),
        })
    }

    /// The store of the plan.
    pub async fn store(&self) -> Result<Arc<dyn Store>, TaskError> {
        let config = self
            .run
            .plan
            .storage
            .as_ref()
            .ok_or_else(|| TaskError::fatal("the plan has no [storage]"))?;
        self.store
            .get_or_try_init(|| async {
                crate::store::open(config, self.credentials.clone())
                    .await
                    .map_err(store_err)
            })
            .await
            .cloned()
    }

    /// The plan's `[encryption]` recipients (`None`: the plan stores objects as they are).
    pub fn recipients(&self) -> Result<Option<crate::crypt::Recipients>, TaskError> {
        self.run
            .plan
            .encryption
            .as_ref()
            .map(|e| crate::crypt::Recipients::parse(&e.recipients))
            .transpose()
            .map_err(|e| TaskError::fatal(format!("[encryption] recipients: {e}")))
    }

    /// The identity for reading the repository: `None` when the repository is plain; an error
    /// naming `CBK_IDENTITY_FILE` when it is encrypted and no identity is given.
    pub async fn identities(&self) -> Result<Option<crate::crypt::Identities>, TaskError> {
        let store = self.store().await?;
        let env = self
            .run
            .plan
            .encryption
            .as_ref()
            .and_then(|e| e.identity_env.clone());
        self.identities
            .get_or_try_init(|| async {
                crate::repo::encrypted::identity_for(store.as_ref(), env.as_deref())
                    .await
                    .map_err(repo_err)
            })
            .await
            .cloned()
    }

    /// The agent request envelope (store and credentials travel only here, on stdin).
    /// Operations that need no store get neither store settings nor credentials.
    pub fn agent_request(&self, op: serde_json::Value, with_store: bool) -> serde_json::Value {
        let req = crate::agent::protocol::AgentRequest {
            protocol: crate::agent::protocol::PROTOCOL_VERSION,
            store: if with_store {
                self.run.plan.storage.clone()
            } else {
                None
            },
            credentials: if with_store {
                self.credentials.clone()
            } else {
                None
            },
            identity: match with_store {
                true => self
                    .identities
                    .get()
                    .cloned()
                    .flatten()
                    .map(|i| i.to_text()),
                false => None,
            },
            op,
        };
        serde_json::to_value(req).unwrap_or_default()
    }

    /// The host as the plan describes it.
    pub fn host_spec(&self, host: &str) -> HostSpec {
        self.run
            .plan
            .cluster
            .hosts
            .iter()
            .map(|h| h.spec())
            .find(|h| h.name == host)
            .unwrap_or_else(|| HostSpec {
                name: host.to_string(),
                ..Default::default()
            })
    }

    /// A (cached) connection to `host`.
    pub async fn transport(&self, host: &str) -> Result<Arc<dyn Transport>, TaskError> {
        self.transports
            .get(host, || {
                crate::remote::for_host(&self.run.plan.connection, &self.host_spec(host))
            })
            .await
            .map_err(remote_err)
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.transports.close_all().await;
    }
}

/// Maps a store error to a task error (retryable when the store says so).
pub fn store_err(e: crate::store::StoreError) -> TaskError {
    let retryable = matches!(
        e,
        crate::store::StoreError::Request {
            retryable: true,
            ..
        }
    );
    TaskError {
        message: e.to_string(),
        retryable,
    }
}

/// Maps a repository error to a task error (store errors keep their retryability).
pub fn repo_err(e: crate::repo::inventory::RepoError) -> TaskError {
    match e {
        crate::repo::inventory::RepoError::Store(e) => store_err(e),
        other => TaskError::fatal(other.to_string()),
    }
}

/// Maps a transport error to a task error (lost connections are retryable).
pub fn remote_err(e: crate::remote::RemoteError) -> TaskError {
    let retryable = matches!(e, crate::remote::RemoteError::Disconnected { .. });
    TaskError {
        message: e.to_string(),
        retryable,
    }
}

/// The task runner `cbk apply` uses.
pub struct Runner {
    pub rt: Arc<Runtime>,
}

impl Runner {
    /// A runner for a planned run whose walk runs `parallelism` tasks at once.
    pub fn new(run: Arc<PlannedRun>, parallelism: usize) -> Result<Runner, TaskError> {
        Ok(Runner {
            rt: Arc::new(Runtime::new(run, parallelism)?),
        })
    }
}

fn host_of(task: &PlannedTask) -> Result<&str, TaskError> {
    task.host
        .as_deref()
        .ok_or_else(|| TaskError::fatal(format!("{} needs a host", task.address)))
}

#[async_trait]
impl TaskRunner for Runner {
    async fn check(&self, task: &PlannedTask, cx: &TaskContext) -> Result<Check, TaskError> {
        let rt = &self.rt;
        match task.kind {
            TaskKind::Snapshot => backup::snapshot_check(rt, task, host_of(task)?).await,
            TaskKind::Manifest => backup::manifest_check(rt, task, host_of(task)?).await,
            TaskKind::ClearSnapshot => backup::clear_snapshot_check(rt, task, host_of(task)?).await,
            TaskKind::Catalog => backup::catalog_check(rt).await,
            TaskKind::Stop => restore::stop_check(rt, host_of(task)?).await,
            TaskKind::Start | TaskKind::WaitUp => restore::up_check(rt, task, host_of(task)?).await,
            TaskKind::Exec => custom::check(rt, task, cx).await,
            // Checked inside their apply (idempotent by construction or by their own journal
            // records): listed so that a new kind cannot compile without a decision here.
            TaskKind::Probe
            | TaskKind::Flush
            | TaskKind::Upload
            | TaskKind::UploadIncremental
            | TaskKind::Resolve
            | TaskKind::Fetch
            | TaskKind::MatchTables
            | TaskKind::ClearCommitlog
            | TaskKind::Move
            | TaskKind::RebuildIndex
            | TaskKind::Import
            | TaskKind::Refresh
            | TaskKind::Loader
            | TaskKind::Repair
            | TaskKind::Cleanup => Ok(Check::Needed),
        }
    }

    async fn apply(&self, task: &PlannedTask, cx: &TaskContext) -> Result<Outcome, TaskError> {
        let rt = &self.rt;
        match task.kind {
            TaskKind::Probe => backup::probe(rt, task, host_of(task)?).await,
            TaskKind::Flush => backup::flush(rt, task, host_of(task)?).await,
            TaskKind::Snapshot => backup::snapshot(rt, task, host_of(task)?).await,
            TaskKind::Upload | TaskKind::UploadIncremental => {
                backup::upload(rt, task, host_of(task)?, cx).await
            }
            TaskKind::Manifest => backup::manifest(rt, task, host_of(task)?).await,
            TaskKind::ClearSnapshot => backup::clear_snapshot(rt, task, host_of(task)?).await,
            TaskKind::Catalog => backup::catalog(rt).await,
            TaskKind::Resolve => restore::resolve(rt, cx).await,
            TaskKind::Fetch => restore::fetch(rt, task, host_of(task)?, cx).await,
            TaskKind::MatchTables => restore::match_tables(rt, task, host_of(task)?, cx).await,
            TaskKind::Stop => restore::stop(rt, host_of(task)?).await,
            TaskKind::ClearCommitlog => {
                restore::clear_commitlog(rt, task, host_of(task)?, cx).await
            }
            TaskKind::Move => restore::relocate(rt, task, host_of(task)?, cx).await,
            TaskKind::Start => restore::start(rt, host_of(task)?).await,
            TaskKind::WaitUp => restore::wait_up(rt, host_of(task)?).await,
            TaskKind::RebuildIndex => {
                restore_legacy::rebuild_index(rt, task, host_of(task)?, cx).await
            }
            TaskKind::Import | TaskKind::Refresh => {
                restore::load_live(rt, task, host_of(task)?, cx).await
            }
            TaskKind::Loader => loader::load(rt, task, host_of(task)?, cx).await,
            TaskKind::Repair => restore::repair(rt, task, host_of(task)?, cx).await,
            TaskKind::Cleanup => restore::cleanup(rt, task, host_of(task)?, cx).await,
            TaskKind::Exec => custom::apply(rt, task, cx).await,
        }
    }
}
