//! Where state lives (.cbk/ beside the plan, --state DIR, or the store) and its lineage/serial.
