//! The S3 store through a fault proxy: 5% of requests fail (500, 503 SlowDown, reset), and a
//! 1 GiB set of files still uploads and reads back byte-equal.

use crate::support;

use crate::support::s3::{
    FaultProxy, Faults, GenReader, Moto, S3Server, file_crc32, gen_crc32, new_bucket,
    storage_config,
};
use cbk::store::{NoCheckpoint, PutStreamOptions, Store};
use futures::StreamExt;

const MIB: u64 = 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_survives_five_percent_faults() {
    let moto = Moto::start();
    let bucket = new_bucket(&moto).await;
    let proxy = FaultProxy::start(
        &moto.endpoint(),
        Faults {
            p500: 0.02,
            p503: 0.02,
            pkill: 0.01,
            seed: 20261125,
        },
    );
    let mut cfg = storage_config(&proxy.endpoint(), &bucket, "faulty");
    cfg.part_size = Some("8MiB".parse().unwrap());
    let store = cbk::store::s3::S3Store::new(&cfg, Some(moto.credentials()))
        .await
        .unwrap();
    // 10 × 100 MiB (multipart) + 24 × 1 MiB (single PutObject) = 1 GiB.
    let files: Vec<(String, u64, u64)> = (0..10)
        .map(|i| (format!("big/{i}.db"), 100 * MIB, i))
        .chain((0..24).map(|i| (format!("small/{i}.db"), MIB, 100 + i)))
        .collect();
    assert_eq!(files.iter().map(|f| f.1).sum::<u64>(), 1024 * MIB);

    let store = &store;
    futures::stream::iter(files.iter())
        .for_each_concurrent(3, |(key, len, seed)| async move {
            store
                .put_stream(
                    key,
                    &mut GenReader::new(*len, *seed),
                    PutStreamOptions {
                        sealer: None,
                        resume: None,
                        checkpoint: &NoCheckpoint,
                        progress: &|_| {},
                    },
                )
                .await
                .unwrap_or_else(|e| panic!("upload {key}: {e}"));
        })
        .await;

    let listed = store.list("").await.unwrap();
    assert_eq!(listed.len(), files.len());
    let dir = tempfile::tempdir().unwrap();
    futures::stream::iter(files.iter())
        .for_each_concurrent(2, |(key, len, seed)| {
            let path = dir.path().join(key.replace('/', "_"));
            async move {
                let n = store
                    .get_to_file(key, &path)
                    .await
                    .unwrap_or_else(|e| panic!("download {key}: {e}"));
                assert_eq!(n, *len, "{key}");
                assert_eq!(file_crc32(&path), gen_crc32(*len, *seed), "{key}");
                std::fs::remove_file(&path).unwrap();
            }
        })
        .await;

    let c = proxy.counts();
    eprintln!("fault proxy: {c:?}");
    assert!(c.requests > 300, "{c:?}");
    assert!(
        c.e500 > 0 && c.e503 > 0 && c.killed > 0,
        "faults must really happen: {c:?}"
    );
    let failed = (c.e500 + c.e503 + c.killed) as f64 / c.requests as f64;
    assert!((0.02..0.10).contains(&failed), "fault rate {failed}");
}

/// A 36 MiB file through the agent's upload pipeline (read, checksum, compress, multipart)
/// while every UploadPart is refused with 403: the upload fails at once with S3's error code,
/// as a permanent error, and aborts its multipart upload (issue 17 item 10: it hung forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_part_403_fails_the_upload_at_once() {
    use cbk::agent::ops::pipeline;
    use std::sync::Arc;
    let moto = Moto::start();
    let bucket = new_bucket(&moto).await;
    let proxy = FaultProxy::start(&moto.endpoint(), Faults::NONE);
    proxy.set_rules(&[("[?&]partNumber=", support::s3::FaultAction::E403)]);
    let mut cfg = storage_config(&proxy.endpoint(), &bucket, "denied");
    cfg.part_size = Some("5MiB".parse().unwrap());
    let store: Arc<dyn Store> = Arc::new(
        cbk::store::s3::S3Store::new(&cfg, Some(moto.credentials()))
            .await
            .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nb-1-big-Data.db");
    let mut src = GenReader::new(36 * MIB, 7);
    let mut out = tokio::fs::File::create(&path).await.unwrap();
    tokio::io::copy(&mut src, &mut out).await.unwrap();
    drop(out);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 36 * MIB);
    let started = std::time::Instant::now();
    let r = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        pipeline::upload_file(
            &store,
            "big/nb-1-big-Data.db",
            &path,
            cbk::codec::Codec::None,
            false,
            None,
            None,
            &NoCheckpoint,
            &|_| {},
            Default::default(),
        ),
    )
    .await;
    let took = started.elapsed();
    let err = match r {
        Err(_) => panic!("the upload still ran after {took:?}"),
        Ok(Ok(_)) => panic!("the upload succeeded through a proxy refusing every part"),
        Ok(Err(e)) => e,
    };
    eprintln!("failed after {took:?}: {}", err.message);
    assert!(!err.retryable, "403 is permanent: {err:?}");
    assert!(
        err.message.contains("UploadPart") && err.message.contains("AccessDenied"),
        "{}",
        err.message
    );
    assert!(err.message.contains("403"), "{}", err.message);
    assert!(took < std::time::Duration::from_secs(20), "took {took:?}");
    let requests = proxy.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.query.contains("AbortMultipartUpload")),
        "the multipart upload is aborted"
    );
    let parts = requests
        .iter()
        .filter(|r| r.query.contains("partNumber="))
        .count();
    assert!(
        parts <= 8,
        "{parts} UploadPart requests: a 403 is not retried"
    );
}
