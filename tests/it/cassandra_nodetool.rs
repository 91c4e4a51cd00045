//! nodetool parsers and error mapping against real outputs (cassandra-facts §3.5, §6 and the
//! Cassandra documentation samples in the fixtures).

use crate::cassandra_support;

use cbk::cassandra::nodetool::*;
use cbk::cassandra::version::VersionProfile;
use cbk::plan::model::{CassandraConfig, CommandSpec, JmxConfig};
use cbk::remote::Output;

// Real 3.11 output (quark-bits/courses datastax/DS201/Exercise_6_Node.md), verbatim.
const INFO_311: &str = "\
ID                     : ed19c671-f413-4108-b9f2-1bb62ce8975c
Gossip active          : true
Thrift active          : false
Native Transport active: true
Load                   : 306.77 KiB
Generation No          : 1558480238
Uptime (seconds)       : 44681
Heap Memory (MB)       : 121.30 / 975.13
Off Heap Memory (MB)   : 0.00
Data Center            : datacenter1
Rack                   : rack1
Exceptions             : 0
Key Cache              : entries 25, size 2.12 KiB, capacity 48 MiB, 190 hits, 234 requests, 0.812 recent hit rate, 14400 save period in seconds
Row Cache              : entries 0, size 0 bytes, capacity 0 bytes, 0 hits, 0 requests, NaN recent hit rate, 0 save period in seconds
Counter Cache          : entries 0, size 0 bytes, capacity 24 MiB, 0 hits, 0 requests, NaN recent hit rate, 7200 save period in seconds
Chunk Cache            : entries 20, size 1.25 MiB, capacity 211 MiB, 138 misses, 898 requests, 0.846 recent hit rate, NaN microseconds miss latency
Percent Repaired       : 100.0%
Token                  : (invoke with -T/--tokens to see all 256 tokens)
";

// Same source, verbatim.
const STATUS_311: &str = "\
Datacenter: datacenter1
=======================
Status=Up/Down
|/ State=Normal/Leaving/Joining/Moving
--  Address     Load       Tokens       Owns (effective)  Host ID                               Rack
UN  172.17.0.2  306.77 KiB  256          100.0%            ed19c671-f413-4108-b9f2-1bb62ce8975c  rack1
";

// Real 3.11 describecluster (tabs, blank line after each schema line).
const DESCRIBE_311: &str = "Cluster Information:\n\tName: Test Cluster\n\tSnitch: org.apache.cassandra.locator.SimpleSnitch\n\tDynamicEndPointSnitch: enabled\n\tPartitioner: org.apache.cassandra.dht.Murmur3Partitioner\n\tSchema versions:\n\t\t836f4520-071b-3909-91d9-876181702696: [172.17.0.2]\n\n";

/// `nodetool::check_output` over a whole [`Output`].
fn check_output(host: &str, o: &Output) -> Result<String, NodetoolError> {
    cbk::cassandra::nodetool::check_output(host, o.code, &o.stdout, &o.stderr)
}

fn out(code: i32, stdout: &str, stderr: &str) -> Output {
    Output {
        code,
        stdout: stdout.as_bytes().to_vec(),
        stderr: stderr.as_bytes().to_vec(),
    }
}

#[test]
fn info_311_real() {
    let i = parse_info(INFO_311).unwrap();
    assert_eq!(i.host_id, "ed19c671-f413-4108-b9f2-1bb62ce8975c");
    assert_eq!(i.datacenter.as_deref(), Some("datacenter1"));
    assert_eq!(i.rack.as_deref(), Some("rack1"));
    assert_eq!(i.load_bytes, Some(314_132)); // 306.77 * 1024
    assert_eq!(i.gossip_active, Some(true));
    assert_eq!(i.native_transport_active, Some(true));
    assert_eq!(i.fields["Heap Memory (MB)"], "121.30 / 975.13");
}

