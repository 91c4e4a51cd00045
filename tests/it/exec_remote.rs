//! State in a store: refused on a store without conditional writes; otherwise the same journal,
//! lock, resume and serial semantics as local state, with objects.

use crate::exec_support::{Behaviour, FakeRunner, planned_run, task};
use async_trait::async_trait;
use bytes::Bytes;
use cbk::exec::lock::{self, LockInfo};
use cbk::exec::walker::WalkOptions;
use cbk::exec::{ApplyOptions, ExecError, NoProgress, RunStatus, StateLocation, TaskStatus, apply};
use cbk::store::{
    ObjectMeta, PutIfAbsent, PutStats, PutStreamOptions, Store, StoreError, StoreResult,
};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncRead;
use tokio_util::sync::CancellationToken;

/// An in-memory store; `conditional` says whether `put_if_absent` is honoured.
struct MemStore {
    objects: Mutex<BTreeMap<String, Bytes>>,
    conditional: bool,
}

impl MemStore {
    fn new(conditional: bool) -> Arc<MemStore> {
        Arc::new(MemStore {
            objects: Mutex::new(BTreeMap::new()),
            conditional,
        })
    }
    fn keys(&self) -> Vec<String> {
        self.objects.lock().expect("lock").keys().cloned().collect()
    }
    fn get(&self, k: &str) -> Option<Bytes> {
        self.objects.lock().expect("lock").get(k).cloned()
    }
}

fn unsupported<T>(what: &str) -> StoreResult<T> {
    Err(StoreError::Unsupported(what.into()))
}

#[async_trait]
impl Store for MemStore {
    fn describe(&self) -> String {
        "mem://test".into()
    }
    async fn put_bytes(&self, key: &str, data: Bytes) -> StoreResult<()> {
        self.objects.lock().expect("lock").insert(key.into(), data);
        Ok(())
    }
    async fn put_if_absent(&self, key: &str, data: Bytes) -> StoreResult<PutIfAbsent> {
        let mut o = self.objects.lock().expect("lock");
        if self.conditional && o.contains_key(key) {
            return Ok(PutIfAbsent::AlreadyExists);
        }
        o.insert(key.into(), data);
        Ok(PutIfAbsent::Created)
    }
    async fn put_stream(
        &self,
        _key: &str,
        _reader: &mut (dyn AsyncRead + Send + Unpin),
        _opts: PutStreamOptions<'_>,
    ) -> StoreResult<PutStats> {
        unsupported("put_stream")
    }
    async fn get_bytes(&self, key: &str) -> StoreResult<Bytes> {
        self.get(key)
            .ok_or_else(|| StoreError::NotFound(key.into()))
    }
    async fn get_stream(&self, _key: &str) -> StoreResult<Box<dyn AsyncRead + Send + Unpin>> {
        unsupported("get_stream")
    }
    async fn get_to_file(&self, _key: &str, _path: &Path) -> StoreResult<u64> {
        unsupported("get_to_file")
    }
    async fn head(&self, key: &str) -> StoreResult<Option<ObjectMeta>> {
        Ok(self.get(key).map(|b| ObjectMeta {
            key: key.into(),
            size: b.len() as u64,
            modified: None,
        }))
    }
    async fn list(&self, prefix: &str) -> StoreResult<Vec<ObjectMeta>> {
        Ok(self
            .objects
            .lock()
            .expect("lock")
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, b)| ObjectMeta {
                key: k.clone(),
                size: b.len() as u64,
                modified: None,
            })
            .collect())
    }
    async fn delete_many(&self, keys: &[String]) -> StoreResult<()> {
        let mut o = self.objects.lock().expect("lock");
        for k in keys {
            o.remove(k);
        }
        Ok(())
    }
    async fn abort_stale_uploads(&self, _prefix: &str, _older: u64) -> StoreResult<u32> {
        Ok(0)
    }
    async fn probe_conditional_writes(&self) -> StoreResult<bool> {
        Ok(self.conditional)
    }
}

