//! Keyspace definitions across backup and restore: read from `system_schema.keyspaces` at
//! backup time (recorded in the node manifest), rewritten for the target by `restore.dc_map`
//! and `restore.datacenters`, created on a target that lacks the keyspace, and the
//! replication-factor check of `resolve`, per data center (docs/restore.md, "Replication
//! factor").

use super::{Runtime, node};
use crate::exec::TaskError;
use crate::plan::model::RestoreConfig;
use crate::repo::manifest::{KEYSPACE_DEFS_FORMAT, KeyspaceDef, KeyspaceDefs, NodeManifest};
use std::collections::{BTreeMap, BTreeSet};

/// Where definitions are read (Cassandra 3.0+; 2.x keeps them in `system.schema_keyspaces`).
pub const SOURCE: &str = "system_schema.keyspaces";

const QUERY: &str =
    "SELECT keyspace_name, durable_writes, replication FROM system_schema.keyspaces";

/// The rows of [`QUERY`] as cqlsh prints them (`shop | True | {'class': …}`).
pub fn parse_rows(stdout: &str) -> BTreeMap<String, KeyspaceDef> {
    let mut out = BTreeMap::new();
    for row in crate::cassandra::cqlsh::rows(stdout, 3) {
        let [name, durable, repl] = row[..] else {
            continue;
        };
        let durable_writes = match durable {
            "True" | "true" => true,
            "False" | "false" => false,
            _ => continue,
        };
        if !repl.starts_with('{') {
            continue;
        }
        out.insert(
            name.to_string(),
            KeyspaceDef {
                name: name.to_string(),
                replication: super::restore_topology::parse_replication(repl),
                durable_writes,
            },
        );
    }
    out
}

/// Every keyspace definition of `host`'s schema, through `cassandra.cqlsh`; `Err` says why
/// none could be read (no cqlsh in the plan, cqlsh failed: Cassandra 2.x, node down).
pub async fn read(
    rt: &Runtime,
    host: &str,
) -> Result<Result<BTreeMap<String, KeyspaceDef>, String>, TaskError> {
    let Some(cqlsh) = &rt.run.plan.cassandra.cqlsh else {
        return Ok(Err("no cassandra.cqlsh".into()));
    };
    let out =
        node::run_plan_command(rt, host, cqlsh, &["-e".into(), QUERY.into()], None, None).await?;
    if out.code != 0 {
        return Ok(Err(format!(
            "cqlsh on {host} exited with {}: {}",
            out.code,
            out.stderr_str().trim()
        )));
    }
    Ok(Ok(parse_rows(&out.stdout_str())))
}

/// What a node manifest records for the keyspaces of its tables.
pub fn record(all: &BTreeMap<String, KeyspaceDef>, keyspaces: &BTreeSet<&str>) -> KeyspaceDefs {
    KeyspaceDefs {
        format: KEYSPACE_DEFS_FORMAT,
        source: SOURCE.into(),
        keyspaces: all
            .values()
            .filter(|d| keyspaces.contains(d.name.as_str()))
            .cloned()
            .collect(),
    }
}

/// The recorded definitions of a manifest: `None` for a manifest written before cbk recorded
/// them (or without cqlsh); an error for a format newer than this cbk reads.
pub fn recorded(m: &NodeManifest, key: &str) -> Result<Option<Vec<KeyspaceDef>>, TaskError> {
    match &m.keyspaces {
        None => Ok(None),
        Some(d) if d.format > KEYSPACE_DEFS_FORMAT => Err(TaskError::fatal(format!(
            "`{key}` records keyspace definitions of format {} but this cbk reads up to {}: \
             restore with a newer cbk",
            d.format, KEYSPACE_DEFS_FORMAT
        ))),
        Some(d) => Ok(Some(d.keyspaces.clone())),
    }
}

fn is_nts(def: &KeyspaceDef) -> bool {
    def.replication
        .get("class")
        .is_some_and(|c| c.ends_with("NetworkTopologyStrategy"))
}

/// The data center a backed-up data center restores into.
pub fn target_dc<'a>(cfg: &'a RestoreConfig, dc: &'a str) -> &'a str {
    cfg.dc_map.get(dc).map_or(dc, String::as_str)
}

