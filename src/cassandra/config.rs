//! The `[cassandra]` plan section: where Cassandra lives on a node and how cbk drives it, and
//! which system keyspaces a backup or restore takes.

use crate::command::CommandSpec;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// JMX options passed to nodetool. The password is only ever a *file*.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JmxConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<String>,
}

/// Where Cassandra lives on each node and how to drive it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CassandraConfig {
    /// Path of cassandra.yaml (default `/etc/cassandra/cassandra.yaml`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// nodetool command (default `nodetool`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodetool: Option<CommandSpec>,
    /// cqlsh command, used to read live table ids and create missing tables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cqlsh: Option<CommandSpec>,
    /// sstableloader command, for `method = "loader"` restores (default `sstableloader`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sstableloader: Option<CommandSpec>,
    #[serde(default)]
    pub jmx: JmxConfig,
    /// Command that stops Cassandra (default `systemctl stop cassandra`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<CommandSpec>,
    /// Command that starts Cassandra (default `systemctl start cassandra`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<CommandSpec>,
    /// Staging folder for restores (default `/var/lib/cassandra/cbk-staging`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staging: Option<String>,
    /// Owner of data files, `user[:group]` (default `cassandra:cassandra`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// How system keyspaces are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum SystemKeyspaces {
    /// None of them.
    None,
    /// `system_schema` (so a new cluster can be restored) — the default.
    #[default]
    Schema,
    /// All system keyspaces.
    All,
}
