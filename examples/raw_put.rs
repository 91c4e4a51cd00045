//! The raw ceiling of a backup: upload files with cbk's S3 store (plain streamed multipart, no
//! checksums, no compression, no agent, no manifests), N at a time. `benches/backup_restore.sh`
//! compares cbk's whole backup pipeline against this.
//!
//! Usage: `raw_put URL ENDPOINT PREFIX FILE...` with the key in CBK_BENCH_KEY_ID / CBK_BENCH_SECRET.

use cbk::plan::model::StorageConfig;
use cbk::store::{Credentials, NoCheckpoint, PutStreamOptions};
use futures::stream::{self, StreamExt, TryStreamExt};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, endpoint, prefix, files @ ..] = args.as_slice() else {
        return Err("usage: raw_put URL ENDPOINT PREFIX FILE...".into());
    };
    let config = StorageConfig {
        url: url.clone(),
        endpoint: Some(endpoint.clone()),
        region: Some("us-east-1".into()),
        path_style: true,
        ..Default::default()
    };
    let creds = Credentials {
        access_key_id: std::env::var("CBK_BENCH_KEY_ID")?,
        secret_access_key: std::env::var("CBK_BENCH_SECRET")?,
        session_token: None,
    };
    let store = cbk::store::open(&config, Some(creds)).await?;
    let start = std::time::Instant::now();
    let bytes: Vec<u64> = stream::iter(files.iter().enumerate())
        .map(|(i, f)| {
            let store = store.clone();
            async move {
                let mut file = tokio::fs::File::open(f).await?;
                let key = format!("{prefix}/{i}");
                let stats = store
                    .put_stream(
                        &key,
                        &mut file,
                        PutStreamOptions {
                            sealer: None,
                            resume: None,
                            checkpoint: &NoCheckpoint,
                            progress: &|_| {},
                        },
                    )
                    .await?;
                Ok::<u64, Box<dyn std::error::Error>>(stats.size)
            }
        })
        .buffer_unordered(4)
        .try_collect()
        .await?;
    let total: u64 = bytes.iter().sum();
    let secs = start.elapsed().as_secs_f64();
    println!("{total} {secs:.3}");
    Ok(())
}
