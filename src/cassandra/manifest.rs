//! Snapshot manifest.json in all its shapes (2.2–4.0 json-simple, 4.1 compact Jackson, 5.0 pretty).
//!
//! `files` lists the Data.db of each snapshotted sstable relative to the snapshot folder
//! (`.<index>/` prefix for index sstables, escaped `\/` before 5.0). Unknown fields are ignored and
//! missing `created_at`/`expires_at` are null, like Cassandra's own reader. A missing manifest is
//! the caller's business (2.1 manifests can even be wrong, see cassandra-facts §3.3).

use serde::Deserialize;

/// A manifest.json that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest.json is not valid: {0}")]
    Json(#[from] serde_json::Error),
    #[error("manifest.json lists an unsafe or malformed path {0:?}")]
    BadPath(String),
    #[error("manifest.json has a bad {field} timestamp {value:?}")]
    BadTime { field: &'static str, value: String },
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default)]
    files: Vec<String>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    expires_at: Option<String>,
    #[serde(default)]
    ephemeral: Option<bool>,
}

/// One listed sstable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    /// `Some("t_idx")` for `.t_idx/nb-1-big-Data.db`.
    pub index: Option<String>,
    /// The Data.db file name.
    pub file: String,
}

/// A parsed snapshot manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotManifest {
    /// As listed (unescaped), in file order.
    pub files: Vec<String>,
    pub created_at: Option<jiff::Timestamp>,
    pub expires_at: Option<jiff::Timestamp>,
    /// 5.0 field; before 5.0 an `ephemeral.snapshot` marker file plays this role.
    pub ephemeral: Option<bool>,
}

fn timestamp(
    field: &'static str,
    v: Option<String>,
) -> Result<Option<jiff::Timestamp>, ManifestError> {
    v.map(|s| {
        s.parse::<jiff::Timestamp>()
            .map_err(|_| ManifestError::BadTime { field, value: s })
    })
    .transpose()
}

impl SnapshotManifest {
    pub fn parse(text: &str) -> Result<SnapshotManifest, ManifestError> {
        let raw: Raw = serde_json::from_str(text)?;
        let m = SnapshotManifest {
            files: raw.files,
            created_at: timestamp("created_at", raw.created_at)?,
            expires_at: timestamp("expires_at", raw.expires_at)?,
            ephemeral: raw.ephemeral,
        };
        m.entries()?;
        Ok(m)
    }

    /// The listed files split into index folder and file name; rejects anything that is not
    /// `<file>` or `.<index>/<file>` (no `..`, no absolute paths).
    pub fn entries(&self) -> Result<Vec<ManifestEntry>, ManifestError> {
        self.files
            .iter()
            .map(|f| {
                let bad = || ManifestError::BadPath(f.clone());
                let ok_name = |s: &str| {
                    !s.is_empty()
                        && s != "."
                        && s != ".."
                        && !s.contains('\\')
                        && !s.contains('\0')
                        && !s.starts_with('.')
                };
                match f.split('/').collect::<Vec<_>>().as_slice() {
                    [file] if ok_name(file) => Ok(ManifestEntry {
                        index: None,
                        file: (*file).to_string(),
                    }),
                    [idx, file]
                        if idx.len() > 1
                            && idx.starts_with('.')
                            && ok_name(&idx[1..])
                            && ok_name(file) =>
                    {
                        Ok(ManifestEntry {
                            index: Some(idx[1..].to_string()),
                            file: (*file).to_string(),
                        })
                    }
                    _ => Err(bad()),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_shapes() {
        let m = SnapshotManifest::parse("{\"files\":[\"lb-1-big-Data.db\"]}\n").unwrap();
        assert_eq!(m.files, vec!["lb-1-big-Data.db"]);
        assert_eq!((m.created_at, m.ephemeral), (None, None));

        let m = SnapshotManifest::parse(
            r#"{"files":["md-4-big-Data.db",".users_city_idx\/md-3-big-Data.db"]}"#,
        )
        .unwrap();
        let e = m.entries().unwrap();
        assert_eq!(e[1].index.as_deref(), Some("users_city_idx"));
        assert_eq!(e[1].file, "md-3-big-Data.db");

        let m = SnapshotManifest::parse(
            r#"{"files":["nb-1-big-Data.db","nb-2-big-Data.db"],"created_at":"2023-02-17T10:11:12.345Z","expires_at":null}"#,
        )
        .unwrap();
        assert_eq!(m.created_at.unwrap().as_millisecond(), 1676628672345);
        assert_eq!(m.expires_at, None);

        let m = SnapshotManifest::parse(
            "{\n  \"files\" : [ \"nb-1-big-Data.db\", \".t_v_idx/nb-1-big-Data.db\" ],\n  \"created_at\" : \"2024-01-25T10:06:41.420Z\",\n  \"expires_at\" : \"2024-01-25T10:09:41.420Z\",\n  \"ephemeral\" : false\n}",
        )
        .unwrap();
        assert_eq!(m.ephemeral, Some(false));
        assert!(m.expires_at > m.created_at);
        assert_eq!(
            SnapshotManifest::parse("{\"files\":[]}")
                .unwrap()
                .files
                .len(),
            0
        );
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(
            SnapshotManifest::parse("{\"files\":[\"../../etc/passwd\"]}"),
            Err(ManifestError::BadPath(_))
        ));
        assert!(SnapshotManifest::parse("{\"files\":[\"/abs\"]}").is_err());
        assert!(SnapshotManifest::parse("{\"files\":[\".a/b/c\"]}").is_err());
        assert!(SnapshotManifest::parse("{\"files\":").is_err());
        assert!(SnapshotManifest::parse("{\"files\":[],\"created_at\":\"yesterday\"}").is_err());
    }
}
