//! Shared test helpers (each test crate includes this with `mod support;`).
pub mod s3;
