//! The `fs` store: a local folder (quickstarts, NFS mounts, tests) with S3's semantics.

use super::StoreResult;

/// A folder used as an object store.
pub struct FsStore {
    _root: std::path::PathBuf,
}

impl FsStore {
    /// Opens (and creates) the folder.
    pub fn new(root: &str) -> StoreResult<Self> {
        Ok(FsStore { _root: root.into() })
    }
}
