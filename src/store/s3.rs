//! The `s3` store: Amazon S3 and S3-compatible servers through aws-sdk-s3.
//!
//! Upload paths are chosen to work on strict servers too (Garage rejects the SDK's streaming
//! signed PutObject): every request body is an in-memory `Bytes` (retryable, signed normally).
//! Small objects go in one PutObject; streams larger than one part become multipart uploads with
//! parallel parts, memory ≈ `part_size × (part_concurrency + 1)`, checkpointed part by part so an
//! interrupted upload can resume. That protocol (and parallel ranged downloads) lives in
//! [`super::multipart`]; this file implements its wire calls ([`PartWire`]). Error messages are built from S3 error codes and messages,
//! never from requests, so they cannot carry credentials.

use super::config::{Sse, StorageConfig};
use super::multipart::{
    self, DonePart, ObjectHead, PartLimits, PartWire, RangeBody, ServerParts, StoredPart,
};
use super::object_lock::{LockMode, ObjectLock, ObjectRetention};
use super::{
    Credentials, ObjectMeta, PutIfAbsent, PutStats, PutStreamOptions, Store, StoreError,
    StoreResult, validate_key,
};
use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::{ReconnectMode, RetryConfig};
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier,
    ObjectLockEnabled, ObjectLockMode, ObjectLockRetention, ObjectLockRetentionMode,
    ServerSideEncryption, StorageClass,
};
use bytes::Bytes;
use futures::StreamExt;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use tokio::io::AsyncRead;

/// Default multipart part size.
pub const DEFAULT_PART_SIZE: u64 = 16 * 1024 * 1024;
/// Default parts in flight per object.
pub const DEFAULT_PART_CONCURRENCY: usize = 4;
/// The `checksum` modes of `[storage]` (the loader validates against this same list).
pub const CHECKSUM_MODES: [&str; 4] = ["auto", "when_required", "crc32", "crc32c"];
/// S3's smallest part (all parts but the last).
const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// S3's largest part.
const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;
/// S3's most parts per upload.
const MAX_PARTS: i32 = 10_000;
/// Keys per DeleteObjects request (the S3 maximum).
const DELETE_BATCH: usize = 1000;

/// An S3 bucket and prefix (cheap to clone: the SDK client is shared).
#[derive(Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    /// Empty, or ends with `/`.
    prefix: String,
    endpoint: Option<String>,
    sse: Option<Sse>,
    sse_kms_key_id: Option<String>,
    storage_class: Option<StorageClass>,
    part_size: u64,
    part_concurrency: usize,
    /// Checksum sent with each part (and object), or `None` when only required ones are sent.
    checksum: Option<ChecksumAlgorithm>,
    /// Object Lock retention put on every object (but cbk's own probe objects).
    object_lock: Option<ObjectLock>,
}

/// Keys never locked: cbk's probe objects, deleted right after they are written.
const UNLOCKED_PREFIX: &str = ".cbk-probe/";

/// Splits `s3://bucket/prefix` into the bucket and a normalised prefix (empty or ending in `/`).
fn parse_url(url: &str) -> StoreResult<(String, String)> {
    match super::url::StoreUrl::parse(url)? {
        super::url::StoreUrl::S3 { bucket, prefix } => Ok((bucket, prefix)),
        super::url::StoreUrl::File { .. } => Err(StoreError::InvalidUrl {
            url: url.into(),
            reason: "expected `s3://bucket/prefix`".into(),
        }),
    }
}

