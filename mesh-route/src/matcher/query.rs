//! Query-parameter conditions (Envoy's `QueryParameterMatcher`; SEMANTICS §2.5).
//!
//! The query is split on `&` into `key` or `key=value`; names are case-sensitive, values are
//! compared raw (no percent-decoding), only the first occurrence of a name counts, and a bare
//! `key` has the value `""`.

use mesh_core::config::QueryParameterMatcher;

use super::StringMatch;
use crate::table::BuildError;

/// A compiled [`QueryParameterMatcher`].
#[derive(Debug, Clone)]
pub(crate) struct QueryMatch {
    name: String,
    /// `None`: the parameter must be present.
    value: Option<StringMatch>,
}

impl QueryMatch {
    pub(crate) fn compile(m: &QueryParameterMatcher, field: &str) -> Result<Self, BuildError> {
        let value = m
            .string_match
            .as_ref()
            .map(|s| StringMatch::compile(s, &format!("{field}.string_match")))
            .transpose()?;
        Ok(Self {
            name: m.name.clone(),
            value,
        })
    }

    /// Evaluates the condition on the request's query string (`None` when it has none).
    pub(crate) fn matches(&self, query: Option<&str>) -> bool {
        let Some(v) = query.and_then(|q| first_value(q, &self.name)) else {
            return false;
        };
        self.value.as_ref().is_none_or(|m| m.matches(v))
    }
}

/// The first value of parameter `name` in `query` (without the leading `?`).
pub(crate) fn first_value<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query
        .split('&')
        .find_map(|pair| match pair.split_once('=') {
            Some((k, v)) if k == name => Some(v),
            None if pair == name && !pair.is_empty() => Some(""),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::config::{StringMatcher, StringPattern};

    #[test]
    fn first_value_rules() {
        let cases = [
            ("a=1&b=2", "b", Some("2")),
            ("a=1&a=2", "a", Some("1")),
            ("a&b=2", "a", Some("")),
            ("a=&b=2", "a", Some("")),
            ("A=1", "a", None),
            ("a=1=2", "a", Some("1=2")),
            ("", "a", None),
            ("&&a=x", "a", Some("x")),
            ("ab=1", "a", None),
            ("a=%20", "a", Some("%20")),
        ];
        for (q, n, want) in cases {
            assert_eq!(first_value(q, n), want, "{q:?} {n:?}");
        }
    }

    #[test]
    fn matcher() {
        let present = QueryMatch::compile(
            &QueryParameterMatcher {
                name: "debug".into(),
                string_match: None,
            },
            "q",
        )
        .unwrap();
        assert!(present.matches(Some("debug")));
        assert!(present.matches(Some("x=1&debug=0")));
        assert!(!present.matches(Some("x=1")));
        assert!(!present.matches(None));

        let exact = QueryMatch::compile(
            &QueryParameterMatcher {
                name: "v".into(),
                string_match: Some(StringMatcher {
                    pattern: StringPattern::Exact("Yes".into()),
                    ignore_case: true,
                }),
            },
            "q",
        )
        .unwrap();
        assert!(exact.matches(Some("v=yes")));
        assert!(!exact.matches(Some("v=no&v=yes")), "first value only");
        assert!(!exact.matches(Some("v")));
    }
}
