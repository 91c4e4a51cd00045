//! nodetool: building calls (with JMX options) and parsing outputs (info, status, version, listsnapshots, describecluster).
