//! Cassandra release versions and the version profiles (2.1 … 5.0) that decide file formats,
//! digest algorithms, manifest shapes and nodetool behaviour.

use std::fmt;

/// A Cassandra release family with its own on-disk and nodetool behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VersionProfile {
    V2_1,
    V2_2,
    V3_0,
    /// 3.1 – 3.11 (tick-tock releases and 3.11).
    V3_11,
    V4_0,
    V4_1,
    /// 5.0 (and later 5.x releases, which keep its formats).
    V5_0,
}

impl VersionProfile {
    /// Every profile, oldest first.
    pub const ALL: [VersionProfile; 7] = [
        VersionProfile::V2_1,
        VersionProfile::V2_2,
        VersionProfile::V3_0,
        VersionProfile::V3_11,
        VersionProfile::V4_0,
        VersionProfile::V4_1,
        VersionProfile::V5_0,
    ];

    /// Short name (`"4.1"`).
    pub fn as_str(self) -> &'static str {
        match self {
            VersionProfile::V2_1 => "2.1",
            VersionProfile::V2_2 => "2.2",
            VersionProfile::V3_0 => "3.0",
            VersionProfile::V3_11 => "3.11",
            VersionProfile::V4_0 => "4.0",
            VersionProfile::V4_1 => "4.1",
            VersionProfile::V5_0 => "5.0",
        }
    }

    /// Highest first letter of a BIG sstable version this release can read (`isCompatible`).
    pub(crate) fn newest_big_letter(self) -> char {
        match self {
            VersionProfile::V2_1 => 'k',
            VersionProfile::V2_2 => 'l',
            VersionProfile::V3_0 | VersionProfile::V3_11 => 'm',
            VersionProfile::V4_0 | VersionProfile::V4_1 => 'n',
            VersionProfile::V5_0 => 'o',
        }
    }

    /// Oldest sstable version this release can read (`earliest_supported_version`).
    pub(crate) fn earliest_version(self) -> &'static str {
        match self {
            // 2.x read back to 1.2-era `ic`/`ja` files (inferred; not needed by cbk).
            VersionProfile::V2_1 | VersionProfile::V2_2 => "ic",
            VersionProfile::V3_0 | VersionProfile::V3_11 => "jb",
            _ => "ma",
        }
    }

    /// nodetool prints KiB/MiB (3.6+) instead of KB/MB.
    pub fn uses_binary_units(self) -> bool {
        self >= VersionProfile::V3_11
    }

    /// Snapshots carry a schema.cql (3.0.9+).
    pub fn writes_schema_cql(self) -> bool {
        self >= VersionProfile::V3_0
    }

    /// UUID sstable identifiers exist (opt-in through `uuid_sstable_identifiers_enabled`).
    pub fn supports_uuid_generations(self) -> bool {
        self >= VersionProfile::V4_1
    }

    /// `nodetool clearsnapshot` without `-t` deletes everything (before 4.0).
    pub fn clearsnapshot_without_tag_clears_all(self) -> bool {
        self < VersionProfile::V4_0
    }

    /// `nodetool import` exists.
    pub fn has_import(self) -> bool {
        self >= VersionProfile::V4_0
    }
}

impl fmt::Display for VersionProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed `ReleaseVersion` such as `4.1.3` or `5.0-beta1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
    /// The text as printed by nodetool.
    pub raw: String,
}

/// A version string cbk cannot map to a profile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("cannot parse Cassandra version {0:?}")]
    Malformed(String),
    #[error("Cassandra {0} is not supported (cbk supports 2.1 to 5.0)")]
    Unsupported(String),
}

impl ReleaseVersion {
    /// Parses `4.1.3`, `3.11.16`, `5.0-rc1`, `4.0.0-SNAPSHOT`, `3.0.29.1` …
    pub fn parse(text: &str) -> Result<ReleaseVersion, VersionError> {
        let raw = text.trim();
        let core = raw.split(['-', ' ', '+']).next().unwrap_or("");
        let mut parts = core.split('.');
        let num = |p: Option<&str>| -> Result<u32, VersionError> {
            match p {
                None => Ok(0),
                Some(s) => s
                    .parse()
                    .map_err(|_| VersionError::Malformed(raw.to_string())),
            }
        };
        let major_text = parts.next().filter(|s| !s.is_empty());
        let Some(major_text) = major_text else {
            return Err(VersionError::Malformed(raw.to_string()));
        };
        let major = num(Some(major_text))?;
        let minor = num(parts.next())?;
        let patch = num(parts.next())?;
        Ok(ReleaseVersion {
            major,
            minor,
            patch,
            raw: raw.to_string(),
        })
    }

    /// The profile of this release.
    pub fn profile(&self) -> Result<VersionProfile, VersionError> {
        let p = match (self.major, self.minor) {
            (2, 1) => VersionProfile::V2_1,
            (2, 2) => VersionProfile::V2_2,
            (3, 0) => VersionProfile::V3_0,
            (3, _) => VersionProfile::V3_11,
            (4, 0) => VersionProfile::V4_0,
            (4, _) => VersionProfile::V4_1,
            (5, _) => VersionProfile::V5_0,
            _ => return Err(VersionError::Unsupported(self.raw.clone())),
        };
        Ok(p)
    }
}

impl std::str::FromStr for VersionProfile {
    type Err = VersionError;
    /// Accepts a profile name (`4.1`) or a full release (`4.1.3`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ReleaseVersion::parse(s)?.profile()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_map_to_profiles() {
        let cases = [
            ("2.1.22", VersionProfile::V2_1),
            ("2.2.19", VersionProfile::V2_2),
            ("3.0.29", VersionProfile::V3_0),
            ("3.9", VersionProfile::V3_11),
            ("3.11.16", VersionProfile::V3_11),
            ("4.0.11", VersionProfile::V4_0),
            ("4.1.3", VersionProfile::V4_1),
            ("5.0-rc1", VersionProfile::V5_0),
            ("5.0.2", VersionProfile::V5_0),
        ];
        for (text, want) in cases {
            let v = ReleaseVersion::parse(text).unwrap();
            assert_eq!(v.profile().unwrap(), want, "{text}");
        }
        assert!(matches!(
            ReleaseVersion::parse("1.2.19").unwrap().profile(),
            Err(VersionError::Unsupported(_))
        ));
        assert!(matches!(
            ReleaseVersion::parse("x.y"),
            Err(VersionError::Malformed(_))
        ));
        assert!(ReleaseVersion::parse("").is_err());
    }
}
