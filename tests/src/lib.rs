//! End-to-end tests across crates live in ; this library is empty on purpose.