#[test]
fn info_50_extra_lines_and_kb_units() {
    // 5.0 adds `Uncompressed load`; 3.0 prints KB; unknown lines are kept, not fatal.
    let text = INFO_311.replace(
        "Load                   : 306.77 KiB\n",
        "Load                   : 306.77 KB\nUncompressed load      : 1.2 MiB\nBootstrap state        : COMPLETED\n",
    );
    let i = parse_info(&text).unwrap();
    assert_eq!(i.load_bytes, Some(314_132));
    assert_eq!(i.fields["Uncompressed load"], "1.2 MiB");
    assert!(parse_info("Gossip active : true\n").is_err());
}

#[test]
fn status_311_real() {
    let s = parse_status(STATUS_311).unwrap();
    assert_eq!(s.nodes.len(), 1);
    let n = &s.nodes[0];
    assert_eq!(n.datacenter, "datacenter1");
    assert_eq!(n.address, "172.17.0.2");
    assert_eq!(n.load_bytes, Some(314_132));
    assert_eq!(n.tokens, Some(256));
    assert_eq!(n.owns_percent, Some(100.0));
    assert_eq!(
        n.host_id.as_deref(),
        Some("ed19c671-f413-4108-b9f2-1bb62ce8975c")
    );
    assert_eq!(n.rack, "rack1");
    assert!(n.is_up_normal());
}

#[test]
fn status_40_tablebuilder_single_token_and_notes() {
    // 4.0+ TableBuilder (2-space delimiter, trailing padding); the data line is the trunk test
    // comment example; a second DC has a down node with `?` owns.
    let text = "Datacenter: dc1\n\
=======================\n\
Status=Up/Down\n\
|/ State=Normal/Leaving/Joining/Moving\n\
--  Address    Load       Owns (effective)  Host ID                               Token                Rack  \n\
UN  localhost  45.71 KiB  100.0%            0b1b5e91-ad3b-444e-9c24-50578486978a  1849950853373272258  rack1  \n\
\n\
Datacenter: dc2\n\
===============\n\
Status=Up/Down\n\
|/ State=Normal/Leaving/Joining/Moving\n\
--  Address    Load       Owns (effective)  Host ID                               Token                 Rack  \n\
DN  127.0.0.3  1.5 MiB    ?                 1b1b5e91-ad3b-444e-9c24-50578486978a  -4611686018427387904  r2    \n\
\n\
Note: Non-system keyspaces don't have the same replication settings, effective ownership information is meaningless\n";
    let s = parse_status(text).unwrap();
    assert_eq!(s.nodes.len(), 2);
    assert_eq!(s.nodes[0].token.as_deref(), Some("1849950853373272258"));
    assert_eq!(s.nodes[0].tokens, None);
    assert_eq!(s.nodes[0].load_bytes, Some(46_807));
    assert_eq!(s.nodes[1].datacenter, "dc2");
    assert_eq!((s.nodes[1].status, s.nodes[1].state), ('D', 'N'));
    assert_eq!(s.nodes[1].owns_percent, None);
    assert_eq!(s.nodes[1].token.as_deref(), Some("-4611686018427387904"));
    assert_eq!(s.nodes[1].rack, "r2");
    assert_eq!(s.notes.len(), 1);
    assert!(parse_status("Datacenter: dc1\n").is_err());
}

#[test]
fn version_profiles() {
    let v = parse_version("ReleaseVersion: 4.1.3\n").unwrap();
    assert_eq!(v.profile().unwrap(), VersionProfile::V4_1);
    assert_eq!(
        parse_version("ReleaseVersion: 3.11.16")
            .unwrap()
            .profile()
            .unwrap(),
        VersionProfile::V3_11
    );
    assert!(parse_version("hello").is_err());
}

