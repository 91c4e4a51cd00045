//! Which target host restores which backed-up host, for any pair of cluster sizes: `resolve`
//! decides it once (kept in the journal), `fetch` stages every source of a target under its own
//! folder and `loader` streams each exactly once.
//!
//! The rule (docs/restore.md, "Restoring into another topology"):
//! 1. `host_map` entries first (by source name, then host id). With `method = "loader"` several
//!    sources may name one target; a source no entry names is not restored.
//! 2. Without `host_map`, a source restores onto the target of the same name. With `loader`,
//!    every source left over goes to the target with the fewest sources so far (plan order on
//!    ties): a 3-node backup into 2 nodes gives the first target two sources, into 5 nodes
//!    leaves two targets without one (they receive what the others stream).
//! 3. A target without a source is an error except with `loader`.
//!
//! With `datacenters`, only the backed-up hosts of those data centers take part. With
//! `dc_map`, the rule runs per target data center: the backed-up hosts of a data center (renamed
//! by `dc_map`, else under their own name) restore onto the plan hosts whose `dc` is that name.

use crate::plan::model::{RestoreConfig, RestoreMethod};
use std::collections::BTreeMap;

/// A backed-up host as the catalog names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceHost {
    pub name: String,
    pub host_id: String,
    /// Data center the backup recorded (empty when unknown).
    pub dc: String,
}

/// Sources per target (indexes into the sources given, in catalog order) and the sources that
/// are not restored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignment {
    pub by_target: BTreeMap<String, Vec<usize>>,
    pub unused: Vec<usize>,
    /// Sources left out by `datacenters`.
    pub other_dcs: Vec<usize>,
}

/// Assigns every source to a target by the rule of this module.
pub fn assign(
    cfg: &RestoreConfig,
    targets: &[String],
    sources: &[SourceHost],
) -> Result<Assignment, String> {
    let loader = cfg.method == RestoreMethod::Loader;
    let mut a = Assignment::default();
    let mut left = Vec::new();
    for (i, s) in sources.iter().enumerate() {
        if !cfg.datacenters.is_empty() && !cfg.datacenters.contains(&s.dc) {
            a.other_dcs.push(i);
            continue;
        }
        let mapped = cfg
            .host_map
            .get(&s.name)
            .or_else(|| cfg.host_map.get(&s.host_id))
            .cloned()
            .or_else(|| {
                (cfg.host_map.is_empty() && targets.contains(&s.name)).then(|| s.name.clone())
            });
        match mapped {
            Some(t) => a.by_target.entry(t).or_default().push(i),
            None if loader && cfg.host_map.is_empty() => left.push(i),
            None => a.unused.push(i),
        }
    }
    for i in left {
        let Some(t) = targets
            .iter()
            .min_by_key(|t| a.by_target.get(*t).map_or(0, Vec::len))
        else {
            a.unused.push(i);
            continue;
        };
        a.by_target.entry(t.clone()).or_default().push(i);
    }
    if !loader {
        if let Some((t, several)) = a.by_target.iter().find(|(_, v)| v.len() > 1) {
            return Err(format!(
                "backup hosts {} all map to {t}; only method = \"loader\" restores several \
                 source hosts through one target",
                names(sources, several)
            ));
        }
        let missing: Vec<&str> = targets
            .iter()
            .filter(|t| !a.by_target.contains_key(*t))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "the backup has no node for target host(s) {}; map source hosts with \
                 restore.host_map, or use method = \"loader\" (any node count)",
                missing.join(", ")
            ));
        }
    }
    Ok(a)
}

