//! YAML into JSON values, safely: a memory budget for what aliases expand to, and the plain
//! scalars Kubernetes' YAML parser accepts in flow sequences.
//!
//! - **Alias bombs.** A few hundred bytes of nested anchors and aliases ("billion laughs")
//!   expand to gigabytes. libyaml's own repetition limit grows with the document, so a padded
//!   bomb passes it. Every value is built here against a budget ([`budget_for`]): a document
//!   whose expansion would exceed it is refused with an error, and nothing past the budget is
//!   allocated. A reload of a watched file goes through the same parser, so a bomb written over
//!   a running proxy's config is rejected like any other invalid file.
//! - **`[1.2.3.4, 2001:db8::]`.** libyaml refuses a `:` inside a plain scalar of a flow
//!   collection ("found unexpected ':'"); Kubernetes' parser (go-yaml) reads it as part of the
//!   scalar, as a user writing IPv6 addresses expects. On that error the scalar is quoted, as
//!   go-yaml would have read it, and the text parsed again.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// The expanded size allowed for a document of `text_len` bytes: 64 MiB, or 16 times the text
/// when that is more. What aliases add counts; a document without aliases is far below it.
pub(crate) fn budget_for(text_len: usize) -> usize {
    (64 << 20).max(text_len.saturating_mul(16))
}

/// What one value costs against the budget: a fixed share for the node, plus its text.
const NODE_COST: usize = 32;

/// Every document of `text`, each within its budget.
pub(crate) fn documents(text: &str) -> Result<Vec<Value>, serde_yaml_ng::Error> {
    let mut current = std::borrow::Cow::Borrowed(text);
    // Each retry quotes one more flow scalar; a document has finitely many, and this bound
    // keeps a pathological one from looping long.
    for _ in 0..256 {
        match parse_all(&current) {
            Err(e) => match quote_flow_scalar(&current, &e) {
                Some(fixed) => current = std::borrow::Cow::Owned(fixed),
                None => return Err(e),
            },
            ok => return ok,
        }
    }
    parse_all(&current)
}

fn parse_all(text: &str) -> Result<Vec<Value>, serde_yaml_ng::Error> {
    let budget = Cell::new(budget_for(text.len()));
    let mut out = Vec::new();
    for de in serde_yaml_ng::Deserializer::from_str(text) {
        out.push(Budgeted(&budget).deserialize(de)?);
    }
    Ok(out)
}

/// The single document of `text` (null when empty).
pub(crate) fn document(text: &str) -> Result<Value, serde_yaml_ng::Error> {
    let mut docs = documents(text)?;
    match docs.len() {
        0 => Ok(Value::Null),
        1 => Ok(docs.remove(0)),
        _ => Err(de::Error::custom(
            "more than one YAML document; a config file holds one",
        )),
    }
}

/// When `e` is libyaml's "found unexpected ':'" inside a plain scalar of a flow collection,
/// `text` with that scalar double-quoted (go-yaml's reading: a `:` not followed by a blank
/// belongs to the scalar, which ends at a flow indicator, a comment or the line's end).
fn quote_flow_scalar(text: &str, e: &serde_yaml_ng::Error) -> Option<String> {
    let message = e.to_string();
    if !message.contains("found unexpected ':'") {
        return None;
    }
    // The scalar starts where libyaml's context mark says: "... at line L column C".
    let start = scalar_start(text, &message)?;
    let rest = &text[start..];
    let mut end = rest.len();
    let bytes = rest.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let blank_after = bytes.get(i + 1).is_none_or(|n| n.is_ascii_whitespace());
        let ends = matches!(b, b',' | b'[' | b']' | b'{' | b'}' | b'\n' | b'\r')
            || (b == b':' && blank_after)
            || (b == b'#' && i > 0 && bytes[i - 1].is_ascii_whitespace());
        if ends {
            end = i;
            break;
        }
    }
    let scalar = rest[..end].trim_end();
    if scalar.is_empty() || scalar.starts_with(['"', '\'']) {
        return None;
    }
    let quoted = serde_json::to_string(scalar).ok()?;
    Some(format!(
        "{}{quoted}{}",
        &text[..start],
        &rest[scalar.len()..]
    ))
}

