//! What the two YAML files the daemon reads (blackbox's module file and the web config)
//! share in their reading: mappings kept in file order, and the YAML library's own words
//! for an error, without the place it appends (the caller reports the place itself).

use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_saphyr::Error;

/// A mapping read in file order, each key with its value, so that headers are sent as
/// written and errors come in file order.
#[derive(Debug)]
pub(crate) struct Ordered<K, V>(pub(crate) Vec<(K, V)>);

impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Deserialize<'de> for Ordered<K, V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries<K, V>(PhantomData<(K, V)>);
        impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Visitor<'de> for Entries<K, V> {
            type Value = Ordered<K, V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Ordered(entries))
            }
        }
        deserializer.deserialize_map(Entries(PhantomData))
    }
}

/// The library's message for `err`, without the " at line L, column C" it ends with.
pub(crate) fn without_place(err: &Error) -> String {
    let text = err.to_string();
    match err.location() {
        Some(at) => {
            let suffix = format!(" at line {}, column {}", at.line(), at.column());
            text.strip_suffix(&suffix)
                .map(str::to_owned)
                .unwrap_or(text)
        }
        None => text,
    }
}
