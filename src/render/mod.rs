//! Views of a planned run: human (terraform-like), JSON, Markdown (PR comment) and DOT.
