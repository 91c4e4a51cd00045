//! Data folder layout on disk: a node with three data folders built from real fixture files —
//! snapshot files spread over all folders, manifest.json and schema.cql in different ones,
//! index subfolders, backups, a dropped table's old folder, system keyspaces.

use crate::cassandra_support;

use std::path::{Path, PathBuf};

use cbk::cassandra::layout::{self, LayoutError, PathKind, TableFilter, TableId};
use cbk::cassandra::manifest::SnapshotManifest;
use cbk::cassandra::schema::SchemaCql;
use cbk::cassandra::sstable::{Generation, SstableName};
use cbk::cassandra::yaml::{CassandraYaml, InstallType};
use cbk::plan::model::SystemKeyspaces;

const ID: &str = "d132e240c21711e9bbee19821dcea330";
const OLD_ID: &str = "0aaaaaaac21711e9bbee19821dcea330";

/// Copies the nb fixture sstable into `dir` under generation `generation`.
fn put_sstable(dir: &Path, generation: u64) {
    std::fs::create_dir_all(dir).unwrap();
    let src = cassandra_support::fixtures().join("nb/legacy_tables/legacy_nb_simple");
    for f in cassandra_support::file_names(&src) {
        let n = SstableName::parse(&f)
            .unwrap()
            .with_generation(Generation::Int(generation));
        std::fs::copy(src.join(&f), dir.join(n.file_name())).unwrap();
    }
}

struct Node {
    _tmp: tempfile::TempDir,
    dirs: Vec<PathBuf>,
}

fn node() -> Node {
    let tmp = tempfile::tempdir().unwrap();
    let dirs: Vec<PathBuf> = (1..=3)
        .map(|i| tmp.path().join(format!("data{i}")))
        .collect();
    let t = |d: usize, ks: &str, table: &str| dirs[d].join(ks).join(table);
    let tdir = format!("t-{ID}");
    // Live sstables in data1 and data2; the table folder exists (empty) in data3 too.
    put_sstable(&t(0, "ks", &tdir), 1);
    put_sstable(&t(1, "ks", &tdir), 2);
    std::fs::create_dir_all(t(2, "ks", &tdir)).unwrap();
    // Snapshot "snap" spread over data1 and data2, with index sstables in data2.
    put_sstable(&t(0, "ks", &tdir).join("snapshots/snap"), 1);
    put_sstable(&t(1, "ks", &tdir).join("snapshots/snap"), 2);
    put_sstable(&t(1, "ks", &tdir).join("snapshots/snap/.t_idx"), 1);
    // manifest.json in data3, schema.cql in data1.
    std::fs::create_dir_all(t(2, "ks", &tdir).join("snapshots/snap")).unwrap();
    std::fs::write(
        t(2, "ks", &tdir).join("snapshots/snap/manifest.json"),
        r#"{"files":["nb-1-big-Data.db","nb-2-big-Data.db",".t_idx\/nb-1-big-Data.db"]}"#,
    )
    .unwrap();
    std::fs::write(
        t(0, "ks", &tdir).join("snapshots/snap/schema.cql"),
        "CREATE TABLE IF NOT EXISTS ks.t (\n    id int PRIMARY KEY,\n    v text\n) WITH ID = d132e240-c217-11e9-bbee-19821dcea330\n    AND comment = '';\nCREATE INDEX IF NOT EXISTS t_idx ON ks.t (v);\n",
    )
    .unwrap();
    // Another snapshot, backups, a dropped table's folder with its own snapshot.
    put_sstable(&t(0, "ks", &tdir).join("snapshots/other"), 1);
    put_sstable(&t(1, "ks", &tdir).join("backups"), 2);
    put_sstable(&t(1, "ks", &tdir).join("backups/.t_idx"), 1);
    put_sstable(
        &t(0, "ks", &format!("t-{OLD_ID}")).join("snapshots/snap"),
        5,
    );
    // Other tables and system keyspaces.
    put_sstable(
        &t(0, "ks", &format!("skip_me-{ID}")).join("snapshots/snap"),
        1,
    );
    let st = layout::system_table_id("system_schema", "tables");
    put_sstable(
        &t(0, "system_schema", &format!("tables-{st}")).join("snapshots/snap"),
        1,
    );
    let sl = layout::system_table_id("system", "local");
    put_sstable(
        &t(0, "system", &format!("local-{sl}")).join("snapshots/snap"),
        1,
    );
    // Noise: a stray file in a keyspace folder, a non-table folder.
    std::fs::write(dirs[0].join("ks/stray.txt"), "x").unwrap();
    std::fs::create_dir_all(dirs[0].join("ks/not-a-table-folder")).unwrap();
    Node { _tmp: tmp, dirs }
}

