//! infersim: a discrete-event simulator of LLM inference serving.
#![warn(missing_docs)]

pub mod error;
pub mod profile;
pub mod report;

pub use error::{Error, Result};
pub mod cli;
pub mod compare;
pub mod cost;
pub mod engine;
pub mod metrics;
pub mod placement;
pub mod system;
pub mod workload;