fn opts(store: Arc<MemStore>, cancel: CancellationToken) -> ApplyOptions {
    ApplyOptions {
        state: StateLocation::Remote(store),
        walk: WalkOptions {
            retry_backoff: Duration::from_millis(5),
            ..WalkOptions::default()
        },
        progress: Arc::new(NoProgress),
        cancel,
        saved_plan: true,
        plan_label: "remote-test".into(),
        lock_timeout: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_state_is_refused_without_conditional_writes() {
    let store = MemStore::new(false);
    let plan = planned_run(vec![task("a", None, "s", &[])], "/nonexistent.toml");
    let runner = Arc::new(FakeRunner::default());
    let err = apply(
        &plan,
        runner.clone(),
        opts(store.clone(), CancellationToken::new()),
    )
    .await
    .expect_err("refused");
    assert!(err.is_refusal());
    assert!(
        err.to_string()
            .contains("the store mem://test does not honour conditional writes"),
        "{err}"
    );
    assert_eq!(runner.checks_of("a"), 0);
    assert!(
        store.keys().is_empty(),
        "nothing written: {:?}",
        store.keys()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_state_locks_journals_resumes_and_moves_the_serial() {
    let store = MemStore::new(true);
    let plan = planned_run(
        vec![
            task("a", None, "s", &[]),
            task("slow", None, "s", &["a"]),
            task("c", None, "s", &["slow"]),
        ],
        "/nonexistent.toml",
    );
    // A held lock is reported with its holder.
    let holder = LockInfo::new("apply", "someone else's plan");
    store
        .put_bytes(
            cbk::exec::REMOTE_LOCK,
            serde_json::to_vec(&holder).expect("json").into(),
        )
        .await
        .expect("put");
    let err = apply(
        &plan,
        Arc::new(FakeRunner::default()),
        opts(store.clone(), CancellationToken::new()),
    )
    .await
    .expect_err("locked");
    assert!(err.is_refusal());
    assert!(
        err.to_string()
            .contains(&format!("the state is locked: lock {} held by", holder.id)),
        "{err}"
    );
    // Its holder (this process) is alive: unlock refuses without --force.
    let refused = lock::unlock_remote(
        store.as_ref(),
        cbk::exec::REMOTE_LOCK,
        &holder.id,
        false,
        &|_, _| true,
    )
    .await;
    assert!(
        matches!(refused, Err(lock::LockError::Alive(_))),
        "{refused:?}"
    );
    lock::unlock_remote(
        store.as_ref(),
        cbk::exec::REMOTE_LOCK,
        &holder.id,
        true,
        &|_, _| false,
    )
    .await
    .expect("unlock --force");

    // First attempt: interrupted while `slow` runs.
    let mut first = FakeRunner::default();
    first.behaviour.insert(
        "slow".into(),
        Behaviour {
            sleep: Duration::from_secs(30),
            ..Default::default()
        },
    );
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        c2.cancel();
    });
    let r1 = apply(&plan, Arc::new(first), opts(store.clone(), cancel))
        .await
        .expect("apply");
    assert_eq!(r1.status, RunStatus::Interrupted);
    assert!(store.get(cbk::exec::REMOTE_LOCK).is_none(), "lock released");

    // Resume: `a` is done, `slow` is re-checked, `c` runs; the state moves to serial 1.
    let second = Arc::new(FakeRunner::default());
    let r2 = apply(
        &plan,
        second.clone(),
        opts(store.clone(), CancellationToken::new()),
    )
    .await
    .expect("apply");
    assert_eq!(r2.status, RunStatus::Ok);
    assert!(r2.resumed);
    assert_eq!(r2.run, "runs/00000001/");
    assert!(matches!(r2.tasks[0].status, TaskStatus::AlreadyDone { .. }));
    assert_eq!(second.checks_of("a"), 0);
    assert_eq!(second.applies_of("slow"), 1);
    let state: serde_json::Value =
        serde_json::from_slice(&store.get("state.json").expect("state")).expect("json");
    assert_eq!(state["serial"], 1);
    let (records, next) = cbk::exec::journal::replay_remote(store.as_ref(), "runs/00000001/")
        .await
        .expect("replay")
        .expect("records");
    assert_eq!(records.len() as u64, next);
    let prior = cbk::exec::journal::Prior::from_records(&records);
    assert_eq!(prior.finished, Some(RunStatus::Ok));
    assert_eq!(prior.done.len(), 3);

    // The same plan again: already applied.
    let again = apply(&plan, second, opts(store.clone(), CancellationToken::new())).await;
    assert!(matches!(again, Err(ExecError::AlreadyApplied { .. })));
}
