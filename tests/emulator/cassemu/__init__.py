"""cbk test double of an Apache Cassandra node (see docs/emulator.md)."""