#[test]
fn snapshot_files_across_all_data_dirs() {
    let n = node();
    let f = TableFilter::new(&[], &["ks.skip_*".into()], SystemKeyspaces::Schema).unwrap();
    let tables = layout::snapshot_files(&n.dirs, "snap", &f).unwrap();
    let names: Vec<String> = tables
        .iter()
        .map(|t| {
            format!(
                "{}.{}-{}",
                t.keyspace,
                t.table,
                t.table_id.as_ref().unwrap()
            )
        })
        .collect();
    let st = layout::system_table_id("system_schema", "tables");
    assert_eq!(
        names,
        vec![
            format!("ks.t-{OLD_ID}"),
            format!("ks.t-{ID}"),
            format!("system_schema.tables-{st}")
        ]
    );
    let t = &tables[1];
    // 3 sstables x 8 components, from two data folders; the index ones carry `.t_idx/`.
    assert_eq!(t.files.len(), 24);
    assert_eq!(
        t.files
            .iter()
            .filter(|f| f.index.as_deref() == Some("t_idx"))
            .count(),
        8
    );
    assert!(
        t.files
            .iter()
            .any(|f| f.relative == ".t_idx/nb-1-big-Data.db" && f.data_dir == n.dirs[1])
    );
    assert!(
        t.files
            .iter()
            .any(|f| f.relative == "nb-1-big-Data.db" && f.data_dir == n.dirs[0])
    );
    assert!(
        t.files
            .iter()
            .all(|f| f.size == std::fs::metadata(&f.path).unwrap().len())
    );
    // manifest and schema found in whichever folder they landed in.
    let manifest = t.manifest.as_ref().unwrap();
    assert!(manifest.starts_with(&n.dirs[2]));
    let schema = t.schema.as_ref().unwrap();
    assert!(schema.starts_with(&n.dirs[0]));
    // The manifest's entries are exactly the Data.db files found.
    let m = SnapshotManifest::parse(&std::fs::read_to_string(manifest).unwrap()).unwrap();
    let mut listed: Vec<String> = m.files.clone();
    listed.sort();
    let mut found: Vec<String> = t
        .files
        .iter()
        .filter(|f| f.file.ends_with("-Data.db"))
        .map(|f| f.relative.clone())
        .collect();
    found.sort();
    assert_eq!(listed, found);
    let s = SchemaCql::parse(&std::fs::read_to_string(schema).unwrap()).unwrap();
    assert_eq!(s.table_id.unwrap().as_hex(), ID);
    // The dropped table's folder has no manifest: the caller handles it.
    assert!(tables[0].manifest.is_none() && tables[0].files.len() == 8);
}

#[test]
fn filters_tags_backups_live() {
    let n = node();
    let all = TableFilter::all();
    let tables = layout::snapshot_files(&n.dirs, "snap", &all).unwrap();
    assert_eq!(tables.len(), 5); // + skip_me + system.local
    assert_eq!(
        layout::snapshot_tags(&n.dirs, &all).unwrap(),
        vec!["other", "snap"]
    );
    let none = TableFilter::new(&["ks.t".into()], &[], SystemKeyspaces::None).unwrap();
    assert_eq!(
        layout::snapshot_files(&n.dirs, "snap", &none)
            .unwrap()
            .len(),
        2
    );
    assert!(
        layout::snapshot_files(&n.dirs, "absent", &all)
            .unwrap()
            .is_empty()
    );

    let b = layout::backup_files(&n.dirs, &none).unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].files.len(), 16);
    assert!(
        b[0].files
            .iter()
            .any(|f| f.relative == ".t_idx/nb-1-big-TOC.txt")
    );

    let live = layout::live_files(&n.dirs, &none).unwrap();
    let t = live
        .iter()
        .find(|t| t.table_id.as_ref().map(TableId::as_hex) == Some(ID))
        .unwrap();
    assert_eq!(t.files.len(), 16);
    assert!(t.files.iter().all(|f| !f.relative.contains('/')));
}

#[test]
fn paths_parse_back_and_legacy_dirs_are_detected() {
    let n = node();
    let f = TableFilter::all();
    for t in layout::snapshot_files(&n.dirs, "snap", &f).unwrap() {
        for file in &t.files {
            let (dd, p) = layout::parse_data_path(&n.dirs, &file.path).unwrap();
            assert_eq!(dd, file.data_dir.as_path());
            assert_eq!(p.kind, PathKind::Snapshot { tag: "snap".into() });
            assert_eq!(
                (p.keyspace.as_str(), p.table.as_str()),
                (t.keyspace.as_str(), t.table.as_str())
            );
            assert_eq!(p.index, file.index);
            assert_eq!(dd.join(p.relative_path()), file.path);
        }
    }
    assert!(layout::parse_data_path(&n.dirs, Path::new("/elsewhere/ks/t/x")).is_err());
    layout::check_no_legacy_table_dir(&n.dirs, "ks", "t").unwrap();
    std::fs::create_dir_all(n.dirs[2].join("ks/t")).unwrap();
    let e = layout::check_no_legacy_table_dir(&n.dirs, "ks", "t").unwrap_err();
    assert!(
        matches!(e, LayoutError::LegacyTableDir(ref p) if p.ends_with("data3/ks/t")),
        "{e}"
    );
    assert_eq!(
        layout::table_dir_name("t", &TableId::parse(ID).unwrap()),
        format!("t-{ID}")
    );
}