/// A recorded definition as the target gets it: named `name`, and for
/// `NetworkTopologyStrategy` every data center renamed by `dc_map`; with `datacenters`, the
/// data centers the restore leaves out are left out of the replication too.
pub fn for_target(def: &KeyspaceDef, name: &str, cfg: &RestoreConfig) -> KeyspaceDef {
    let mut out = KeyspaceDef {
        name: name.to_string(),
        replication: BTreeMap::new(),
        durable_writes: def.durable_writes,
    };
    for (k, v) in &def.replication {
        if !is_nts(def) || k == "class" || k == "replication_factor" {
            out.replication.insert(k.clone(), v.clone());
            continue;
        }
        if !cfg.datacenters.is_empty() && !cfg.datacenters.contains(k) {
            continue;
        }
        out.replication
            .insert(target_dc(cfg, k).to_string(), v.clone());
    }
    out
}

/// `CREATE KEYSPACE IF NOT EXISTS` for a definition (`class` first, as cqlsh prints it).
pub fn create_statement(def: &KeyspaceDef) -> String {
    let class = def.replication.get("class").cloned().unwrap_or_default();
    let mut parts = vec![format!("'class': '{class}'")];
    parts.extend(
        def.replication
            .iter()
            .filter(|(k, _)| *k != "class")
            .map(|(k, v)| format!("'{k}': '{v}'")),
    );
    format!(
        "CREATE KEYSPACE IF NOT EXISTS {} WITH replication = {{{}}} AND durable_writes = {};",
        def.name,
        parts.join(", "),
        def.durable_writes
    )
}

/// A host the restore writes to: its name and, when the plan says it, its data center.
pub use super::restore_topology::TargetHost;

/// Whether the restore puts more backed-up hosts into some data center (or, without data
/// centers on both sides, into the whole target) than it has target hosts there: only then is
/// the replication checked (the same count keeps the replication the backed-up cluster had).
/// `restored`: the target data center of each restored backed-up host.
pub fn shrinks(targets: &[TargetHost], restored: &[String]) -> bool {
    if !dcs_known(targets, restored) {
        return restored.len() > targets.len();
    }
    restored.iter().any(|dc| {
        restored.iter().filter(|d| *d == dc).count()
            > targets
                .iter()
                .filter(|t| t.dc.as_deref() == Some(dc))
                .count()
    })
}

fn dcs_known(targets: &[TargetHost], restored: &[String]) -> bool {
    targets.iter().any(|t| t.dc.is_some()) && restored.iter().any(|d| !d.is_empty())
}

/// Refuses a keyspace whose replication factor is greater than the nodes restored into:
/// `SimpleStrategy` against every target, `NetworkTopologyStrategy` per data center against
/// the targets of that data center, for each data center that the restore shrinks (all, when
/// the plan or the backup names no data centers).
pub fn check(
    keyspace: &str,
    replication: &BTreeMap<String, String>,
    targets: &[TargetHost],
    restored: &[String],
) -> Result<(), String> {
    let class = replication.get("class").map(String::as_str).unwrap_or("");
    if class.ends_with("LocalStrategy") || class.ends_with("EverywhereStrategy") {
        return Ok(());
    }
    let refuse = |rf: usize, where_: String, nodes: usize, there: &str| {
        Err(format!(
            "keyspace {keyspace} has replication factor {rf}{where_} but the restore targets \
             {nodes} node(s){there}: Cassandra could not place {rf} replicas; lower it first \
             (ALTER KEYSPACE {keyspace} WITH replication = …) or restore into at least {rf} nodes"
        ))
    };
    let n = targets.len();
    if class.ends_with("SimpleStrategy") {
        let rf: usize = replication
            .get("replication_factor")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        return if rf > n && restored.len() > n {
            refuse(rf, String::new(), n, "")
        } else {
            Ok(())
        };
    }
    let per_dc = dcs_known(targets, restored);
    for (dc, v) in replication.iter().filter(|(k, _)| *k != "class") {
        let Ok(rf) = v.parse::<usize>() else { continue };
        if !per_dc {
            if rf > n && restored.len() > n {
                return refuse(rf, format!(" in data center {dc}"), n, "");
            }
            continue;
        }
        let nodes = targets
            .iter()
            .filter(|t| t.dc.as_deref() == Some(dc))
            .count();
        let sources = restored.iter().filter(|d| *d == dc).count();
        if sources > nodes && rf > nodes {
            return refuse(
                rf,
                format!(" in data center {dc}"),
                nodes,
                &format!(" there ({sources} backed-up host(s) restored into it)"),
            );
        }
    }
    Ok(())
}

