//! The Cassandra module against the node emulator of every version profile: nodetool outputs
//! parse, errors map, and a snapshot's files, manifest, schema and digests are found and verified
//! across several data folders. (The emulator is checked against real samples on its own.)

use crate::support::emu;

use std::path::PathBuf;
use std::process::Command;

use cbk::cassandra::digest;
use cbk::cassandra::layout::{self, TableFilter};
use cbk::cassandra::manifest::SnapshotManifest;
use cbk::cassandra::nodetool::{self, NodetoolError, SnapshotTargets};
use cbk::cassandra::schema::SchemaCql;
use cbk::cassandra::sstable::{self, Component};
use cbk::cassandra::version::VersionProfile;
use cbk::cassandra::yaml::{CassandraYaml, InstallType};
use cbk::plan::model::SystemKeyspaces;
use cbk::remote::Output;

fn nodetool_raw(node: &emu::EmuNode, args: &[String]) -> Output {
    let out = Command::new(emu::emu_bin().join("nodetool"))
        .args(args)
        .env("CASSANDRA_CONF", &node.conf)
        .output()
        .unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: out.stderr,
    }
}

fn check(version: &str, profile: VersionProfile) {
    let tmp = tempfile::tempdir().unwrap();
    let node = emu::EmuNode::start(tmp.path(), version, 3, &[]);
    node.emu(&[
        "cql",
        "CREATE KEYSPACE app WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1};",
    ]);
    node.emu(&[
        "cql",
        "CREATE TABLE app.users (id int PRIMARY KEY, v text);",
    ]);
    for _ in 0..3 {
        node.write_flush("app", "users", 20);
    }
    let nt = |args: &[&str]| -> Result<String, NodetoolError> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let o = nodetool_raw(&node, &args);
        nodetool::check_output("emu", o.code, &o.stdout, &o.stderr)
    };

    // version, info, status, describecluster
    let v = nodetool::parse_version(&nt(&["version"]).unwrap()).unwrap();
    assert_eq!(v.profile().unwrap(), profile, "{version}");
    let info = nodetool::parse_info(&nt(&["info"]).unwrap()).unwrap();
    assert_eq!(info.host_id.len(), 36);
    let status = nodetool::parse_status(&nt(&["status"]).unwrap()).unwrap();
    assert!(
        status
            .nodes
            .iter()
            .any(|n| n.host_id.as_deref() == Some(info.host_id.as_str())),
        "{version}"
    );
    let dc = nodetool::parse_describecluster(&nt(&["describecluster"]).unwrap()).unwrap();
    assert!(dc.schema_agreement(), "{version}");
    assert!(!nodetool::parse_statusbackup(&nt(&["statusbackup"]).unwrap()).unwrap());

    // snapshot through the argv builder, then "already exists"
    let targets = SnapshotTargets::Tables(vec![("app".into(), "users".into())]);
    let args = nodetool::snapshot_args(profile, "cbk-t1", &targets, false, None).unwrap();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(
        nodetool::parse_snapshot(&nt(&a).unwrap()).unwrap(),
        "cbk-t1"
    );
    assert_eq!(
        nt(&a).unwrap_err(),
        NodetoolError::SnapshotExists {
            host: "emu".into(),
            tag: "cbk-t1".into()
        },
        "{version}"
    );
    let list = nodetool::parse_listsnapshots(&nt(&["listsnapshots"]).unwrap()).unwrap();
    let row = list
        .rows
        .iter()
        .find(|r| r.tag == "cbk-t1")
        .expect("listed");
    assert_eq!(
        (row.keyspace.as_str(), row.table.as_str()),
        ("app", "users")
    );
    assert!(row.size_on_disk > 0);
    assert_eq!(
        row.created_at.is_some(),
        profile >= VersionProfile::V4_1,
        "{version}"
    );

    // the files, across data folders, from cassandra.yaml
    let yaml_path = node.conf.join("cassandra.yaml");
    let y = CassandraYaml::parse(
        &std::fs::read_to_string(&yaml_path).unwrap(),
        &yaml_path.display().to_string(),
        &InstallType::Package,
    )
    .unwrap();
    assert_eq!(y.data_file_directories.len(), 3);
    let filter = TableFilter::new(&["app.*".into()], &[], SystemKeyspaces::None).unwrap();
    let tables = layout::snapshot_files(&y.data_file_directories, "cbk-t1", &filter).unwrap();
    assert_eq!(tables.len(), 1, "{version}");
    let t = &tables[0];
    let m =
        SnapshotManifest::parse(&std::fs::read_to_string(t.manifest.as_ref().unwrap()).unwrap())
            .unwrap();
    let mut listed = m.files.clone();
    listed.sort();
    let mut found: Vec<String> = t
        .files
        .iter()
        .filter(|f| f.file.ends_with("-Data.db"))
        .map(|f| f.relative.clone())
        .collect();
    found.sort();
    assert_eq!(listed, found, "{version}");
    assert!(listed.len() >= 3, "{version}: {listed:?}");
    let schema =
        SchemaCql::parse(&std::fs::read_to_string(t.schema.as_ref().unwrap()).unwrap()).unwrap();
    assert_eq!(schema.table_id.as_ref(), t.table_id.as_ref(), "{version}");
    assert_eq!(
        (schema.keyspace.as_str(), schema.table.as_str()),
        ("app", "users")
    );
    // every Data.db verifies against its Digest, and every name is readable by this version
    let by_dir: Vec<PathBuf> = t.files.iter().map(|f| f.path.clone()).collect();
    let names: Vec<&str> = t.files.iter().map(|f| f.file.as_str()).collect();
    let g = sstable::group_by_sstable(names.iter().copied());
    assert!(g.others.is_empty(), "{:?}", g.others);
    for comps in g.sstables.values() {
        assert!(comps[0].is_readable_by(profile), "{version}: {}", comps[0]);
        let data = comps[0].with_component(Component::Data).file_name();
        let dg = comps[0]
            .with_component(comps[0].digest_component())
            .file_name();
        let data = by_dir.iter().find(|p| p.ends_with(&data)).unwrap();
        let dg = by_dir.iter().find(|p| p.ends_with(&dg)).unwrap();
        digest::verify_data_file(data, dg).unwrap();
    }

    // clear through the argv builder; stopped node -> "not running"
    let a = nodetool::clearsnapshot_args("cbk-t1", &[]).unwrap();
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    nt(&a).unwrap();
    assert!(
        layout::snapshot_files(&y.data_file_directories, "cbk-t1", &filter)
            .unwrap()
            .is_empty()
    );
    node.emu(&["stop"]);
    match nt(&["info"]) {
        Err(NodetoolError::NotRunning { host, .. }) => assert_eq!(host, "emu"),
        other => panic!("{version}: {other:?}"),
    }
}

#[test]
fn emulator_311() {
    check("3.11", VersionProfile::V3_11);
}

#[test]
fn emulator_40() {
    check("4.0", VersionProfile::V4_0);
}

#[test]
fn emulator_41() {
    check("4.1", VersionProfile::V4_1);
}

#[test]
fn emulator_50() {
    check("5.0", VersionProfile::V5_0);
}
