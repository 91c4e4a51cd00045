//! SSTable names, TOC and Digest checks on every real fixture (ka … da).

use crate::cassandra_support;

use std::collections::BTreeMap;

use cbk::cassandra::digest::{self, DigestAlgorithm, DigestError};
use cbk::cassandra::sstable::{self, Component, Format, Generation, SstableName};
use cbk::cassandra::version::VersionProfile;
use cbk::codec::{Codec, codec_for_file};

/// Expected Digest values (fixture README table).
fn expected_digests() -> BTreeMap<&'static str, u32> {
    BTreeMap::from([
        ("legacy_tables-legacy_ka_simple-ka-1", 2802392853),
        (
            "legacy_tables-legacy_ka_with_illegal_cell_names-ka-1",
            3673239127,
        ),
        (
            "legacy_tables-legacy_ka_with_illegal_cell_names-ka-2",
            2529627719,
        ),
        ("la/legacy_la_simple", 4239203875),
        ("mc/legacy_mc_simple", 34605693),
        ("me/legacy_me_simple", 1286741344),
        ("na/legacy_na_simple", 462858821),
        ("nb/legacy_nb_simple", 3400459090),
        ("nb/legacy_nb_clust", 2568411107),
        ("oa/legacy_oa_simple", 309360903),
        ("da/legacy_da_simple", 1689908368),
        ("da/legacy_da_clust", 1983729251),
    ])
}

#[test]
fn every_fixture_name_parses_and_groups() {
    let mut sstables = 0;
    for (fmt, dir) in cassandra_support::sstable_dirs() {
        let names = cassandra_support::file_names(&dir);
        let g = sstable::group_by_sstable(names.iter().map(String::as_str));
        assert!(g.others.is_empty(), "{}: {:?}", dir.display(), g.others);
        for (prefix, comps) in &g.sstables {
            sstables += 1;
            for c in comps {
                assert_eq!(c.version, fmt);
                assert_eq!(c.prefix(), *prefix);
                assert_eq!(
                    c.format,
                    if fmt == "da" {
                        Format::Bti
                    } else {
                        Format::Big
                    }
                );
                assert_eq!(c.legacy_ks_cf.is_some(), fmt == "ka");
                assert_eq!(SstableName::parse(&c.file_name()).unwrap(), *c);
            }
            // The TOC lists exactly the components present.
            let toc = comps
                .iter()
                .find(|c| c.component == Component::Toc)
                .expect("TOC.txt");
            let text = std::fs::read_to_string(dir.join(toc.file_name())).unwrap();
            let mut listed = sstable::parse_toc(&text);
            listed.sort();
            let present: Vec<Component> = comps.iter().map(|c| c.component.clone()).collect();
            // TOC == files present, except in the real ka-2 sstable, whose TOC lists a
            // Summary.db that is absent (Summary is regenerated on load): cbk must group by name
            // prefix and must not require every TOC entry.
            let missing: Vec<&Component> = listed.iter().filter(|c| !present.contains(c)).collect();
            let unlisted: Vec<&Component> =
                present.iter().filter(|c| !listed.contains(c)).collect();
            assert!(unlisted.is_empty(), "{prefix}: {unlisted:?}");
            if prefix.ends_with("illegal_cell_names-ka-2") {
                assert_eq!(missing, vec![&Component::Summary]);
            } else {
                assert!(missing.is_empty(), "{prefix}: {missing:?}");
            }
            // Digest component name follows the version.
            assert!(present.contains(&comps[0].digest_component()), "{prefix}");
            let digest = comps
                .iter()
                .find_map(|c| c.component.digest_algorithm())
                .unwrap();
            assert_eq!(digest, comps[0].digest_algorithm(), "{prefix}");
        }
    }
    assert_eq!(sstables, 12);
}

#[test]
fn every_fixture_digest_verifies() {
    let expected = expected_digests();
    let mut checked = 0;
    for (fmt, dir) in cassandra_support::sstable_dirs() {
        let names = cassandra_support::file_names(&dir);
        let g = sstable::group_by_sstable(names.iter().map(String::as_str));
        for (prefix, comps) in &g.sstables {
            let data = dir.join(comps[0].with_component(Component::Data).file_name());
            let dg = dir.join(
                comps[0]
                    .with_component(comps[0].digest_component())
                    .file_name(),
            );
            let value = digest::verify_data_file(&data, &dg).unwrap();
            let key = if fmt == "ka" {
                prefix.clone()
            } else {
                format!("{fmt}/{}", dir.file_name().unwrap().to_str().unwrap())
            };
            assert_eq!(Some(&value), expected.get(key.as_str()), "{key}");
            assert_eq!(digest::read_digest_file(&dg).unwrap(), value);
            checked += 1;
        }
    }
    assert_eq!(checked, 12);
}

