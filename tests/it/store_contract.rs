//! One store contract, run against every backend: the local folder (`file://`), moto, and
//! Garage when its binary was built (`bash tests/infra/s3/garage.sh build`; skipped with a
//! notice otherwise). Every backend is opened through `store::open`, as a plan opens it. Where a
//! backend legitimately differs, the documented difference is asserted (docs/storage.md):
//! a local folder has no multipart upload to resume (a streamed write restarts, atomically),
//! and Garage ignores conditional writes.

use crate::support::s3::{
    Garage, GenReader, Moto, Recorder, S3Server, file_crc32, gen_crc32, new_bucket, opts,
    storage_config,
};
use bytes::Bytes;
use cbk::plan::model::StorageConfig;
use cbk::store::{self, Credentials, NoCheckpoint, PutIfAbsent, Store, StoreError};
use futures::StreamExt;
use std::sync::Arc;
use tokio::io::AsyncReadExt;

const MIB: u64 = 1024 * 1024;

/// A backend under test and what the contract allows it to do differently.
struct Backend {
    name: &'static str,
    config: StorageConfig,
    credentials: Option<Credentials>,
    /// Streams longer than a part become resumable multipart uploads.
    multipart: bool,
    /// Create-only writes are enforced.
    conditional_writes: bool,
}

impl Backend {
    async fn open(&self) -> Arc<dyn Store> {
        store::open(&self.config, self.credentials.clone())
            .await
            .unwrap_or_else(|e| panic!("{}: open: {e}", self.name))
    }
}

/// An S3 server's backend on a fresh bucket, with 5 MiB parts (the smallest S3 allows).
async fn s3_backend(server: &dyn S3Server, conditional_writes: bool) -> Backend {
    let bucket = new_bucket(server).await;
    let mut config = storage_config(&server.endpoint(), &bucket, "contract");
    config.part_size = Some("5MiB".parse().unwrap());
    config.part_concurrency = Some(4);
    Backend {
        name: server.name(),
        config,
        credentials: Some(server.credentials()),
        multipart: true,
        conditional_writes,
    }
}

#[tokio::test]
async fn fs_meets_the_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend {
        name: "fs",
        config: StorageConfig {
            url: format!("file://{}", dir.path().join("store").display()),
            ..Default::default()
        },
        credentials: None,
        multipart: false,
        conditional_writes: true,
    };
    contract(&backend).await;
}

#[tokio::test]
async fn moto_meets_the_store_contract() {
    let moto = Moto::start();
    contract(&s3_backend(&moto, true).await).await;
}

#[tokio::test]
async fn garage_meets_the_store_contract() {
    let Some(garage) = Garage::start_or_skip("garage_meets_the_store_contract") else {
        return;
    };
    // Garage ignores If-None-Match (store_garage.rs checks cbk says so).
    contract(&s3_backend(&garage, false).await).await;
}

async fn contract(b: &Backend) {
    let store = b.open().await;
    round_trip_head_and_not_found(b, &*store).await;
    create_only(b, &*store).await;
    list_prefix_and_pages(b, &*store).await;
    large_object_and_ranged_download(b, &*store).await;
    abandoned_upload_resumes(b, &*store).await;
    assert!(
        store.list("").await.unwrap().is_empty(),
        "{}: the contract leaves nothing behind",
        b.name
    );
}

