//! The JSON documents of the repository: node manifests, the cluster catalog, index entries and
//! the scratch documents of a run. Each has a JSON Schema in `schemas/` generated from these types.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a file came from on the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FileSource {
    /// `snapshots/<tag>/`.
    Snapshot,
    /// `backups/` (incremental backups).
    Backups,
}

/// One stored file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FileEntry {
    /// Path relative to the table folder (`nb-1-big-Data.db`, `.idx/nb-1-big-Data.db`).
    pub path: String,
    /// Index of the data folder it came from (`data_dirs` of the node manifest).
    pub data_dir: usize,
    /// Object key, relative to the storage prefix.
    pub key: String,
    /// Size of the original bytes.
    pub size: u64,
    /// Size of the stored object.
    pub stored_size: u64,
    /// `none`, `lz4` or `zstd`.
    pub codec: String,
    /// CRC32 (IEEE) of the original bytes, as Cassandra's Digest.crc32 computes it.
    pub crc32: u32,
    pub source: FileSource,
}

/// One table of a node backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TableEntry {
    pub keyspace: String,
    pub table: String,
    /// Table id (32 hex digits, no dashes) as in the folder name.
    pub id: String,
    /// The snapshot's schema.cql, when Cassandra wrote one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_cql: Option<String>,
    /// The snapshot's own manifest.json, verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_manifest: Option<String>,
    pub files: Vec<FileEntry>,
}

impl TableEntry {
    /// `table-id`, the folder name.
    pub fn folder(&self) -> String {
        format!("{}-{}", self.table, self.id)
    }
}

/// What probe learned about a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ProbeInfo {
    /// Host name as the plan spells it.
    pub host: String,
    pub host_id: String,
    #[serde(default)]
    pub dc: String,
    #[serde(default)]
    pub rack: String,
    pub cassandra_version: String,
    #[serde(default)]
    pub tokens: Vec<String>,
    /// Encrypted repositories: the tokens sealed to the recipients (`tokens` is then empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_tokens: Option<String>,
    pub data_dirs: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commitlog_dir: Option<String>,
}

/// Backup kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BackupKind {
    Snapshot,
    Incremental,
}

/// A node manifest: everything needed to restore one node. Written last: a node backup
/// without it does not exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NodeManifest {
    /// 1; 2 for a manifest of an encrypted repository whose secret fields are sealed one by
    /// one.
    pub format: u32,
    /// Encrypted repositories (format 2): the scheme that sealed `schema_cql`,
    /// `snapshot_manifest` and the tokens (`cbk-sealed:` fields); everything else is in
    /// clear, so prune, forget, quick verify and incrementals need no identity. Absent in a
    /// plain repository (and inside a format-1 manifest, sealed as a whole).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<String>,
    pub backup: String,
    pub kind: BackupKind,
    /// For incrementals: the snapshot backup they are chained to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    pub cluster: String,
    pub node: ProbeInfo,
    /// Snapshot tag on the node (snapshot backups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_tag: Option<String>,
    /// RFC 3339 time the backup was planned (the plan's captured `now`).
    pub created: String,
    /// RFC 3339 time this manifest was written.
    pub completed: String,
    pub tables: Vec<TableEntry>,
    pub totals: Totals,
    /// The definitions of the backed-up keyspaces as the node reported them at backup time
    /// (absent in manifests written before cbk recorded them, or without `cassandra.cqlsh`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyspaces: Option<KeyspaceDefs>,
    /// In an encrypted repository (format 2): `keyspaces` as JSON, sealed with age.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_keyspaces: Option<String>,
}

/// Format of [`KeyspaceDefs`]; a reader refuses a greater one.
pub const KEYSPACE_DEFS_FORMAT: u32 = 1;

/// The keyspace definitions a node manifest records (docs/repository.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct KeyspaceDefs {
    /// [`KEYSPACE_DEFS_FORMAT`] when written.
    pub format: u32,
    /// Where they were read: `system_schema.keyspaces`.
    pub source: String,
    pub keyspaces: Vec<KeyspaceDef>,
}

/// One keyspace's definition: what `CREATE KEYSPACE` needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct KeyspaceDef {
    pub name: String,
    /// The `replication` map (`class`, then `replication_factor` or one entry per data center).
    pub replication: std::collections::BTreeMap<String, String>,
    pub durable_writes: bool,
}

