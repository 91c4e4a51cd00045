//! Real S3-compatible servers for tests: moto in signature-checking mode (always available after
//! `tests/infra/setup.sh`), Garage when its binary was built (`tests/infra/s3/garage.sh build`),
//! and a mitmproxy fault proxy in front of either. Each handle owns its process and stops it on
//! drop, so tests can run in parallel and clean up on failure.
#![allow(dead_code)]

use bytes::Bytes;
use cbk::plan::model::StorageConfig;
use cbk::store::s3::S3Store;
use cbk::store::{CheckpointSink, Credentials, MultipartState, PutStreamOptions, Store};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, ReadBuf};

/// Where setup.sh put the test tools (`$CBK_TEST_HOME`, default `target/cbk-test`).
pub fn test_home() -> PathBuf {
    std::env::var_os("CBK_TEST_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/cbk-test"))
}

fn venv_bin(name: &str) -> PathBuf {
    let p = test_home().join("venv/bin").join(name);
    assert!(
        p.exists(),
        "{} is missing: run `bash tests/infra/setup.sh` first",
        p.display()
    );
    p
}

/// A free loopback port (bound and released; the race window is tiny).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on port {port} within 30 s");
}

/// A running S3-compatible server with a user that may do everything.
pub trait S3Server {
    fn endpoint(&self) -> String;
    fn credentials(&self) -> Credentials;
    /// A short name for messages (`moto`, `garage`).
    fn name(&self) -> &'static str;
}

/// A plan's storage section for `s3://BUCKET/PREFIX` on `endpoint`.
pub fn storage_config(endpoint: &str, bucket: &str, prefix: &str) -> StorageConfig {
    StorageConfig {
        url: format!("s3://{bucket}/{prefix}"),
        region: Some("us-east-1".into()),
        endpoint: Some(endpoint.into()),
        path_style: true,
        ..Default::default()
    }
}

/// Creates a fresh bucket on the server and returns its name.
pub async fn new_bucket(server: &dyn S3Server) -> String {
    let name = format!("cbk-test-{:012x}", rand::random::<u64>() >> 16);
    let store = S3Store::new(
        &storage_config(&server.endpoint(), &name, ""),
        Some(server.credentials()),
    )
    .await
    .expect("client");
    store
        .client()
        .create_bucket()
        .bucket(&name)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "create bucket on {}: {}",
                server.name(),
                aws_sdk_s3::error::DisplayErrorContext(e)
            )
        });
    name
}

/// Opens a store on a fresh bucket of `server` (optionally through `endpoint_override`).
pub async fn open_store(
    server: &dyn S3Server,
    prefix: &str,
    tweak: impl FnOnce(&mut StorageConfig),
) -> (S3Store, StorageConfig) {
    let bucket = new_bucket(server).await;
    let mut cfg = storage_config(&server.endpoint(), &bucket, prefix);
    tweak(&mut cfg);
    let store = S3Store::new(&cfg, Some(server.credentials()))
        .await
        .expect("store");
    (store, cfg)
}

/// moto's S3 (and IAM) on a free loopback port, checking request signatures.
pub struct Moto {
    child: Child,
    port: u16,
    access_key: String,
    secret_key: String,
}

