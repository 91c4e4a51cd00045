//! Plan files: loading TOML with spans and diagnostics, templates, and the file format itself.

pub mod model;
