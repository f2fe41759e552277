//! The rucat REST server as a library: the API router, static
//! authentication and configuration, so that tests and embedding applications
//! can run exactly what the `rucat-server` binary runs.

pub mod api;
pub mod auth;
pub mod config;
pub mod gateway;
pub mod serve;
pub mod tls;