impl Moto {
    /// Starts moto; the first three requests (unauthenticated) create an IAM user and key,
    /// every later request must be signed with that key.
    pub fn start() -> Moto {
        let port = free_port();
        let mut child = Command::new(venv_bin("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", "3")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        wait_for_port(port, &mut child, "moto_server");
        let script = r#"
import boto3, json, sys
iam = boto3.client("iam", endpoint_url=sys.argv[1], aws_access_key_id="bootstrap",
                   aws_secret_access_key="bootstrap", region_name="us-east-1")
iam.create_user(UserName="backup")
iam.put_user_policy(UserName="backup", PolicyName="all", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
k = iam.create_access_key(UserName="backup")["AccessKey"]
print(k["AccessKeyId"], k["SecretAccessKey"])
"#;
        let out = Command::new(venv_bin("python"))
            .args(["-c", script, &format!("http://127.0.0.1:{port}")])
            .env_remove("AWS_PROFILE")
            .output()
            .expect("run python for IAM setup");
        let mut moto = Moto {
            child,
            port,
            access_key: String::new(),
            secret_key: String::new(),
        };
        assert!(
            out.status.success(),
            "IAM setup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let mut words = text.split_whitespace();
        moto.access_key = words.next().expect("access key").into();
        moto.secret_key = words.next().expect("secret key").into();
        moto
    }
}

impl S3Server for Moto {
    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
    fn credentials(&self) -> Credentials {
        Credentials {
            access_key_id: self.access_key.clone(),
            secret_access_key: self.secret_key.clone(),
            session_token: None,
        }
    }
    fn name(&self) -> &'static str {
        "moto"
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A single-node Garage server (`tests/infra/s3/garage.sh start`), with a fixed imported key.
pub struct Garage {
    dir: tempfile::TempDir,
    endpoint: String,
    access_key: String,
    secret_key: String,
}

fn garage_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/infra/s3/garage.sh")
}

impl Garage {
    /// Starts Garage, or prints a notice and returns `None` when the binary was not built
    /// (CI does not build it; run `bash tests/infra/s3/garage.sh build` once to enable these).
    pub fn start_or_skip(test: &str) -> Option<Garage> {
        let bin = test_home().join("garage/bin/garage");
        if !bin.exists() {
            eprintln!(
                "SKIPPED {test}: garage is not built ({} is absent; run `bash tests/infra/s3/garage.sh build`)",
                bin.display()
            );
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Command::new("bash")
            .arg(garage_script())
            .arg("start")
            .arg(dir.path())
            .env("CBK_TEST_HOME", test_home())
            .output()
            .expect("run garage.sh");
        let mut g = Garage {
            dir,
            endpoint: String::new(),
            access_key: String::new(),
            secret_key: String::new(),
        };
        assert!(
            out.status.success(),
            "garage.sh start failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            match line.split_once('=') {
                Some(("GARAGE_ENDPOINT", v)) => g.endpoint = v.into(),
                Some(("GARAGE_ACCESS_KEY", v)) => g.access_key = v.into(),
                Some(("GARAGE_SECRET_KEY", v)) => g.secret_key = v.into(),
                _ => {}
            }
        }
        assert!(!g.endpoint.is_empty(), "garage.sh printed no endpoint");
        Some(g)
    }
}

impl S3Server for Garage {
    fn endpoint(&self) -> String {
        self.endpoint.clone()
    }
    fn credentials(&self) -> Credentials {
        Credentials {
            access_key_id: self.access_key.clone(),
            secret_access_key: self.secret_key.clone(),
            session_token: None,
        }
    }
    fn name(&self) -> &'static str {
        "garage"
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(garage_script())
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

/// Fault rates of the proxy (probabilities per request).
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    pub p500: f64,
    pub p503: f64,
    pub pkill: f64,
    pub seed: u64,
}

impl Faults {
    /// No random faults (targeted rules and the request log still work).
    pub const NONE: Faults = Faults {
        p500: 0.0,
        p503: 0.0,
        pkill: 0.0,
        seed: 1,
    };
}

/// One request as the proxy logged it when it ended.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct LoggedRequest {
    pub method: String,
    /// URL path (path-style: `/BUCKET/KEY`), without the query.
    pub path: String,
    pub query: String,
    /// The status the client got, `None` when it got no response (the client went away or
    /// the proxy dropped the connection): the server may or may not have acted on it.
    pub status: Option<u16>,
    /// What the proxy injected (`500`, `503`, `403`, `404`, `400`, `kill`), `None` when forwarded.
    pub fault: Option<String>,
    /// Why the flow failed (mitmproxy's message), if it did.
    #[serde(default)]
    pub error: Option<String>,
    /// When the request started arriving and when it ended (Unix seconds).
    pub t0: f64,
    pub t1: f64,
}

impl LoggedRequest {
    /// The object key (path minus `/BUCKET/`) when this request stores a whole object (a
    /// PutObject or CompleteMultipartUpload) and was forwarded to the server.
    pub fn stores_object(&self, bucket: &str) -> Option<&str> {
        let key = self
            .path
            .strip_prefix('/')?
            .strip_prefix(bucket)?
            .strip_prefix('/')?;
        let has = |p: &str| {
            self.query
                .split('&')
                .any(|q| q.split('=').next() == Some(p))
        };
        let stores = self.fault.is_none()
            && match self.method.as_str() {
                "PUT" => !has("partNumber"),
                "POST" => has("uploadId"),
                _ => false,
            };
        stores.then_some(key)
    }

    /// [`LoggedRequest::stores_object`] answered 200: the object was stored.
    pub fn completed_object(&self, bucket: &str) -> Option<&str> {
        self.stores_object(bucket)
            .filter(|_| self.status == Some(200))
    }
}

/// What the fault proxy does with requests matching a regex (over `METHOD PATH?QUERY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    /// 500 InternalError (retryable).
    E500,
    /// 503 SlowDown (retryable).
    E503,
    /// 403 AccessDenied (permanent).
    E403,
    /// 404 NoSuchBucket (permanent).
    E404,
    /// 400 InvalidArgument (permanent).
    E400,
    /// Drop the connection without a response.
    Kill,
    /// Wait this many milliseconds, then forward (a slow link).
    Stall(u64),
}

/// What the proxy did, read from its counts file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounts {
    pub requests: u64,
    pub e500: u64,
    pub e503: u64,
    pub killed: u64,
    /// Requests a targeted rule answered.
    pub ruled: u64,
    /// Requests held back before forwarding.
    pub stalled: u64,
}

