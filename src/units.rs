//! The plan's units: one [`ByteSize`] and one [`Duration`], each with one grammar, used by every
//! module that reads a size, a rate or a time span from a plan (the loader, ssh, S3, prune,
//! limits).
//!
//! Both parse in `FromStr` and in `Deserialize` (so a bad value is reported with its TOML span),
//! and serialize back to the text the plan had (saved plans keep what the operator wrote).
//!
//! Sizes: a number (decimals allowed) and a unit: `B`, decimal `kB`/`KB`, `MB`, `GB`, `TB`
//! (powers of 1000) or binary `KiB`, `MiB`, `GiB`, `TiB` (powers of 1024); units are
//! case-insensitive and may follow a space. A bare number is bytes. The one-letter `k`, `M`,
//! `G`, `T` are refused: tools disagree on whether they mean 1000 or 1024. The result must be
//! a whole number of bytes.
//!
//! Durations: one or more `<integer><unit>` terms, e.g. `10s`, `2m30s`, `1h 30m`, `7d`, `1w`,
//! with units `ms`, `s`, `m`, `h`, `d` (24 hours) and `w` (7 days), or their long names
//! (`seconds`, `minutes`, ...). Days and weeks are fixed lengths everywhere. Negative values,
//! months and years (which have no fixed length) are refused. Whether zero is allowed is up to
//! the setting ([`Duration::is_zero`]).

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Why a size or a duration did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitError {
    /// `size`, `bandwidth` or `duration`.
    pub what: &'static str,
    pub text: String,
    /// Empty when the text simply does not follow the grammar (the diagnostic's help says
    /// what does); otherwise what is wrong with a value that looks right.
    pub reason: String,
}

impl fmt::Display for UnitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {} `{}`", self.what, self.text)?;
        if !self.reason.is_empty() {
            write!(f, ": {}", self.reason)?;
        }
        Ok(())
    }
}

impl std::error::Error for UnitError {}

impl UnitError {
    fn new(what: &'static str, text: &str, reason: impl Into<String>) -> Self {
        UnitError {
            what,
            text: text.to_string(),
            reason: reason.into(),
        }
    }

    /// The short label and the help shown with a plan diagnostic for `what`.
    pub fn hint(what: &str) -> Option<(&'static str, &'static str)> {
        match what {
            "size" => Some(("not a size", "write sizes like `16MiB`, `512KiB` or `64MB`")),
            "bandwidth" => Some(("not a rate", "write rates like `200MiB/s` or `50MB/s`")),
            "duration" => Some(("not a duration", "write durations like `10s`, `2m` or `1h`")),
            _ => None,
        }
    }

    /// The `what` of a message made by this type (`invalid WHAT `TEXT`[: REASON]`), for
    /// diagnostics.
    pub fn what_of(msg: &str) -> Option<&str> {
        let rest = msg.strip_prefix("invalid ")?;
        let (what, _) = rest.split_once(" `")?;
        UnitError::hint(what).map(|_| what)
    }
}

/// A number of bytes written as a plan writes it (`16MiB`, `64MB`, `1048576`).
#[derive(Debug, Clone)]
pub struct ByteSize {
    bytes: u64,
    text: String,
}

impl ByteSize {
    /// The number of bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The text it was parsed from.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn parse_as(what: &'static str, text: &str) -> Result<u64, UnitError> {
        let bad = |reason: &str| UnitError::new(what, text, reason);
        let t = text.trim();
        let split = t
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        if num.is_empty() {
            return Err(bad(""));
        }
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kb" => 1_000,
            "mb" => 1_000_000,
            "gb" => 1_000_000_000,
            "tb" => 1_000_000_000_000,
            "kib" => 1 << 10,
            "mib" => 1 << 20,
            "gib" => 1 << 30,
            "tib" => 1 << 40,
            "k" | "m" | "g" | "t" => {
                let u = unit.trim().to_ascii_uppercase();
                return Err(bad(&format!(
                    "`{u}` is ambiguous: write `{num}{u}iB` (powers of 1024) or `{num}{u}B` (powers of 1000)"
                )));
            }
            _ => return Err(bad("")),
        };
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        if int.is_empty() || frac.contains('.') || (num.contains('.') && frac.is_empty()) {
            return Err(bad(""));
        }
        let too_big = || bad("too large");
        let int: u128 = int.parse().map_err(|_| too_big())?;
        let mut total = int.checked_mul(mult as u128).ok_or_else(too_big)?;
        if !frac.is_empty() {
            if frac.len() > 18 {
                return Err(bad("too many decimals"));
            }
            let scale = 10u128.pow(frac.len() as u32);
            let f: u128 = frac.parse().map_err(|_| bad(""))?;
            let part = f * mult as u128;
            if !part.is_multiple_of(scale) {
                return Err(bad("not a whole number of bytes"));
            }
            total += part / scale;
        }
        u64::try_from(total).map_err(|_| too_big())
    }
}

