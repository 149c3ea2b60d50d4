//! callapi-core
pub mod media;
pub mod protocol;
pub mod signal;