async fn round_trip_head_and_not_found(b: &Backend, store: &dyn Store) {
    let body = Bytes::from(GenReader::bytes(70_001, 1));
    store.put_bytes("rt/obj", body.clone()).await.unwrap();
    assert_eq!(store.get_bytes("rt/obj").await.unwrap(), body, "{}", b.name);
    let mut streamed = Vec::new();
    store
        .get_stream("rt/obj")
        .await
        .unwrap()
        .read_to_end(&mut streamed)
        .await
        .unwrap();
    assert_eq!(streamed, body, "{}", b.name);
    let meta = store.head("rt/obj").await.unwrap().expect("head");
    assert_eq!(
        (meta.key.as_str(), meta.size),
        ("rt/obj", 70_001),
        "{}",
        b.name
    );
    // Overwrite replaces.
    store
        .put_bytes("rt/obj", Bytes::from_static(b"v2"))
        .await
        .unwrap();
    assert_eq!(&store.get_bytes("rt/obj").await.unwrap()[..], b"v2");
    // Missing objects: `None` from head, a typed NotFound from every read.
    assert_eq!(store.head("rt/missing").await.unwrap(), None, "{}", b.name);
    assert_eq!(
        store.head("rt").await.unwrap(),
        None,
        "{}: a prefix",
        b.name
    );
    let not_found = |r: Result<(), StoreError>, what: &str| match r {
        Err(StoreError::NotFound(k)) => assert_eq!(k, "rt/missing", "{}: {what}", b.name),
        other => panic!("{}: {what} of a missing object: {other:?}", b.name),
    };
    not_found(store.get_bytes("rt/missing").await.map(drop), "get_bytes");
    not_found(store.get_stream("rt/missing").await.map(drop), "get_stream");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    not_found(
        store.get_to_file("rt/missing", &out).await.map(drop),
        "get_to_file",
    );
    assert!(
        !out.exists(),
        "{}: a failed download leaves no file",
        b.name
    );
    // Delete: gone, and deleting again is not an error.
    let keys = ["rt/obj".to_string(), "rt/missing".to_string()];
    store.delete_many(&keys).await.unwrap();
    store.delete_many(&keys).await.unwrap();
    assert_eq!(store.head("rt/obj").await.unwrap(), None, "{}", b.name);
}

async fn create_only(b: &Backend, store: &dyn Store) {
    let put = |data: &'static [u8]| store.put_if_absent("co/lock", Bytes::from_static(data));
    assert_eq!(
        put(b"first").await.unwrap(),
        PutIfAbsent::Created,
        "{}",
        b.name
    );
    let second = put(b"second").await.unwrap();
    assert_eq!(
        store.probe_conditional_writes().await.unwrap(),
        b.conditional_writes,
        "{}: the probe reports what the server does",
        b.name
    );
    if b.conditional_writes {
        assert_eq!(second, PutIfAbsent::AlreadyExists, "{}", b.name);
        assert_eq!(&store.get_bytes("co/lock").await.unwrap()[..], b"first");
    } else {
        // The documented difference: the server ignores If-None-Match and overwrites.
        assert_eq!(second, PutIfAbsent::Created, "{}", b.name);
        assert_eq!(&store.get_bytes("co/lock").await.unwrap()[..], b"second");
    }
    store.delete_many(&["co/lock".into()]).await.unwrap();
}

async fn list_prefix_and_pages(b: &Backend, store: &dyn Store) {
    // More keys than one S3 listing page (1000), under a string prefix (not a folder).
    let mut keys: Vec<String> = (0..1_050).map(|i| format!("ls/k/{i:04}")).collect();
    keys.extend(["ls/k0", "ls/kz/a", "ls/j/1"].map(String::from));
    futures::stream::iter(keys.iter())
        .for_each_concurrent(32, |k| async move {
            store.put_bytes(k, Bytes::from(k.clone())).await.unwrap()
        })
        .await;
    let names = |v: Vec<cbk::store::ObjectMeta>| v.into_iter().map(|m| m.key).collect::<Vec<_>>();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(
        names(store.list("ls/").await.unwrap()),
        sorted,
        "{}",
        b.name
    );
    let under_k = names(store.list("ls/k/").await.unwrap());
    assert_eq!(under_k.len(), 1_050, "{}", b.name);
    assert!(under_k.iter().eq(keys[..1_050].iter()), "{}", b.name);
    assert_eq!(
        names(store.list("ls/k").await.unwrap()).len(),
        1_052,
        "{}: `ls/k` is a string prefix",
        b.name
    );
    assert_eq!(
        names(store.list("ls/k/100").await.unwrap()),
        (1000..1010)
            .map(|i| format!("ls/k/{i:04}"))
            .collect::<Vec<_>>(),
        "{}",
        b.name
    );
    let sizes = store.list("ls/j/").await.unwrap();
    assert_eq!((sizes.len(), sizes[0].size), (1, 6), "{}", b.name);
    assert!(store.list("ls/none/").await.unwrap().is_empty());
    store.delete_many(&keys).await.unwrap();
    assert!(store.list("ls/").await.unwrap().is_empty(), "{}", b.name);
}

