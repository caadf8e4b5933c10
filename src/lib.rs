//! infersim: a discrete-event simulator of LLM inference serving.
#![warn(missing_docs)]

pub mod error;
pub mod profile;

pub use error::{Error, Result};
