//! Everything cbk knows about Cassandra lives here: cassandra.yaml, data folder layout, SSTable
//! names of every format, Digest checks, snapshot manifest.json and schema.cql, version
//! profiles, and nodetool calls and the parsing of their output. See docs/cassandra-support.md.

pub mod config;
pub mod cqlsh;
pub mod digest;
pub mod layout;
pub mod manifest;
pub mod nodetool;
pub mod schema;
pub mod sstable;
pub mod version;
pub mod yaml;
