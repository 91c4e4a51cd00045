//! The repository format: what cbk writes to the store, under the storage URL's prefix.
//!
//! ```text
//! cbk-repository.json                               format marker (written once)
//! index/<backup>.json                               one small entry per complete backup (listing)
//! catalog/<backup>.json                             cluster manifest, written after every node's
//! nodes/<host_id>/manifests/<backup>.json           node manifest, written LAST for the node
//! nodes/<host_id>/sst/<ks>/<table>-<id>/[.<idx>/]<file>/<identity>.<ext>   SSTable components
//! runs/<backup>/probe/<host>.json                   what probe learned (host id, version, dirs)
//! runs/<backup>/parts/<host>/<ks>.<table>.json      per-table upload results, merged by manifest
//! ```
//!
//! Node identity is the Cassandra host id, never the DNS name; the catalog maps names to ids.
//! Each SSTable component is stored once per node: big immutable components are identified by
//! their file name, size and the sstable's Digest value (never re-read on a repeat backup);
//! small components that Cassandra rewrites in place (Statistics, Summary, TOC) by content.
//! The format is documented in docs/repository.md; what encryption changes in it is in
//! `encrypted` and docs/security.md.

pub mod coverage;
pub mod encrypted;
pub mod inventory;
pub mod keys;
pub mod legacy;
pub mod locked;
pub mod manifest;
pub mod object;
pub mod prune;
pub mod quarantine;
pub mod rekey;
pub mod verify;

pub use manifest::{
    Catalog, CatalogHost, FileEntry, IndexEntry, NodeManifest, ProbeInfo, TableEntry,
};

/// Version of the repository format.
pub const REPO_FORMAT_VERSION: u32 = 1;