#[test]
fn describecluster_311_and_41() {
    let d = parse_describecluster(DESCRIBE_311).unwrap();
    assert_eq!(d.name.as_deref(), Some("Test Cluster"));
    assert!(d.schema_agreement());
    assert_eq!(
        d.schema_versions["836f4520-071b-3909-91d9-876181702696"],
        vec!["172.17.0.2"]
    );

    let v41 = "Cluster Information:\n\tName: c1\n\tSnitch: org.apache.cassandra.locator.SimpleSnitch\n\tDynamicEndPointSnitch: enabled\n\tPartitioner: org.apache.cassandra.dht.Murmur3Partitioner\n\tSchema versions:\n\t\t1111aaaa-071b-3909-91d9-876181702696: [127.0.0.1:7000, 127.0.0.2:7000]\n\n\t\t2222bbbb-071b-3909-91d9-876181702696: [127.0.0.3:7000]\n\n\tUNREACHABLE: [127.0.0.4:7000]\n\nStats for all nodes:\n\tLive: 3\n\tJoining: 0\n\tMoving: 0\n\tLeaving: 0\n\tUnreachable: 1\n\nData Centers: \n\tdatacenter1 #Nodes: 4 #Down: 1\n\nDatabase versions:\n\t4.1.1: [127.0.0.1:7000, 127.0.0.2:7000, 127.0.0.3:7000]\n\nKeyspaces:\n\tsystem_auth -> Replication class: SimpleStrategy {replication_factor=1}\n";
    let d = parse_describecluster(v41).unwrap();
    assert!(!d.schema_agreement());
    assert_eq!(d.schema_versions.len(), 3);
    assert_eq!(
        d.schema_versions["1111aaaa-071b-3909-91d9-876181702696"].len(),
        2
    );
    assert_eq!(d.database_versions["4.1.1"].len(), 3);
    assert!(parse_describecluster("nothing").is_err());
}

#[test]
fn listsnapshots_doc_samples() {
    let l =
        parse_listsnapshots(&cassandra_support::sample("nodetool_list_snapshots.result")).unwrap();
    assert_eq!(l.rows.len(), 9);
    let r = &l.rows[3];
    assert_eq!(
        (r.tag.as_str(), r.keyspace.as_str(), r.table.as_str()),
        ("multi-ks", "catalogkeyspace", "journal")
    );
    assert_eq!(r.true_size, (4.9f64 * 1024.0).round() as u64);
    assert_eq!(r.size_on_disk, (5.73f64 * 1024.0).round() as u64);
    assert_eq!(r.created_at, None);
    assert_eq!(l.total_true_size, Some((44.02f64 * 1024.0).round() as u64));
    assert_eq!(
        l.tags(),
        vec![
            "catalog-ks",
            "magazine",
            "multi-ks",
            "multi-table",
            "multi-table-2"
        ]
    );

    let l = parse_listsnapshots(&cassandra_support::sample(
        "nodetool_list_snapshot_empty.result",
    ))
    .unwrap();
    assert!(l.rows.is_empty());

    let l = parse_listsnapshots(&cassandra_support::sample(
        "nodetool_snapshot_list_ttl_snapshots.result",
    ))
    .unwrap();
    let r = &l.rows[0];
    assert_eq!(r.tag, "catalog-journal");
    assert_eq!(r.created_at.as_deref(), Some("2024-01-25T09:45:31.820Z"));
    assert_eq!(r.expires_at.as_deref(), Some("2024-01-25T09:48:31.820Z"));
    assert_eq!(r.ephemeral, None);

    let l = parse_listsnapshots(&cassandra_support::sample(
        "nodetool_list_snapshots_ephemeral.result",
    ))
    .unwrap();
    assert_eq!(l.rows.len(), 2);
    assert_eq!(l.rows[1].table, "journal");
    assert_eq!(l.rows[1].size_on_disk, (6.13f64 * 1024.0).round() as u64);
    assert_eq!(l.rows[1].ephemeral, Some(false));
}

