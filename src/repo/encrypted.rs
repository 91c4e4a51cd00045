//! What client-side encryption changes in the repository: the marker names the recipients'
//! fingerprints, and the text fields that reveal data (schema.cql, the snapshot's
//! manifest.json, tokens, keyspace definitions) of per-table results, probe results and node manifests are sealed
//! one by one, so the controller merges them without being able to read them, and prune,
//! forget, quick verify and incremental backups read the rest of a node manifest (file lists,
//! keys, sizes, CRC32s) without the identity. Node manifests of format 1 (written before) are
//! sealed as a whole and still need it.

use super::inventory::{RepoError, read_json};
use super::manifest::{NodeManifest, ProbeInfo, SEALED_FIELDS_FORMAT, TableEntry};
use crate::crypt::seal::{self, FIELD_PREFIX, open_field, seal_field};
use crate::crypt::{CryptError, Identities, MarkerEncryption, Recipients, SCHEME};
use crate::store::{Store, StoreError};

/// The marker's `encryption`: `None` for a plain repository or a store without a marker.
pub async fn marker_encryption(store: &dyn Store) -> Result<Option<MarkerEncryption>, RepoError> {
    let marker: serde_json::Value = match read_json(store, super::keys::FORMAT_KEY).await {
        Ok(v) => v,
        Err(RepoError::Store(StoreError::NotFound(_))) => return Ok(None),
        Err(e) => return Err(e),
    };
    match marker.get("encryption") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|e| RepoError::Corrupt {
                key: super::keys::FORMAT_KEY.into(),
                message: format!("`encryption`: {e}"),
            }),
    }
}

/// The identity for reading a repository: `None` when it is plain, an error naming the
/// variable to set when it is encrypted and no identity is given.
pub async fn identity_for(
    store: &dyn Store,
    identity_env: Option<&str>,
) -> Result<Option<Identities>, RepoError> {
    match marker_encryption(store).await? {
        None => Ok(None),
        Some(_) => Ok(Some(Identities::from_env(identity_env)?)),
    }
}

/// What a reader of the repository holds: how node manifests are read.
#[derive(Debug, Clone)]
pub enum Access {
    /// A plain repository: every document is in clear.
    Plain,
    /// An encrypted repository and its identity: everything can be read.
    Identity(Identities),
    /// An encrypted repository without the identity: only what stays in clear (a format-2
    /// node manifest without its sealed fields). `identity_env` is the plan's variable, named
    /// in the error when something needs the identity.
    Clear { identity_env: Option<String> },
}

impl Access {
    /// `Plain` without identities (a plain repository), `Identity` with them.
    pub fn of(ids: Option<&Identities>) -> Access {
        ids.map_or(Access::Plain, |i| Access::Identity(i.clone()))
    }

    /// The identity: `None` for a plain repository, the error naming the variable to set when
    /// the repository is encrypted and no identity was given.
    pub fn identities(&self) -> Result<Option<&Identities>, CryptError> {
        match self {
            Access::Plain => Ok(None),
            Access::Identity(ids) => Ok(Some(ids)),
            Access::Clear { identity_env } => Err(no_identity(identity_env.as_deref(), "")),
        }
    }
}

fn no_identity(identity_env: Option<&str>, why: &str) -> CryptError {
    let var = identity_env
        .map(|v| format!(" (or {v}, named by the plan, to its text)"))
        .unwrap_or_default();
    CryptError::NoIdentity {
        hint: format!("{var}{why}"),
    }
}

/// How to read a repository: plain, encrypted with the identity (from the plan's
/// `identity_env` or `CBK_IDENTITY_FILE`), or encrypted without one (what stays in clear). An
/// identity that is given but unreadable is an error.
pub async fn access_for(
    store: &dyn Store,
    identity_env: Option<&str>,
) -> Result<Access, RepoError> {
    if marker_encryption(store).await?.is_none() {
        return Ok(Access::Plain);
    }
    match Identities::from_env(identity_env) {
        Ok(ids) => Ok(Access::Identity(ids)),
        Err(CryptError::NoIdentity { .. }) => Ok(Access::Clear {
            identity_env: identity_env.map(String::from),
        }),
        Err(e) => Err(e.into()),
    }
}

/// Seals the text fields of one table's results.
pub fn seal_table(t: &mut TableEntry, to: &Recipients) -> Result<(), CryptError> {
    for f in [&mut t.schema_cql, &mut t.snapshot_manifest] {
        if let Some(text) = f.as_deref() {
            *f = Some(seal_field(text, to)?);
        }
    }
    Ok(())
}

/// Seals the tokens of probe results.
pub fn seal_probe(p: &mut ProbeInfo, to: &Recipients) -> Result<(), CryptError> {
    let tokens = std::mem::take(&mut p.tokens).join(",");
    p.sealed_tokens = Some(seal_field(&tokens, to)?);
    Ok(())
}

