//! The journal: append-only JSON lines, fsync per record, replayed on the next apply.