#[test]
fn listsnapshots_real_padding_kb_and_blank_cells() {
    // Real output pads every cell including the last (trailing spaces) and the header has
    // `Snapshot Details: ` with a trailing space; 3.0 prints KB; 4.1 leaves Expiration blank.
    let text = "Snapshot Details: \n\
Snapshot name Keyspace name Column family name True size Size on disk Creation time            Expiration time \n\
cbk-1         ks            t2                 0 bytes   13 bytes     2024-01-25T09:45:31.820Z                 \n\
cbk-0         ks            t1                 1.5 KB    2 MB         2024-01-24T09:45:31.820Z                 \n\
\n\
Total TrueDiskSpaceUsed: 1.5 KB\n\
\n";
    let l = parse_listsnapshots(text).unwrap();
    assert_eq!(l.rows.len(), 2);
    assert_eq!(l.rows[0].true_size, 0);
    assert_eq!(l.rows[0].size_on_disk, 13);
    assert_eq!(
        l.rows[0].created_at.as_deref(),
        Some("2024-01-25T09:45:31.820Z")
    );
    assert_eq!(l.rows[0].expires_at, None);
    assert_eq!(l.rows[1].true_size, 1536);
    assert_eq!(l.rows[1].size_on_disk, 2 << 20);
    assert_eq!(l.total_true_size, Some(1536));
    assert!(parse_listsnapshots("garbage").is_err());
    assert!(parse_listsnapshots("Snapshot Details: \nSnapshot name Keyspace name Column family name True size Size on disk\nx y z 1 KiB\n").is_err());
}

#[test]
fn statusbackup_ring_endpoints_snapshot() {
    assert!(parse_statusbackup("running\n").unwrap());
    assert!(!parse_statusbackup("not running\n").unwrap());
    assert!(parse_statusbackup("maybe").is_err());

    let ring = "\nDatacenter: datacenter1\n==========\nAddress    Rack        Status State   Load            Owns                Token                                       \n                                                                          3074457345618258602                         \n127.0.0.1  rack1       Up     Normal  103.25 KiB      33.33%              -9223372036854775808                        \n127.0.0.2  rack1       Up     Normal  98.5 KiB        33.33%              -3074457345618258603                        \n127.0.0.3  rack1       Down   Normal  ?               ?                   3074457345618258602                         \n127.0.0.1  rack1       Up     Normal  103.25 KiB      33.33%              1000                                        \n\n  Warning: \"nodetool ring\" is used to output all the tokens of a node.\n  To view status related info of a node use \"nodetool status\" instead.\n";
    let r = parse_ring(ring).unwrap();
    assert_eq!(r["127.0.0.1"], vec!["-9223372036854775808", "1000"]);
    assert_eq!(r["127.0.0.3"], vec!["3074457345618258602"]);
    assert_eq!(r.len(), 3);

    assert_eq!(
        parse_getendpoints("127.0.0.1\n127.0.0.2\n"),
        vec!["127.0.0.1", "127.0.0.2"]
    );
    assert_eq!(
        parse_snapshot(&cassandra_support::sample(
            "nodetool_snapshot_take_ttl.result"
        ))
        .unwrap(),
        "catalog-journal"
    );
    let dp = "Keyspace: ks\n\tTable: t\n\tPaths:\n\t\t/var/lib/cassandra/data/ks/t-d132e240c21711e9bbee19821dcea330\n\t\t/data2/ks/t-d132e240c21711e9bbee19821dcea330\n\n";
    let m = parse_datapaths(dp).unwrap();
    assert_eq!(m[&("ks".to_string(), "t".to_string())].len(), 2);
}

#[test]
fn errors_are_mapped() {
    let e = check_output(
        "cass1",
        &out(1, "", "nodetool: Failed to connect to '127.0.0.1:7199' - ConnectException: 'Connection refused (Connection refused)'.\n"),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Cassandra is not running on cass1 (nodetool could not connect to 127.0.0.1:7199)"
    );
    let e = check_output(
        "cass1",
        &out(1, "", "nodetool: Failed to connect to '127.0.0.1:7199' - SecurityException: 'Authentication failed! Credentials required'.\n"),
    )
    .unwrap_err();
    assert_eq!(
        e,
        NodetoolError::AuthFailed {
            host: "cass1".into(),
            message: "Authentication failed! Credentials required".into()
        }
    );
    let trace = "error: Snapshot snap2 already exists.\n-- StackTrace --\njava.io.IOException: Snapshot snap2 already exists.\n\tat org.apache.cassandra.service.StorageService.takeSnapshot(StorageService.java:2790)\n";
    let e = check_output("cass2", &out(2, "", trace)).unwrap_err();
    assert_eq!(
        e,
        NodetoolError::SnapshotExists {
            host: "cass2".into(),
            tag: "snap2".into()
        }
    );
    let e = check_output(
        "h",
        &out(2, "", "error: Repair job has failed with the error message: boom\n-- StackTrace --\njava.lang.RuntimeException: x\n\tat a.b(C.java:1)\n"),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "nodetool on h failed (exit 2): Repair job has failed with the error message: boom"
    );
    let e = check_output(
        "h",
        &out(1, "nodetool: Keyspace [x] does not exist.\nSee 'nodetool help' or 'nodetool help <command>'.\n", ""),
    )
    .unwrap_err();
    assert_eq!(
        e,
        NodetoolError::Usage {
            host: "h".into(),
            message: "Keyspace [x] does not exist.".into()
        }
    );
    let e = check_output("h", &out(127, "", "sh: 1: nodetool: not found\n")).unwrap_err();
    assert!(matches!(e, NodetoolError::NotInstalled { .. }));
    assert_eq!(check_output("h", &out(0, "ok\n", "")).unwrap(), "ok\n");
}

