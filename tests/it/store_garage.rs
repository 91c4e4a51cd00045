//! Interoperability with Garage, a strict production S3 server (real SigV4 checks; rejects the
//! SDK's streaming signed PutObject; ignores conditional writes and SSE). Skipped with a notice
//! when the garage binary was not built (`bash tests/infra/s3/garage.sh build`; CI skips).

use crate::support;

use crate::support::s3::{
    Garage, GenReader, Recorder, S3Server, file_crc32, gen_crc32, open_store, opts,
};
use bytes::Bytes;
use cbk::plan::model::Sse;
use cbk::store::s3::S3Store;
use cbk::store::{Credentials, NoCheckpoint, Store};
use futures::StreamExt;

const MIB: u64 = 1024 * 1024;

#[tokio::test]
async fn garage_round_trips_and_resumes() {
    let Some(garage) = Garage::start_or_skip("garage_round_trips_and_resumes") else {
        return;
    };
    let (store, cfg) = open_store(&garage, "g", |_| {}).await;
    support::s3::check_basic_semantics(&store).await;
    // Small stream: a single in-memory PutObject (the SDK's streaming PutObject fails here).
    let stats = store
        .put_stream(
            "small",
            &mut GenReader::new(3 * MIB, 5),
            opts(None, &NoCheckpoint),
        )
        .await
        .unwrap();
    assert_eq!(stats.parts_sent, 0);
    assert_eq!(
        &store.get_bytes("small").await.unwrap()[..],
        &GenReader::bytes(3 * MIB, 5)[..]
    );

    // 200 MiB with parallel parts, read back byte-equal with parallel ranged GETs.
    let len = 200 * MIB + 8;
    let stats = store
        .put_stream(
            "big.db",
            &mut GenReader::new(len, 11),
            opts(None, &NoCheckpoint),
        )
        .await
        .unwrap();
    assert_eq!((stats.size, stats.parts_sent), (len, 13));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("big.db");
    assert_eq!(store.get_to_file("big.db", &out).await.unwrap(), len);
    assert_eq!(file_crc32(&out), gen_crc32(len, 11));

    // Killed halfway, resumed by a new client: only the missing parts are sent.
    let rec = Recorder::default();
    store
        .put_stream(
            "r.db",
            &mut GenReader::new(100 * MIB, 3).failing_after(48 * MIB),
            opts(None, &rec),
        )
        .await
        .unwrap_err();
    let state = rec.last().unwrap();
    assert_eq!(state.parts.len(), 3);
    let listed = store
        .client()
        .list_parts()
        .bucket(store.bucket())
        .key("g/r.db")
        .upload_id(&state.upload_id)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.parts().len(), 3);
    let again = S3Store::new(&cfg, Some(garage.credentials()))
        .await
        .unwrap();
    let stats = again
        .put_stream(
            "r.db",
            &mut GenReader::new(100 * MIB, 3),
            opts(Some(state), &rec),
        )
        .await
        .unwrap();
    assert_eq!((stats.parts_sent, stats.sent), (4, 52 * MIB));
    again.get_to_file("r.db", &out).await.unwrap();
    assert_eq!(file_crc32(&out), gen_crc32(100 * MIB, 3));
}

#[tokio::test]
async fn garage_lacks_conditional_writes_and_sse_and_cbk_says_so() {
    let Some(garage) = Garage::start_or_skip("garage_lacks_conditional_writes_and_sse") else {
        return;
    };
    let (store, _) = open_store(&garage, "", |c| c.sse = Some(Sse::Aes256)).await;
    assert!(!store.probe_conditional_writes().await.unwrap());
    assert_eq!(store.probe_encryption().await.unwrap(), Some(false));
    // The probes leave nothing behind.
    assert!(store.list("").await.unwrap().is_empty());
}

#[tokio::test]
async fn garage_lists_ten_thousand_keys_and_checks_signatures() {
    let Some(garage) = Garage::start_or_skip("garage_lists_ten_thousand_keys") else {
        return;
    };
    let (store, cfg) = open_store(&garage, "many", |_| {}).await;
    let keys: Vec<String> = (0..10_000).map(|i| format!("k/{i:05}")).collect();
    futures::stream::iter(keys.iter())
        .for_each_concurrent(64, |k| {
            let s = &store;
            async move { s.put_bytes(k, Bytes::from_static(b"x")).await.unwrap() }
        })
        .await;
    let listed = store.list("k/").await.unwrap();
    assert!(listed.iter().map(|m| &m.key).eq(keys.iter()));
    store.delete_many(&keys).await.unwrap();
    assert!(store.list("").await.unwrap().is_empty());
    let wrong = S3Store::new(
        &cfg,
        Some(Credentials {
            access_key_id: garage.credentials().access_key_id,
            secret_access_key: "f".repeat(64),
            session_token: None,
        }),
    )
    .await
    .unwrap();
    let e = wrong
        .put_bytes("x", Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("403"), "{e}");
    assert!(!e.to_string().contains(&"f".repeat(64)));
}