/// `resolve`: checks the replication of every restored keyspace (under the name it is restored
/// into) when the restore shrinks a data center: the target's live replication when the
/// keyspace exists there (what Cassandra will use), else the backup's recorded definition as
/// the restore would create it. Returns what was checked, for the outcome.
pub(super) async fn check_replication(
    rt: &Runtime,
    cfg: &RestoreConfig,
    keyspaces: &BTreeSet<String>,
    recorded: Option<&BTreeMap<String, KeyspaceDef>>,
    restored: &[String],
) -> Result<String, TaskError> {
    let targets = super::restore_state::plan_targets(rt);
    if !shrinks(&targets, restored) {
        return Ok(format!(
            "replication factors not checked ({} backed-up host(s) onto {} target(s): \
             no data center shrinks)",
            restored.len(),
            targets.len()
        ));
    }
    let live = match targets.first() {
        Some(first) => read(rt, &first.name).await?,
        None => Err("no target host".into()),
    };
    let mut checked = Vec::new();
    let mut unknown = Vec::new();
    for ks in keyspaces {
        let name = cfg.target_keyspace.as_deref().unwrap_or(ks);
        let def = match (&live, recorded.and_then(|r| r.get(ks))) {
            (Ok(l), _) if l.contains_key(name) => l[name].clone(),
            (_, Some(rec)) => for_target(rec, name, cfg),
            _ => {
                unknown.push(name.to_string());
                continue;
            }
        };
        check(name, &def.replication, &targets, restored).map_err(TaskError::fatal)?;
        checked.push(name.to_string());
    }
    let mut text = if checked.is_empty() {
        "replication factors not checked".to_string()
    } else {
        format!(
            "replication factors of {} fit {} target nodes",
            checked.join(", "),
            targets.len()
        )
    };
    if !unknown.is_empty() {
        let why = match (&live, recorded) {
            (Err(e), None) => format!("{e}, and the backup records no keyspace definitions"),
            (Err(e), Some(_)) => format!("{e}, and the backup records none for them"),
            (Ok(_), None) => {
                "not on the target yet, and the backup records no keyspace definitions".into()
            }
            (Ok(_), Some(_)) => "not on the target, and the backup records none for them".into(),
        };
        text += &format!("; {} not checked ({why})", unknown.join(", "));
    }
    Ok(text)
}

