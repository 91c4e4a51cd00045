//! Progress sinks: indicatif bars on a terminal, plain or JSON lines otherwise, or nothing.