async fn large_object_and_ranged_download(b: &Backend, store: &dyn Store) {
    // Larger than two parts (5 MiB on S3 servers, 16 MiB by default), not a multiple of 8.
    let len = 2 * 16 * MIB + 3 * MIB + 5;
    let stats = store
        .put_stream(
            "big/obj",
            &mut GenReader::new(len, 9),
            opts(None, &NoCheckpoint),
        )
        .await
        .unwrap();
    assert_eq!((stats.size, stats.sent), (len, len), "{}", b.name);
    let parts = if b.multipart { 8 } else { 0 }; // 7 parts of 5 MiB and 5 bytes; a file has none
    assert_eq!(stats.parts_sent, parts, "{}", b.name);
    assert_eq!(store.head("big/obj").await.unwrap().unwrap().size, len);
    // Parallel ranged download (one range per part, four in flight), byte-exact.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("deep/dir/big");
    assert_eq!(store.get_to_file("big/obj", &out).await.unwrap(), len);
    assert_eq!(file_crc32(&out), gen_crc32(len, 9), "{}", b.name);
    // Only the object remains in the folder (no temporary files).
    assert_eq!(std::fs::read_dir(out.parent().unwrap()).unwrap().count(), 1);
    // A download over an existing file replaces it whole.
    std::fs::write(&out, vec![7u8; (len + 100) as usize]).unwrap();
    store.get_to_file("big/obj", &out).await.unwrap();
    assert_eq!(std::fs::metadata(&out).unwrap().len(), len, "{}", b.name);
    assert_eq!(file_crc32(&out), gen_crc32(len, 9), "{}", b.name);
    store.delete_many(&["big/obj".into()]).await.unwrap();
}

async fn abandoned_upload_resumes(b: &Backend, store: &dyn Store) {
    let part = 5 * MIB;
    let len = 5 * part + 1_000;
    // The source dies after two parts: the upload is abandoned, nothing is visible.
    let rec = Recorder::default();
    let err = store
        .put_stream(
            "mp/obj",
            &mut GenReader::new(len, 4).failing_after(2 * part),
            opts(None, &rec),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("source failed on purpose"),
        "{err}"
    );
    assert_eq!(store.head("mp/obj").await.unwrap(), None, "{}", b.name);
    assert!(store.list("mp/").await.unwrap().is_empty(), "{}", b.name);
    let state = rec.last();
    // Another process (a new store) resumes from the checkpoint.
    let again = b.open().await;
    let stats = again
        .put_stream(
            "mp/obj",
            &mut GenReader::new(len, 4),
            opts(state.clone(), &NoCheckpoint),
        )
        .await
        .unwrap();
    if b.multipart {
        let state = state.expect("a checkpoint");
        assert_eq!(
            state.parts.iter().map(|p| p.number).collect::<Vec<_>>(),
            [1, 2],
            "{}",
            b.name
        );
        // The stored parts are not sent again.
        assert_eq!(
            (stats.parts_sent, stats.sent),
            (4, len - 2 * part),
            "{}",
            b.name
        );
    } else {
        // The documented difference: a local write has no parts to resume and restarts.
        assert!(state.is_none(), "{}: no checkpoint", b.name);
        assert_eq!((stats.parts_sent, stats.sent), (0, len), "{}", b.name);
    }
    assert_eq!(stats.size, len, "{}", b.name);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("obj");
    again.get_to_file("mp/obj", &out).await.unwrap();
    assert_eq!(file_crc32(&out), gen_crc32(len, 4), "{}", b.name);
    // An upload abandoned for good is swept by abort_stale_uploads (a local folder removes
    // its temporary file at once, so there is nothing left to sweep).
    store
        .put_stream(
            "mp/gone",
            &mut GenReader::new(len, 5).failing_after(part),
            opts(None, &NoCheckpoint),
        )
        .await
        .unwrap_err();
    let swept = store.abort_stale_uploads("mp/", 0).await.unwrap();
    assert_eq!(swept, u32::from(b.multipart), "{}", b.name);
    assert_eq!(store.abort_stale_uploads("mp/", 0).await.unwrap(), 0);
    store.delete_many(&["mp/obj".into()]).await.unwrap();
}
