//! Exit codes, and the error policy: library code returns typed errors (thiserror, miette
//! `Diagnostic` where a span exists); only `main` turns them into reports and exit codes.

/// Documented exit codes.
pub mod exit {
    /// Success (and, with `--detailed-exitcode`, no changes pending).
    pub const OK: u8 = 0;
    /// An error, or some tasks failed.
    pub const FAILED: u8 = 1;
    /// `plan --detailed-exitcode`: success with changes pending.
    pub const CHANGES: u8 = 2;
    /// Bad usage or an invalid plan file.
    pub const USAGE: u8 = 64;
    /// Refused: lock held, stale plan, confirmation missing.
    pub const REFUSED: u8 = 75;
    /// Interrupted (Ctrl-C); the next apply resumes.
    pub const INTERRUPTED: u8 = 130;
}
