//! The plan file format, version 1: the serde types that mirror a TOML plan exactly.
//!
//! A plan composes the configuration of the modules that use it: `[storage]` is
//! [`crate::store::config`], `[connection]` and host tables are [`crate::remote::config`],
//! `[cassandra]` is [`crate::cassandra::config`], `[retention]` is [`crate::repo::prune`], and
//! commands are [`crate::command`]. What only the plan, the compiler and the tasks read
//! (backup, restore, limits, steps) is defined here. The loader turns a TOML file into these
//! types (with spans and diagnostics), the compiler turns them into tasks, and the tasks read
//! their settings from the resolved copy stored in a saved plan. Secrets never live here:
//! credentials are referenced by profile or by the *names* of environment variables.

pub use crate::cassandra::config::{CassandraConfig, JmxConfig, SystemKeyspaces};
pub use crate::command::CommandSpec;
pub use crate::remote::config::{ConnectionConfig, HostSpec, KnownHosts, TransportKind};
pub use crate::repo::prune::Retention;
pub use crate::store::config::{Sse, StorageConfig};
use crate::units::Rate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a plan does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum PlanKind {
    /// Snapshot (or incremental) backup of the cluster to the store.
    #[default]
    Backup,
    /// Restore a stored backup onto the cluster.
    Restore,
    /// Only custom steps (a runbook).
    Runbook,
}

/// A whole plan file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanFile {
    /// Format version of the plan file; only `1` exists.
    pub version: u32,
    /// What the plan does.
    pub kind: PlanKind,
    /// Optional human description shown in plan output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub cluster: ClusterConfig,
    #[serde(default)]
    pub connection: ConnectionConfig,
    #[serde(default)]
    pub cassandra: CassandraConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageConfig>,
    /// Client-side encryption to public-key recipients (absent = objects stored as they are).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreConfig>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// Custom steps (`exec`), run on hosts or on the controller.
    #[serde(default, rename = "step", skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<CustomStep>,
}

/// The cluster and its hosts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Cluster name (used in templates and in the repository catalog).
    pub name: String,
    /// Hosts: plain names, or tables with per-host settings.
    pub hosts: Vec<HostEntry>,
}

/// One host: either a plain name or a table.
///
/// `Deserialize` is written by hand (see [`crate::plan::de`]) instead of `#[serde(untagged)]`, so
/// errors inside a host table keep their TOML spans.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum HostEntry {
    Name(String),
    Detailed(HostSpec),
}

impl HostEntry {
    /// The host as a full spec.
    pub fn spec(&self) -> HostSpec {
        match self {
            HostEntry::Name(n) => HostSpec {
                name: n.clone(),
                ..Default::default()
            },
            HostEntry::Detailed(s) => s.clone(),
        }
    }
}

/// `[encryption]`: every object that reveals data is encrypted so that only the holders of an
/// identity (private key) of one of `recipients` can read it. Backing up needs only the
/// recipients (public keys); the identity is read from the environment when a command needs it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EncryptionConfig {
    /// age X25519 recipients (`age1...`), at least one.
    pub recipients: Vec<String>,
    /// A KMS key to wrap data keys with (parsed, refused: not supported yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    /// Environment variable holding the age identity (its text), for restore and
    /// `verify --deep`; without it, `CBK_IDENTITY_FILE` names an identity file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_env: Option<String>,
}

/// Which clear-snapshot policy applies after an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum ClearSnapshot {
    /// Clear the snapshot whatever happened (default: never leave snapshots filling disks).
    #[default]
    Always,
    /// Keep the snapshot if an upload failed (for a quick retry).
    OnSuccess,
    /// Never clear it.
    Never,
}

/// Backup mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum BackupMode {
    /// `nodetool snapshot` and upload of every component not yet stored.
    #[default]
    Snapshot,
    /// Upload of the incremental `backups/` folders, chained to the latest snapshot backup.
    Incremental,
}

