//! Built-in HTTP filters. They register in the [`FilterRegistry`] exactly as a user's filters
//! do, under Envoy's names and type URLs, so a bootstrap names them the way it would for Envoy.

pub(crate) mod cors;
pub(crate) mod fault;

use std::sync::Arc;

use mesh_core::filter::FilterRegistry;
use mesh_core::stats::Registry;

/// Registers every built-in filter.
pub(crate) fn register(registry: &mut FilterRegistry, stats: &Arc<Registry>) {
    fault::register(registry, stats);
    cors::register(registry);
}

/// Reads `key` or its lowerCamelCase spelling from a JSON object (Envoy's JSON mapping accepts
/// both).
pub(crate) fn field<'a>(v: &'a serde_json::Value, key: &str) -> Option<&'a serde_json::Value> {
    v.get(key).or_else(|| v.get(camel(key).as_str()))
}

/// A snake_case key's lowerCamelCase spelling.
pub(crate) fn camel(key: &str) -> String {
    let mut camel = String::with_capacity(key.len());
    let mut up = false;
    for c in key.chars() {
        if c == '_' {
            up = true;
        } else if up {
            camel.extend(c.to_uppercase());
            up = false;
        } else {
            camel.push(c);
        }
    }
    camel
}

/// A protobuf `uint32`/`uint64` or its wrapper in Envoy's JSON mapping, as serde reads it: `3`,
/// `"3"` or `{value: 3}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Uint(pub(crate) u64);

impl<'de> serde::Deserialize<'de> for Uint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Uint;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a non-negative integer")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Uint, E> {
                Ok(Uint(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Uint, E> {
                u64::try_from(v)
                    .map(Uint)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Uint, E> {
                v.parse()
                    .map(Uint)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Str(v), &self))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Uint, A::Error> {
                let mut value = None;
                while let Some(k) = m.next_key::<String>()? {
                    if k == "value" {
                        value = Some(m.next_value::<Uint>()?);
                    } else {
                        return Err(serde::de::Error::unknown_field(&k, &["value"]));
                    }
                }
                Ok(value.unwrap_or(Uint(0)))
            }
        }
        d.deserialize_any(V)
    }
}

/// A protobuf `bool` or `BoolValue`: `true` or `{value: true}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Bool(pub(crate) bool);

impl<'de> serde::Deserialize<'de> for Bool {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged, expecting = "a bool or {value: bool}")]
        enum Repr {
            Plain(bool),
            Wrapped { value: bool },
        }
        Ok(match Repr::deserialize(d)? {
            Repr::Plain(b) | Repr::Wrapped { value: b } => Bool(b),
        })
    }
}

/// Envoy's `FractionalPercent` as serde reads it (`denominator` by name or number).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub(crate) struct PercentSpec {
    #[serde(default)]
    pub(crate) numerator: Option<Uint>,
    #[serde(default)]
    pub(crate) denominator: Option<DenominatorSpec>,
}

/// `HUNDRED`, `TEN_THOUSAND`, `MILLION`, or their enum numbers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DenominatorSpec(pub(crate) mesh_core::config::Denominator);

impl<'de> serde::Deserialize<'de> for DenominatorSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use mesh_core::config::Denominator;
        const NAMES: &[&str] = &["HUNDRED", "TEN_THOUSAND", "MILLION"];
        let v = serde_json::Value::deserialize(d)?;
        let name = v
            .as_str()
            .or_else(|| v.as_u64().and_then(|n| NAMES.get(n as usize).copied()));
        match name {
            Some("HUNDRED") => Ok(Self(Denominator::Hundred)),
            Some("TEN_THOUSAND") => Ok(Self(Denominator::TenThousand)),
            Some("MILLION") => Ok(Self(Denominator::Million)),
            _ => Err(serde::de::Error::custom(format_args!(
                "unknown denominator {v}, expected one of HUNDRED, TEN_THOUSAND, MILLION"
            ))),
        }
    }
}

impl PercentSpec {
    /// The percentage; a numerator above the denominator means always.
    pub(crate) fn resolve(&self) -> mesh_core::config::FractionalPercent {
        let denominator = self
            .denominator
            .map_or(mesh_core::config::Denominator::Hundred, |d| d.0);
        let numerator = self.numerator.map_or(0, |n| n.0).min(denominator.value());
        mesh_core::config::FractionalPercent {
            numerator: u32::try_from(numerator).unwrap_or(u32::MAX),
            denominator,
        }
    }
}
