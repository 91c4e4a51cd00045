//! The integration tests, as one test binary (`cargo test --test it`): one module per area, so
//! cbk, its SDKs and the helpers below are compiled and linked once instead of once per file
//! (see BENCHMARKS.md, "Test build").
//!
//! Select tests by module path: `cargo test --test it e2e_cluster::` runs the cluster
//! backup/restore tests, `cargo test --test it plans::` the plan snapshots, `cargo test --test it
//! -- --ignored plans_fuzz::fuzz_campaign` the fuzz campaign. `cargo test` runs them all.
//!
//! Adding tests: write `tests/it/<prefix>.rs` (a `//!` line saying what it covers), add
//! `mod <prefix>;` below in alphabetical order, and take helpers from `crate::support` (clusters,
//! emulated nodes, S3 servers, crash helpers; start the cbk binary with
//! `support::cbk_command()`), `crate::exec_support` or `crate::cassandra_support`. insta
//! snapshots of module `<prefix>` live in `tests/it/snapshots/it__<prefix>__<name>.snap`. Tests
//! share one process and run in parallel threads: never change process-wide state
//! (`std::env::set_var`, the current directory, signal handlers, umask); pass environment
//! variables to child processes (`Command::env`) instead. Only tests that cannot avoid such
//! state get a separate `tests/<name>.rs` binary.

mod cassandra_support;
mod exec_support;
mod object_lock;
mod support;

mod architecture;
mod bench;
mod cassandra_emulator;
mod cassandra_layout;
mod cassandra_nodetool;
mod cassandra_robustness;
mod cassandra_sstables;
mod cli_help;
mod codec_lzop;
mod codec_roundtrip;
mod crash_backup;
mod crash_backup_s3;
mod crash_loader;
mod crash_restore;
mod cresume;
mod crypt;
mod dcmap;
mod delta_restore;
mod docs_examples;
mod docs_iam;
mod e2e_cluster;
mod e2e_cluster_hostmap;
mod e2e_cluster_incremental;
mod e2e_local;
mod e2e_profiles;
mod e2e_restore_local;
mod encid;
mod exec_cli;
mod exec_crash;
mod exec_progress;
mod exec_remote;
mod exec_steps;
mod exec_walker;
mod metrics_format;
mod ops_cli;
mod parallel_restore;
mod plan_state;
mod plans;
mod plans_cli;
mod plans_fuzz;
mod progress_json;
mod remote_local;
mod remote_ssh;
mod restore_legacy;
mod review_cli;
mod store_contract;
mod store_fs;
mod store_garage;
mod store_s3;
mod store_s3_faults;
mod topology;
mod trust_catalog;
mod trust_finish;
mod trust_heal;
mod trust_incremental;
mod trust_restore_rerun;
mod trust_s3_units;
mod trust_snapshot;
