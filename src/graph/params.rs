//! Task parameters as a small sorted list of `key -> JSON value` pairs.
//!
//! A plan of 1,000 hosts x 300 tables has 300,000 tasks with two or three parameters each.
//! A `serde_json::Map` (a B-tree) allocates a ~630-byte node for even one entry; this list
//! allocates exactly what it holds, and keys written by the compiler are not copied. It reads and writes the same JSON object (keys sorted, as
//! `serde_json::Map` sorts them), so saved plans and every view are unchanged.

use schemars::JsonSchema;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;

/// Kind-specific task parameters, e.g. `{"keyspace": "ks", "table": "users"}`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params(Box<[(Cow<'static, str>, Value)]>);

impl Params {
    /// Parameters from `(key, value)` pairs; a later pair replaces an earlier one with the
    /// same key.
    pub fn from_pairs<K: Into<Cow<'static, str>>>(
        pairs: impl IntoIterator<Item = (K, Value)>,
    ) -> Params {
        let mut v: Vec<(Cow<'static, str>, Value)> = Vec::new();
        for (k, val) in pairs {
            let k = k.into();
            match v.binary_search_by(|(x, _)| x.as_ref().cmp(k.as_ref())) {
                Ok(i) => v[i].1 = val,
                Err(i) => v.insert(i, (k, val)),
            }
        }
        Params(v.into_boxed_slice())
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0
            .binary_search_by(|(k, _)| k.as_ref().cmp(key))
            .ok()
            .map(|i| &self.0[i].1)
    }

    /// The pairs, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The parameters as one JSON object.
    pub fn to_value(&self) -> Value {
        Value::Object(
            self.iter()
                .map(|(k, v)| (k.to_owned(), v.clone()))
                .collect(),
        )
    }
}

/// A JSON object becomes its pairs; `null` becomes no parameters; anything else is kept under
/// the key `value` (nothing is lost).
impl From<Value> for Params {
    fn from(v: Value) -> Params {
        match v {
            Value::Object(m) => Params::from_pairs(m),
            Value::Null => Params::default(),
            other => Params::from_pairs([("value", other)]),
        }
    }
}

impl std::ops::Index<&str> for Params {
    type Output = Value;

    /// Like `serde_json::Value`'s index: `Value::Null` for a missing key.
    fn index(&self, key: &str) -> &Value {
        static NULL: Value = Value::Null;
        self.get(key).unwrap_or(&NULL)
    }
}

impl Serialize for Params {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.iter() {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Params {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Params, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Params;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of task parameters or null")
            }
            fn visit_unit<E>(self) -> Result<Params, E> {
                Ok(Params::default())
            }
            fn visit_none<E>(self) -> Result<Params, E> {
                Ok(Params::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Params, A::Error> {
                let mut pairs: Vec<(String, Value)> = Vec::new();
                while let Some(entry) = a.next_entry()? {
                    pairs.push(entry);
                }
                Ok(Params::from_pairs(pairs))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Params {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Params".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Kind-specific task parameters.",
            "type": "object",
            "additionalProperties": true
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn same_json_as_a_serde_json_object() {
        let v = json!({ "table": "users", "keyspace": "ks", "exclude": ["a", "b"], "n": 3 });
        let p = Params::from(v.clone());
        assert_eq!(serde_json::to_string(&p).unwrap(), v.to_string());
        let back: Params = serde_json::from_str(&v.to_string()).unwrap();
        assert_eq!(back, p);
        assert_eq!(p.to_value(), v);
        assert_eq!(p["keyspace"], "ks");
        assert_eq!(p["missing"], Value::Null);
        assert_eq!(p.get("n"), Some(&json!(3)));
    }

    #[test]
    fn null_and_duplicates() {
        let p: Params = serde_json::from_str("null").unwrap();
        assert!(p.is_empty());
        let p = Params::from_pairs([("a", json!(1)), ("a", json!(2))]);
        assert_eq!(p.iter().count(), 1);
        assert_eq!(p["a"], 2);
        assert!(serde_json::from_str::<Params>("[1]").is_err());
    }

    #[test]
    fn scalar_is_kept() {
        assert_eq!(Params::from(json!("x"))["value"], "x");
    }
}
