//! infersim: a discrete-event simulator of LLM inference serving.
//!
//! Data flows one way: profiles (TOML, typed and validated) -> placement (what goes where) ->
//! cost model (time of one iteration) -> engine (events) -> metrics -> report.
//!
//! ```
//! use infersim::cost::Batch;
//! use infersim::engine::Loop;
//! use infersim::placement::ParallelRequest;
//! use infersim::profile::{load_hardware, load_model};
//! use infersim::system::{ServeSettings, System};
//! use infersim::workload::{Arrivals, LengthDist, Workload};
//!
//! let hw = load_hardware("h100-sxm", &[])?;
//! let model = load_model("llama-3.1-8b", &[])?;
//! let sys = System::new(hw, model, ParallelRequest::default())?;
//!
//! // One decode iteration at batch 1: bounded by reading 16 GB of weights from HBM.
//! let step = sys.step(&Batch::decode(1, 1024, None));
//! assert!(1.0 / step.total_s() < 209.0);
//!
//! // Serve 100 Poisson arrivals at 2 requests/s.
//! let workload = Workload {
//!     requests: 100,
//!     arrivals: Arrivals::Poisson { rate_per_s: 2.0 },
//!     prompt: LengthDist::Fixed(512),
//!     output: LengthDist::Fixed(128),
//!     prefixes: None,
//! };
//! let requests = workload.generate(42, sys.model.architecture.context_window_tokens)?;
//! let (_, summary) = sys.simulate(&requests, &ServeSettings::default(), Loop::Open)?;
//! assert_eq!(summary.requests, 100);
//! # Ok::<(), infersim::Error>(())
//! ```
#![warn(missing_docs)]

pub mod calibrate;
pub mod cli;
pub mod compare;
pub mod cost;
pub mod energy;
pub mod engine;
pub mod error;
pub mod infer;
pub mod lengths;
pub mod metrics;
pub mod perfetto;
pub mod placement;
pub mod plot;
pub mod profile;
pub mod report;
pub mod scenario;
pub mod slo;
pub mod sweep;
pub mod system;
pub mod validate;
pub mod workload;

pub use error::{Error, Result};
