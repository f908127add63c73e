//! The route index against linear matching (the differential property tests) and a
//! bounded fuzz of `find` with random bytes.
//!
//! - `differential`: random tables and requests; the indexed [`mesh_route::RouteTable::find`]
//!   must pick the same virtual host and route as `reference`, a deliberately naive linear
//!   matcher written from SEMANTICS §1–§2 in this test, and as the crate's own linear scan
//!   (`find_linear`).
//! - `fuzz`: random bytes as path, host and header values; no panics, same answer as the linear
//!   scan, with hand-picked hostile inputs as named tests.

mod differential;
mod fuzz;
mod generate;
mod reference;
