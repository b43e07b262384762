//! The HTTP layer above the protocol crate and below the handlers: the route table
//! with each route's access level, bearer-token auth, the one JSON error shape, and
//! the `Response` value handlers return.
pub mod auth;
pub mod errors;
pub mod response;
pub mod router;

pub use response::Body;
