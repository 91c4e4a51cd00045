//! SSTable file names of every format (ka … da, BIG and BTI, integer and UUID generations).
//!
//! Grammar (cassandra-facts §2.1): 2.1 `<ks>-<cf>-[tmp-|tmplink-]<ver>-<gen>-<Component>`;
//! 2.2+ `[tmp-|tmplink-]<ver>-<gen>-<big|bti>-<Component>` where `<gen>` is a positive integer
//! or (4.1+) a 28-character UUID-based id such as `3g1m_0nuf_3vj5m2k1125165rxa7`.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use super::version::VersionProfile;

/// Why a file name is not an sstable component.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name:?} is not an sstable file name: {reason}")]
pub struct SstableNameError {
    pub name: String,
    pub reason: &'static str,
}

/// On-disk format family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Format {
    /// The classic format (all versions; implicit for 2.1 names).
    Big,
    /// Trie-indexed format (5.0 `da`).
    Bti,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Big => "big",
            Format::Bti => "bti",
        }
    }
}

/// The generation (sstable id) part of a name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Generation {
    Int(u64),
    /// 4.1+ UUID-based id (28 chars, sorts by time).
    Uuid(String),
}

impl Generation {
    /// Parses `12` or a UUID-based id.
    pub fn parse(text: &str) -> Option<Generation> {
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            return text.parse().ok().filter(|n| *n > 0).map(Generation::Int);
        }
        if is_uuid_id(text) {
            return Some(Generation::Uuid(text.to_string()));
        }
        None
    }

    pub fn is_uuid(&self) -> bool {
        matches!(self, Generation::Uuid(_))
    }
}

impl Ord for Generation {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Generation::Int(a), Generation::Int(b)) => a.cmp(b),
            (Generation::Uuid(a), Generation::Uuid(b)) => a.cmp(b),
            (Generation::Int(_), Generation::Uuid(_)) => Ordering::Less,
            (Generation::Uuid(_), Generation::Int(_)) => Ordering::Greater,
        }
    }
}

impl PartialOrd for Generation {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Generation::Int(n) => write!(f, "{n}"),
            Generation::Uuid(s) => f.write_str(s),
        }
    }
}

/// `([0-9a-z]{4})_([0-9a-z]{4})_([0-9a-z]{5})([0-9a-z]{13})`
fn is_uuid_id(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 28
        && b[4] == b'_'
        && b[9] == b'_'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 9 || c.is_ascii_digit() || c.is_ascii_lowercase())
}

/// Which checksum a Digest component holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigestAlgorithm {
    Crc32,
    Adler32,
}

/// One component of an sstable (the part after the last name separator).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Component {
    Data,
    Index,
    Summary,
    Filter,
    Statistics,
    CompressionInfo,
    Crc,
    /// `Digest.crc32`, `Digest.adler32`, or `Digest.sha1` (2.1, holds an Adler-32).
    Digest(String),
    Toc,
    Partitions,
    Rows,
    /// SASI index file `SI_<index>.db`.
    Sasi(String),
    /// SAI (5.0) file `SAI+...db`, kept verbatim.
    Sai(String),
    /// Any other suffix, kept verbatim.
    Other(String),
}

impl Component {
    /// Parses the suffix (`Data.db`, `Digest.crc32`, `SAI+aa+idx+Meta.db` …).
    pub fn parse(text: &str) -> Option<Component> {
        if text.is_empty() || !text.contains('.') || text.contains('/') {
            return None;
        }
        let c = match text {
            "Data.db" => Component::Data,
            "Index.db" => Component::Index,
            "Summary.db" => Component::Summary,
            "Filter.db" => Component::Filter,
            "Statistics.db" => Component::Statistics,
            "CompressionInfo.db" => Component::CompressionInfo,
            "CRC.db" => Component::Crc,
            "TOC.txt" => Component::Toc,
            "Partitions.db" => Component::Partitions,
            "Rows.db" => Component::Rows,
            "Digest.crc32" | "Digest.adler32" | "Digest.sha1" => Component::Digest(text.into()),
            _ if text.starts_with("SI_") && text.ends_with(".db") => {
                Component::Sasi(text[3..text.len() - 3].to_string())
            }
            _ if text.starts_with("SAI+") => Component::Sai(text.to_string()),
            _ => Component::Other(text.to_string()),
        };
        Some(c)
    }

