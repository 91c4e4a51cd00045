//! Helpers shared by the integration tests (each test file includes this with `mod support;`).

pub mod cluster;
