//! The HTTP layer between the connection (server) and the APIs: the neutral request
//! and body types handlers take, the route tables and mounts, authentication schemes,
//! the error value and its renderers, the response value, the common content and form
//! helpers, and connection upgrades. It knows nothing of sockets (the server drives
//! it) and nothing of any particular API (they plug in as mounts).
pub mod auth;
pub mod content;
pub mod cors;
pub mod errors;
pub mod form;
pub mod ratelimit;
pub mod request;
pub mod response;
pub mod router;
// Upgrades are taken by WebSocket sessions (the change-event feed); until then only
// the server's side is compiled.
#[allow(dead_code)]
pub mod upgrade;
#[allow(dead_code)] // taken by the event subscriptions
pub mod websocket;

pub use response::Body;
