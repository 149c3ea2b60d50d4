//! callapi-core
pub mod api;
pub mod call;
pub mod error;
pub mod media;
pub mod protocol;
pub mod signal;

pub use api::{CallApi, NotificationStream};
pub use error::CallApiError;
