//! The `[storage]` plan section: the store's URL and the settings of its backend.

use crate::units::ByteSize;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Server-side encryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Sse {
    #[serde(rename = "AES256")]
    Aes256,
    #[serde(rename = "aws:kms")]
    AwsKms,
}

/// Where backups are stored.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// `s3://bucket/prefix` or `file:///absolute/path`.
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Custom endpoint for S3-compatible servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub path_style: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sse: Option<Sse>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sse_kms_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// AWS profile name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Name of the environment variable holding the access key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id_env: Option<String>,
    /// Name of the environment variable holding the secret access key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key_env: Option<String>,
    /// Name of the environment variable holding a session token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token_env: Option<String>,
    /// Multipart part size, e.g. `"16MiB"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_size: Option<ByteSize>,
    /// Parts in flight per file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_concurrency: Option<u32>,
    /// `auto`, `when_required` or `crc32c`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// S3 Object Lock retention put on every stored object (S3 only; the bucket must have
    /// Object Lock enabled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<super::object_lock::ObjectLock>,
}

impl StorageConfig {
    /// Whether the URL names an S3 bucket (through the one parser of storage URLs).
    pub fn is_s3(&self) -> bool {
        matches!(
            super::url::StoreUrl::parse(&self.url),
            Ok(super::url::StoreUrl::S3 { .. })
        )
    }
}
