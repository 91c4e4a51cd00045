//! A command as a plan writes it: one string for the remote shell, or an argv list. Cassandra's
//! tool settings (`nodetool`, `cqlsh`, `stop`, ...) and custom steps share it, so it sits below
//! both.

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::value::SeqAccessDeserializer;
use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
use std::fmt;

/// A command: a string run by the remote shell, or an argv list (each element quoted).
///
/// `Deserialize` is hand-written (below) so errors keep their spans.
// The schema keeps the description it had when the type lived in `plan::model`: schemas/*.json
// are published and must not change with a move.
#[derive(Debug, Clone, Serialize, JsonSchema, PartialEq)]
#[serde(untagged)]
#[schemars(
    description = "A command: a string run by the remote shell, or an argv list (each element quoted).\n\n`Deserialize` is hand-written (see [`crate::plan::de`]) so errors keep their spans."
)]
pub enum CommandSpec {
    Shell(String),
    Argv(Vec<String>),
}

/// Either a string or a list of strings (the shape of commands and step scopes).
///
/// Dispatching on the value's shape (instead of `#[serde(untagged)]`, which buffers its input
/// and loses TOML spans, toml-rs/toml#748) lets the inner deserializer report with its span.
pub enum StrOrList {
    Str(String),
    List(Vec<String>),
}

impl StrOrList {
    /// Deserializes either shape; `expecting` is what an error says was expected.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
        expecting: &'static str,
    ) -> Result<Self, D::Error> {
        d.deserialize_any(StrOrListVisitor(expecting))
    }
}

struct StrOrListVisitor(&'static str);

impl<'de> Visitor<'de> for StrOrListVisitor {
    type Value = StrOrList;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.0)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<StrOrList, E> {
        Ok(StrOrList::Str(v.to_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<StrOrList, A::Error> {
        Vec::<String>::deserialize(SeqAccessDeserializer::new(seq)).map(StrOrList::List)
    }
}

impl<'de> Deserialize<'de> for CommandSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(
            match StrOrList::deserialize(d, "a shell command string or an argv list of strings")? {
                StrOrList::Str(s) => CommandSpec::Shell(s),
                StrOrList::List(l) => CommandSpec::Argv(l),
            },
        )
    }
}
