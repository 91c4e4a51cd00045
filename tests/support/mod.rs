//! Helpers shared by the integration tests (each test file includes this with `mod support;`).
#![allow(dead_code)]

pub mod cluster;
pub mod crash;
pub mod e2e;
pub mod emu;
pub mod s3;
