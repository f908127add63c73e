//! Test only: see `tests/`.