impl FromStr for ByteSize {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<Self, UnitError> {
        Ok(ByteSize {
            bytes: ByteSize::parse_as("size", s)?,
            text: s.to_string(),
        })
    }
}

/// A transfer rate: a [`ByteSize`] per second, written with or without `/s` (`200MiB/s`).
#[derive(Debug, Clone)]
pub struct Rate {
    bytes_per_second: u64,
    text: String,
}

impl Rate {
    pub fn bytes_per_second(&self) -> u64 {
        self.bytes_per_second
    }
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for Rate {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<Self, UnitError> {
        let size = s.trim();
        let size = size.strip_suffix("/s").unwrap_or(size);
        let n = ByteSize::parse_as("bandwidth", size).map_err(|mut e| {
            e.text = s.to_string();
            e
        })?;
        if n == 0 {
            return Err(UnitError::new("bandwidth", s, "must be more than 0"));
        }
        Ok(Rate {
            bytes_per_second: n,
            text: s.to_string(),
        })
    }
}

/// A span of time written as a plan writes it (`10s`, `2m30s`, `7d`).
#[derive(Debug, Clone)]
pub struct Duration {
    value: std::time::Duration,
    text: String,
}

impl Duration {
    pub fn get(&self) -> std::time::Duration {
        self.value
    }
    pub fn as_secs(&self) -> u64 {
        self.value.as_secs()
    }
    pub fn is_zero(&self) -> bool {
        self.value.is_zero()
    }
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Milliseconds per unit name.
fn duration_unit(unit: &str) -> Option<u64> {
    Some(match unit {
        "ms" | "msec" | "msecs" | "millisecond" | "milliseconds" => 1,
        "s" | "sec" | "secs" | "second" | "seconds" => 1_000,
        "m" | "min" | "mins" | "minute" | "minutes" => 60_000,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        "w" | "week" | "weeks" => 604_800_000,
        _ => return None,
    })
}

impl FromStr for Duration {
    type Err = UnitError;
    fn from_str(text: &str) -> Result<Self, UnitError> {
        let bad = |reason: &str| UnitError::new("duration", text, reason);
        let t = text.trim();
        if t.starts_with('-') {
            return Err(bad("a duration cannot be negative"));
        }
        if t.is_empty() {
            return Err(bad(""));
        }
        let mut ms: u64 = 0;
        let mut rest = t;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if digits == 0 {
                return Err(bad(""));
            }
            let n: u64 = rest[..digits].parse().map_err(|_| bad("too large"))?;
            rest = rest[digits..].trim_start();
            let ulen = rest
                .find(|c: char| !c.is_ascii_alphabetic())
                .unwrap_or(rest.len());
            let unit = rest[..ulen].to_ascii_lowercase();
            rest = rest[ulen..].trim_start();
            let rest_ok = rest.starts_with(|c: char| c.is_ascii_digit()) || rest.is_empty();
            let per = match duration_unit(&unit) {
                Some(p) if rest_ok => p,
                _ if unit.is_empty() => return Err(bad("a unit is required, e.g. `30s`")),
                _ if ["mo", "month", "months", "y", "year", "years"].contains(&unit.as_str()) => {
                    return Err(bad(
                        "months and years have no fixed length: write days (`30d`) or weeks",
                    ));
                }
                _ => return Err(bad("")),
            };
            ms = n
                .checked_mul(per)
                .and_then(|v| ms.checked_add(v))
                .ok_or_else(|| bad("too large"))?;
        }
        Ok(Duration {
            value: std::time::Duration::from_millis(ms),
            text: text.to_string(),
        })
    }
}

macro_rules! text_unit {
    ($t:ty, $name:literal) => {
        impl PartialEq for $t {
            fn eq(&self, other: &Self) -> bool {
                self.text == other.text
            }
        }
        impl Eq for $t {}

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.text)
            }
        }

        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.text)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }

        impl JsonSchema for $t {
            fn inline_schema() -> bool {
                true
            }
            fn schema_name() -> std::borrow::Cow<'static, str> {
                $name.into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({ "type": "string" })
            }
        }
    };
}

text_unit!(ByteSize, "ByteSize");
text_unit!(Rate, "Rate");
text_unit!(Duration, "Duration");

#[cfg(test)]
mod tests {
    use super::*;

    fn size(s: &str) -> Result<u64, String> {
        s.parse::<ByteSize>()
            .map(|b| b.bytes())
            .map_err(|e| e.to_string())
    }