/// Seals what of a node manifest is not sealed yet (the node seals its fields; `cbk key` opens
/// them before re-sealing) and writes it as a format-2 manifest: JSON, its secret fields
/// sealed one by one, the rest in clear.
pub fn seal_manifest(m: &NodeManifest, to: &Recipients) -> Result<Vec<u8>, CryptError> {
    let mut m = m.clone();
    if m.node.sealed_tokens.is_none() {
        seal_probe(&mut m.node, to)?;
    }
    if let Some(defs) = m.keyspaces.take() {
        let json = serde_json::to_string(&defs).map_err(|e| CryptError::Encrypt(e.to_string()))?;
        m.sealed_keyspaces = Some(seal_field(&json, to)?);
    }
    for t in &mut m.tables {
        for f in [&mut t.schema_cql, &mut t.snapshot_manifest] {
            if let Some(text) = f.as_deref().filter(|t| !t.starts_with(FIELD_PREFIX)) {
                *f = Some(seal_field(text, to)?);
            }
        }
    }
    m.format = SEALED_FIELDS_FORMAT;
    m.encryption = Some(SCHEME.to_string());
    serde_json::to_vec_pretty(&m).map_err(|e| CryptError::Encrypt(e.to_string()))
}

/// Reads a node manifest as `access` allows: plain in a plain repository; in an encrypted one
/// with the identity, everything (format 1, sealed as a whole, or format 2); without it, a
/// format-2 manifest without its sealed fields (no schema, snapshot manifest or tokens) and a
/// format-1 one not at all (the error names the variable to set). A sealed manifest in a
/// plain repository, or a plain one in an encrypted repository, is refused (the repository
/// mixes encrypted and plain objects).
pub fn open_manifest(bytes: &[u8], key: &str, access: &Access) -> Result<NodeManifest, RepoError> {
    let corrupt = |e: serde_json::Error| RepoError::Corrupt {
        key: key.into(),
        message: e.to_string(),
    };
    let mixed = || {
        RepoError::Corrupt {
        key: key.into(),
        message: "it is encrypted, but the repository's marker says the repository is not (it mixes encrypted and plain objects)".into(),
    }
    };
    if seal::is_sealed(bytes) {
        let ids = match access {
            Access::Plain => return Err(mixed()),
            Access::Identity(ids) => ids,
            Access::Clear { identity_env } => {
                let why = format!(
                    "; `{key}` is a node manifest sealed as a whole (format 1, written by an earlier cbk)"
                );
                return Err(no_identity(identity_env.as_deref(), &why).into());
            }
        };
        let plain = seal::open(bytes, ids, key)?;
        let mut m: NodeManifest = serde_json::from_slice(&plain).map_err(corrupt)?;
        open_fields(&mut m, ids, key)?;
        return Ok(m);
    }
    let mut m: NodeManifest = serde_json::from_slice(bytes).map_err(corrupt)?;
    match (access, m.encryption.is_some()) {
        (Access::Plain, false) => Ok(m),
        (Access::Plain, true) => Err(mixed()),
        (_, false) => Err(CryptError::NotEncrypted { what: key.into() }.into()),
        (Access::Identity(ids), true) => {
            check_sealed(&m, key)?;
            open_fields(&mut m, ids, key)?;
            Ok(m)
        }
        (Access::Clear { .. }, true) => {
            check_sealed(&m, key)?;
            m.node.sealed_tokens = None;
            m.sealed_keyspaces = None;
            for t in &mut m.tables {
                t.schema_cql = None;
                t.snapshot_manifest = None;
            }
            Ok(m)
        }
    }
}

/// A format-2 manifest holds its secret fields sealed, never in clear.
fn check_sealed(m: &NodeManifest, key: &str) -> Result<(), CryptError> {
    let plain = |what: String| Err(CryptError::NotEncrypted { what });
    if !m.node.tokens.is_empty() {
        return plain(format!("{key} (tokens)"));
    }
    if m.keyspaces.is_some() {
        return plain(format!("{key} (keyspace definitions)"));
    }
    for t in &m.tables {
        for f in [&t.schema_cql, &t.snapshot_manifest].into_iter().flatten() {
            if !f.starts_with(FIELD_PREFIX) {
                return plain(format!("{key} ({}.{})", t.keyspace, t.table));
            }
        }
    }
    Ok(())
}

/// Opens the sealed fields of a manifest: tokens, keyspace definitions, schema.cql and the
/// snapshot's manifest.json.
fn open_fields(m: &mut NodeManifest, ids: &Identities, key: &str) -> Result<(), CryptError> {
    if let Some(sealed) = m.sealed_keyspaces.take() {
        let what = format!("{key} (keyspace definitions)");
        let json = open_field(&sealed, ids, &what)?;
        m.keyspaces = Some(
            serde_json::from_str(&json).map_err(|e| CryptError::Damaged {
                what,
                reason: e.to_string(),
            })?,
        );
    }
    if let Some(t) = m.node.sealed_tokens.take() {
        let text = open_field(&t, ids, &format!("{key} (tokens)"))?;
        m.node.tokens = text
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
    }
    for t in &mut m.tables {
        let what = format!("{key} ({}.{})", t.keyspace, t.table);
        for f in [&mut t.schema_cql, &mut t.snapshot_manifest] {
            if let Some(text) = f.as_deref() {
                *f = Some(open_field(text, ids, &what)?);
            }
        }
    }
    Ok(())
}

