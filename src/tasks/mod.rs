//! Task implementations (one module per kind) behind the engine's `TaskRunner`.
