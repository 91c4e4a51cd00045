//! The `fs` store through the public entry point (`store::open` with a `file://` URL).

use bytes::Bytes;
use cbk::plan::model::StorageConfig;
use cbk::store::{self, PutIfAbsent, StoreError};

fn config(url: String) -> StorageConfig {
    StorageConfig {
        url,
        ..Default::default()
    }
}

#[tokio::test]
async fn open_file_url_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("backups");
    let s = store::open(&config(format!("file://{}", root.display())), None)
        .await
        .unwrap();
    assert_eq!(s.describe(), format!("file://{}", root.display()));
    s.put_bytes("c1/manifest.json", Bytes::from_static(b"{}"))
        .await
        .unwrap();
    assert_eq!(
        s.put_if_absent("c1/lock", Bytes::from_static(b"me"))
            .await
            .unwrap(),
        PutIfAbsent::Created
    );
    assert_eq!(
        s.put_if_absent("c1/lock", Bytes::from_static(b"you"))
            .await
            .unwrap(),
        PutIfAbsent::AlreadyExists
    );
    assert_eq!(&s.get_bytes("c1/lock").await.unwrap()[..], b"me");
    let keys: Vec<_> = s
        .list("c1/")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert_eq!(keys, ["c1/lock", "c1/manifest.json"]);
    // Objects are plain files under the root.
    assert_eq!(std::fs::read(root.join("c1/manifest.json")).unwrap(), b"{}");
}

#[tokio::test]
async fn relative_and_unknown_urls_are_refused() {
    let err = store::open(&config("file://relative/x".into()), None)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::InvalidUrl { .. }), "{err}");
    let err = store::open(&config("ftp://host/x".into()), None)
        .await
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("expected `s3://bucket/prefix`"),
        "{err}"
    );
}
