//! Benchmarks for the mesh toolkit.