#[test]
fn invocations_never_carry_a_password() {
    let cfg = CassandraConfig {
        jmx: JmxConfig {
            host: Some("127.0.0.1".into()),
            port: Some(7199),
            user: Some("cassandra".into()),
            password_file: Some("/etc/cassandra/jmxremote.password".into()),
        },
        ..Default::default()
    };
    let n = Nodetool::from_config(&cfg).unwrap();
    assert_eq!(
        n.argv(&["status"]),
        [
            "nodetool",
            "-h",
            "127.0.0.1",
            "-p",
            "7199",
            "-u",
            "cassandra",
            "-pwf",
            "/etc/cassandra/jmxremote.password",
            "status"
        ]
    );
    let shell = CassandraConfig {
        nodetool: Some(CommandSpec::Shell(
            "JAVA_HOME=/opt/jdk /opt/cassandra/bin/nodetool".into(),
        )),
        ..Default::default()
    };
    let n = Nodetool::from_config(&shell).unwrap();
    assert_eq!(
        n.argv(&["snapshot", "-t", "a b"]),
        [
            "sh",
            "-c",
            "JAVA_HOME=/opt/jdk /opt/cassandra/bin/nodetool \"$@\"",
            "nodetool",
            "snapshot",
            "-t",
            "a b"
        ]
    );
    let bad = CassandraConfig {
        nodetool: Some(CommandSpec::Argv(vec![
            "nodetool".into(),
            "-pw".into(),
            "secret".into(),
        ])),
        ..Default::default()
    };
    assert!(Nodetool::from_config(&bad).is_err());
    let bad = CassandraConfig {
        jmx: JmxConfig {
            host: Some("-x".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    assert!(Nodetool::from_config(&bad).is_err());
}

#[test]
fn snapshot_and_clear_arguments() {
    use VersionProfile::*;
    let t = SnapshotTargets::Tables(vec![("ks".into(), "a".into()), ("ks".into(), "b".into())]);
    assert_eq!(
        snapshot_args(V4_1, "cbk-1", &t, true, Some("2d")).unwrap(),
        [
            "snapshot",
            "-t",
            "cbk-1",
            "-sf",
            "--ttl",
            "2d",
            "-kt",
            "ks.a,ks.b"
        ]
    );
    assert_eq!(snapshot_args(V2_1, "x", &t, false, None).unwrap()[3], "-kc");
    assert!(snapshot_args(V3_0, "x", &t, true, None).is_err());
    assert!(snapshot_args(V4_0, "x", &t, false, Some("1h")).is_err());
    let k = SnapshotTargets::Keyspaces(vec!["ks".into()]);
    assert_eq!(
        snapshot_args(V3_11, "x", &k, false, None).unwrap(),
        ["snapshot", "-t", "x", "--", "ks"]
    );
    assert_eq!(
        clearsnapshot_args("x", &[]).unwrap(),
        ["clearsnapshot", "-t", "x"]
    );
    assert!(clearsnapshot_args("", &[]).is_err());
}