/// mitmproxy as a reverse proxy in front of a server, failing requests at chosen rates
/// (`tests/infra/s3/fault.py`).
pub struct FaultProxy {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl FaultProxy {
    pub fn start(upstream: &str, faults: Faults) -> FaultProxy {
        let port = free_port();
        let dir = tempfile::tempdir().expect("tempdir");
        let addon = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/infra/s3/fault.py");
        let mut child = Command::new(venv_bin("mitmdump"))
            .args(["-q", "--set"])
            .arg(format!("confdir={}", dir.path().join("conf").display()))
            // SigV4 signs the Host header: forward it unchanged.
            .args(["--set", "keep_host_header=true"])
            .arg("--mode")
            .arg(format!("reverse:{upstream}"))
            .args([
                "--listen-host",
                "127.0.0.1",
                "--listen-port",
                &port.to_string(),
            ])
            .arg("-s")
            .arg(&addon)
            .env("P500", faults.p500.to_string())
            .env("P503", faults.p503.to_string())
            .env("PKILL", faults.pkill.to_string())
            .env("SEED", faults.seed.to_string())
            .env("FAULT_COUNTS", dir.path().join("counts.json"))
            .env("FAULT_RULES", dir.path().join("rules.json"))
            .env("REQUEST_LOG", dir.path().join("requests.jsonl"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mitmdump");
        wait_for_port(port, &mut child, "mitmdump");
        FaultProxy { child, port, dir }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The proxy's counters so far.
    pub fn counts(&self) -> FaultCounts {
        let Ok(text) = std::fs::read_to_string(self.dir.path().join("counts.json")) else {
            return FaultCounts::default();
        };
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let get = |k: &str| v.get(k).and_then(|x| x.as_u64()).unwrap_or(0);
        FaultCounts {
            requests: get("requests"),
            e500: get("500"),
            e503: get("503"),
            killed: get("killed"),
            ruled: get("ruled"),
            stalled: get("stalled"),
        }
    }

    /// Replaces the targeted rules (first match wins; an empty list forwards everything
    /// again). Applies to requests that arrive after this returns.
    pub fn set_rules(&self, rules: &[(&str, FaultAction)]) {
        let list: Vec<serde_json::Value> = rules
            .iter()
            .map(|(pattern, action)| {
                let action = match action {
                    FaultAction::E500 => "500".to_string(),
                    FaultAction::E503 => "503".to_string(),
                    FaultAction::E403 => "403".to_string(),
                    FaultAction::E404 => "404".to_string(),
                    FaultAction::E400 => "400".to_string(),
                    FaultAction::Kill => "kill".to_string(),
                    FaultAction::Stall(ms) => format!("stall:{ms}"),
                };
                serde_json::json!({ "match": pattern, "action": action })
            })
            .collect();
        let path = self.dir.path().join("rules.json");
        let tmp = self.dir.path().join("rules.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(&list).expect("json")).expect("write rules");
        std::fs::rename(&tmp, &path).expect("install rules");
    }

    /// Every request that ended so far, in the order they ended.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.requests_after(&mut 0)
    }

    /// The requests that ended since `cursor` (a byte offset in the log, advanced past what
    /// was read; start at 0), for polling without rereading the whole log.
    pub fn requests_after(&self, cursor: &mut u64) -> Vec<LoggedRequest> {
        use std::io::{Read, Seek, SeekFrom};
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.path().join("requests.jsonl")) {
            let _ = f
                .seek(SeekFrom::Start(*cursor))
                .and_then(|_| f.read_to_string(&mut text));
        }
        // Only whole lines: the proxy may be writing the last one.
        let whole = text.rfind('\n').map_or(0, |i| i + 1);
        *cursor += whole as u64;
        text[..whole]
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A deterministic pseudo-random byte stream of a given length, generated on the fly
/// (so multi-GiB sources cost no memory or disk).
pub struct GenReader {
    left: u64,
    state: u64,
    /// Fail with an I/O error once this many bytes were produced (to kill an upload halfway).
    fail_at: Option<u64>,
    produced: u64,
}

impl GenReader {
    pub fn new(len: u64, seed: u64) -> Self {
        GenReader {
            left: len,
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            fail_at: None,
            produced: 0,
        }
    }

    /// The same stream, failing after `n` bytes.
    pub fn failing_after(mut self, n: u64) -> Self {
        self.fail_at = Some(n);
        self
    }

    /// The whole content (for comparisons of modest sizes).
    pub fn bytes(len: u64, seed: u64) -> Vec<u8> {
        let mut g = GenReader::new(len, seed);
        let mut out = vec![0u8; len as usize];
        g.fill(&mut out);
        out
    }

    fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            // xorshift64*
            self.state ^= self.state >> 12;
            self.state ^= self.state << 25;
            self.state ^= self.state >> 27;
            let v = self.state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

impl AsyncRead for GenReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if let Some(limit) = self.fail_at
            && self.produced >= limit
        {
            return Poll::Ready(Err(std::io::Error::other("source failed on purpose")));
        }
        // Whole multiples of 8 keep the stream identical whatever the read sizes.
        let mut n = (buf.remaining() as u64).min(self.left).min(1 << 20);
        if let Some(limit) = self.fail_at {
            n = n.min(limit - self.produced);
        }
        if n < self.left {
            n -= n % 8;
        }
        if n == 0 && self.left > 0 {
            return Poll::Ready(Err(std::io::Error::other(
                "read buffer smaller than 8 bytes",
            )));
        }
        let dst = buf.initialize_unfilled_to(n as usize);
        self.fill(dst);
        buf.advance(n as usize);
        self.left -= n;
        self.produced += n;
        Poll::Ready(Ok(()))
    }
}

/// CRC32 of a generated stream without holding it in memory.
pub fn gen_crc32(len: u64, seed: u64) -> u32 {
    let mut g = GenReader::new(len, seed);
    let mut h = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        g.fill(&mut buf[..n]);
        h.update(&buf[..n]);
        left -= n as u64;
    }
    h.finalize()
}

/// CRC32 of a file.
pub fn file_crc32(path: &Path) -> u32 {
    use std::io::Read;
    let mut f = std::fs::File::open(path).expect("open");
    let mut h = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).expect("read");
        if n == 0 {
            return h.finalize();
        }
        h.update(&buf[..n]);
    }
}

/// Basic object semantics every store must share (put/get/head/list/delete, create-only).
pub async fn check_basic_semantics(store: &dyn Store) {
    use cbk::store::PutIfAbsent;
    for k in ["b/2", "a/1", "a/10", "ab", "a/x/y"] {
        store
            .put_bytes(k, Bytes::from(k.to_string()))
            .await
            .unwrap();
    }
    let keys = |v: Vec<cbk::store::ObjectMeta>| v.into_iter().map(|m| m.key).collect::<Vec<_>>();
    assert_eq!(
        keys(store.list("").await.unwrap()),
        ["a/1", "a/10", "a/x/y", "ab", "b/2"]
    );
    assert_eq!(keys(store.list("a/1").await.unwrap()), ["a/1", "a/10"]);
    assert_eq!(&store.get_bytes("a/10").await.unwrap()[..], b"a/10");
    let m = store.head("a/x/y").await.unwrap().unwrap();
    assert_eq!((m.key.as_str(), m.size), ("a/x/y", 5));
    assert_eq!(store.head("a/x").await.unwrap(), None);
    assert!(matches!(
        store.get_bytes("nope").await,
        Err(cbk::store::StoreError::NotFound(_))
    ));
    assert_eq!(
        store
            .put_if_absent("lock", Bytes::from_static(b"1"))
            .await
            .unwrap(),
        PutIfAbsent::Created
    );
    let all: Vec<String> = keys(store.list("").await.unwrap());
    store.delete_many(&all).await.unwrap();
    store.delete_many(&all).await.unwrap();
    assert!(store.list("").await.unwrap().is_empty());
}

/// Remembers the latest multipart checkpoint.
#[derive(Default)]
pub struct Recorder(Mutex<Option<MultipartState>>);
impl CheckpointSink for Recorder {
    fn save(&self, state: &MultipartState) {
        *self.0.lock().unwrap() = Some(state.clone());
    }
}
impl Recorder {
    pub fn last(&self) -> Option<MultipartState> {
        self.0.lock().unwrap().clone()
    }
}

/// Streamed-put options without progress reporting.
pub fn opts<'a>(
    resume: Option<MultipartState>,
    checkpoint: &'a dyn CheckpointSink,
) -> PutStreamOptions<'a> {
    PutStreamOptions {
        sealer: None,
        resume,
        checkpoint,
        progress: &|_| {},
    }
}
