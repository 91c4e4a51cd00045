//! Digest files: decimal CRC32 (3.0+) or Adler-32 (2.1/2.2) of the whole Data.db.
