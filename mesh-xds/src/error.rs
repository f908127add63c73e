//! Errors of loading config files.

use std::fmt;
use std::path::PathBuf;

use mesh_core::config::FieldError;

/// Why a config file could not be loaded.
///
/// Every variant names where the problem is: the file for [`LoadError::Io`], the line and column
/// for [`LoadError::Syntax`] (when the parser reports them), and the field path of each problem
/// for [`LoadError::Invalid`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The text is not YAML or JSON.
    #[error("syntax error{}: {message}", Location(*line, *column))]
    Syntax {
        /// The parser's message.
        message: String,
        /// 1-based line, when the parser reports it.
        line: Option<usize>,
        /// 1-based column, when the parser reports it.
        column: Option<usize>,
    },
    /// The document parsed but is not a valid config: every problem, each with its path
    /// (`clusters[2].load_assignment.endpoints[0].lb_endpoints[1].endpoint.address`).
    #[error("{}", Problems(errors))]
    Invalid {
        /// The problems, in document order (conversion problems first, then validation).
        errors: Vec<FieldError>,
    },
}

impl LoadError {
    /// The field problems of an [`LoadError::Invalid`] error, empty for the other kinds.
    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            Self::Invalid { errors } => errors,
            _ => &[],
        }
    }

    /// Whether the error is a syntax error (the text is not YAML or JSON).
    pub fn is_syntax(&self) -> bool {
        matches!(self, Self::Syntax { .. })
    }

    /// Whether the error lists invalid fields.
    pub fn is_invalid(&self) -> bool {
        matches!(self, Self::Invalid { .. })
    }

    pub(crate) fn from_yaml(e: &serde_yaml_ng::Error) -> Self {
        let loc = e.location();
        Self::Syntax {
            message: e.to_string(),
            line: loc.as_ref().map(serde_yaml_ng::Location::line),
            column: loc.as_ref().map(serde_yaml_ng::Location::column),
        }
    }

    pub(crate) fn from_json(e: &serde_json::Error) -> Self {
        let known = e.line() > 0;
        Self::Syntax {
            message: e.to_string(),
            line: known.then(|| e.line()),
            column: known.then(|| e.column()),
        }
    }
}

struct Location(Option<usize>, Option<usize>);

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0, self.1) {
            (Some(l), Some(c)) => write!(f, " at line {l} column {c}"),
            (Some(l), None) => write!(f, " at line {l}"),
            _ => Ok(()),
        }
    }
}

struct Problems<'a>(&'a [FieldError]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "invalid config ({n} {})",
            if n == 1 { "error" } else { "errors" }
        )?;
        for e in self.0 {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_send_sync_static() {
        fn check<T: Send + Sync + 'static>() {}
        check::<LoadError>();
    }

    #[test]
    fn display_lists_every_problem() {
        let e = LoadError::Invalid {
            errors: vec![
                FieldError {
                    path: "clusters[0].name".into(),
                    message: "bad".into(),
                },
                FieldError {
                    path: "listeners[1].address".into(),
                    message: "worse".into(),
                },
            ],
        };
        assert_eq!(
            e.to_string(),
            "invalid config (2 errors)\n  clusters[0].name: bad\n  listeners[1].address: worse"
        );
        let s = LoadError::Syntax {
            message: "oops".into(),
            line: Some(3),
            column: Some(4),
        };
        assert_eq!(s.to_string(), "syntax error at line 3 column 4: oops");
    }
}