/// Before a missing table is created: creates its keyspace `keyspace` on `host` when the
/// target lacks it, from the backup's recorded definition of `source` (the backed-up name) as
/// [`for_target`] rewrites it. `known`: the target's keyspaces, read once. Returns the
/// statement run, for the outcome.
pub(super) async fn ensure(
    rt: &Runtime,
    host: &str,
    cfg: &RestoreConfig,
    recorded: Option<&BTreeMap<String, KeyspaceDef>>,
    (keyspace, source): (&str, &str),
    known: &mut Option<BTreeSet<String>>,
) -> Result<Option<String>, TaskError> {
    if known.is_none() {
        match read(rt, host).await? {
            Ok(all) => *known = Some(all.into_keys().collect()),
            // Without cqlsh the table cannot be created either: that error says so.
            Err(_) => return Ok(None),
        }
    }
    let Some(live) = known.as_mut() else {
        return Ok(None);
    };
    if live.contains(keyspace) {
        return Ok(None);
    }
    let def = match (recorded, recorded.and_then(|r| r.get(source))) {
        (_, Some(d)) => for_target(d, keyspace, cfg),
        (None, _) => {
            return Err(TaskError::fatal(format!(
                "keyspace {keyspace} does not exist on {host} and the backup records no keyspace \
                 definitions (made before cbk recorded them, or without cassandra.cqlsh): create it \
                 first (CREATE KEYSPACE {keyspace} WITH replication = …), then apply again"
            )));
        }
        (Some(_), None) => {
            return Err(TaskError::fatal(format!(
                "keyspace {keyspace} does not exist on {host} and the backup records no \
                 definition of keyspace {source}: create it first (CREATE KEYSPACE {keyspace} \
                 WITH replication = …), then apply again"
            )));
        }
    };
    let stmt = create_statement(&def);
    let Some(cqlsh) = &rt.run.plan.cassandra.cqlsh else {
        return Ok(None);
    };
    node::run_checked(rt, host, "cqlsh", cqlsh, &["-e".into(), stmt.clone()], None).await?;
    live.insert(keyspace.to_string());
    Ok(Some(stmt))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(repl: &[(&str, &str)]) -> KeyspaceDef {
        KeyspaceDef {
            name: "shop".into(),
            replication: repl
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            durable_writes: true,
        }
    }

    const NTS: &str = "org.apache.cassandra.locator.NetworkTopologyStrategy";

    #[test]
    fn cqlsh_rows_are_parsed() {
        let out = "\n keyspace_name | durable_writes | replication\n---------------+----------------+------\n          shop |           True | {'class': 'org.apache.cassandra.locator.NetworkTopologyStrategy', 'dc1': '2', 'dc2': '1'}\n        system |           True | {'class': 'org.apache.cassandra.locator.LocalStrategy'}\n          logs |          False | {'class': 'org.apache.cassandra.locator.SimpleStrategy', 'replication_factor': '1'}\n\n(3 rows)\n";
        let rows = parse_rows(out);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows["shop"].replication["dc2"], "1");
        assert!(!rows["logs"].durable_writes);
        let rec = record(&rows, &["shop", "other"].into_iter().collect());
        assert_eq!(rec.keyspaces, vec![rows["shop"].clone()]);
        assert_eq!(rec.format, KEYSPACE_DEFS_FORMAT);
    }

    #[test]
    fn dc_map_renames_and_datacenters_leave_out() {
        let d = def(&[("class", NTS), ("dc1", "3"), ("dc2", "1")]);
        let mut cfg = RestoreConfig {
            dc_map: [("dc1".to_string(), "dcX".to_string())].into(),
            ..Default::default()
        };
        let t = for_target(&d, "copy", &cfg);
        assert_eq!(
            create_statement(&t),
            format!(
                "CREATE KEYSPACE IF NOT EXISTS copy WITH replication = {{'class': '{NTS}', 'dc2': '1', 'dcX': '3'}} AND durable_writes = true;"
            )
        );
        cfg.datacenters = vec!["dc1".into()];
        let t = for_target(&d, "shop", &cfg);
        assert_eq!(t.replication.len(), 2);
        assert_eq!(t.replication["dcX"], "3");
        let simple = def(&[
            ("class", "org.apache.cassandra.locator.SimpleStrategy"),
            ("replication_factor", "2"),
        ]);
        assert_eq!(
            for_target(&simple, "shop", &cfg).replication,
            simple.replication
        );
    }

    fn hosts(dcs: &[Option<&str>]) -> Vec<TargetHost> {
        dcs.iter()
            .enumerate()
            .map(|(i, d)| TargetHost {
                name: format!("n{i}"),
                dc: d.map(String::from),
            })
            .collect()
    }

    fn dcs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn replication_is_checked_per_shrinking_data_center() {
        let nts = def(&[("class", NTS), ("dcX", "2"), ("dcY", "1")]).replication;
        // dcX gets two backed-up hosts on one node: refused with the numbers.
        let t = hosts(&[Some("dcX"), Some("dcY"), Some("dcY")]);
        let r = dcs(&["dcX", "dcX", "dcY"]);
        assert!(shrinks(&t, &r));
        let e = check("shop", &nts, &t, &r).unwrap_err();
        assert!(
            e.starts_with(
                "keyspace shop has replication factor 2 in data center dcX but the restore \
                 targets 1 node(s) there (2 backed-up host(s) restored into it)"
            ),
            "{e}"
        );
        // Same count per data center: not a shrink, not checked.
        let t = hosts(&[Some("dcX"), Some("dcX"), Some("dcY")]);
        assert!(!shrinks(&t, &r));
        assert!(check("shop", &nts, &t, &r).is_ok());
        // No data centers in the plan: the totals.
        let t = hosts(&[None]);
        assert!(shrinks(&t, &r));
        let e = check("shop", &nts, &t, &r).unwrap_err();
        assert!(
            e.contains("factor 2 in data center dcX but the restore targets 1 node(s):"),
            "{e}"
        );
        let t = hosts(&[None, None]);
        let simple = def(&[
            ("class", "org.apache.cassandra.locator.SimpleStrategy"),
            ("replication_factor", "3"),
        ])
        .replication;
        let e = check("shop", &simple, &t, &r).unwrap_err();
        assert!(
            e.starts_with(
                "keyspace shop has replication factor 3 but the restore targets 2 node(s):"
            ),
            "{e}"
        );
        let local = def(&[("class", "org.apache.cassandra.locator.LocalStrategy")]).replication;
        assert!(check("system", &local, &hosts(&[None]), &r).is_ok());
    }
}
