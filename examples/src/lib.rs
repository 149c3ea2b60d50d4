//! Runnable examples for callapi. See `examples/` (for example
//! `cargo run -p callapi-examples --example mock_call`).
