//! Compression codecs for stored objects: zstd (default), lz4, none, and reading lzop (.lzo)
//! files written by the tool cbk replaces.
