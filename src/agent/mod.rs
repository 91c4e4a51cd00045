//! The node agent (`cbk agent`): runs data tasks on the node so bytes flow between the node and
//! the store directly, never through the controller.
//!
//! Protocol: the controller writes one JSON [`protocol::AgentRequest`] line on stdin (credentials
//! live only there) and reads JSON-line [`protocol::AgentEvent`]s from stdout. The first event is
//! always `hello` with the agent's version, so a mismatched binary is caught before any work.
//! An agent whose hello says `controls` reads [`protocol::AgentControl`] lines after the request
//! (a new bandwidth) until the controller closes stdin.

pub mod ops;
pub mod protocol;
pub mod serve;