/// [`assign`] for targets that may carry a data center: with `dc_map`, per target data center
/// (a backed-up host's data center renamed by `dc_map`, else its own name), onto the targets of
/// that `dc`; host_map entries still win. Without `dc_map`, [`assign`] over all targets.
pub fn assign_hosts(
    cfg: &RestoreConfig,
    targets: &[TargetHost],
    sources: &[SourceHost],
) -> Result<Assignment, String> {
    let names: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
    if cfg.dc_map.is_empty() {
        return assign(cfg, &names, sources);
    }
    let mut out = Assignment::default();
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, s) in sources.iter().enumerate() {
        if !cfg.datacenters.is_empty() && !cfg.datacenters.contains(&s.dc) {
            out.other_dcs.push(i);
            continue;
        }
        let dc = cfg.dc_map.get(&s.dc).map_or(s.dc.as_str(), String::as_str);
        groups.entry(dc).or_default().push(i);
    }
    for (dc, idx) in groups {
        let in_dc: Vec<String> = targets
            .iter()
            .filter(|t| t.dc.as_deref() == Some(dc))
            .map(|t| t.name.clone())
            .collect();
        let subset: Vec<SourceHost> = idx.iter().map(|i| sources[*i].clone()).collect();
        let a = assign(cfg, &in_dc, &subset)?;
        for (t, v) in a.by_target {
            out.by_target
                .entry(t)
                .or_default()
                .extend(v.iter().map(|j| idx[*j]));
        }
        out.unused.extend(a.unused.iter().map(|j| idx[*j]));
    }
    for v in out.by_target.values_mut() {
        v.sort_unstable();
    }
    out.unused.sort_unstable();
    if cfg.method != RestoreMethod::Loader {
        let missing: Vec<&str> = names
            .iter()
            .filter(|t| !out.by_target.contains_key(*t))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "the backup has no node for target host(s) {} (restore.dc_map restores each \
                 data center onto the plan hosts of its target `dc`); map source hosts with \
                 restore.host_map, or use method = \"loader\" (any node count)",
                missing.join(", ")
            ));
        }
    }
    Ok(out)
}

/// `a, b` for the sources at `idx`.
pub fn names(sources: &[SourceHost], idx: &[usize]) -> String {
    idx.iter()
        .filter_map(|i| sources.get(*i))
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The staging subfolder of a source when its target restores several (`src-<name>/`; a keyspace
/// name never holds `-`, so it cannot clash with a keyspace folder), or `""` for the only one.
pub fn staging_prefix(source: &str, several: bool) -> Result<String, String> {
    if !several {
        return Ok(String::new());
    }
    if source.is_empty()
        || source.starts_with('.')
        || !source
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        return Err(format!(
            "backup host name `{source}` cannot name a staging folder"
        ));
    }
    Ok(format!("src-{source}/"))
}

/// The `replication` column of `system_schema.keyspaces` as cqlsh prints it
/// (`{'class': '…SimpleStrategy', 'replication_factor': '3'}`): key -> value.
pub fn parse_replication(text: &str) -> BTreeMap<String, String> {
    let inner = text.trim().trim_start_matches('{').trim_end_matches('}');
    inner
        .split(',')
        .filter_map(|kv| {
            let (k, v) = kv.split_once(':')?;
            let unquote = |x: &str| x.trim().trim_matches('\'').to_string();
            Some((unquote(k), unquote(v)))
        })
        .collect()
}

/// A target host: its name and, when the plan says it, its data center.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetHost {
    pub name: String,
    pub dc: Option<String>,
}

/// The keyspace and table a backed-up table is restored into: `target_keyspace` /
/// `target_table` when set, else its own names.
pub fn target_names(cfg: &RestoreConfig, keyspace: &str, table: &str) -> (String, String) {
    (
        cfg.target_keyspace
            .clone()
            .unwrap_or_else(|| keyspace.into()),
        cfg.target_table.clone().unwrap_or_else(|| table.into()),
    )
}