/// `format` of a node manifest of an encrypted repository stored as JSON with its secret
/// fields sealed one by one (format 1 sealed the whole manifest as one age file).
pub const SEALED_FIELDS_FORMAT: u32 = 2;

/// Sums over a manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Totals {
    pub files: u64,
    pub bytes: u64,
    pub stored_bytes: u64,
}

impl Totals {
    /// Sums the files of some tables.
    pub fn of(tables: &[TableEntry]) -> Totals {
        let mut t = Totals::default();
        for f in tables.iter().flat_map(|t| &t.files) {
            t.files += 1;
            t.bytes += f.size;
            t.stored_bytes += f.stored_size;
        }
        t
    }
}

/// One host in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CatalogHost {
    pub name: String,
    pub host_id: String,
    #[serde(default)]
    pub dc: String,
    #[serde(default)]
    pub rack: String,
    pub manifest: String,
    pub totals: Totals,
}

/// What a backup plan selected: retention counts the backups of one selection together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Selection {
    /// `[backup] include` (sorted).
    #[serde(default)]
    pub include: Vec<String>,
    /// `[backup] exclude` (sorted).
    #[serde(default)]
    pub exclude: Vec<String>,
    pub system_keyspaces: crate::cassandra::config::SystemKeyspaces,
}

impl Selection {
    /// The selection of a backup plan's `include`, `exclude` and `system_keyspaces`.
    pub fn of(
        include: &[String],
        exclude: &[String],
        system_keyspaces: crate::cassandra::config::SystemKeyspaces,
    ) -> Selection {
        let sorted = |v: &[String]| {
            let mut v = v.to_vec();
            v.sort();
            v.dedup();
            v
        };
        Selection {
            include: sorted(include),
            exclude: sorted(exclude),
            system_keyspaces,
        }
    }
}

/// The cluster manifest of one backup, written after all nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Catalog {
    pub format: u32,
    pub backup: String,
    pub kind: BackupKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    pub cluster: String,
    pub created: String,
    pub completed: String,
    /// sha256 of the plan file the backup was made from.
    pub plan_sha256: String,
    pub cbk_version: String,
    /// What the plan selected (absent in backups made before cbk recorded it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<Selection>,
    pub hosts: Vec<CatalogHost>,
    pub totals: Totals,
}

/// A small index entry per backup so listing never walks the bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct IndexEntry {
    pub backup: String,
    pub kind: BackupKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    pub cluster: String,
    pub created: String,
    pub completed: String,
    pub hosts: Vec<String>,
    pub totals: Totals,
}

impl From<&Catalog> for IndexEntry {
    fn from(c: &Catalog) -> Self {
        IndexEntry {
            backup: c.backup.clone(),
            kind: c.kind,
            base: c.base.clone(),
            cluster: c.cluster.clone(),
            created: c.created.clone(),
            completed: c.completed.clone(),
            hosts: c.hosts.iter().map(|h| h.name.clone()).collect(),
            totals: c.totals.clone(),
        }
    }
}

/// A node manifest for unit tests: backup `b` of cluster `c`, host `h` (host id `id`, 4.1.3,
/// one data folder, no tokens), planned 2022-12-09T09:00:00Z, one table `shop.orders` (id 32
/// zeros, no schema) holding `files`. Tests set what they need on top.
#[cfg(test)]
pub(crate) fn sample(files: Vec<FileEntry>) -> NodeManifest {
    NodeManifest {
        format: 1,
        encryption: None,
        backup: "b".into(),
        kind: BackupKind::Snapshot,
        base: None,
        cluster: "c".into(),
        node: ProbeInfo {
            host: "h".into(),
            host_id: "id".into(),
            dc: String::new(),
            rack: String::new(),
            cassandra_version: "4.1.3".into(),
            tokens: Vec::new(),
            sealed_tokens: None,
            data_dirs: vec!["/d".into()],
            commitlog_dir: None,
        },
        snapshot_tag: Some("b".into()),
        created: "2022-12-09T09:00:00Z".into(),
        completed: "2022-12-09T09:01:00Z".into(),
        tables: vec![TableEntry {
            keyspace: "shop".into(),
            table: "orders".into(),
            id: "0".repeat(32),
            schema_cql: None,
            snapshot_manifest: None,
            files,
        }],
        totals: Totals::default(),
        keyspaces: None,
        sealed_keyspaces: None,
    }
}
