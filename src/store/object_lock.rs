//! S3 Object Lock: the `object_lock` setting of `[storage]`, the retention date it gives each
//! stored object, and the retention a store reports back (prune leaves locked objects alone).
//!
//! Dates are whole UTC days: an object written at `t` is locked until the midnight (UTC) that
//! ends the day of `t + days`, so the objects of one backup normally share one date.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Object Lock retention mode (S3's `GOVERNANCE` or `COMPLIANCE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LockMode {
    /// Users with `s3:BypassGovernanceRetention` can still shorten or remove the lock.
    Governance,
    /// Nobody, not even the root user, can shorten or remove the lock.
    Compliance,
}

impl LockMode {
    /// The S3 name (`GOVERNANCE`, `COMPLIANCE`).
    pub fn s3_name(self) -> &'static str {
        match self {
            LockMode::Governance => "GOVERNANCE",
            LockMode::Compliance => "COMPLIANCE",
        }
    }

    /// Reads an S3 mode name.
    pub fn from_s3(name: &str) -> Option<LockMode> {
        match name.to_ascii_uppercase().as_str() {
            "GOVERNANCE" => Some(LockMode::Governance),
            "COMPLIANCE" => Some(LockMode::Compliance),
            _ => None,
        }
    }
}

/// `[storage] object_lock = { mode = "governance", days = 30 }`: every object cbk stores gets a
/// retention date `days` days ahead; objects a newer backup reuses get theirs extended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ObjectLock {
    pub mode: LockMode,
    /// Days each object stays locked after it is written (or last reused), 1 to 36500.
    pub days: u32,
}

/// The largest `days` S3 accepts (100 years).
pub const MAX_DAYS: u32 = 36_500;

impl ObjectLock {
    /// The retention date of an object written at `now`: the midnight (UTC) ending the day of
    /// `now + days`.
    pub fn retain_until(&self, now: jiff::Timestamp) -> jiff::Timestamp {
        let day = now.as_second().div_euclid(86_400) + i64::from(self.days) + 1;
        jiff::Timestamp::from_second(day * 86_400).unwrap_or(jiff::Timestamp::MAX)
    }
}

/// The retention of one stored object, as the store reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectRetention {
    pub mode: Option<LockMode>,
    pub until: jiff::Timestamp,
}

impl ObjectRetention {
    /// Whether the object cannot be deleted at `now`.
    pub fn locked_at(&self, now: jiff::Timestamp) -> bool {
        self.until > now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_whole_days_at_least_days_ahead() {
        let lock = ObjectLock {
            mode: LockMode::Governance,
            days: 30,
        };
        let now: jiff::Timestamp = "2026-12-07T19:58:00Z".parse().unwrap();
        assert_eq!(
            lock.retain_until(now).to_string(),
            "2027-01-07T00:00:00Z",
            "the midnight ending 2027-01-06"
        );
        let midnight: jiff::Timestamp = "2026-12-07T00:00:00Z".parse().unwrap();
        assert_eq!(
            lock.retain_until(midnight).to_string(),
            "2027-01-07T00:00:00Z"
        );
        assert_eq!(LockMode::from_s3("compliance"), Some(LockMode::Compliance));
        assert_eq!(LockMode::Governance.s3_name(), "GOVERNANCE");
    }
}
