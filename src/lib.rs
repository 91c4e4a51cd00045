//! cbk backs up Apache Cassandra clusters to S3 or a local folder and restores them.
//!
//! It is a plan-and-apply engine: a TOML plan ([`plan`]) compiles into a graph of idempotent
//! tasks ([`graph`]) that can be reviewed ([`render`]) and then applied resumably ([`exec`]).
//! Tasks ([`tasks`]) reach nodes through transports ([`remote`]) and the node agent
//! ([`agent`]), move bytes between nodes and stores ([`store`]) in the repository format
//! ([`repo`]), and know Cassandra through one module ([`cassandra`]).

pub mod agent;
pub mod cassandra;
pub mod cli;
pub mod codec;
pub mod command;
pub mod crypt;
pub mod error;
pub mod exec;
pub mod graph;
pub mod plan;
pub mod remote;
pub mod render;
pub mod repo;
pub mod store;
pub mod tasks;
pub mod units;

/// cbk's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