/// Turns an SDK error into a store error without secrets: S3's error code and message, or the
/// error chain of a transport failure (which never includes request headers).
fn sdk_err<E, R>(key: &str, op: &str, err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + HasStatus,
{
    let status = err.raw_response().map(HasStatus::status_code);
    let (message, retryable) = match &err {
        SdkError::ServiceError(se) => {
            let e = se.err();
            let code = e.code().unwrap_or("unknown error");
            let msg = e.message().unwrap_or("");
            let status = status.map_or(String::new(), |s| format!(" (HTTP {s})"));
            let retryable = matches!(code, "SlowDown" | "InternalError" | "RequestTimeout")
                || status_retryable(se.raw().status_code());
            (format!("{op}: {code}{status} {msg}"), retryable)
        }
        SdkError::TimeoutError(_) => (format!("{op}: timed out"), true),
        SdkError::DispatchFailure(d) => {
            let what = if d.is_timeout() {
                "timed out"
            } else if d.is_io() {
                "connection failed"
            } else {
                "request could not be sent"
            };
            (
                format!(
                    "{op}: {what}: {}",
                    aws_sdk_s3::error::DisplayErrorContext(&err)
                ),
                true,
            )
        }
        SdkError::ResponseError(_) => (
            format!(
                "{op}: bad response: {}",
                aws_sdk_s3::error::DisplayErrorContext(&err)
            ),
            true,
        ),
        _ => (
            format!("{op}: {}", aws_sdk_s3::error::DisplayErrorContext(&err)),
            false,
        ),
    };
    StoreError::Request {
        key: key.into(),
        message: message.trim_end().to_string(),
        retryable,
    }
}

fn status_retryable(status: u16) -> bool {
    status >= 500 || status == 429
}

/// The HTTP status of a raw response (kept generic so tests can use plain types).
trait HasStatus {
    fn status_code(&self) -> u16;
}
impl HasStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

/// The HTTP status and S3 error code of a failed call.
fn status_and_code<E: ProvideErrorMetadata, R: HasStatus>(
    err: &SdkError<E, R>,
) -> (Option<u16>, Option<String>) {
    let status = err.raw_response().map(HasStatus::status_code);
    let code = err
        .as_service_error()
        .and_then(|e| e.code())
        .map(str::to_string);
    (status, code)
}

/// A completed part as CompleteMultipartUpload wants it (with the checksum the upload uses).
fn completed_part(part: &DonePart, algo: Option<&ChecksumAlgorithm>) -> CompletedPart {
    let b = CompletedPart::builder()
        .part_number(part.info.number)
        .e_tag(&part.info.etag);
    match (algo, &part.checksum) {
        (Some(ChecksumAlgorithm::Crc32), Some(c)) => b.checksum_crc32(c),
        // S3's CRC32 is the base64 of the big-endian IEEE CRC32 we keep anyway.
        (Some(ChecksumAlgorithm::Crc32), None) => b.checksum_crc32(
            aws_smithy_types::base64::encode(part.info.crc32.to_be_bytes()),
        ),
        (Some(ChecksumAlgorithm::Crc32C), Some(c)) => b.checksum_crc32_c(c),
        _ => b,
    }
    .build()
}

impl S3Store {
    /// GetObject of a whole object; returns the full key (for messages) and the response.
    async fn get_object(
        &self,
        key: &str,
    ) -> StoreResult<(String, aws_sdk_s3::operation::get_object::GetObjectOutput)> {
        let full = self.full(key)?;
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&full)
            .send()
            .await
            .map_err(|e| not_found_or(key, &full, "GetObject", e))?;
        Ok((full, out))
    }

    /// Builds a client for the bucket a plan names (no request is sent yet).
    pub async fn new(
        config: &StorageConfig,
        credentials: Option<Credentials>,
    ) -> StoreResult<Self> {
        let (bucket, prefix) = parse_url(&config.url)?;
        let part_size = match &config.part_size {
            None => DEFAULT_PART_SIZE,
            Some(s) => Some(s.bytes())
                .filter(|n| (MIN_PART_SIZE..=MAX_PART_SIZE).contains(n))
                .ok_or_else(|| StoreError::InvalidUrl {
                    url: config.url.clone(),
                    reason: format!("part_size `{s}` must be a size between 5MiB and 5GiB"),
                })?,
        };
        let part_concurrency = config
            .part_concurrency
            .map_or(DEFAULT_PART_CONCURRENCY, |n| n.max(1) as usize);
        let custom_endpoint = config.endpoint.is_some();
        let (when_required, checksum) = match config.checksum.as_deref() {
            None | Some("auto") if custom_endpoint => (true, None),
            None | Some("auto") => (false, Some(ChecksumAlgorithm::Crc32)),
            Some("when_required") => (true, None),
            Some("crc32") => (false, Some(ChecksumAlgorithm::Crc32)),
            Some("crc32c") => (false, Some(ChecksumAlgorithm::Crc32C)),
            Some(other) => {
                return Err(StoreError::InvalidUrl {
                    url: config.url.clone(),
                    reason: format!("checksum `{other}`: expected one of {CHECKSUM_MODES:?}"),
                });
            }
        };
        // S3 refuses an upload with Object Lock headers that carries no checksum.
        let checksum = match (&config.object_lock, checksum) {
            (Some(_), None) => Some(ChecksumAlgorithm::Crc32),
            (_, c) => c,
        };
        // One UploadPart must fit in one attempt even at a slow 256 KiB/s.
        let attempt_timeout = Duration::from_secs(120 + part_size / (256 * 1024));
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(8)
                    .with_initial_backoff(Duration::from_millis(200))
                    .with_max_backoff(Duration::from_secs(20))
                    .with_reconnect_mode(ReconnectMode::ReconnectOnTransientError),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .operation_attempt_timeout(attempt_timeout)
                    // Retries of one call end within a bounded time, whatever keeps failing.
                    .operation_timeout(attempt_timeout * 3)
                    .build(),
            );
        if let Some(region) = &config.region {
            loader = loader.region(Region::new(region.clone()));
        } else if custom_endpoint {
            // S3-compatible servers still want a region in the signature.
            loader = loader.region(Region::new("us-east-1"));
        }
        if let Some(c) = credentials {
            loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
                c.access_key_id,
                c.secret_access_key,
                c.session_token,
                None,
                "cbk-plan",
            ));
        } else if let Some(profile) = &config.profile {
            loader = loader.profile_name(profile);
        }
        let sdk = loader.load().await;
        if sdk.region().is_none() {
            return Err(StoreError::NoRegion(config.url.clone()));
        }
        let mut b = aws_sdk_s3::config::Builder::from(&sdk);
        if let Some(ep) = &config.endpoint {
            b = b.endpoint_url(ep);
        }
        b = b.force_path_style(config.path_style);
        if when_required {
            b = b
                .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        }
        Ok(S3Store {
            client: Client::from_conf(b.build()),
            bucket,
            prefix,
            endpoint: config.endpoint.clone(),
            sse: config.sse,
            sse_kms_key_id: config.sse_kms_key_id.clone(),
            storage_class: config.storage_class.as_deref().map(StorageClass::from),
            part_size,
            part_concurrency,
            checksum,
            object_lock: config.object_lock,
        })
    }

    /// The underlying SDK client (tests and tools).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The bucket key of a store key. S3 keys are opaque, and those of the old
    /// cassandra_backups may hold `//` (`<host>//var/lib/...`): such a key is accepted when it
    /// is valid with its slashes collapsed.
    fn full(&self, key: &str) -> StoreResult<String> {
        if key.contains("//") {
            let mut collapsed = key.to_string();
            while collapsed.contains("//") {
                collapsed = collapsed.replace("//", "/");
            }
            validate_key(&collapsed).map_err(|_| StoreError::InvalidKey {
                key: key.into(),
                reason: "not a valid key even with `//` collapsed".into(),
            })?;
        } else {
            validate_key(key)?;
        }
        Ok(format!("{}{key}", self.prefix))
    }

    fn sse(&self) -> Option<ServerSideEncryption> {
        self.sse.as_ref().map(|s| match s {
            Sse::Aes256 => ServerSideEncryption::Aes256,
            Sse::AwsKms => ServerSideEncryption::AwsKms,
        })
    }

    fn kms_key(&self) -> Option<String> {
        match self.sse {
            Some(Sse::AwsKms) => self.sse_kms_key_id.clone(),
            _ => None,
        }
    }

    /// The Object Lock mode and date a new object at bucket key `full` gets (`None`: no lock).
    fn lock_for(&self, full: &str) -> Option<(LockMode, aws_smithy_types::DateTime)> {
        let lock = self.object_lock?;
        let key = full.strip_prefix(&self.prefix).unwrap_or(full);
        if key.starts_with(UNLOCKED_PREFIX) {
            return None;
        }
        let until = lock.retain_until(jiff::Timestamp::now());
        Some((
            lock.mode,
            aws_smithy_types::DateTime::from_secs(until.as_second()),
        ))
    }

    /// A PutObject with the store's encryption, class, checksum and Object Lock settings.
    fn put_request(
        &self,
        full: &str,
        data: Bytes,
    ) -> aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder {
        let lock = self.lock_for(full);
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(full)
            .content_length(data.len() as i64)
            .body(ByteStream::from(data))
            .set_server_side_encryption(self.sse())
            .set_ssekms_key_id(self.kms_key())
            .set_storage_class(self.storage_class.clone())
            .set_checksum_algorithm(self.checksum.clone())
            .set_object_lock_mode(lock.map(|(m, _)| ObjectLockMode::from(m.s3_name())))
            .set_object_lock_retain_until_date(lock.map(|(_, d)| d))
    }

    /// PutObjectRetention of the current version of `full`.
    async fn put_retention(
        &self,
        full: &str,
        mode: LockMode,
        until: aws_smithy_types::DateTime,
    ) -> StoreResult<()> {
        self.client
            .put_object_retention()
            .bucket(&self.bucket)
            .key(full)
            .retention(
                ObjectLockRetention::builder()
                    .mode(ObjectLockRetentionMode::from(mode.s3_name()))
                    .retain_until_date(until)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| sdk_err(full, "PutObjectRetention", e))?;
        Ok(())
    }

    /// Whether an unfinished multipart upload with this id exists for the key.
    async fn upload_exists(&self, full: &str, upload_id: &str) -> StoreResult<bool> {
        let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
        loop {
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(full)
                .set_key_marker(key_marker.clone())
                .set_upload_id_marker(id_marker.clone())
                .send()
                .await
                .map_err(|e| sdk_err(full, "ListMultipartUploads", e))?;
            if page
                .uploads()
                .iter()
                .any(|u| u.key() == Some(full) && u.upload_id() == Some(upload_id))
            {
                return Ok(true);
            }
            let next = (
                page.next_key_marker().map(str::to_string),
                page.next_upload_id_marker().map(str::to_string),
            );
            if page.is_truncated() != Some(true)
                || next.0.is_none()
                || next == (key_marker.clone(), id_marker.clone())
            {
                return Ok(false);
            }
            (key_marker, id_marker) = next;
        }
    }

    /// The parts the server holds for an upload.
    /// HeadObject of `full`, `None` when the object is absent.
    async fn head_object(&self, full: &str) -> StoreResult<Option<HeadObjectOutput>> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(full)
            .send()
            .await
        {
            Ok(out) => Ok(Some(out)),
            Err(e) => match not_found_or(full, full, "HeadObject", e) {
                StoreError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }
}

