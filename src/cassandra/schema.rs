//! Snapshot schema.cql: keyspace, table, `WITH ID`, and statements to re-create a table.
