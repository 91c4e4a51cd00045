//! Validation of names (keyspaces, tables, snapshot tags, hosts) before they reach a shell.
