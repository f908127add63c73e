//! Garbage for the never-panic tests (included with `#[path]`).

use proptest::prelude::*;
use serde_json::Value;

/// A fixed pseudo-random byte sequence (xorshift) at a few lengths, lossily decoded.
#[allow(dead_code)] // each test binary that includes this module uses a part of it
pub(crate) fn pseudo_random_texts() -> Vec<String> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    [0usize, 1, 7, 64, 512, 4096]
        .into_iter()
        .map(|len| {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            String::from_utf8_lossy(&bytes).into_owned()
        })
        .collect()
}

/// JSON of any shape whose object keys come from `keys`, strings from `strings` (or are
/// random), and unsigned integers from `uint`.
#[allow(dead_code)]
pub(crate) fn json_value(
    keys: &'static [&'static str],
    strings: &'static [&'static str],
    uint: impl Strategy<Value = u64> + 'static,
) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        uint.prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        proptest::sample::select(strings).prop_map(Value::from),
        ".{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(8, 256, 8, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(proptest::sample::select(keys), inner, 0..6).prop_map(
                |m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            ),
        ]
    })
}
