//! The engine tests share the scenario builder of `braid_proto::harness`.
#![allow(unused_imports)]

pub use braid_proto::harness::*;
