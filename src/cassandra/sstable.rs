//! SSTable file names of every format (ka … da, BIG and BTI, integer and UUID generations).
