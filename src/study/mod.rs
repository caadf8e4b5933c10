//! Studies built on the core: each asks the simulator many questions and reads the answers
//! together. They call the core ([`crate::system`], [`crate::scenario`]) and never the other way
//! round.
//!
//! - [`compare`]: the flagship GPU-versus-wafer comparison from the shipped profiles;
//! - [`sweep`]: what-if grids over any profile, workload or serving field, in parallel;
//! - [`slo`]: goodput and the highest arrival rate that meets latency limits;
//! - [`load_test`]: a load test at one rate, run until its steady estimates converge;
//! - [`validate`]: every published figure of the reference set, predicted under its conditions;
//! - [`calibrate`]: fitting a profile's free parameters to reference rows, with leave-one-out error;
//! - [`kernels`]: the GPU cost model's price of single kernels against measured latencies;
//! - [`infer`]: which sizes of an undisclosed model are consistent with a published speed.

pub mod calibrate;
pub mod compare;
pub mod infer;
pub mod kernels;
pub mod load_test;
pub mod slo;
pub mod sweep;
pub mod validate;
