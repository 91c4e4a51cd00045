//! Locks so two applies never run against the same state: a file lock, or a create-only object in the store.