    /// The file name suffix.
    pub fn as_str(&self) -> String {
        match self {
            Component::Data => "Data.db".into(),
            Component::Index => "Index.db".into(),
            Component::Summary => "Summary.db".into(),
            Component::Filter => "Filter.db".into(),
            Component::Statistics => "Statistics.db".into(),
            Component::CompressionInfo => "CompressionInfo.db".into(),
            Component::Crc => "CRC.db".into(),
            Component::Toc => "TOC.txt".into(),
            Component::Partitions => "Partitions.db".into(),
            Component::Rows => "Rows.db".into(),
            Component::Digest(s) | Component::Sai(s) | Component::Other(s) => s.clone(),
            Component::Sasi(idx) => format!("SI_{idx}.db"),
        }
    }

    /// Components Cassandra rewrites in place (same name, new content): Statistics (repair
    /// and level changes), Summary (regenerated) and TOC (appended). All others are immutable.
    pub fn is_mutable(&self) -> bool {
        matches!(
            self,
            Component::Statistics | Component::Summary | Component::Toc
        )
    }

    /// The algorithm of a Digest component, from its suffix.
    pub fn digest_algorithm(&self) -> Option<DigestAlgorithm> {
        match self {
            Component::Digest(s) if s == "Digest.crc32" => Some(DigestAlgorithm::Crc32),
            Component::Digest(_) => Some(DigestAlgorithm::Adler32),
            _ => None,
        }
    }
}

/// Temporary-file marker of 2.1/2.2 names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Temp {
    Tmp,
    TmpLink,
}

impl Temp {
    fn as_str(self) -> &'static str {
        match self {
            Temp::Tmp => "tmp",
            Temp::TmpLink => "tmplink",
        }
    }
    fn parse(s: &str) -> Option<Temp> {
        match s {
            "tmp" => Some(Temp::Tmp),
            "tmplink" => Some(Temp::TmpLink),
            _ => None,
        }
    }
}

/// A parsed sstable component file name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SstableName {
    /// Two-letter version (`ka`, `nb`, `da`, …).
    pub version: String,
    pub generation: Generation,
    pub format: Format,
    pub component: Component,
    /// 2.1 (`ka`, `jb`) names embed keyspace and table (`<table>.<index>` for 2i sstables).
    pub legacy_ks_cf: Option<(String, String)>,
    pub temp: Option<Temp>,
}

fn is_version(s: &str) -> bool {
    s.len() == 2 && s.bytes().all(|b| b.is_ascii_lowercase())
}

