//! Helpers shared by the integration tests (each test file includes this with `mod support;`).
#![allow(dead_code)]

pub mod cluster;
pub mod crash;
pub mod emu;
pub mod s3;
pub mod s3cluster;