/// S3's multipart and ranged-read calls; the protocol around them is [`super::multipart`].
#[async_trait]
impl PartWire for S3Store {
    fn limits(&self) -> PartLimits {
        PartLimits {
            min_part_size: MIN_PART_SIZE,
            max_part_size: MAX_PART_SIZE,
            max_parts: MAX_PARTS,
        }
    }

    fn part_size(&self) -> u64 {
        self.part_size
    }

    fn part_concurrency(&self) -> usize {
        self.part_concurrency
    }

    async fn put_object(&self, full: &str, body: Bytes) -> StoreResult<()> {
        self.put_request(full, body)
            .send()
            .await
            .map_err(|e| sdk_err(full, "PutObject", e))?;
        Ok(())
    }

    /// Creates a multipart upload with the store's settings; returns the upload id.
    async fn create(&self, full: &str) -> StoreResult<String> {
        let lock = self.lock_for(full);
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(full)
            .set_server_side_encryption(self.sse())
            .set_ssekms_key_id(self.kms_key())
            .set_storage_class(self.storage_class.clone())
            .set_checksum_algorithm(self.checksum.clone())
            .set_object_lock_mode(lock.map(|(m, _)| ObjectLockMode::from(m.s3_name())))
            .set_object_lock_retain_until_date(lock.map(|(_, d)| d))
            .send()
            .await
            .map_err(|e| sdk_err(full, "CreateMultipartUpload", e))?;
        out.upload_id()
            .map(str::to_string)
            .ok_or_else(|| StoreError::Request {
                key: full.into(),
                message: "CreateMultipartUpload returned no upload id".into(),
                retryable: false,
            })
    }