/// A backed-up `schema.cql` for a table restored under another name: `from` (`ks`, `table`)
/// becomes `to` in every statement, the `WITH ID` clause goes (the new table must not take the
/// id of the live one it is restored beside), index names get the new table's name in front
/// (index names are unique per keyspace) and user types move to the new keyspace.
pub fn retarget_schema(cql: &str, from: (&str, &str), to: (&str, &str)) -> String {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let old = format!("{}.{}", from.0, from.1);
    let new = format!("{}.{}", to.0, to.1);
    // `ks.table` as a whole name (not `ks.table_x`).
    let mut text = String::new();
    let mut rest = cql;
    while let Some(i) = rest.find(&old) {
        let after = &rest[i + old.len()..];
        let before_ok = rest[..i]
            .chars()
            .next_back()
            .is_none_or(|c| !ident(c) && c != '.');
        let after_ok = after.chars().next().is_none_or(|c| !ident(c));
        text.push_str(&rest[..i]);
        text.push_str(if before_ok && after_ok { &new } else { &old });
        rest = after;
    }
    text.push_str(rest);
    // `WITH ID = <uuid>` then `AND x` -> `WITH x`; alone -> removed.
    if let Some(i) = text.find("WITH ID = ") {
        let tail = &text[i + "WITH ID = ".len()..];
        let id_len = tail
            .find(|c: char| !(c.is_ascii_hexdigit() || c == '-'))
            .unwrap_or(tail.len());
        let after = &tail[id_len..];
        let trimmed = after.trim_start();
        let replaced = match trimmed.strip_prefix("AND ") {
            Some(more) => format!("{}WITH {more}", &text[..i]),
            None => format!("{}{trimmed}", text[..i].trim_end()),
        };
        text = replaced;
    }
    let mut out = Vec::new();
    for line in text.lines() {
        let mut line = line.to_string();
        if let Some(rest) = line
            .strip_prefix("CREATE TYPE IF NOT EXISTS ")
            .and_then(|r| r.strip_prefix(&format!("{}.", from.0)))
        {
            line = format!("CREATE TYPE IF NOT EXISTS {}.{rest}", to.0);
        }
        if from.1 != to.1 {
            for head in [
                "CREATE INDEX IF NOT EXISTS ",
                "CREATE CUSTOM INDEX IF NOT EXISTS ",
                "CREATE INDEX ",
                "CREATE CUSTOM INDEX ",
            ] {
                if let Some(rest) = line.strip_prefix(head)
                    && !rest.starts_with("IF NOT EXISTS ")
                    && !rest.starts_with("ON ")
                {
                    line = format!("{head}{}_{rest}", to.1);
                    break;
                }
            }
        }
        out.push(line);
    }
    let mut joined = out.join("\n");
    if cql.ends_with('\n') {
        joined.push('\n');
    }
    joined
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(names: &[&str]) -> Vec<SourceHost> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| SourceHost {
                name: n.to_string(),
                host_id: format!("id{i}"),
                dc: if i < 2 { "dc1".into() } else { "dc2".into() },
            })
            .collect()
    }

    fn cfg(method: RestoreMethod, map: &[(&str, &str)]) -> RestoreConfig {
        RestoreConfig {
            source: "latest".into(),
            method,
            host_map: map
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    fn targets(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    fn by(a: &Assignment) -> Vec<(String, Vec<usize>)> {
        a.by_target
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    #[test]
    fn loader_spreads_three_sources_over_two_and_five_targets() {
        let s = src(&["a1", "a2", "a3"]);
        let c = cfg(RestoreMethod::Loader, &[]);
        let two = assign(&c, &targets(&["b1", "b2"]), &s).unwrap();
        assert_eq!(
            by(&two),
            [("b1".into(), vec![0, 2]), ("b2".into(), vec![1])]
        );
        let five = assign(&c, &targets(&["b1", "b2", "b3", "b4", "b5"]), &s).unwrap();
        assert_eq!(
            by(&five),
            [
                ("b1".into(), vec![0]),
                ("b2".into(), vec![1]),
                ("b3".into(), vec![2])
            ]
        );
        assert!(five.unused.is_empty());
    }

    #[test]
    fn same_names_first_then_the_least_loaded_target() {
        let s = src(&["n1", "n2", "n3"]);
        let a = assign(
            &cfg(RestoreMethod::Loader, &[]),
            &targets(&["n2", "n1"]),
            &s,
        )
        .unwrap();
        assert_eq!(by(&a), [("n1".into(), vec![0]), ("n2".into(), vec![1, 2])]);
    }

    #[test]
    fn host_map_decides_and_leaves_unmapped_sources_out() {
        let s = src(&["n1", "n2", "n3"]);
        let a = assign(
            &cfg(RestoreMethod::Loader, &[("n1", "t1"), ("id2", "t1")]),
            &targets(&["t1", "t2"]),
            &s,
        )
        .unwrap();
        assert_eq!(by(&a), [("t1".into(), vec![0, 2])]);
        assert_eq!(a.unused, [1]);
    }

    #[test]
    fn datacenters_keep_only_their_hosts() {
        let s = src(&["n1", "n2", "n3"]);
        let mut c = cfg(RestoreMethod::Restart, &[]);
        c.datacenters = vec!["dc1".into()];
        let a = assign(&c, &targets(&["n1", "n2"]), &s).unwrap();
        assert_eq!(by(&a), [("n1".into(), vec![0]), ("n2".into(), vec![1])]);
        assert_eq!(a.other_dcs, [2]);
        c.datacenters = vec!["dc2".into()];
        c.method = RestoreMethod::Loader;
        let a = assign(&c, &targets(&["b1", "b2"]), &s).unwrap();
        assert_eq!(by(&a), [("b1".into(), vec![2])]);
        assert_eq!(a.other_dcs, [0, 1]);
    }

    #[test]
    fn other_methods_need_one_source_per_target() {
        let s = src(&["n1", "n2"]);
        let e = assign(
            &cfg(RestoreMethod::Import, &[("n1", "t1"), ("id1", "t1")]),
            &targets(&["t1"]),
            &s,
        )
        .unwrap_err();
        assert!(e.contains("n1, n2 all map to t1"), "{e}");
        let e = assign(
            &cfg(RestoreMethod::Restart, &[]),
            &targets(&["n1", "n2", "n3"]),
            &s,
        )
        .unwrap_err();
        assert!(e.contains("no node for target host(s) n3"), "{e}");
    }

    #[test]
    fn dc_map_restores_each_data_center_onto_the_targets_of_its_new_name() {
        // n1, n2 in dc1, n3 in dc2; targets: n1 in dcY, n2 and n3 in dcX.
        let s = src(&["n1", "n2", "n3"]);
        let mut c = cfg(RestoreMethod::Loader, &[]);
        c.dc_map = [("dc1", "dcX"), ("dc2", "dcY")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let t: Vec<TargetHost> = [("n1", "dcY"), ("n2", "dcX"), ("n3", "dcX")]
            .iter()
            .map(|(n, d)| TargetHost {
                name: n.to_string(),
                dc: Some(d.to_string()),
            })
            .collect();
        let a = assign_hosts(&c, &t, &s).unwrap();
        assert_eq!(
            by(&a),
            [
                ("n1".into(), vec![2]),
                ("n2".into(), vec![1]),
                ("n3".into(), vec![0])
            ]
        );
        // Only dc1, into dcX: n3 is left out, n1 (dcY) gets nothing.
        c.datacenters = vec!["dc1".into()];
        let a = assign_hosts(&c, &t, &s).unwrap();
        assert_eq!(by(&a), [("n2".into(), vec![1]), ("n3".into(), vec![0])]);
        assert_eq!(a.other_dcs, [2]);
        c.method = RestoreMethod::Import;
        let e = assign_hosts(&c, &t, &s).unwrap_err();
        assert!(e.contains("no node for target host(s) n3"), "{e}");
    }

    #[test]
    fn staging_prefixes() {
        assert_eq!(staging_prefix("node1", false).unwrap(), "");
        assert_eq!(staging_prefix("node1.dc", true).unwrap(), "src-node1.dc/");
        assert!(staging_prefix("../x", true).is_err());
        assert!(staging_prefix("a/b", true).is_err());
    }

    #[test]
    fn schema_is_retargeted_without_the_id() {
        let cql = "CREATE TABLE IF NOT EXISTS shop.orders (\n    id uuid PRIMARY KEY,\n    name text\n) WITH ID = 5a1f6c10-0000-11f1-8000-000000000001\n    AND bloom_filter_fp_chance = 0.01\n    AND comment = '';\nCREATE INDEX IF NOT EXISTS orders_name ON shop.orders (name);\n";
        let out = retarget_schema(cql, ("shop", "orders"), ("shop", "orders_restored"));
        assert_eq!(
            out,
            "CREATE TABLE IF NOT EXISTS shop.orders_restored (\n    id uuid PRIMARY KEY,\n    name text\n) WITH bloom_filter_fp_chance = 0.01\n    AND comment = '';\nCREATE INDEX IF NOT EXISTS orders_restored_orders_name ON shop.orders_restored (name);\n"
        );
        let only_id = "CREATE TABLE shop.orders (id int PRIMARY KEY) WITH ID = 5a1f6c10-0000-11f1-8000-000000000001;\n";
        assert_eq!(
            retarget_schema(only_id, ("shop", "orders"), ("old", "orders")),
            "CREATE TABLE old.orders (id int PRIMARY KEY);\n"
        );
        let types = "CREATE TYPE IF NOT EXISTS shop.addr (a text);\nCREATE TABLE IF NOT EXISTS shop.orders_x (id int PRIMARY KEY);\n";
        assert_eq!(
            retarget_schema(types, ("shop", "orders"), ("old", "orders")),
            "CREATE TYPE IF NOT EXISTS old.addr (a text);\nCREATE TABLE IF NOT EXISTS shop.orders_x (id int PRIMARY KEY);\n"
        );
    }
}