/// Reads and opens a node manifest from the store ([`open_manifest`]).
pub async fn read_manifest(
    store: &dyn Store,
    key: &str,
    access: &Access,
) -> Result<NodeManifest, RepoError> {
    let bytes = store.get_bytes(key).await?;
    open_manifest(&bytes, key, access)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::manifest::{
        FileEntry, FileSource, KEYSPACE_DEFS_FORMAT, KeyspaceDef, KeyspaceDefs,
    };

    fn manifest() -> NodeManifest {
        let mut m = crate::repo::manifest::sample(vec![FileEntry {
            path: "nb-1-big-Data.db".into(),
            data_dir: 0,
            key: "nodes/id/sst/shop/orders-0/nb-1-big-Data.db/s1".into(),
            size: 1,
            stored_size: 60,
            codec: "none".into(),
            crc32: 9,
            source: FileSource::Snapshot,
        }]);
        m.node.tokens = vec!["-42".into(), "7".into()];
        m.tables[0].schema_cql = Some("CREATE TABLE shop.orders".into());
        m.tables[0].snapshot_manifest = Some("{\"files\":[]}".into());
        m.keyspaces = Some(KeyspaceDefs {
            format: KEYSPACE_DEFS_FORMAT,
            source: "system_schema.keyspaces".into(),
            keyspaces: vec![KeyspaceDef {
                name: "shop".into(),
                replication: [
                    ("class".to_string(), "NetworkTopologyStrategy".to_string()),
                    ("dc_secret".to_string(), "3".to_string()),
                ]
                .into(),
                durable_writes: true,
            }],
        });
        m
    }

    #[test]
    fn format_2_keeps_file_lists_in_clear_and_secrets_sealed() {
        let (ids, to) = seal::test_keys();
        let (wrong, _) = seal::test_keys();
        let m = manifest();
        let bytes = seal_manifest(&m, &to).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            !text.contains("CREATE TABLE")
                && !text.contains("\"-42\"")
                && !text.contains("dc_secret"),
            "{text}"
        );
        assert!(text.contains("nb-1-big-Data.db/s1"), "{text}");
        // With the identity: everything, as written.
        let opened = open_manifest(&bytes, "k", &Access::Identity(ids.clone())).unwrap();
        assert_eq!(opened.format, SEALED_FIELDS_FORMAT);
        assert_eq!(opened.tables, m.tables);
        assert_eq!(opened.node.tokens, m.node.tokens);
        assert_eq!(opened.keyspaces, m.keyspaces);
        // Without: the file lists, no secret.
        let clear = open_manifest(&bytes, "k", &Access::Clear { identity_env: None }).unwrap();
        assert_eq!(clear.tables[0].files, m.tables[0].files);
        assert_eq!(clear.tables[0].schema_cql, None);
        assert!(clear.node.tokens.is_empty() && clear.node.sealed_tokens.is_none());
        assert!(clear.keyspaces.is_none() && clear.sealed_keyspaces.is_none());
        // A wrong identity, a plain repository, a plain field: refused.
        assert!(matches!(
            open_manifest(&bytes, "k", &Access::Identity(wrong)),
            Err(RepoError::Crypt(CryptError::WrongIdentity { .. }))
        ));
        assert!(matches!(
            open_manifest(&bytes, "k", &Access::Plain),
            Err(RepoError::Corrupt { .. })
        ));
        let mut leaky: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        leaky["tables"][0]["schema_cql"] = "CREATE TABLE shop.orders".into();
        let leaky = serde_json::to_vec(&leaky).unwrap();
        for access in [Access::Identity(ids), Access::Clear { identity_env: None }] {
            assert!(matches!(
                open_manifest(&leaky, "k", &access),
                Err(RepoError::Crypt(CryptError::NotEncrypted { .. }))
            ));
        }
        // A plain manifest in an encrypted repository.
        let plain = serde_json::to_vec(&m).unwrap();
        assert!(matches!(
            open_manifest(&plain, "k", &Access::Clear { identity_env: None }),
            Err(RepoError::Crypt(CryptError::NotEncrypted { .. }))
        ));
    }

    #[test]
    fn format_1_sealed_as_a_whole_needs_the_identity() {
        let (ids, to) = seal::test_keys();
        let mut m = manifest();
        seal_probe(&mut m.node, &to).unwrap();
        seal_table(&mut m.tables[0], &to).unwrap();
        let v1 = seal::seal(&serde_json::to_vec(&m).unwrap(), &to).unwrap();
        let opened = open_manifest(&v1, "k", &Access::Identity(ids)).unwrap();
        assert_eq!(opened.tables, manifest().tables);
        assert_eq!(opened.node.tokens, manifest().node.tokens);
        let e = open_manifest(
            &v1,
            "k",
            &Access::Clear {
                identity_env: Some("MY_ID".into()),
            },
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("set CBK_IDENTITY_FILE") && e.contains("MY_ID") && e.contains("`k`"),
            "{e}"
        );
    }
}
