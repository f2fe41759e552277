//! Helpers shared by rucat-store's integration tests.
#![allow(dead_code)]

pub mod surreal_server;
