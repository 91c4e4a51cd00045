//! The `[connection]` plan section and a host's own settings: how cbk reaches each node.

use crate::units::Duration;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A host with its own settings (all optional except the name).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    /// Name used in task addresses (`snapshot[NAME]`) and templates.
    pub name: String,
    /// Address to connect to (defaults to the name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Data folders, overriding what cassandra.yaml says.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_dirs: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<String>,
}

/// How cbk reaches the nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// OpenSSH (system `ssh`, ControlMaster multiplexing).
    #[default]
    Ssh,
    /// cbk runs on the node itself.
    Local,
}

/// Host-key policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "kebab-case")]
pub enum KnownHosts {
    /// Unknown or changed host keys are refused (default).
    #[default]
    Strict,
    /// Unknown host keys are added; changed ones are refused.
    AcceptNew,
}

/// Connection settings shared by all hosts (a host table may override user/port).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConnectionConfig {
    #[serde(default)]
    pub transport: TransportKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Private key file (`-i`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// ssh config file (`-F`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_config: Option<String>,
    /// known_hosts file to use instead of the user's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_hosts_file: Option<String>,
    #[serde(default)]
    pub known_hosts: KnownHosts,
    /// Connect timeout, e.g. `"10s"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Duration>,
    /// Run node commands through sudo.
    #[serde(default)]
    pub sudo: bool,
    /// User for sudo (`sudo -u`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sudo_user: Option<String>,
    /// Path of cbk on the nodes; if unset, cbk installs its own binary into a per-user cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_path: Option<String>,
    /// Jump hosts (`-J`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jump_hosts: Vec<String>,
}
