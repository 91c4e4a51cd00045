//! Quoting for POSIX shells: every argument that reaches a remote shell passes through here.