    async fn upload_part(
        &self,
        full: &str,
        upload_id: &str,
        number: i32,
        body: Bytes,
    ) -> StoreResult<StoredPart> {
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(full)
            .upload_id(upload_id)
            .part_number(number)
            .content_length(body.len() as i64)
            .set_checksum_algorithm(self.checksum.clone())
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| sdk_err(full, &format!("UploadPart {number}"), e))?;
        let etag = out
            .e_tag()
            .map(str::to_string)
            .ok_or_else(|| StoreError::Request {
                key: full.into(),
                message: format!("UploadPart {number} returned no ETag"),
                retryable: true,
            })?;
        Ok(StoredPart {
            etag,
            checksum: out
                .checksum_crc32()
                .or(out.checksum_crc32_c())
                .map(str::to_string),
        })
    }

    async fn list_parts(&self, full: &str, upload_id: &str) -> StoreResult<ServerParts> {
        let mut pages = self
            .client
            .list_parts()
            .bucket(&self.bucket)
            .key(full)
            .upload_id(upload_id)
            .into_paginator()
            .send();
        let mut parts = BTreeMap::new();
        while let Some(page) = pages.next().await {
            let page = match page {
                Ok(p) => p,
                Err(e) => {
                    let (status, code) = status_and_code(&e);
                    if status == Some(404) || code.as_deref() == Some("NoSuchUpload") {
                        return Ok(ServerParts::Gone);
                    }
                    if status == Some(200) {
                        // Some servers answer ListParts with XML the SDK cannot read (moto
                        // 5.2.5 names the root `ListPartsResponse`): say whether the upload
                        // still exists and let the checkpoint be trusted.
                        return Ok(match self.upload_exists(full, upload_id).await? {
                            true => ServerParts::Unlisted,
                            false => ServerParts::Gone,
                        });
                    }
                    return Err(sdk_err(full, "ListParts", e));
                }
            };
            for p in page.parts() {
                if let (Some(n), Some(etag)) = (p.part_number(), p.e_tag()) {
                    let checksum = p
                        .checksum_crc32()
                        .or(p.checksum_crc32_c())
                        .map(str::to_string);
                    parts.insert(
                        n,
                        (
                            etag.to_string(),
                            p.size().unwrap_or(0).max(0) as u64,
                            checksum,
                        ),
                    );
                }
            }
        }
        Ok(ServerParts::Known(parts))
    }

    async fn complete(&self, full: &str, upload_id: &str, parts: &[DonePart]) -> StoreResult<()> {
        let parts: Vec<CompletedPart> = parts
            .iter()
            .map(|d| completed_part(d, self.checksum.as_ref()))
            .collect();
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(full)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| sdk_err(full, "CompleteMultipartUpload", e))?;
        // Some servers (moto 5.2.5) drop the lock headers of CreateMultipartUpload: set the
        // retention on the completed object too (one request per multipart object).
        if let Some((mode, until)) = self.lock_for(full) {
            self.put_retention(full, mode, until).await?;
        }
        Ok(())
    }

    async fn abort(&self, full: &str, upload_id: &str) -> StoreResult<()> {
        self.client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(full)
            .upload_id(upload_id)
            .send()
            .await
            .map_err(|e| sdk_err(full, "AbortMultipartUpload", e))?;
        Ok(())
    }

    async fn head(&self, full: &str) -> StoreResult<Option<ObjectHead>> {
        Ok(self.head_object(full).await?.map(|out| ObjectHead {
            size: out.content_length().unwrap_or(0).max(0) as u64,
            etag: out.e_tag().map(str::to_string),
        }))
    }

    async fn get_range(
        &self,
        full: &str,
        etag: Option<&str>,
        start: u64,
        end: u64,
    ) -> StoreResult<RangeBody> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(full)
            .range(format!("bytes={start}-{}", end - 1))
            .set_if_match(etag.map(str::to_string))
            .send()
            .await
            .map_err(|e| sdk_err(full, "GetObject", e))?;
        let full = full.to_string();
        Ok(futures::stream::unfold(Some(out.body), move |body| {
            let full = full.clone();
            async move {
                let mut body = body?;
                match body.try_next().await {
                    Ok(Some(chunk)) => Some((Ok(chunk), Some(body))),
                    Ok(None) => None,
                    Err(e) => Some((
                        Err(StoreError::Request {
                            key: full,
                            message: format!("GetObject body: {e}"),
                            retryable: true,
                        }),
                        None,
                    )),
                }
            }
        })
        .boxed())
    }
}

