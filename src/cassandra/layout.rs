//! Data folder layout: keyspace and table-id folders, snapshots/, backups/, index subfolders.
