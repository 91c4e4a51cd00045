//! Compiling a resolved plan into a task graph (pure: no I/O) and selecting parts of it.

pub mod compile;
pub mod run;
pub mod select;
pub mod spec;
