//! Plan files: loading TOML with spans and diagnostics, templates, and the file format itself.
//!
//! [`load::load`] turns plan text into a [`load::Resolved`] plan (or every problem, with
//! spans); the compiler (`crate::graph`, a layer above) turns that into a planned run.
//! [`now_from_env`] reads the `CBK_NOW` override.

pub mod check;
pub mod de;
pub mod diag;
pub mod load;
pub mod model;
pub mod template;

pub use diag::Diagnostics;
use jiff::Timestamp;

/// Formats a timestamp the way plans capture it: RFC 3339, UTC, whole seconds.
pub fn format_now(now: Timestamp) -> String {
    now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The clock to capture: `CBK_NOW` (RFC 3339) if set, else the current time.
pub fn now_from_env() -> Result<Timestamp, String> {
    match std::env::var("CBK_NOW") {
        Ok(v) => v
            .parse()
            .map_err(|e| format!("CBK_NOW=`{v}` is not an RFC 3339 time: {e}")),
        Err(_) => Ok(Timestamp::now()),
    }
}