#[async_trait]
impl Store for S3Store {
    fn describe(&self) -> String {
        let url = format!("s3://{}/{}", self.bucket, self.prefix.trim_end_matches('/'));
        let url = url.trim_end_matches('/').to_string();
        match &self.endpoint {
            Some(ep) => format!("{url} (endpoint {ep})"),
            None => url,
        }
    }

    async fn put_bytes(&self, key: &str, data: Bytes) -> StoreResult<()> {
        let full = self.full(key)?;
        self.put_request(&full, data)
            .send()
            .await
            .map_err(|e| sdk_err(&full, "PutObject", e))?;
        Ok(())
    }

    async fn put_if_absent(&self, key: &str, data: Bytes) -> StoreResult<PutIfAbsent> {
        let full = self.full(key)?;
        match self
            .put_request(&full, data)
            .if_none_match("*")
            .send()
            .await
        {
            Ok(_) => Ok(PutIfAbsent::Created),
            Err(e) => {
                let (status, code) = status_and_code(&e);
                if matches!(status, Some(412 | 409))
                    || matches!(
                        code.as_deref(),
                        Some("PreconditionFailed" | "ConditionalRequestConflict")
                    )
                {
                    Ok(PutIfAbsent::AlreadyExists)
                } else {
                    Err(sdk_err(&full, "PutObject (if-none-match)", e))
                }
            }
        }
    }

