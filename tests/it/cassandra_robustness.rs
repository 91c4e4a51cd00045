//! No parser panics on arbitrary input (cbk must never panic on what a node or a store sends).

use cbk::cassandra::{manifest, nodetool, schema, sstable, yaml};
use cbk::codec::{Codec, decode};
use proptest::prelude::*;

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,300}",
        // Near-miss inputs built from the real vocabulary.
        proptest::collection::vec(
            prop_oneof![
                Just("Snapshot Details: \n".to_string()),
                Just("Snapshot name Keyspace name Column family name True size Size on disk Creation time Expiration time Ephemeral\n".to_string()),
                Just("ID : ".to_string()),
                Just("UN  ".to_string()),
                Just("-- Address Load Tokens Owns Host ID Rack\n".to_string()),
                Just("Datacenter: dc1\n".to_string()),
                Just("Cluster Information:\n\tSchema versions:\n".to_string()),
                Just(": [".to_string()),
                Just(" KiB ".to_string()),
                Just("1.5".to_string()),
                Just("?".to_string()),
                Just("%".to_string()),
                Just("true".to_string()),
                Just("\n".to_string()),
                Just(" ".to_string()),
                Just("error: ".to_string()),
                Just("-- StackTrace --\n".to_string()),
                Just("nodetool: Failed to connect to '".to_string()),
                Just("CREATE TABLE ".to_string()),
                Just("IF NOT EXISTS ".to_string()),
                Just("ks.t".to_string()),
                Just("WITH ID = ".to_string()),
                Just("'".to_string()),
                Just("\"".to_string()),
                Just(";".to_string()),
                Just("/*".to_string()),
                Just("$$".to_string()),
                Just("nb-1-big-Data.db".to_string()),
                "[a-z0-9_.-]{0,8}",
            ],
            0..40,
        )
        .prop_map(|v| v.concat()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn text_parsers_never_panic(t in any_text(), code in -1i32..200) {
        let _ = nodetool::parse_info(&t);
        let _ = nodetool::parse_status(&t);
        let _ = nodetool::parse_listsnapshots(&t);
        let _ = nodetool::parse_describecluster(&t);
        let _ = nodetool::parse_ring(&t);
        let _ = nodetool::parse_version(&t);
        let _ = nodetool::parse_statusbackup(&t);
        let _ = nodetool::parse_datapaths(&t);
        let _ = nodetool::parse_size(&t);
        let out = cbk::remote::Output { code, stdout: t.as_bytes().to_vec(), stderr: t.as_bytes().to_vec() };
        let _ = nodetool::check_output("h", out.code, &out.stdout, &out.stderr);
        let _ = schema::SchemaCql::parse(&t);
        let _ = manifest::SnapshotManifest::parse(&t);
        let _ = yaml::CassandraYaml::parse(&t, "c", &yaml::InstallType::Package);
        for w in t.split_whitespace() {
            if let Ok(n) = sstable::SstableName::parse(w) {
                prop_assert_eq!(n.file_name(), w);
                let _ = n.is_readable_by(cbk::cassandra::version::VersionProfile::V4_1);
            }
        }
    }

    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000), lzo_prefix in any::<bool>()) {
        let mut input = if lzo_prefix { cbk::codec::lzop::MAGIC.to_vec() } else { Vec::new() };
        input.extend_from_slice(&bytes);
        for c in [Codec::Lz4, Codec::Zstd { level: 3 }, Codec::Lzop] {
            let _ = decode(c, &input[..], &mut Vec::new());
        }
        let _ = cbk::codec::lzo1x::decompress(&bytes, 4096);
    }
}