fn is_word(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl SstableName {
    /// Parses a file name (no folders).
    pub fn parse(name: &str) -> Result<SstableName, SstableNameError> {
        let err = |reason| SstableNameError {
            name: name.to_string(),
            reason,
        };
        if name.contains('/') {
            return Err(err("contains a path separator"));
        }
        let tokens: Vec<&str> = name.split('-').collect();
        // Modern: [tmp|tmplink] ver gen format component
        let (temp, rest) = match tokens.first().and_then(|t| Temp::parse(t)) {
            Some(t) => (Some(t), &tokens[1..]),
            None => (None, &tokens[..]),
        };
        if rest.len() == 4 && (rest[2] == "big" || rest[2] == "bti") {
            if !is_version(rest[0]) {
                return Err(err("bad version"));
            }
            let generation = Generation::parse(rest[1]).ok_or(err("bad generation"))?;
            let component = Component::parse(rest[3]).ok_or(err("bad component"))?;
            let format = if rest[2] == "big" {
                Format::Big
            } else {
                Format::Bti
            };
            return Ok(SstableName {
                version: rest[0].to_string(),
                generation,
                format,
                component,
                legacy_ks_cf: None,
                temp,
            });
        }
        // Legacy 2.1: ks cf [tmp|tmplink] ver gen component
        let (ks, cf, temp, rest) = match tokens.len() {
            5 => (tokens[0], tokens[1], None, &tokens[2..]),
            6 => {
                let t = Temp::parse(tokens[2]).ok_or(err("unrecognised name layout"))?;
                (tokens[0], tokens[1], Some(t), &tokens[3..])
            }
            _ => return Err(err("unrecognised name layout")),
        };
        let cf_ok = cf.split('.').all(is_word) && cf.split('.').count() <= 2;
        if !is_word(ks) || !cf_ok {
            return Err(err("bad keyspace or table in a 2.1 name"));
        }
        if !is_version(rest[0]) || rest[0].as_bytes()[0] > b'k' {
            return Err(err("bad version for a 2.1 name"));
        }
        let generation = match Generation::parse(rest[1]) {
            Some(g @ Generation::Int(_)) => g,
            _ => return Err(err("bad generation")),
        };
        let component = Component::parse(rest[2]).ok_or(err("bad component"))?;
        Ok(SstableName {
            version: rest[0].to_string(),
            generation,
            format: Format::Big,
            component,
            legacy_ks_cf: Some((ks.to_string(), cf.to_string())),
            temp,
        })
    }

    /// The name without the component: `nb-1-big`, `ks-cf-ka-1`, `tmp-la-2-big`.
    pub fn prefix(&self) -> String {
        let mut s = String::new();
        if let Some((ks, cf)) = &self.legacy_ks_cf {
            s.push_str(&format!("{ks}-{cf}-"));
            if let Some(t) = self.temp {
                s.push_str(t.as_str());
                s.push('-');
            }
            s.push_str(&format!("{}-{}", self.version, self.generation));
        } else {
            if let Some(t) = self.temp {
                s.push_str(t.as_str());
                s.push('-');
            }
            s.push_str(&format!(
                "{}-{}-{}",
                self.version,
                self.generation,
                self.format.as_str()
            ));
        }
        s
    }

    /// The full file name.
    pub fn file_name(&self) -> String {
        format!("{}-{}", self.prefix(), self.component.as_str())
    }

    /// The same component under another generation (rename all components consistently:
    /// no component embeds its own file name).
    pub fn with_generation(&self, generation: Generation) -> SstableName {
        SstableName {
            generation,
            ..self.clone()
        }
    }

    /// The same sstable, another component.
    pub fn with_component(&self, component: Component) -> SstableName {
        SstableName {
            component,
            ..self.clone()
        }
    }

    /// The index name of a 2.1 index sstable (`<table>.<index>`).
    pub fn legacy_index(&self) -> Option<&str> {
        self.legacy_ks_cf
            .as_ref()
            .and_then(|(_, cf)| cf.split_once('.').map(|(_, idx)| idx))
    }

    /// Checksum algorithm of this version's Digest file: Adler-32 before 3.0, CRC32 after.
    pub fn digest_algorithm(&self) -> DigestAlgorithm {
        digest_algorithm_for_version(&self.version)
    }

    /// The Digest component this version writes.
    pub fn digest_component(&self) -> Component {
        let suffix = match self.version.as_bytes()[0] {
            b'a'..=b'k' if self.format == Format::Big => "Digest.sha1",
            b'l' => "Digest.adler32",
            _ => "Digest.crc32",
        };
        Component::Digest(suffix.into())
    }

    /// Can a node of `profile` load this sstable? (UUID generations also need the yaml flag
    /// `uuid_sstable_identifiers_enabled`, see [`Self::needs_uuid_flag`].)
    pub fn is_readable_by(&self, profile: VersionProfile) -> bool {
        if self.generation.is_uuid() && !profile.supports_uuid_generations() {
            return false;
        }
        match self.format {
            Format::Bti => profile >= VersionProfile::V5_0,
            Format::Big => {
                let first = char::from(self.version.as_bytes()[0]);
                first <= profile.newest_big_letter()
                    && self.version.as_str() >= profile.earliest_version()
            }
        }
    }

    /// A UUID generation: the node refuses to start unless the flag is on.
    pub fn needs_uuid_flag(&self) -> bool {
        self.generation.is_uuid()
    }
}

/// Adler-32 for `ka`/`la`/`lb` (and older), CRC32 for `ma`+ and BTI `da`.
pub fn digest_algorithm_for_version(version: &str) -> DigestAlgorithm {
    match version.as_bytes().first() {
        Some(b'j' | b'k' | b'l') => DigestAlgorithm::Adler32,
        _ => DigestAlgorithm::Crc32,
    }
}

impl fmt::Display for SstableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file_name())
    }
}

/// Files of one folder grouped by sstable.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grouped {
    /// sstable prefix -> its components found (sorted by component).
    pub sstables: BTreeMap<String, Vec<SstableName>>,
    /// Files that are not sstable components (manifest.json, schema.cql, txn logs …).
    pub others: Vec<String>,
}

/// Groups file names by sstable prefix (not by TOC: SASI/SAI files can be missing from it).
pub fn group_by_sstable<'a, I>(names: I) -> Grouped
where
    I: IntoIterator<Item = &'a str>,
{
    let mut g = Grouped::default();
    for n in names {
        match SstableName::parse(n) {
            Ok(s) => g.sstables.entry(s.prefix()).or_default().push(s),
            Err(_) => g.others.push(n.to_string()),
        }
    }
    for v in g.sstables.values_mut() {
        v.sort_by(|a, b| a.component.cmp(&b.component));
    }
    g.others.sort();
    g
}

