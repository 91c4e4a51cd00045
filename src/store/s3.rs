//! The `s3` store: Amazon S3 and S3-compatible servers through aws-sdk-s3.

use super::{Credentials, StoreError, StoreResult};
use crate::plan::model::StorageConfig;

/// An S3 bucket and prefix.
pub struct S3Store {}

impl S3Store {
    /// Connects (lazily) to the bucket a plan names.
    pub async fn new(
        _config: &StorageConfig,
        _credentials: Option<Credentials>,
    ) -> StoreResult<Self> {
        Err(StoreError::Unsupported("s3 (not implemented yet)".into()))
    }
}
