//! Durations in Envoy's JSON form (`"1.5s"`), for serde.
//!
//! Envoy's JSON mapping writes a `google.protobuf.Duration` as a decimal number of seconds with
//! an `s` suffix (`"0.250s"`, `"15s"`). The config model stores [`std::time::Duration`] and uses
//! these helpers through `#[serde(with = ...)]`.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// An error parsing a duration string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// The string does not end in `s` or holds no number.
    #[error("invalid duration {0:?}: expected seconds with an `s` suffix, e.g. \"1.5s\"")]
    Syntax(String),
    /// The number is negative or too large.
    #[error("invalid duration {0:?}: out of range")]
    Range(String),
}

/// Parses `"1.5s"`, `"0.001s"`, `"10s"` into a [`Duration`].
///
/// Also accepts `ms` and `m`/`h` suffixes, which are convenient in hand-written files.
///
/// # Errors
/// [`DurationError`] when the string is not a non-negative decimal with a unit suffix.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// assert_eq!(mesh_core::config::duration::parse("1.5s").unwrap(), Duration::from_millis(1500));
/// assert_eq!(mesh_core::config::duration::parse("250ms").unwrap(), Duration::from_millis(250));
/// ```
pub fn parse(s: &str) -> Result<Duration, DurationError> {
    let t = s.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        return Err(DurationError::Syntax(s.to_owned()));
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(DurationError::Syntax(s.to_owned()));
    }
    let v: f64 = num
        .parse()
        .map_err(|_| DurationError::Syntax(s.to_owned()))?;
    let secs = v * scale;
    if !secs.is_finite() || secs > 315_576_000_000.0 {
        return Err(DurationError::Range(s.to_owned()));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Formats a duration as Envoy's JSON mapping does (`"1.500s"` becomes `"1.5s"`).
pub fn format(d: Duration) -> String {
    let nanos = d.subsec_nanos();
    if nanos == 0 {
        format!("{}s", d.as_secs())
    } else {
        let frac = format!("{nanos:09}");
        format!("{}.{}s", d.as_secs(), frac.trim_end_matches('0'))
    }
}

/// Serializes a [`Duration`] as `"1.5s"`.
///
/// # Errors
/// Only those of the serializer.
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*d))
}

/// Deserializes a [`Duration`] from `"1.5s"` or a number of seconds.
///
/// # Errors
/// When the value is neither a duration string nor a non-negative number.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Str(String),
        Num(f64),
    }
    match Repr::deserialize(d)? {
        Repr::Str(s) => parse(&s).map_err(serde::de::Error::custom),
        Repr::Num(n) if n.is_finite() && n >= 0.0 => Ok(Duration::from_secs_f64(n)),
        Repr::Num(n) => Err(serde::de::Error::custom(format!("invalid duration {n}"))),
    }
}

/// The same for `Option<Duration>`.
pub mod option {
    use super::*;

    /// Serializes `Some(d)` as `"1.5s"` and `None` as null.
    ///
    /// # Errors
    /// Only those of the serializer.
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    /// Deserializes an optional duration.
    ///
    /// # Errors
    /// When a value is present and is not a duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        #[derive(Deserialize)]
        struct W(#[serde(with = "super")] Duration);
        Ok(Option::<W>::deserialize(d)?.map(|W(d)| d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_envoy_forms() {
        assert_eq!(parse("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse("0.25s").unwrap(), Duration::from_millis(250));
        assert_eq!(parse("15s").unwrap(), Duration::from_secs(15));
        assert_eq!(parse("1m").unwrap(), Duration::from_secs(60));
        assert!(parse("15").is_err());
        assert!(parse("-1s").is_err());
        assert!(parse("s").is_err());
    }

    #[test]
    fn formats_round_trip() {
        for s in ["0s", "1.5s", "0.001s", "300s"] {
            assert_eq!(format(parse(s).unwrap()), s);
        }
    }
}
