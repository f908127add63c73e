//! The vocabulary of the mesh toolkit.
//!
//! Every other crate speaks these types:
//!
//! | module | what |
//! |---|---|
//! | [`config`] | the declarative config model ([`config::Bootstrap`]) with validation |
//! | [`filter`] | the HTTP filter API and the registry of named filter factories |
//! | [`stats`] | counters, gauges, histograms; Envoy text and Prometheus rendering |
//! | [`store`] | [`store::ConfigStore`], the lock-free holder of the compiled config |
//! | [`flags`] | Envoy's response flags |
//! | [`error`] | [`error::BoxError`] and helpers to classify error chains |
//!
//! Nothing here does I/O.
#![forbid(unsafe_code)]
#![deny(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]

pub mod config;
pub mod error;
pub mod filter;
pub mod flags;
pub mod runtime;
pub mod stats;
pub mod store;

pub use error::BoxError;
