//! The repository format: what cbk writes to the store (keys, node manifests, catalog, index).
