//! Typed errors for the library. Every user-facing failure names what it concerns (file, field,
//! flag) and what was expected; the binary prints the chain once and exits with [`Error::exit_code`].

use std::fmt;

/// One problem found while validating a profile or an input: the field path and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// Dotted path of the offending field, e.g. `gpu.hbm_bandwidth_bytes_per_s`.
    pub path: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl Problem {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

fn bullet_list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("\n  - {p}"))
        .collect::<String>()
}

/// Everything that can go wrong in infersim.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The operating-system error.
        source: std::io::Error,
    },
    /// An output file (or standard output) could not be written: a full disk, a lost device.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// The operating-system error.
        source: std::io::Error,
    },
    /// TOML syntax error, wrong type or unknown field (the message carries line and column).
    #[error("{file}: {message}")]
    Parse {
        /// The profile file (or `<name> (built-in)`).
        file: String,
        /// The parser's message.
        message: String,
    },
    /// The file parsed but its values make no physical sense.
    #[error("{file}: invalid profile:{}", bullet_list(.problems))]
    Invalid {
        /// The profile file.
        file: String,
        /// Every problem found.
        problems: Vec<Problem>,
    },
    /// A profile name that is neither a shipped profile nor a readable file.
    #[error("unknown {kind} profile \"{name}\"; available: {available}")]
    UnknownProfile {
        /// `hardware` or `model`.
        kind: &'static str,
        /// The name asked for.
        name: String,
        /// Comma-separated names of the shipped profiles.
        available: String,
    },
    /// A `--set path=value` override that cannot be applied.
    #[error("--set {spec}: {message}")]
    Override {
        /// The override as given.
        spec: String,
        /// Why it cannot be applied.
        message: String,
    },
    /// A malformed request trace.
    #[error("{file}:{line}: {message}")]
    Trace {
        /// The trace file.
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A malformed row or header of a data table (e.g. a kernel-measurement CSV).
    #[error("{file}:{line}: {message}")]
    Table {
        /// The table file.
        file: String,
        /// 1-based line number (1 is the header).
        line: usize,
        /// What is wrong, naming the field.
        message: String,
    },
    /// The model's weights do not fit the hardware.
    #[error("{model} does not fit on {hardware}: {detail}")]
    DoesNotFit {
        /// Model name.
        model: String,
        /// Hardware name.
        hardware: String,
        /// How much is missing, and where.
        detail: String,
    },
    /// A command-line value outside its domain.
    #[error("invalid {name}: {message}")]
    InvalidArgument {
        /// The flag or setting.
        name: String,
        /// What was expected.
        message: String,
    },
    /// A check the command ran did not pass (`validate --strict`); its report is still printed.
    #[error("{what} failed:{}", .problems.iter().map(|p| format!("\n  - {p}")).collect::<String>())]
    CheckFailed {
        /// The check.
        what: String,
        /// What the command printed before the verdict.
        report: String,
        /// Every reason it failed.
        problems: Vec<String>,
    },
    /// The simulation could not make progress (a bug or an impossible workload).
    #[error("simulation stalled at t = {time_s:.6} s with {running} running and {waiting} waiting requests: {reason}")]
    Stall {
        /// Simulated time of the stall.
        time_s: f64,
        /// Requests holding KV cache.
        running: usize,
        /// Requests queued.
        waiting: usize,
        /// Why no step could be formed.
        reason: String,
    },
}

impl Error {
    /// Process exit code: 2 for bad input, 1 for a runtime failure (a stall, a failed check, an
    /// output that could not be written).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Stall { .. } | Error::CheckFailed { .. } | Error::Write { .. } => 1,
            _ => 2,
        }
    }

    /// What the command printed before failing, to go to standard output.
    pub fn report(&self) -> Option<&str> {
        match self {
            Error::CheckFailed { report, .. } => Some(report),
            _ => None,
        }
    }

    /// Shorthand for [`Error::InvalidArgument`].
    pub fn arg(name: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidArgument {
            name: name.into(),
            message: message.into(),
        }
    }
}

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