    fn dur(s: &str) -> Result<u64, String> {
        s.parse::<Duration>()
            .map(|d| d.get().as_millis() as u64)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn sizes() {
        assert_eq!(size("16MiB"), Ok(16 << 20));
        assert_eq!(size("16 MiB"), Ok(16 << 20));
        assert_eq!(size("16mib"), Ok(16 << 20));
        assert_eq!(size("5MB"), Ok(5_000_000));
        assert_eq!(size("5mb"), Ok(5_000_000));
        assert_eq!(size("64kB"), Ok(64_000));
        assert_eq!(size("64KB"), Ok(64_000));
        assert_eq!(size("1.5GiB"), Ok(3 << 29));
        assert_eq!(size("5.5MiB"), Ok(5_767_168));
        assert_eq!(size("1024"), Ok(1024));
        assert_eq!(size("1024B"), Ok(1024));
        assert_eq!(size("2TiB"), Ok(2 << 40));
        assert_eq!(size(" 8MiB "), Ok(8 << 20));
        for bad in [
            "8M",
            "8k",
            "1G",
            "",
            "MiB",
            "12 parsecs",
            "-1MiB",
            "1.2.3MiB",
            "1.MiB",
            ".5MiB",
            "0.3B",
            "99999999999TiB",
            "1e6",
        ] {
            assert!(size(bad).is_err(), "{bad} must be refused");
        }
        assert!(size("8M").unwrap_err().contains("ambiguous"));
        assert!(size("8M").unwrap_err().contains("`8MiB`"));
    }

    #[test]
    fn rates() {
        let r: Rate = "200MiB/s".parse().unwrap();
        assert_eq!(r.bytes_per_second(), 200 << 20);
        let r: Rate = "50MB".parse().unwrap();
        assert_eq!(r.bytes_per_second(), 50_000_000);
        let e = "fast".parse::<Rate>().unwrap_err();
        assert_eq!(e.what, "bandwidth");
        assert_eq!(e.text, "fast");
        assert!("0MB/s".parse::<Rate>().is_err());
        assert!("8M/s".parse::<Rate>().is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(dur("10s"), Ok(10_000));
        assert_eq!(dur("250ms"), Ok(250));
        assert_eq!(dur("2m"), Ok(120_000));
        assert_eq!(dur("2m30s"), Ok(150_000));
        assert_eq!(dur("1h 30m"), Ok(5_400_000));
        assert_eq!(dur("1h"), Ok(3_600_000));
        assert_eq!(dur("24h"), Ok(86_400_000));
        assert_eq!(dur("7d"), Ok(7 * 86_400_000));
        assert_eq!(dur("1w"), Ok(7 * 86_400_000));
        assert_eq!(dur("2 weeks"), Ok(14 * 86_400_000));
        assert_eq!(dur("90 seconds"), Ok(90_000));
        assert_eq!(dur("1D"), Ok(86_400_000));
        assert_eq!(dur("0s"), Ok(0));
        for bad in [
            "-5s",
            "",
            "7",
            "ten seconds",
            "1.5h",
            "1mo",
            "1y",
            "P1D",
            "10s5",
            "s",
            "5 s x",
            "99999999999999999w",
        ] {
            assert!(dur(bad).is_err(), "{bad} must be refused");
        }
        assert!(dur("-5s").unwrap_err().contains("negative"));
        assert!(dur("1mo").unwrap_err().contains("no fixed length"));
    }

    #[test]
    fn serialize_back_to_the_same_text() {
        for s in ["16MiB", "5.5MiB", "8 MiB", "1048576"] {
            let b: ByteSize = s.parse().unwrap();
            assert_eq!(serde_json::to_string(&b).unwrap(), format!("\"{s}\""));
            let back: ByteSize = serde_json::from_str(&format!("\"{s}\"")).unwrap();
            assert_eq!(back.bytes(), b.bytes());
        }
        for s in ["10s", "2m30s", "1w"] {
            let d: Duration = s.parse().unwrap();
            assert_eq!(serde_json::to_string(&d).unwrap(), format!("\"{s}\""));
        }
    }

    #[test]
    fn deserialize_errors_carry_the_toml_span() {
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct T {
            grace: Duration,
        }
        let e = toml::from_str::<T>("grace = \"-5s\"\n").unwrap_err();
        assert_eq!(e.span(), Some(8..13));
        assert_eq!(
            e.message(),
            "invalid duration `-5s`: a duration cannot be negative"
        );
        assert_eq!(UnitError::what_of(e.message()), Some("duration"));
        let e = toml::from_str::<T>("grace = \"ten seconds\"\n").unwrap_err();
        assert_eq!(e.message(), "invalid duration `ten seconds`");
    }
}
