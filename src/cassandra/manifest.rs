//! Snapshot manifest.json in all its shapes (2.2–4.0 json-simple, 4.1 compact Jackson, 5.0 pretty).