    async fn put_stream(
        &self,
        key: &str,
        reader: &mut (dyn AsyncRead + Send + Unpin),
        opts: PutStreamOptions<'_>,
    ) -> StoreResult<PutStats> {
        let full = self.full(key)?;
        multipart::put_stream(self, key, &full, reader, opts).await
    }

    async fn get_bytes(&self, key: &str) -> StoreResult<Bytes> {
        let (full, out) = self.get_object(key).await?;
        let data = out.body.collect().await.map_err(|e| StoreError::Request {
            key: full.clone(),
            message: format!("GetObject body: {e}"),
            retryable: true,
        })?;
        Ok(data.into_bytes())
    }

    async fn get_stream(&self, key: &str) -> StoreResult<Box<dyn AsyncRead + Send + Unpin>> {
        let (_, out) = self.get_object(key).await?;
        Ok(Box::new(out.body.into_async_read()))
    }

    async fn get_to_file(&self, key: &str, path: &Path) -> StoreResult<u64> {
        let full = self.full(key)?;
        multipart::get_to_file(self, key, &full, path).await
    }

    async fn head(&self, key: &str) -> StoreResult<Option<ObjectMeta>> {
        let full = self.full(key)?;
        Ok(self.head_object(&full).await?.map(|out| ObjectMeta {
            key: key.into(),
            size: out.content_length().unwrap_or(0).max(0) as u64,
            modified: out.last_modified().map(|t| t.secs()),
        }))
    }