/// Backup settings.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BackupConfig {
    /// Backup name template (minijinja; must contain a year and sort by time).
    pub name: String,
    #[serde(default)]
    pub mode: BackupMode,
    /// `keyspace.table` globs to include (default: all non-system keyspaces).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// `keyspace.table` globs to exclude.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub system_keyspaces: SystemKeyspaces,
    /// `zstd` (default), `zstd:LEVEL`, `lz4` or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codec: Option<String>,
    /// Also compress Data.db files that Cassandra already compressed.
    #[serde(default)]
    pub compress_compressed: bool,
    /// Flush memtables before the snapshot (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flush: Option<bool>,
    #[serde(default)]
    pub clear_snapshot: ClearSnapshot,
}

impl BackupConfig {
    /// What the backup selects, as the repository records it.
    pub fn selection(&self) -> crate::repo::manifest::Selection {
        crate::repo::manifest::Selection::of(&self.include, &self.exclude, self.system_keyspaces)
    }
}

/// Restore method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum RestoreMethod {
    /// The Node Restart Method: stop, clear commit log, move files, start, repair.
    #[default]
    Restart,
    /// `nodetool import` (4.0+), no downtime.
    Import,
    /// `nodetool refresh` (3.x), no downtime.
    Refresh,
    /// `sstableloader`, for another topology.
    Loader,
}

/// Restore settings.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RestoreConfig {
    /// `latest`, a backup name, a template, `latest-before:TIME` (RFC 3339), or
    /// `legacy:<base>/<name>` (a cassandra_backups snapshot; docs/migration.md).
    pub source: String,
    /// Cluster (`[cluster] name` of the backup plans) whose backups `latest` and
    /// `latest-before:` choose from; default: this plan's cluster. Set it to restore another
    /// cluster's newest backup into this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_cluster: Option<String>,
    #[serde(default)]
    pub method: RestoreMethod,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Source host (name or host id) -> target host name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub host_map: BTreeMap<String, String>,
    /// Owner of restored files (default: the data folder's owner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Run `nodetool repair` afterwards (default true for `restart`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repair: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repair_options: Vec<String>,
    /// Hosts repairing at once (default 1: one host after the other, each with one
    /// `nodetool repair` per keyspace). Above 1, each host repairs its primary token ranges one
    /// `nodetool repair -st START -et END` at a time, so every range is repaired once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repair_parallelism: Option<u32>,
    /// Create tables missing on the target from the backed-up schema.cql (`WITH ID`).
    #[serde(default)]
    pub create_missing_tables: bool,
    /// Show the `initial_token` value each target needs to own its source's ranges (writing
    /// it into cassandra.yaml is not automated yet).
    #[serde(default)]
    pub pin_tokens: bool,
    /// `restart` only: go on although a target node owns other tokens than its source node.
    /// Off by default: the restored files would sit on a node that does not own their ranges,
    /// unreadable through the normal replicas and deleted by the next `nodetool cleanup`.
    #[serde(default)]
    pub allow_token_mismatch: bool,
    /// `restart` only: before fetching, compare each target's live sstables of the selected
    /// tables with the backup (name, size, CRC32/Digest) and stage only the sstables that
    /// differ; identical live sstables stay in place. Off by default (a full restore replaces
    /// every file, also one corrupted in place without a size change).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delta: bool,
    /// Restore only the backed-up hosts of these data centers (as the backup recorded them);
    /// empty: every data center.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub datacenters: Vec<String>,
    /// Backed-up data center -> the target data center it restores into: its hosts restore onto
    /// the plan hosts of that `dc`, and a keyspace created from the backup's recorded definition
    /// gets the target names in its replication.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dc_map: BTreeMap<String, String>,
    /// `import`/`loader` only: restore into this keyspace instead of the backed-up one, beside
    /// the live data (the keyspace must exist on the target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_keyspace: Option<String>,
    /// `import`/`loader` only, with one table selected (`include = ["ks.table"]`): restore into
    /// this table name, beside the live table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_table: Option<String>,
    /// Resolve ambiguous table ids: `"ks.table" = "32-hex id"`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub table_ids: BTreeMap<String, String>,
    /// Apply incremental backups up to the source time (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incrementals: Option<bool>,
    /// sstableloader options (`method = "loader"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loader: Option<LoaderConfig>,
}

