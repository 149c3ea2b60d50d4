//! The async shell around the call machine: [`CallApi`].

mod driver;
mod handle;
mod media_lane;
mod stream;

pub use handle::CallApi;
pub use stream::NotificationStream;
