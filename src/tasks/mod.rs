//! Task implementations behind the engine's [`TaskRunner`]: one module per family, dispatched
//! by [`TaskSpec`] (each task gets its own typed parameters). Tasks reach nodes through [`crate::remote`] transports (data work runs in
//! the node agent) and keep what they learn in the store or in their journaled outcome, so a
//! resumed run finds it again.

pub mod backup;
pub mod bandwidth;
pub mod custom;
pub mod loader;
pub mod node;
mod repair_ranges;
pub mod restore;
mod restore_delta;
pub mod restore_keyspaces;
pub mod restore_source;
mod restore_state;
pub mod restore_topology;

use crate::exec::{Check, Outcome, TaskContext, TaskError, TaskRunner};
use crate::graph::run::{PlannedRun, PlannedTask};
use crate::graph::spec::TaskSpec;
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
    /// `limits.bandwidth` and `limits.cluster_bandwidth` shared among the transfers under way.
    pub bandwidth: Arc<bandwidth::Bandwidth>,
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
            bandwidth: bandwidth::Bandwidth::new(&run.plan.limits),
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

    /// The agent request for `op` (store and credentials travel only here, on stdin).
    /// Operations that need no store get neither store settings nor credentials.
    pub fn agent_request(&self, op: crate::agent::protocol::Op) -> serde_json::Value {
        self.agent_request_at(op, None)
    }

    /// [`Runtime::agent_request`] whose store transfers start at `bandwidth` bytes per second.
    pub fn agent_request_at(
        &self,
        op: crate::agent::protocol::Op,
        bandwidth: Option<u64>,
    ) -> serde_json::Value {
        let with_store = op.needs_store();
        let req = crate::agent::protocol::AgentRequest {
            bandwidth,
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

/// The one match from a task's kind to its implementation: each gets its own typed parameters.
/// No wildcard arm, so a new kind cannot compile without both a check and an apply.
#[async_trait]
impl TaskRunner for Runner {
    async fn check(&self, task: &PlannedTask, cx: &TaskContext) -> Result<Check, TaskError> {
        let rt = &self.rt;
        match &task.spec {
            TaskSpec::Snapshot(p) => backup::snapshot_check(rt, p, host_of(task)?).await,
            TaskSpec::Manifest(_) => backup::manifest_check(rt, task, host_of(task)?).await,
            TaskSpec::ClearSnapshot(p) => backup::clear_snapshot_check(rt, p, host_of(task)?).await,
            TaskSpec::Catalog(p) => backup::catalog_check(rt, p).await,
            TaskSpec::Stop(_) => restore::stop_check(rt, host_of(task)?).await,
            TaskSpec::Start(_) | TaskSpec::WaitUp(_) => {
                restore::up_check(rt, task, host_of(task)?).await
            }
            TaskSpec::Exec(p) => custom::check(rt, task, p, cx).await,
            // Checked inside their apply (idempotent by construction or by their own journal
            // records): listed so that a new kind cannot compile without a decision here.
            TaskSpec::Probe(_)
            | TaskSpec::Flush(_)
            | TaskSpec::Upload(_)
            | TaskSpec::UploadIncremental(_)
            | TaskSpec::Resolve(_)
            | TaskSpec::Fetch(_)
            | TaskSpec::MatchTables(_)
            | TaskSpec::ClearCommitlog(_)
            | TaskSpec::Move(_)
            | TaskSpec::RebuildIndex(_)
            | TaskSpec::Import(_)
            | TaskSpec::Refresh(_)
            | TaskSpec::Loader(_)
            | TaskSpec::Repair(_)
            | TaskSpec::Cleanup(_) => Ok(Check::Needed),
        }
    }

    async fn apply(&self, task: &PlannedTask, cx: &TaskContext) -> Result<Outcome, TaskError> {
        let rt = &self.rt;
        match &task.spec {
            TaskSpec::Probe(_) => backup::probe(rt, task, host_of(task)?).await,
            TaskSpec::Flush(_) => backup::flush(rt, task, host_of(task)?).await,
            TaskSpec::Snapshot(p) => backup::snapshot(rt, p, host_of(task)?).await,
            TaskSpec::Upload(p) => backup::upload(rt, task, Some(p), host_of(task)?, cx).await,
            TaskSpec::UploadIncremental(_) => {
                backup::upload(rt, task, None, host_of(task)?, cx).await
            }
            TaskSpec::Manifest(_) => backup::manifest(rt, task, host_of(task)?).await,
            TaskSpec::ClearSnapshot(p) => backup::clear_snapshot(rt, p, host_of(task)?).await,
            TaskSpec::Catalog(p) => backup::catalog(rt, p).await,
            TaskSpec::Resolve(_) => restore::resolve(rt, cx).await,
            TaskSpec::Fetch(p) => restore::fetch(rt, task, p, host_of(task)?, cx).await,
            TaskSpec::MatchTables(_) => restore::match_tables(rt, task, host_of(task)?, cx).await,
            TaskSpec::Stop(_) => restore::stop(rt, host_of(task)?).await,
            TaskSpec::ClearCommitlog(_) => {
                restore::clear_commitlog(rt, task, host_of(task)?, cx).await
            }
            TaskSpec::Move(_) => restore::relocate(rt, task, host_of(task)?, cx).await,
            TaskSpec::Start(_) => restore::start(rt, host_of(task)?).await,
            TaskSpec::WaitUp(_) => restore::wait_up(rt, host_of(task)?).await,
            TaskSpec::RebuildIndex(_) => {
                restore_source::legacy::rebuild_index(rt, task, host_of(task)?, cx).await
            }
            TaskSpec::Import(_) => restore::load_live(rt, task, host_of(task)?, cx).await,
            TaskSpec::Refresh(_) => restore::load_live(rt, task, host_of(task)?, cx).await,
            TaskSpec::Loader(p) => loader::load(rt, task, p, host_of(task)?, cx).await,
            TaskSpec::Repair(p) => restore::repair(rt, p, host_of(task)?, cx).await,
            TaskSpec::Cleanup(_) => restore::cleanup(rt, task, host_of(task)?, cx).await,
            TaskSpec::Exec(p) => custom::apply(rt, task, p, cx).await,
        }
    }
}