/// sstableloader options. There are no credentials: sstableloader takes them only on its
/// command line (`-u`/`-pw`), where every local user can read them, and cbk never puts a secret
/// there. An authenticating cluster needs `auth_provider`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LoaderConfig {
    /// Contact points (`-d`), `host` or `host:port`; default: the node itself (the host's
    /// `address`, else its name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
    /// Native transport port (`-p`, default 9042).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native_port: Option<u16>,
    /// Internode port (`-sp`, default 7000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_port: Option<u16>,
    /// cassandra.yaml for streaming throughput and SSL (`-f`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conf_path: Option<String>,
    /// Throttle in megabits per second (`-t`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle_mbits: Option<u32>,
    /// Connections per host (`-cph`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections_per_host: Option<u32>,
    /// Java class of an AuthProvider with a no-argument constructor that finds the
    /// credentials itself (`-ap`); the only way to authenticate without a secret in argv.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_provider: Option<String>,
}

/// Concurrency and bandwidth limits.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Tasks running at once over the whole plan (default 10).
    #[serde(default = "default_parallelism")]
    pub parallelism: u32,
    /// Tasks running at once on one host (default 4; keep below sshd MaxSessions).
    #[serde(default = "default_per_host")]
    pub per_host: u32,
    /// Hosts at once for disruptive steps (default 1).
    #[serde(default = "default_rolling")]
    pub rolling: u32,
    /// Per-node bandwidth, e.g. `"200MiB/s"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<Rate>,
    /// Bandwidth of all nodes' store transfers together, shared among those under way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_bandwidth: Option<Rate>,
    /// Files transferred at once on one node (default 4).
    #[serde(default = "default_file_concurrency")]
    pub file_concurrency: u32,
}

fn default_parallelism() -> u32 {
    10
}
fn default_per_host() -> u32 {
    4
}
fn default_rolling() -> u32 {
    1
}
fn default_file_concurrency() -> u32 {
    4
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            parallelism: default_parallelism(),
            per_host: default_per_host(),
            rolling: default_rolling(),
            bandwidth: None,
            cluster_bandwidth: None,
            file_concurrency: default_file_concurrency(),
        }
    }
}

/// Where a custom step runs.
///
/// `Deserialize` is hand-written (see [`crate::plan::de`]) so errors keep their spans.
#[derive(Debug, Clone, Serialize, JsonSchema, PartialEq)]
#[serde(untagged)]
pub enum StepScope {
    /// `"hosts"` (every host) or `"controller"`.
    Keyword(String),
    /// A list of host names.
    Hosts(Vec<String>),
}

/// A custom step (`exec`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CustomStep {
    /// Step name (used in `after`/`before` and in the address `exec[NAME/HOST]`).
    pub name: String,
    /// Command (a template: `host`, `dc`, `rack`, `cluster`, `now`, `backup` are defined).
    pub run: CommandSpec,
    /// Where it runs (default `"hosts"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on: Option<StepScope>,
    /// Steps (built-in or custom) that must finish first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    /// Steps that must wait for this one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub before: Vec<String>,
    /// Marks the step disruptive (gated, counted and listed first).
    #[serde(default)]
    pub disruptive: bool,
    /// Run on one host at a time.
    #[serde(default)]
    pub rolling: bool,
    /// All hosts finish the previous steps before any host runs this one.
    #[serde(default)]
    pub barrier: bool,
    /// Run even if run with sudo=false globally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sudo: Option<bool>,
    /// A path (template): when it exists, the step is already satisfied (like Ansible's `creates`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creates: Option<String>,
    /// A command (template): exit status 0 means the step is already satisfied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<CommandSpec>,
}