    async fn list(&self, prefix: &str) -> StoreResult<Vec<ObjectMeta>> {
        let full_prefix = format!("{}{prefix}", self.prefix);
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&full_prefix)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_err(&full_prefix, "ListObjectsV2", e))?;
            for o in page.contents() {
                let Some(k) = o.key().and_then(|k| k.strip_prefix(&self.prefix)) else {
                    continue;
                };
                out.push(ObjectMeta {
                    key: k.to_string(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                    modified: o.last_modified().map(|t| t.secs()),
                });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn delete_many(&self, keys: &[String]) -> StoreResult<()> {
        let fulls = keys
            .iter()
            .map(|k| self.full(k))
            .collect::<StoreResult<Vec<_>>>()?;
        for batch in fulls.chunks(DELETE_BATCH) {
            let objects = batch
                .iter()
                .map(|k| ObjectIdentifier::builder().key(k).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| StoreError::Request {
                    key: batch[0].clone(),
                    message: format!("DeleteObjects: {e}"),
                    retryable: false,
                })?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| StoreError::Request {
                    key: batch[0].clone(),
                    message: format!("DeleteObjects: {e}"),
                    retryable: false,
                })?;
            let out = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| sdk_err(&batch[0], "DeleteObjects", e))?;
            if let Some(err) = out.errors().iter().find(|e| e.code() != Some("NoSuchKey")) {
                return Err(StoreError::Request {
                    key: err.key().unwrap_or("").into(),
                    message: format!(
                        "DeleteObjects: {} {}",
                        err.code().unwrap_or("error"),
                        err.message().unwrap_or("")
                    ),
                    retryable: false,
                });
            }
        }
        Ok(())
    }

    async fn abort_stale_uploads(&self, prefix: &str, older_than_secs: u64) -> StoreResult<u32> {
        let full_prefix = format!("{}{prefix}", self.prefix);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let cutoff = now - older_than_secs as i64;
        let mut stale = Vec::new();
        let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
        loop {
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(&full_prefix)
                .set_key_marker(key_marker.clone())
                .set_upload_id_marker(id_marker.clone())
                .send()
                .await
                .map_err(|e| sdk_err(&full_prefix, "ListMultipartUploads", e))?;
            for u in page.uploads() {
                let started = u.initiated().map_or(0, |t| t.secs());
                if let (Some(k), Some(id)) = (u.key(), u.upload_id())
                    && started <= cutoff
                {
                    stale.push((k.to_string(), id.to_string()));
                }
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            let next = (
                page.next_key_marker().map(str::to_string),
                page.next_upload_id_marker().map(str::to_string),
            );
            if next == (key_marker.clone(), id_marker.clone()) || next.0.is_none() {
                break; // the server does not page properly: stop rather than loop
            }
            (key_marker, id_marker) = next;
        }
        let mut aborted = 0;
        for (k, id) in stale {
            self.client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&k)
                .upload_id(&id)
                .send()
                .await
                .map_err(|e| sdk_err(&k, "AbortMultipartUpload", e))?;
            aborted += 1;
        }
        Ok(aborted)
    }

    async fn probe_conditional_writes(&self) -> StoreResult<bool> {
        let key = format!(".cbk-probe/conditional-{:016x}", rand::random::<u64>());
        let first = self.put_if_absent(&key, Bytes::from_static(b"1")).await?;
        let second = self.put_if_absent(&key, Bytes::from_static(b"2")).await;
        self.delete_many(std::slice::from_ref(&key)).await?;
        let enforced =
            first == PutIfAbsent::Created && matches!(second?, PutIfAbsent::AlreadyExists);
        if !enforced {
            tracing::warn!(
                store = %self.describe(),
                "the server ignores conditional writes (If-None-Match): create-only writes are not enforced"
            );
        }
        Ok(enforced)
    }

    async fn probe_encryption(&self) -> StoreResult<Option<bool>> {
        self.probe_sse().await
    }

    async fn object_lock_enabled(&self) -> StoreResult<bool> {
        match self
            .client
            .get_object_lock_configuration()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Ok(out) => Ok(out
                .object_lock_configuration()
                .and_then(|c| c.object_lock_enabled())
                == Some(&ObjectLockEnabled::Enabled)),
            Err(e) => {
                let (status, code) = status_and_code(&e);
                match code.as_deref() {
                    Some(
                        "ObjectLockConfigurationNotFoundError"
                        | "NoSuchObjectLockConfiguration"
                        | "NotImplemented",
                    ) => Ok(false),
                    Some("AccessDenied") if self.object_lock.is_none() => {
                        tracing::warn!(
                            store = %self.describe(),
                            "cannot tell whether the bucket has Object Lock (GetObjectLockConfiguration: AccessDenied): \
                             locked objects are not recognised; grant s3:GetBucketObjectLockConfiguration"
                        );
                        Ok(false)
                    }
                    _ if status == Some(501) => Ok(false),
                    _ => Err(sdk_err(&self.bucket, "GetObjectLockConfiguration", e)),
                }
            }
        }
    }

    async fn retention(&self, key: &str) -> StoreResult<Option<ObjectRetention>> {
        // HeadObject reports the retention (to callers allowed s3:GetObjectRetention); moto
        // 5.2.5 has no GetObjectRetention.
        let full = self.full(key)?;
        Ok(self.head_object(&full).await?.and_then(|out| {
            let until = out.object_lock_retain_until_date()?;
            Some(ObjectRetention {
                mode: out
                    .object_lock_mode()
                    .and_then(|m| LockMode::from_s3(m.as_str())),
                until: jiff::Timestamp::from_second(until.secs()).ok()?,
            })
        }))
    }

    async fn extend_retention(&self, key: &str, until: jiff::Timestamp) -> StoreResult<()> {
        let Some(lock) = self.object_lock else {
            return Ok(());
        };
        let full = self.full(key)?;
        let date = aws_smithy_types::DateTime::from_secs(until.as_second());
        let Err(first) = self.put_retention(&full, lock.mode, date).await else {
            return Ok(());
        };
        // Refused: S3 never shortens a lock (without a bypass) nor turns compliance into
        // governance. Fine when the object is already locked long enough; a compliance
        // object is extended in compliance mode.
        match self.retention(key).await? {
            Some(r) if r.until >= until => Ok(()),
            Some(ObjectRetention {
                mode: Some(mode), ..
            }) if mode != lock.mode => self.put_retention(&full, mode, date).await,
            _ => Err(first),
        }
    }
}

