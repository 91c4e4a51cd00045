//! cassandra.yaml: data, commitlog, saved caches and hints folders with the defaults of each install type.