#[test]
fn yaml_with_several_data_dirs() {
    let text = "cluster_name: 'prod'\nnum_tokens: 16\ndata_file_directories:\n    - /data1\n    - /data2\ncommitlog_directory: /commitlog\nincremental_backups: true\nuuid_sstable_identifiers_enabled: true\nsstable:\n  selected_format: bti\nstorage_compatibility_mode: NONE\nseed_provider:\n  - class_name: org.apache.cassandra.locator.SimpleSeedProvider\n    parameters:\n      - seeds: \"127.0.0.1:7000\"\n";
    let y = CassandraYaml::parse(text, "cassandra.yaml", &InstallType::Package).unwrap();
    assert_eq!(
        y.data_file_directories,
        vec![PathBuf::from("/data1"), PathBuf::from("/data2")]
    );
    assert_eq!(y.commitlog_directory, PathBuf::from("/commitlog"));
    assert_eq!(y.hints_directory, PathBuf::from("/var/lib/cassandra/hints"));
    assert!(y.incremental_backups && y.uuid_sstable_identifiers_enabled);
    assert_eq!(y.sstable_selected_format.as_deref(), Some("bti"));
    assert_eq!(y.storage_compatibility_mode.as_deref(), Some("NONE"));
    assert_eq!(y.local_system_dir(), Path::new("/data1"));
    // The 4.1-alpha1 key name.
    let y = CassandraYaml::parse(
        "enable_uuid_sstable_identifiers: true\n",
        "c",
        &InstallType::Package,
    )
    .unwrap();
    assert!(y.uuid_sstable_identifiers_enabled);
}

#[test]
fn startup_problems_are_found_before_cassandra_would() {
    use cbk::cassandra::layout::StartupProblem;
    use cbk::cassandra::version::VersionProfile;
    let n = node();
    let live = n.dirs[1].join(format!("ks/t-{ID}"));
    assert_eq!(
        layout::startup_problems(&n.dirs, VersionProfile::V4_1, false).unwrap(),
        vec![]
    );
    // The nb fixtures cannot be read by 3.11.
    let p = layout::startup_problems(&n.dirs, VersionProfile::V3_11, false).unwrap();
    assert!(
        !p.is_empty()
            && p.iter()
                .all(|x| matches!(x, StartupProblem::Incompatible(_)))
    );
    // A staging file, a UUID-named sstable, an orphan, a legacy folder.
    std::fs::write(live.join("restore-staging.db"), "x").unwrap();
    let src = live.join("nb-2-big-Data.db");
    std::fs::copy(
        &src,
        live.join("nb-3g1m_0nuf_3vj5m2k1125165rxa7-big-Data.db"),
    )
    .unwrap();
    std::fs::copy(
        live.join("nb-2-big-Index.db"),
        live.join("nb-9-big-Index.db"),
    )
    .unwrap();
    std::fs::create_dir_all(n.dirs[0].join("ks/t")).unwrap();
    let p = layout::startup_problems(&n.dirs, VersionProfile::V4_1, false).unwrap();
    let text: Vec<String> = p.iter().map(ToString::to_string).collect();
    assert_eq!(p.len(), 4, "{text:#?}");
    assert!(p.contains(&StartupProblem::UnparsableDb(
        live.join("restore-staging.db")
    )));
    assert!(p.contains(&StartupProblem::UuidDisabled(
        live.join("nb-3g1m_0nuf_3vj5m2k1125165rxa7-big-Data.db")
    )));
    assert!(p.contains(&StartupProblem::Orphan(live.join("nb-9-big-Index.db"))));
    assert!(p.contains(&StartupProblem::LegacyTableDir(n.dirs[0].join("ks/t"))));
    assert!(
        text.iter()
            .any(|t| t.ends_with("Cassandra would delete this sstable's components"))
    );
    // With UUID ids enabled that one is fine.
    assert_eq!(
        layout::startup_problems(&n.dirs, VersionProfile::V4_1, true)
            .unwrap()
            .len(),
        3
    );
}
