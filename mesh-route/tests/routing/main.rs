//! Behaviour tests of the route table, one topic per module (SEMANTICS §1–§3).

mod actions;
mod conformance;
mod errors;
mod headers;
mod matching;
mod support;
mod vhost;
