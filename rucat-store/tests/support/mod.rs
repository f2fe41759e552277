//! Helpers shared by rucat-store's integration tests.
#![allow(dead_code)]

pub mod surreal_server;

use std::collections::BTreeMap;

use rucat_core::{EngineId, EngineRecord, EngineSpec, EngineType, Timestamp};

/// When the engines of these tests were created.
pub const T0: Timestamp = Timestamp::from_millis(1_700_000_000_000);

/// A new Spark engine named `name`, created at [`T0`].
pub fn engine(name: &str) -> EngineRecord {
    let spec = EngineSpec {
        id: EngineId::generate(),
        name: name.to_owned(),
        engine_type: EngineType::Spark,
        version: "4.3.0".to_owned(),
        configs: BTreeMap::new(),
        token: None,
    };
    EngineRecord::new(spec, T0)
}