/// Parses a TOC.txt: component suffixes, one per line.
pub fn parse_toc(text: &str) -> Vec<Component> {
    text.lines()
        .map(str::trim)
        .filter_map(Component::parse)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(name: &str) -> SstableName {
        let s = SstableName::parse(name).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.file_name(), name);
        s
    }

    #[test]
    fn every_era_round_trips() {
        let s = rt("legacy_tables-legacy_ka_simple-ka-1-Data.db");
        assert_eq!(s.version, "ka");
        assert_eq!(
            s.legacy_ks_cf,
            Some(("legacy_tables".into(), "legacy_ka_simple".into()))
        );
        let s = rt("ks-tbl.tbl_idx-ka-3-Index.db");
        assert_eq!(s.legacy_index(), Some("tbl_idx"));
        let s = rt("ks-cf-tmp-ka-2-Data.db");
        assert_eq!(s.temp, Some(Temp::Tmp));
        let s = rt("tmplink-la-7-big-Index.db");
        assert_eq!(s.temp, Some(Temp::TmpLink));
        rt("la-1-big-Digest.adler32");
        rt("me-12-big-Index.db");
        let s = rt("da-1-bti-Partitions.db");
        assert_eq!(s.format, Format::Bti);
        let s = rt("nb-3g1m_0nuf_3vj5m2k1125165rxa7-big-Index.db");
        assert!(s.generation.is_uuid());
        let s = rt("nb-1-big-SI_t_name_sasi.db");
        assert_eq!(s.component, Component::Sasi("t_name_sasi".into()));
        let s = rt("nb-1-big-SAI+aa+my_idx+Meta.db");
        assert!(matches!(s.component, Component::Sai(_)));
    }

    #[test]
    fn non_sstables_are_rejected() {
        for n in [
            "manifest.json",
            "schema.cql",
            "nb_txn_flush_3c2c5a40-1f8a-11ee-9d5e-5b3c0e5c8a11.log",
            "nb-0-big-Data.db",
            "nb-x-big-Data.db",
            "nb-1-big-",
            "NB-1-big-Data.db",
            "a-b-c-d-e-f-g",
            "ks-cf-na-1-Data.db",
            "",
        ] {
            assert!(SstableName::parse(n).is_err(), "{n}");
        }
    }

    #[test]
    fn rename_keeps_everything_else() {
        let s = SstableName::parse("ks-cf-ka-1-Data.db").unwrap();
        assert_eq!(
            s.with_generation(Generation::Int(42)).file_name(),
            "ks-cf-ka-42-Data.db"
        );
        let s = SstableName::parse("nb-1-big-TOC.txt").unwrap();
        assert_eq!(
            s.with_generation(Generation::Int(9)).file_name(),
            "nb-9-big-TOC.txt"
        );
    }

    #[test]
    fn readability_follows_cassandra_rules() {
        let p = |n: &str| SstableName::parse(n).unwrap();
        use VersionProfile::*;
        assert!(p("ka-1-big-Data.db").is_readable_by(V3_11));
        assert!(!p("lb-1-big-Data.db").is_readable_by(V4_0));
        assert!(p("me-1-big-Data.db").is_readable_by(V4_0));
        assert!(!p("nb-1-big-Data.db").is_readable_by(V3_11));
        assert!(!p("oa-1-big-Data.db").is_readable_by(V4_1));
        assert!(p("oa-1-big-Data.db").is_readable_by(V5_0));
        assert!(!p("da-1-bti-Data.db").is_readable_by(V4_1));
        assert!(p("da-1-bti-Data.db").is_readable_by(V5_0));
        let u = p("nb-3g1m_0nuf_3vj5m2k1125165rxa7-big-Data.db");
        assert!(!u.is_readable_by(V4_0));
        assert!(u.is_readable_by(V4_1));
        assert!(u.needs_uuid_flag());
    }

    #[test]
    fn mutable_components() {
        for (c, m) in [
            ("Statistics.db", true),
            ("Summary.db", true),
            ("TOC.txt", true),
            ("Data.db", false),
            ("Index.db", false),
            ("Digest.crc32", false),
        ] {
            assert_eq!(Component::parse(c).unwrap().is_mutable(), m, "{c}");
        }
    }
}