impl S3Store {
    /// See [`Store::probe_encryption`].
    async fn probe_sse(&self) -> StoreResult<Option<bool>> {
        let Some(want) = self.sse() else {
            return Ok(None);
        };
        let key = format!(".cbk-probe/encryption-{:016x}", rand::random::<u64>());
        let full = self.full(&key)?;
        self.put_bytes(&key, Bytes::from_static(b"probe")).await?;
        let head = self.head_object(&full).await;
        self.delete_many(std::slice::from_ref(&key)).await?;
        let head = head?.ok_or_else(|| StoreError::NotFound(key.clone()))?;
        let mut ok = head.server_side_encryption() == Some(&want);
        if let Some(id) = self.kms_key() {
            ok &= head
                .ssekms_key_id()
                .is_some_and(|got| got == id || got.ends_with(&id));
        }
        if !ok {
            tracing::warn!(
                store = %self.describe(),
                "the server does not report the requested server-side encryption"
            );
        }
        Ok(Some(ok))
    }
}

/// Maps a 404 to `NotFound(key)`, anything else to a request error.
fn not_found_or<E, R>(key: &str, full: &str, op: &str, err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + HasStatus,
{
    let (status, code) = status_and_code(&err);
    if status == Some(404) || matches!(code.as_deref(), Some("NoSuchKey" | "NotFound")) {
        StoreError::NotFound(key.into())
    } else {
        sdk_err(full, op, err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("s3://bkt").unwrap(),
            ("bkt".into(), String::new())
        );
        assert_eq!(
            parse_url("s3://bkt/").unwrap(),
            ("bkt".into(), String::new())
        );
        assert_eq!(
            parse_url("s3://bkt/x/y/").unwrap(),
            ("bkt".into(), "x/y/".into())
        );
        assert!(parse_url("s3:///x").is_err());
        assert!(parse_url("s3://bkt/x/../y").is_err());
        assert!(parse_url("file:///x").is_err());
        assert!(parse_url("s3://user:pw@b/x").is_err());
        assert!(parse_url("gs://b").is_err());
    }
}