#[test]
fn wrong_algorithm_or_changed_data_fails_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let src = cassandra_support::fixtures().join("nb/legacy_tables/legacy_nb_simple");
    let data = tmp.path().join("nb-1-big-Data.db");
    let mut bytes = std::fs::read(src.join("nb-1-big-Data.db")).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&data, &bytes).unwrap();
    let e = digest::verify_data_file(&data, &src.join("nb-1-big-Digest.crc32")).unwrap_err();
    assert!(
        matches!(
            e,
            DigestError::Mismatch {
                expected: 3400459090,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("nb-1-big-Data.db"), "{e}");
    // Adler-32 of an ma+ Data.db is not its digest.
    let ok = src.join("nb-1-big-Data.db");
    assert_ne!(
        digest::checksum_file(&ok, DigestAlgorithm::Adler32).unwrap(),
        3400459090
    );
    // A missing Digest file is an I/O error naming it.
    let e = digest::verify_data_file(&ok, &tmp.path().join("none-Digest.crc32")).unwrap_err();
    assert!(e.to_string().contains("none-Digest.crc32"), "{e}");
}

#[test]
fn renaming_a_generation_keeps_digests_valid() {
    let tmp = tempfile::tempdir().unwrap();
    let src =
        cassandra_support::fixtures().join("ka/legacy_tables/legacy_ka_with_illegal_cell_names");
    let names = cassandra_support::file_names(&src);
    let g = sstable::group_by_sstable(names.iter().map(String::as_str));
    let comps = g.sstables.values().next().unwrap();
    for c in comps {
        let renamed = c.with_generation(Generation::Int(77));
        std::fs::copy(
            src.join(c.file_name()),
            tmp.path().join(renamed.file_name()),
        )
        .unwrap();
    }
    let first = comps[0].with_generation(Generation::Int(77));
    digest::verify_data_file(
        &tmp.path()
            .join(first.with_component(Component::Data).file_name()),
        &tmp.path()
            .join(first.with_component(first.digest_component()).file_name()),
    )
    .unwrap();
    assert!(
        tmp.path()
            .join("legacy_tables-legacy_ka_with_illegal_cell_names-ka-77-Data.db")
            .is_file()
    );
}

#[test]
fn readability_and_compression_of_fixtures() {
    use VersionProfile::*;
    let cases = [
        ("ka", [true, true, true, false, false, false]),
        ("la", [false, true, true, false, false, false]),
        ("mc", [false, false, true, true, true, true]),
        ("me", [false, false, true, true, true, true]),
        ("na", [false, false, false, true, true, true]),
        ("nb", [false, false, false, true, true, true]),
        ("oa", [false, false, false, false, false, true]),
        ("da", [false, false, false, false, false, true]),
    ];
    let profiles = [V2_1, V2_2, V3_11, V4_0, V4_1, V5_0];
    for (fmt, want) in cases {
        for (_, dir) in cassandra_support::sstable_dirs()
            .into_iter()
            .filter(|(f, _)| f == fmt)
        {
            for n in cassandra_support::file_names(&dir) {
                let s = SstableName::parse(&n).unwrap();
                let got: Vec<bool> = profiles.iter().map(|p| s.is_readable_by(*p)).collect();
                assert_eq!(got, want, "{n}");
            }
        }
    }
    // Only the uncompressed ka-1 lacks CompressionInfo.db (it has CRC.db): its Data.db is
    // worth compressing; every other Data.db is stored as is.
    for (_, dir) in cassandra_support::sstable_dirs() {
        let names = cassandra_support::file_names(&dir);
        let g = sstable::group_by_sstable(names.iter().map(String::as_str));
        for (prefix, comps) in &g.sstables {
            let has_ci = comps
                .iter()
                .any(|c| c.component == Component::CompressionInfo);
            let has_crc = comps.iter().any(|c| c.component == Component::Crc);
            assert_ne!(has_ci, has_crc, "{prefix}");
            let codec = codec_for_file(Codec::default(), Some(&Component::Data), has_ci, false);
            let uncompressed = prefix == "legacy_tables-legacy_ka_with_illegal_cell_names-ka-1";
            assert_eq!(codec == Codec::default(), uncompressed, "{prefix}");
        }
    }
}