/// The byte offset of libyaml's context mark ("while scanning a plain scalar at line L column
/// C", both 1-based) in `text`.
fn scalar_start(text: &str, message: &str) -> Option<usize> {
    let at = message.find("while scanning a plain scalar at line ")?;
    let tail = &message[at + "while scanning a plain scalar at line ".len()..];
    let (line, tail) = tail.split_once(" column ")?;
    let line: usize = line.trim().parse().ok()?;
    let column: usize = tail
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    let line_start = if line <= 1 {
        0
    } else {
        text.match_indices('\n').nth(line - 2)?.0 + 1
    };
    let offset = text[line_start..]
        .char_indices()
        .nth(column.checked_sub(1)?)
        .map(|(i, _)| i)?;
    Some(line_start + offset)
}

/// A JSON value built from YAML events, each node charged against the shared budget.
struct Budgeted<'b>(&'b Cell<usize>);

impl Budgeted<'_> {
    fn charge<E: de::Error>(&self, bytes: usize) -> Result<(), E> {
        let cost = NODE_COST + bytes;
        match self.0.get().checked_sub(cost) {
            Some(left) => {
                self.0.set(left);
                Ok(())
            }
            None => Err(E::custom(
                "the document expands to more than its memory budget (YAML aliases nested too deep?)",
            )),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Budgeted<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Budgeted<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.charge(0)?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.charge(0)?;
        Ok(v.into())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.charge(0)?;
        Ok(v.into())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.charge(0)?;
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.charge(v.len())?;
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.charge(v.len())?;
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.charge(0)?;
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.charge(0)?;
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Budgeted(self.0))? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.charge(0)?;
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            self.charge(k.len())?;
            let v = map.next_value_seed(Budgeted(self.0))?;
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_what_serde_json_would_build() {
        let text = "a: [1, -2, 1.5, true, null, ~, yes, '1']\nb: {c: d}\n\"e\": x\n";
        let direct: Value = serde_yaml_ng::from_str(text).unwrap();
        assert_eq!(document(text).unwrap(), direct);
        assert_eq!(documents("a: 1\n---\nb: 2\n").unwrap().len(), 2);
    }

    /// Regression (issue #11): a padded alias bomb drove `validate` past 6 GB.
    #[test]
    fn an_alias_bomb_is_refused_within_its_budget() {
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for (prev, next) in ('a'..='f').zip('b'..='g') {
            let refs = vec![format!("*{prev}"); 10].join(", ");
            bomb.push_str(&format!("{next}: &{next} [{refs}]\n"));
        }
        // 10^7 leaves, padded with events as the finding was, which raises libyaml's
        // repetition limit out of the way.
        bomb.push_str(&format!("pad: [{}]\n", vec!["p"; 130_000].join(", ")));
        let err = documents(&bomb).unwrap_err().to_string();
        assert!(err.contains("memory budget"), "{err}");
    }

    /// Regression (issue #11): `[1.2.3.4, 2001:db8::]` is valid to Kubernetes (go-yaml), and
    /// libyaml refused it.
    #[test]
    fn ipv6_literals_in_flow_sequences_parse_as_kubernetes_reads_them() {
        let v = document("addresses: [1.2.3.4, 001:db8::, \"::1\", fe80::1%eth0]\nports: {a: 1}\n")
            .unwrap();
        assert_eq!(
            v["addresses"],
            serde_json::json!(["1.2.3.4", "001:db8::", "::1", "fe80::1%eth0"])
        );
        assert_eq!(v["ports"]["a"], 1);
        let v = document("- {address: 2001:db8::1, port: 80}\n").unwrap();
        assert_eq!(v[0]["address"], "2001:db8::1");
        // A real syntax error is still one.
        assert!(document("a: [1, 2\n").is_err());
    }
}
