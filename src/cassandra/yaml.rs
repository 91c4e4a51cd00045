//! cassandra.yaml: data, commitlog, saved caches and hints folders with the defaults of each install type.
//!
//! Missing directory keys default to `<storagedir>/data|commitlog|saved_caches|hints|cdc_raw`
//! (`DatabaseDescriptor.storagedirFor`); storagedir is `/var/lib/cassandra` for packages and
//! `$CASSANDRA_HOME/data` for tarballs. Unknown keys are ignored.

use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

/// How Cassandra was installed (decides the default storage folder).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum InstallType {
    /// Debian/RPM packages and the Docker image: storagedir `/var/lib/cassandra`.
    #[default]
    Package,
    /// Tarball: storagedir `$CASSANDRA_HOME/data`.
    Tarball { home: PathBuf },
}

impl InstallType {
    /// `-Dcassandra.storagedir` as set by `cassandra.in.sh`.
    pub fn storagedir(&self) -> PathBuf {
        match self {
            InstallType::Package => PathBuf::from("/var/lib/cassandra"),
            InstallType::Tarball { home } => home.join("data"),
        }
    }
}

/// Where cassandra.yaml usually is: Debian/Docker, RPM.
pub const DEFAULT_CONFIG_PATHS: [&str; 2] = [
    "/etc/cassandra/cassandra.yaml",
    "/etc/cassandra/conf/cassandra.yaml",
];

/// A cassandra.yaml that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    #[error("{path}: not valid YAML: {message}")]
    Syntax { path: String, message: String },
    #[error("{path}: the top level must be a mapping of keys")]
    NotAMapping { path: String },
    #[error("{path}: key `{key}` {reason}")]
    BadValue {
        path: String,
        key: String,
        reason: String,
    },
}

/// The parts of cassandra.yaml cbk needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CassandraYaml {
    pub cluster_name: Option<String>,
    /// At least one entry (the default when the key is missing or empty).
    pub data_file_directories: Vec<PathBuf>,
    /// 4.0+: local system keyspaces live here; otherwise in the first data folder.
    pub local_system_data_file_directory: Option<PathBuf>,
    pub commitlog_directory: PathBuf,
    pub saved_caches_directory: PathBuf,
    pub hints_directory: PathBuf,
    pub cdc_raw_directory: PathBuf,
    pub incremental_backups: bool,
    pub auto_snapshot: bool,
    pub snapshot_before_compaction: bool,
    /// 4.1+ (`enable_uuid_sstable_identifiers` in 4.1-alpha1).
    pub uuid_sstable_identifiers_enabled: bool,
    /// 5.0 `storage_compatibility_mode` (`CASSANDRA_4`, `UPGRADING`, `NONE`).
    pub storage_compatibility_mode: Option<String>,
    /// 5.0 `sstable: selected_format:` (`big` or `bti`).
    pub sstable_selected_format: Option<String>,
}

struct Reader<'a> {
    map: &'a serde_yaml_ng::Mapping,
    path: &'a str,
}

impl Reader<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn bad(&self, key: &str, reason: &str) -> YamlError {
        YamlError::BadValue {
            path: self.path.to_string(),
            key: key.to_string(),
            reason: reason.to_string(),
        }
    }

    fn string(&self, key: &str) -> Result<Option<String>, YamlError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(_) => Err(self.bad(key, "must be a string")),
        }
    }

    fn path(&self, key: &str) -> Result<Option<PathBuf>, YamlError> {
        Ok(self
            .string(key)?
            .filter(|s| !s.trim().is_empty())
            .map(PathBuf::from))
    }

    fn boolean(&self, keys: &[&str], default: bool) -> Result<bool, YamlError> {
        for key in keys {
            match self.get(key) {
                None => continue,
                Some(Value::Bool(b)) => return Ok(*b),
                Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
                    "true" | "yes" | "on" => return Ok(true),
                    "false" | "no" | "off" => return Ok(false),
                    _ => return Err(self.bad(key, "must be true or false")),
                },
                Some(_) => return Err(self.bad(key, "must be true or false")),
            }
        }
        Ok(default)
    }
}

