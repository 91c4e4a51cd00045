//! The S3 store against a real S3 server: moto in signature-checking mode on loopback.

use crate::support;

use crate::support::s3::{
    GenReader, Moto, Recorder, S3Server, file_crc32, gen_crc32, open_store, opts,
};
use bytes::Bytes;
use cbk::plan::model::Sse;
use cbk::store::s3::S3Store;
use cbk::store::{Credentials, NoCheckpoint, PutIfAbsent, PutStreamOptions, Store, StoreError};
use futures::StreamExt;
use std::sync::{Arc, Mutex};

const MIB: u64 = 1024 * 1024;

async fn put_gen(store: &dyn Store, key: &str, len: u64, seed: u64) -> cbk::store::PutStats {
    store
        .put_stream(
            key,
            &mut GenReader::new(len, seed),
            opts(None, &NoCheckpoint),
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn basic_semantics_on_moto() {
    let moto = Moto::start();
    let (store, _) = open_store(&moto, "some/prefix", |_| {}).await;
    support::s3::check_basic_semantics(&store).await;
    // Small streams are a single PutObject.
    let stats = put_gen(&store, "small", 100_000, 1).await;
    assert_eq!((stats.size, stats.parts_sent), (100_000, 0));
    assert_eq!(
        &store.get_bytes("small").await.unwrap()[..],
        &GenReader::bytes(100_000, 1)[..]
    );
    // The store's prefix is really used in the bucket.
    let raw = store
        .client()
        .list_objects_v2()
        .bucket(store.bucket())
        .send()
        .await
        .unwrap();
    let keys: Vec<_> = raw.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["some/prefix/small"]);
    assert!(store.probe_conditional_writes().await.unwrap());
    assert_eq!(store.probe_encryption().await.unwrap(), None);
}

#[tokio::test]
async fn large_file_parallel_parts_round_trip() {
    let moto = Moto::start();
    let (store, _) = open_store(&moto, "", |c| c.part_concurrency = Some(4)).await;
    let len = 200 * MIB + 12_345 * 8;
    let consumed = std::sync::atomic::AtomicU64::new(0);
    let progress = |n: u64| {
        consumed.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    };
    let rec = Recorder::default();
    let stats = store
        .put_stream(
            "big.db",
            &mut GenReader::new(len, 42),
            PutStreamOptions {
                sealer: None,
                resume: None,
                checkpoint: &rec,
                progress: &progress,
            },
        )
        .await
        .unwrap();
    assert_eq!(stats.size, len);
    assert_eq!(stats.sent, len);
    assert_eq!(stats.parts_sent, 13); // 12 × 16 MiB + the rest
    assert_eq!(consumed.load(std::sync::atomic::Ordering::Relaxed), len);
    assert_eq!(rec.last().unwrap().parts.len(), 13);
    // Multipart ETag: "<md5 of md5s>-13".
    let head = store
        .client()
        .head_object()
        .bucket(store.bucket())
        .key("big.db")
        .send()
        .await
        .unwrap();
    assert!(
        head.e_tag().unwrap().ends_with("-13\""),
        "{:?}",
        head.e_tag()
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("restore/big.db");
    assert_eq!(store.get_to_file("big.db", &out).await.unwrap(), len);
    assert_eq!(file_crc32(&out), gen_crc32(len, 42));
    assert_eq!(store.head("big.db").await.unwrap().unwrap().size, len);
}

#[tokio::test]
async fn interrupted_upload_resumes_and_sends_only_missing_parts() {
    let moto = Moto::start();
    let (store, cfg) =
        open_store(&moto, "r", |c| c.part_size = Some("5MiB".parse().unwrap())).await;
    let part = 5 * MIB;
    let len = 10 * part + 4096;
    // The source dies after 4 parts: the parts in flight land and are checkpointed.
    let rec = Recorder::default();
    let err = store
        .put_stream(
            "x.db",
            &mut GenReader::new(len, 7).failing_after(4 * part),
            opts(None, &rec),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("source failed on purpose"),
        "{err}"
    );
    let state = rec.last().expect("a checkpoint");
    assert_eq!(state.part_size, part);
    assert_eq!(
        state.parts.iter().map(|p| p.number).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert_eq!(store.head("x.db").await.unwrap(), None);
    // The server holds exactly those parts.
    assert_eq!(server_parts(&store, "r/x.db", &state.upload_id).await, 4);

    // A new store (a new process) resumes from the checkpoint.
    let store2 = S3Store::new(&cfg, Some(moto.credentials())).await.unwrap();
    let rec2 = Recorder::default();
    let stats = store2
        .put_stream(
            "x.db",
            &mut GenReader::new(len, 7),
            opts(Some(state.clone()), &rec2),
        )
        .await
        .unwrap();
    assert_eq!(stats.size, len);
    assert_eq!(stats.parts_sent, 7); // parts 5..=11
    assert_eq!(stats.sent, len - 4 * part);
    assert_eq!(rec2.last().unwrap().upload_id, state.upload_id);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.db");
    store2.get_to_file("x.db", &out).await.unwrap();
    assert_eq!(file_crc32(&out), gen_crc32(len, 7));
}

/// How many parts the server holds for an upload (ListParts; moto 5.2.5 answers with a root
/// element the SDK refuses, so the raw XML is counted then).
async fn server_parts(store: &S3Store, full: &str, upload_id: &str) -> usize {
    match store
        .client()
        .list_parts()
        .bucket(store.bucket())
        .key(full)
        .upload_id(upload_id)
        .send()
        .await
    {
        Ok(out) => out.parts().len(),
        Err(e) => {
            let raw = e.raw_response().expect("a raw ListParts response");
            assert_eq!(raw.status().as_u16(), 200);
            let body = std::str::from_utf8(raw.body().bytes().unwrap()).unwrap();
            body.matches("<Part>").count()
        }
    }
}

/// A reader that stops producing (stays pending) after `limit` bytes, like a hung source.
struct Hang(GenReader, u64);
impl tokio::io::AsyncRead for Hang {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.1 == 0 {
            return std::task::Poll::Pending;
        }
        let want = (buf.remaining() as u64).min(self.1).min(1 << 20) as usize;
        let mut tmp = vec![0u8; want - want % 8];
        let mut inner = tokio::io::ReadBuf::new(&mut tmp);
        let r = std::pin::Pin::new(&mut self.0).poll_read(cx, &mut inner);
        let n = inner.filled().len();
        buf.put_slice(&tmp[..n]);
        self.1 -= n as u64;
        r
    }
}

#[tokio::test]
async fn dropped_upload_future_resumes_from_checkpoint() {
    let moto = Moto::start();
    let (store, _) = open_store(&moto, "", |c| {
        c.part_size = Some("5MiB".parse().unwrap());
        c.part_concurrency = Some(2);
    })
    .await;
    let part = 5 * MIB;
    let len = 6 * part;
    let rec = Recorder::default();
    {
        let mut hang = Hang(GenReader::new(len, 9), 3 * part);
        let fut = store.put_stream("d.db", &mut hang, opts(None, &rec));
        // Kill the upload (drop the future) once two parts are checkpointed.
        let watch = async {
            loop {
                if rec.last().is_some_and(|s| s.parts.len() >= 2) {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        };
        tokio::select! {
            r = fut => panic!("upload finished although the source hung: {r:?}"),
            _ = watch => {}
        }
    }
    let state = rec.last().unwrap();
    let done = state.parts.len() as u32;
    assert!(done >= 2);
    let stats = store
        .put_stream("d.db", &mut GenReader::new(len, 9), opts(Some(state), &rec))
        .await
        .unwrap();
    assert_eq!(stats.parts_sent, 6 - done);
    assert_eq!(
        &store.get_bytes("d.db").await.unwrap()[..],
        &GenReader::bytes(len, 9)[..]
    );
}

#[tokio::test]
async fn resume_with_changed_source_is_refused_and_aborted() {
    let moto = Moto::start();
    let (store, _) = open_store(&moto, "", |c| c.part_size = Some("5MiB".parse().unwrap())).await;
    let part = 5 * MIB;
    let rec = Recorder::default();
    store
        .put_stream(
            "m.db",
            &mut GenReader::new(4 * part, 1).failing_after(2 * part),
            opts(None, &rec),
        )
        .await
        .unwrap_err();
    let state = rec.last().unwrap();
    let err = store
        .put_stream(
            "m.db",
            &mut GenReader::new(4 * part, 2),
            opts(Some(state.clone()), &NoCheckpoint),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::ResumeMismatch(ref k) if k == "m.db"),
        "{err}"
    );
    // The stale upload was aborted.
    let uploads = store
        .client()
        .list_multipart_uploads()
        .bucket(store.bucket())
        .send()
        .await
        .unwrap();
    assert!(uploads.uploads().is_empty());
    // A checkpoint for an upload the server forgot: start over transparently.
    let stats = store
        .put_stream(
            "m.db",
            &mut GenReader::new(4 * part, 2),
            opts(Some(state), &NoCheckpoint),
        )
        .await
        .unwrap();
    assert_eq!(stats.parts_sent, 4);
}

#[tokio::test]
async fn resume_with_truncated_source_is_refused() {
    let moto = Moto::start();
    let (store, _) = open_store(&moto, "", |c| c.part_size = Some("5MiB".parse().unwrap())).await;
    let part = 5 * MIB;
    let rec = Recorder::default();
    store
        .put_stream(
            "t.db",
            &mut GenReader::new(5 * part, 4).failing_after(3 * part),
            opts(None, &rec),
        )
        .await
        .unwrap_err();
    let state = rec.last().unwrap();
    assert_eq!(state.parts.len(), 3);
    // Same bytes, but only two parts long: completing with part 3 would resurrect old data.
    let err = store
        .put_stream(
            "t.db",
            &mut GenReader::new(2 * part, 4),
            opts(Some(state), &NoCheckpoint),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ResumeMismatch(_)), "{err}");
    assert_eq!(store.head("t.db").await.unwrap(), None);
}

#[tokio::test]
async fn stale_uploads_are_aborted() {
    let moto = Moto::start();
    let (store, _) = open_store(&moto, "p", |c| c.part_size = Some("5MiB".parse().unwrap())).await;
    let rec = Recorder::default();
    store
        .put_stream(
            "a/s.db",
            &mut GenReader::new(20 * MIB, 1).failing_after(5 * MIB),
            opts(None, &rec),
        )
        .await
        .unwrap_err();
    // moto reports every upload as initiated in 2010: "older than a century" keeps it.
    assert_eq!(
        store
            .abort_stale_uploads("a/", 100 * 365 * 86_400)
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.abort_stale_uploads("b/", 0).await.unwrap(), 0);
    assert_eq!(store.abort_stale_uploads("a/", 0).await.unwrap(), 1);
    assert_eq!(store.abort_stale_uploads("", 0).await.unwrap(), 0);
}

#[tokio::test]
async fn sse_headers_reach_the_server() {
    let moto = Moto::start();
    for (sse, kms) in [
        (Sse::Aes256, None),
        (Sse::AwsKms, Some("alias/cbk-test-key")),
    ] {
        let (store, _) = open_store(&moto, "", |c| {
            c.sse = Some(sse);
            c.sse_kms_key_id = kms.map(str::to_string);
            c.part_size = Some("5MiB".parse().unwrap());
            c.storage_class = Some("STANDARD_IA".into());
        })
        .await;
        store
            .put_bytes("small", Bytes::from_static(b"x"))
            .await
            .unwrap();
        put_gen(&store, "multi", 11 * MIB, 3).await;
        for key in ["small", "multi"] {
            let head = store
                .client()
                .head_object()
                .bucket(store.bucket())
                .key(key)
                .send()
                .await
                .unwrap();
            let want = match sse {
                Sse::Aes256 => "AES256",
                Sse::AwsKms => "aws:kms",
            };
            assert_eq!(
                head.server_side_encryption().map(|s| s.as_str()),
                Some(want),
                "{key}"
            );
            assert_eq!(head.ssekms_key_id(), kms, "{key}");
            assert_eq!(
                head.storage_class().map(|s| s.as_str()),
                Some("STANDARD_IA"),
                "{key}"
            );
        }
        assert_eq!(store.probe_encryption().await.unwrap(), Some(true));
    }
}

#[tokio::test]
async fn put_if_absent_race_has_one_winner() {
    let moto = Moto::start();
    let (store, _) = open_store(&moto, "locks", |_| {}).await;
    let store = Arc::new(store);
    let results = futures::future::join_all((0..12).map(|i| {
        let s = store.clone();
        async move {
            s.put_if_absent("lock", Bytes::from(format!("owner {i}")))
                .await
                .unwrap()
        }
    }))
    .await;
    assert_eq!(
        results
            .iter()
            .filter(|r| **r == PutIfAbsent::Created)
            .count(),
        1,
        "{results:?}"
    );
    assert!(
        store
            .get_bytes("lock")
            .await
            .unwrap()
            .starts_with(b"owner ")
    );
}

#[tokio::test]
async fn ten_thousand_keys_list_across_pages() {
    let moto = Moto::start();
    let (store, _) = open_store(&moto, "many", |_| {}).await;
    let keys: Vec<String> = (0..10_000).map(|i| format!("k/{i:05}")).collect();
    futures::stream::iter(keys.iter())
        .for_each_concurrent(32, |k| {
            let s = &store;
            async move { s.put_bytes(k, Bytes::from_static(b"")).await.unwrap() }
        })
        .await;
    let listed = store.list("k/").await.unwrap();
    assert_eq!(listed.len(), 10_000);
    assert!(listed.iter().map(|m| &m.key).eq(keys.iter()));
    assert_eq!(store.list("k/0999").await.unwrap().len(), 10);
    store.delete_many(&keys).await.unwrap();
    assert!(store.list("").await.unwrap().is_empty());
}

/// A writer collecting everything tracing prints (at every level).
#[derive(Clone, Default)]
struct LogBuf(Arc<Mutex<Vec<u8>>>);
impl std::io::Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn wrong_secret_fails_and_secrets_never_leak() {
    let moto = Moto::start();
    let (good, cfg) = open_store(&moto, "", |_| {}).await;
    let logs = LogBuf::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let secret = moto.credentials().secret_access_key;
    let wrong = "WRONGsecretWRONGsecretWRONGsecret0123456";
    let bad_store = |token: Option<&str>| {
        S3Store::new(
            &cfg,
            Some(Credentials {
                access_key_id: moto.credentials().access_key_id,
                secret_access_key: wrong.into(),
                session_token: token.map(str::to_string),
            }),
        )
    };
    let bad = bad_store(None).await.unwrap();
    let mut errors = Vec::new();
    let e = bad
        .put_bytes("x", Bytes::from_static(b"x"))
        .await
        .expect_err("a wrong secret must be refused");
    assert!(e.to_string().contains("SignatureDoesNotMatch"), "{e}");
    errors.push(e);
    errors.push(bad.get_bytes("x").await.unwrap_err());
    errors.push(bad.list("").await.unwrap_err());
    errors.push(
        bad.put_stream(
            "y",
            &mut GenReader::new(20 * MIB, 1),
            opts(None, &NoCheckpoint),
        )
        .await
        .unwrap_err(),
    );
    let bad_token = bad_store(Some("SESSIONtokenSESSIONtoken")).await.unwrap();
    errors.push(
        bad_token
            .put_bytes("x", Bytes::from_static(b"x"))
            .await
            .unwrap_err(),
    );
    // The good store logs too (successful signed requests).
    good.put_bytes("ok", Bytes::from_static(b"ok"))
        .await
        .unwrap();
    errors.push(good.get_bytes("missing").await.unwrap_err());
    drop(_guard);

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.len() > 1000,
        "tracing captured too little: {}",
        logs.len()
    );
    for e in &errors {
        let shown = format!("{e} / {e:?}");
        for s in [secret.as_str(), wrong, "SESSIONtokenSESSIONtoken"] {
            assert!(!shown.contains(s), "secret in error: {shown}");
        }
    }
    for s in [secret.as_str(), wrong, "SESSIONtokenSESSIONtoken"] {
        assert!(!logs.contains(s), "a secret appeared in the logs");
    }
    assert!(!format!("{:?}", moto.credentials()).contains(&secret));
}

/// The store commands take `--region`/`--endpoint`/`--path-style` (and `CBK_REGION`-style
/// variables); without a region they say how to give one, not an SDK dump; a bucket prefix with
/// no repository marker is "not a cbk repository".
#[tokio::test]
async fn store_commands_take_s3_flags_and_say_what_is_missing() {
    let moto = Moto::start();
    let bucket = support::s3::new_bucket(&moto).await;
    let creds = moto.credentials();
    let url = format!("s3://{bucket}/nothing-here");
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty-aws-config");
    std::fs::write(&empty, "").expect("write");
    let cbk = |args: &[&str], env: &[(&str, &str)]| {
        let mut c = crate::support::cbk_command();
        for k in [
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_PROFILE",
            "CBK_REGION",
        ] {
            c.env_remove(k);
        }
        c.env("AWS_CONFIG_FILE", &empty)
            .env("AWS_SHARED_CREDENTIALS_FILE", &empty)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ACCESS_KEY_ID", &creds.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &creds.secret_access_key)
            .args(args)
            .envs(env.iter().copied());
        let out = c.output().expect("cbk");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = cbk(&["list", "--storage", &url], &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("no AWS region") && err.contains("AWS_REGION"),
        "{err}"
    );
    assert!(err.contains("--region"), "{err}");
    assert!(
        err.lines().count() < 6,
        "a short message, not an SDK dump: {err}"
    );
    let endpoint = moto.endpoint();
    let (code, err) = cbk(
        &[
            "list",
            "--storage",
            &url,
            "--region",
            "us-east-1",
            "--endpoint",
            &endpoint,
            "--path-style",
        ],
        &[],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("not a cbk repository"), "{err}");
    let (code, err) = cbk(
        &["verify", "--storage", &url],
        &[
            ("CBK_REGION", "us-east-1"),
            ("CBK_ENDPOINT", &endpoint),
            ("CBK_PATH_STYLE", "true"),
        ],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("not a cbk repository"), "{err}");
}
