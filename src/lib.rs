//! infersim: a discrete-event simulator of LLM inference serving.
//!
//! Data flows one way, through three layers:
//!
//! ```text
//!  core        profile ─> placement ─> cost ─> engine ─> metrics        (+ error, sketch)
//!              (TOML)     (what goes   (time of  (events)  (what
//!                          where)      one step)           happened)
//!              workload, lengths: the requests; system: model placed on a machine;
//!              scenario: one run's settings; energy: power and price of a run;
//!              warning: every adjustment made to what was asked, reported
//!                 │
//!  studies     compare · sweep · slo · validate · calibrate · infer     (study/)
//!                 │       many core runs read together
//!  outputs     report: tables, CSV, JSON · plot: SVG · perfetto: traces (report/)
//! ```
//!
//! The command line ([`cli`], one module per command) only parses arguments, calls the core or a
//! study, and hands the result to the outputs. Nothing below a layer calls into a layer above it.
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
//!     sessions: None,
//! };
//! let (requests, warnings) = workload.generate(42, sys.context_limit().0)?;
//! assert!(warnings.is_empty()); // no length had to be cut to fit
//! let (_, summary) = sys.simulate(&requests, &ServeSettings::default(), Loop::Open)?;
//! assert_eq!(summary.requests, 100);
//! # Ok::<(), infersim::Error>(())
//! ```
#![warn(missing_docs)]

// The core.
pub mod cost;
pub mod energy;
pub mod engine;
pub mod error;
pub mod lengths;
pub mod limits;
pub mod metrics;
pub mod placement;
pub mod profile;
pub mod scenario;
pub mod sketch;
pub mod system;
pub mod warning;
pub mod workload;

// Studies built on the core.
pub mod study;

// Outputs.
pub mod report;

// The command line.
pub mod cli;

pub use error::{Error, Result};