impl CassandraYaml {
    /// Parses the text of cassandra.yaml; `path` is only used in messages.
    pub fn parse(
        text: &str,
        path: &str,
        install: &InstallType,
    ) -> Result<CassandraYaml, YamlError> {
        let value: Value = serde_yaml_ng::from_str(text).map_err(|e| YamlError::Syntax {
            path: path.to_string(),
            message: e.to_string(),
        })?;
        let empty = serde_yaml_ng::Mapping::new();
        let map = match &value {
            Value::Mapping(m) => m,
            // An empty file (or only comments) means "all defaults".
            Value::Null => &empty,
            _ => {
                return Err(YamlError::NotAMapping {
                    path: path.to_string(),
                });
            }
        };
        let r = Reader { map, path };
        let storage = install.storagedir();
        let data_file_directories = match r.get("data_file_directories") {
            None => vec![],
            Some(Value::Sequence(items)) => {
                let mut dirs = Vec::new();
                for item in items {
                    match item {
                        Value::String(s) if !s.trim().is_empty() => dirs.push(PathBuf::from(s)),
                        Value::Null => {}
                        _ => {
                            return Err(r.bad("data_file_directories", "must be a list of paths"));
                        }
                    }
                }
                dirs
            }
            Some(Value::String(s)) => vec![PathBuf::from(s)],
            Some(_) => return Err(r.bad("data_file_directories", "must be a list of paths")),
        };
        let data_file_directories = if data_file_directories.is_empty() {
            vec![storage.join("data")]
        } else {
            data_file_directories
        };
        let sstable_selected_format = match r.get("sstable") {
            Some(Value::Mapping(m)) => m
                .get("selected_format")
                .and_then(Value::as_str)
                .map(str::to_string),
            _ => None,
        };
        Ok(CassandraYaml {
            cluster_name: r.string("cluster_name")?,
            data_file_directories,
            local_system_data_file_directory: r.path("local_system_data_file_directory")?,
            commitlog_directory: r
                .path("commitlog_directory")?
                .unwrap_or_else(|| storage.join("commitlog")),
            saved_caches_directory: r
                .path("saved_caches_directory")?
                .unwrap_or_else(|| storage.join("saved_caches")),
            hints_directory: r
                .path("hints_directory")?
                .unwrap_or_else(|| storage.join("hints")),
            cdc_raw_directory: r
                .path("cdc_raw_directory")?
                .unwrap_or_else(|| storage.join("cdc_raw")),
            incremental_backups: r.boolean(&["incremental_backups"], false)?,
            auto_snapshot: r.boolean(&["auto_snapshot"], true)?,
            snapshot_before_compaction: r.boolean(&["snapshot_before_compaction"], false)?,
            uuid_sstable_identifiers_enabled: r.boolean(
                &[
                    "uuid_sstable_identifiers_enabled",
                    "enable_uuid_sstable_identifiers",
                ],
                false,
            )?,
            storage_compatibility_mode: r.string("storage_compatibility_mode")?,
            sstable_selected_format,
        })
    }

    /// Where local system keyspaces (`system`, `system_schema`) live on 4.0+.
    pub fn local_system_dir(&self) -> &Path {
        self.local_system_data_file_directory
            .as_deref()
            .unwrap_or(&self.data_file_directories[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_install_type() {
        let y = CassandraYaml::parse(
            "cluster_name: 'Test Cluster'\n",
            "c.yaml",
            &InstallType::Package,
        )
        .unwrap();
        assert_eq!(
            y.data_file_directories,
            vec![PathBuf::from("/var/lib/cassandra/data")]
        );
        assert_eq!(
            y.commitlog_directory,
            PathBuf::from("/var/lib/cassandra/commitlog")
        );
        assert_eq!(y.hints_directory, PathBuf::from("/var/lib/cassandra/hints"));
        assert!(y.auto_snapshot && !y.incremental_backups);
        assert_eq!(y.cluster_name.as_deref(), Some("Test Cluster"));
        let t = InstallType::Tarball {
            home: "/opt/cassandra".into(),
        };
        let y = CassandraYaml::parse("", "c.yaml", &t).unwrap();
        assert_eq!(
            y.data_file_directories,
            vec![PathBuf::from("/opt/cassandra/data/data")]
        );
        assert_eq!(
            y.saved_caches_directory,
            PathBuf::from("/opt/cassandra/data/saved_caches")
        );
    }

    #[test]
    fn malformed_is_a_clear_error() {
        let e = CassandraYaml::parse(
            "a: [1, 2\n",
            "/etc/cassandra/cassandra.yaml",
            &InstallType::Package,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/etc/cassandra/cassandra.yaml: not valid YAML"),
            "{e}"
        );
        let e = CassandraYaml::parse("- a\n", "c.yaml", &InstallType::Package).unwrap_err();
        assert!(matches!(e, YamlError::NotAMapping { .. }));
        let e = CassandraYaml::parse(
            "incremental_backups: maybe\n",
            "c.yaml",
            &InstallType::Package,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "c.yaml: key `incremental_backups` must be true or false"
        );
    }
}
