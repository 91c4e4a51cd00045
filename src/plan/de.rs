//! Hand-written `Deserialize` impls for the plan's "string or table/list" values.
//!
//! `#[serde(untagged)]` buffers its input and loses TOML spans (toml-rs/toml#748), so a typo in a
//! host table would point at the table header. These visitors dispatch on the value's shape
//! directly, so the inner deserializer (with its spans) does the real work.

use super::model::{HostEntry, HostSpec, StepScope};
use crate::command::StrOrList;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use std::fmt;

struct HostEntryVisitor;

impl<'de> Visitor<'de> for HostEntryVisitor {
    type Value = HostEntry;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a host name or a host table `{ name = \"...\", address = \"...\" }`")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<HostEntry, E> {
        Ok(HostEntry::Name(v.to_owned()))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<HostEntry, A::Error> {
        HostSpec::deserialize(MapAccessDeserializer::new(map)).map(HostEntry::Detailed)
    }
}

impl<'de> Deserialize<'de> for HostEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(HostEntryVisitor)
    }
}

impl<'de> Deserialize<'de> for StepScope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = StrOrList::deserialize(d, "`\"hosts\"`, `\"controller\"` or a list of host names")?;
        Ok(match v {
            StrOrList::Str(s) => StepScope::Keyword(s),
            StrOrList::List(l) => StepScope::Hosts(l),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::CommandSpec;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Doc {
        hosts: Vec<HostEntry>,
        run: CommandSpec,
        on: StepScope,
    }

    #[test]
    fn shapes_are_recognised() {
        let d: Doc = toml::from_str(
            "hosts = [\"a\", { name = \"b\", port = 2222 }]\nrun = [\"echo\", \"x\"]\non = \"controller\"\n",
        )
        .unwrap();
        assert_eq!(d.hosts[0], HostEntry::Name("a".into()));
        assert_eq!(d.hosts[1].spec().port, Some(2222));
        assert_eq!(d.run, CommandSpec::Argv(vec!["echo".into(), "x".into()]));
        assert_eq!(d.on, StepScope::Keyword("controller".into()));
    }

    #[test]
    fn errors_inside_host_tables_keep_their_span() {
        let src = "hosts = [{ name = \"b\", prot = 1 }]\nrun = \"x\"\non = \"hosts\"\n";
        let e = toml::from_str::<Doc>(src).err().unwrap();
        let span = e.span().unwrap();
        assert_eq!(&src[span], "prot");
    }
}
