//! The command line: parses arguments, calls the library, prints. No modelling happens here.
//!
//! One module per command, each owning its arguments and its printing: `step`, `simulate`,
//! `compare`, `profiles`, `validate`, `calibrate`, `infer`, `kernels`, `sweep` and `merge`. Argument groups
//! shared by several commands (`--format`, `--set`, the system to serve, `--reference`) are in
//! `args`; text formatting and output files shared by several commands are in `text`.

use clap::{Parser, Subcommand};

use crate::error::Result;

mod args;
mod calibrate;
mod compare;
mod files;
mod infer;
mod kernels;
mod merge;
mod profiles;
mod simulate;
mod step;
mod sweep;
mod text;
mod validate;

const ABOUT: &str =
    "Discrete-event simulator of LLM inference serving on GPU racks and wafer-scale engines";
const LONG_ABOUT: &str = "\
infersim predicts how fast a model serves on a machine, and why: per-user tokens/s, system
throughput, time to first token, inter-token latency and end-to-end latency, from TOML profiles
of the hardware (hardware/*.toml) and the model (models/*.toml).

Profiles are named by their shipped name (see `infersim profiles list`) or by a path to a TOML
file. Any profile field can be changed for a what-if with --set, e.g.
  --set hardware.gpu.hbm_bandwidth_bytes_per_s=12e12 --set model.precision.weights=fp8

Exit codes: 0 success, 2 bad input (profiles, flags, traces, specs, output folders), 1 runtime
failure (a stalled simulation, a failed check, an output that cannot be written).";

/// Command-line interface.
#[derive(Debug, Parser)]
#[command(name = "infersim", version, about = ABOUT, long_about = LONG_ABOUT)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Time one iteration (prefill or decode) of a model on a machine, with its breakdown.
    Step(step::StepArgs),
    /// Simulate serving a workload; report latency and throughput.
    Simulate(Box<simulate::SimulateArgs>),
    /// The flagship comparison (GPU rack vs wafer) and public models, from the shipped profiles.
    Compare(compare::CompareArgs),
    /// List, show or check hardware and model profiles.
    Profiles(profiles::ProfilesArgs),
    /// Predict every published figure in the reference set and report the errors.
    Validate(validate::ValidateArgs),
    /// Fit a hardware profile's free parameters to reference rows; report leave-one-out error.
    Calibrate(calibrate::CalibrateArgs),
    /// Infer the size of an undisclosed model from a published speed (the inverse problem).
    Infer(infer::InferArgs),
    /// Compare the GPU cost model's price of single kernels with measured latencies.
    Kernels(kernels::KernelsArgs),
    /// Run a what-if sweep from a spec file, points in parallel, one output row per point.
    Sweep(sweep::SweepArgs),
    /// Merge the outputs of sharded sweep runs into one file, as an unsharded run writes it.
    Merge(merge::MergeArgs),
}

/// Parse the process arguments and run; returns what to print on stdout.
pub fn run() -> Result<String> {
    let cli = Cli::parse();
    match cli.command {
        Command::Step(a) => step::run(&a),
        Command::Simulate(a) => simulate::run(&a),
        Command::Compare(a) => compare::run(&a),
        Command::Profiles(a) => profiles::run(&a),
        Command::Validate(a) => validate::run(&a),
        Command::Calibrate(a) => calibrate::run(&a),
        Command::Infer(a) => infer::run(&a),
        Command::Kernels(a) => kernels::run(&a),
        Command::Sweep(a) => sweep::run(&a),
        Command::Merge(a) => merge::run(&a),
    }
}
