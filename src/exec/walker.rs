//! The walker: ready-set scheduling of the task graph on tokio with global, per-host and per-step limits.
