//! Shared by the integration tests that need it (`mod support;`).

pub mod binary;
pub mod router;
pub mod smtp;
pub mod timeline;
