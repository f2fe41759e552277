// Each test binary that includes this uses only part of it.
#![allow(dead_code)]

pub mod identities;
pub mod processes;
pub mod rest;
