//! The command line: parses arguments, calls the library, prints. No modelling happens here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod sweep;
use serde_json::json;

use crate::cost::{OpKind, StepCost};
use crate::energy::EnergyCost;
use crate::engine::{PreemptionMode, Priority, Routing};
use crate::error::{Error, Result};
use crate::metrics::{Dist, Summary};
use crate::placement::{ParallelRequest, Placement, WeightHome};
use crate::profile::catalog::{hardware_names, model_names, profile_text};
use crate::profile::{load_hardware, load_model, HardwareKind, Override};
use crate::report::{key_values, ms, num, requests_csv, Format, Table};
use crate::report::{perfetto, plot};
use crate::scenario::{ArrivalKind, LengthText, Scenario, ServeSpec, WorkloadSpec};
use crate::study::calibrate;
use crate::study::compare::{self, CompareLoad};
use crate::study::infer;
use crate::study::slo::Slo;
use crate::study::validate;
use crate::system::{ServeSettings, Speculation, System};

const ABOUT: &str =
    "Discrete-event simulator of LLM inference serving on GPU racks and wafer-scale engines";
const LONG_ABOUT: &str = "\
infersim predicts how fast a model serves on a machine, and why: per-user tokens/s, system
throughput, time to first token, inter-token latency and end-to-end latency, from TOML profiles
of the hardware (hardware/*.toml) and the model (models/*.toml).

Profiles are named by their shipped name (see `infersim profiles list`) or by a path to a TOML
file. Any profile field can be changed for a what-if with --set, e.g.
  --set hardware.gpu.hbm_bandwidth_bytes_per_s=12e12 --set model.precision.weights=fp8

Exit codes: 0 success, 2 bad input (profiles, flags, traces), 1 runtime failure.";

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
    Step(StepArgs),
    /// Simulate serving a workload; report latency and throughput.
    Simulate(Box<SimulateArgs>),
    /// The flagship comparison (GPU rack vs wafer) and public models, from the shipped profiles.
    Compare(CompareArgs),
    /// List, show or check hardware and model profiles.
    Profiles(ProfilesArgs),
    /// Predict every published figure in the reference set and report the errors.
    Validate(ValidateArgs),
    /// Fit a hardware profile's free parameters to reference rows; report leave-one-out error.
    Calibrate(CalibrateArgs),
    /// Infer the size of an undisclosed model from a published speed (the inverse problem).
    Infer(InferArgs),
    /// Run a what-if sweep from a spec file, points in parallel, one output row per point.
    Sweep(sweep::SweepArgs),
    /// Merge the outputs of sharded sweep runs into one file, as an unsharded run writes it.
    Merge(sweep::MergeArgs),
}

#[derive(Debug, Args)]
struct InferArgs {
    /// Hardware profile the speed was published on.
    #[arg(long)]
    hardware: String,
    /// Template: a model profile with what is known (dense or MoE, attention, precision, context).
    #[arg(long, value_name = "NAME|FILE")]
    model: String,
    /// Published per-user speed, tokens/s.
    #[arg(long = "tokens-per-s", value_name = "TOK_PER_S")]
    tokens_per_s: f64,
    /// Width fields of the template to scale together [default: moe.expert_intermediate_size
    /// for MoE models, architecture.intermediate_size for dense ones].
    #[arg(long = "scale", value_name = "FIELD")]
    scale: Vec<String>,
    /// How the speed was measured: one stream after --context tokens, or the `compare` load.
    #[arg(long, value_enum, default_value_t = InferCondition::SingleStream)]
    condition: InferCondition,
    /// Single stream: cached tokens when the speed is measured.
    #[arg(long, default_value_t = 1024)]
    context: u64,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum InferCondition {
    /// One sequence decoding alone.
    SingleStream,
    /// The closed-loop load of `infersim compare`.
    CompareLoad,
}

#[derive(Debug, Args)]
struct CalibrateArgs {
    /// Hardware profile whose reference rows are fitted (rows with this `hardware`).
    #[arg(long)]
    hardware: String,
    /// Free parameter and its physical range, e.g.
    /// hardware.gpu.overheads.kernel_s=0:2e-5 (repeatable).
    #[arg(long = "param", value_name = "PATH=MIN:MAX", required = true)]
    params: Vec<String>,
    /// Only these row ids (comma-separated) [default: every row on --hardware].
    #[arg(long, value_delimiter = ',')]
    rows: Vec<String>,
    /// Reference rows [default: the shipped reference/published.toml].
    #[arg(long, value_name = "FILE")]
    reference: Option<PathBuf>,
    /// Write the profile with the fitted values (comments kept) to this file.
    #[arg(long, value_name = "FILE")]
    write: Option<PathBuf>,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct ValidateArgs {
    /// Reference rows to check [default: the shipped reference/published.toml].
    #[arg(long, value_name = "FILE")]
    reference: Option<PathBuf>,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct Common {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table, global = true)]
    format: Format,
    /// Override a profile field, e.g. hardware.gpu.devices=8 or model.precision.weights=fp8
    /// (repeatable).
    #[arg(long = "set", value_name = "PATH=VALUE", global = true)]
    set: Vec<String>,
}

impl Common {
    fn overrides(&self) -> Result<Vec<Override>> {
        self.set.iter().map(|s| Override::parse(s)).collect()
    }
}

#[derive(Debug, Args)]
struct SystemArgs {
    /// Hardware profile: a shipped name (e.g. h100-sxm) or a path to a TOML file.
    #[arg(long, value_name = "NAME|FILE")]
    hardware: String,
    /// Model profile: a shipped name (e.g. llama-3.1-8b) or a path to a TOML file.
    #[arg(long, value_name = "NAME|FILE")]
    model: String,
    /// Tensor-parallel degree per replica [default: the fewest GPUs that hold the model].
    #[arg(long)]
    tp: Option<u32>,
    /// Pipeline-parallel stages per replica [default: the fewest GPUs that hold the model].
    #[arg(long)]
    pp: Option<u32>,
    /// Replicas in the system [default: as many as fit].
    #[arg(long)]
    replicas: Option<u32>,
    /// Attention data parallelism over the --tp GPUs, experts spread over them (wide expert
    /// parallelism; MoE models on GPUs): each GPU runs attention for its own sequences and keeps
    /// their KV cache, replacing the all-reduces with an all-to-all per MoE layer.
    #[arg(long)]
    attention_dp: bool,
    /// Speculative decoding: draft model (shipped name or TOML file), run on the same devices.
    #[arg(long, value_name = "NAME|FILE", requires = "alpha")]
    draft: Option<String>,
    /// Speculative decoding: draft tokens proposed per verification step.
    #[arg(long, default_value_t = 4, requires = "draft")]
    gamma: u32,
    /// Speculative decoding: probability that the target accepts one draft token, in [0, 1].
    #[arg(long, requires = "draft", allow_negative_numbers = true)]
    alpha: Option<f64>,
}

impl SystemArgs {
    fn build(&self, overrides: &[Override]) -> Result<System> {
        let hw = load_hardware(&self.hardware, overrides)?;
        let model = load_model(&self.model, overrides)?;
        // `--set model.*` applies to the target only.
        let speculation = match (&self.draft, self.alpha) {
            (Some(d), Some(alpha)) => Some(Speculation::load(d, self.gamma, alpha)?),
            _ => None,
        };
        System::with_speculation(
            hw,
            model,
            speculation,
            ParallelRequest {
                tp: self.tp,
                pp: self.pp,
                replicas: self.replicas,
                attention_dp: self.attention_dp,
            },
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Phase {
    /// Each sequence computes one new token after --context cached tokens.
    Decode,
    /// Each sequence computes its whole --prompt in one iteration.
    Prefill,
}

#[derive(Debug, Args)]
struct StepArgs {
    #[command(flatten)]
    system: SystemArgs,
    /// Phase of the iteration.
    #[arg(long, value_enum, default_value_t = Phase::Decode)]
    phase: Phase,
    /// Sequences in the batch.
    #[arg(long, default_value_t = 1)]
    batch: u32,
    /// Decode: tokens already in each sequence's KV cache.
    #[arg(long, default_value_t = 1024)]
    context: u64,
    /// Prefill: prompt tokens per sequence.
    #[arg(long, default_value_t = 1024)]
    prompt: u64,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct SimulateArgs {
    #[command(flatten)]
    system: SystemArgs,
    /// Replay a trace CSV (arrived_at,num_prefill_tokens,num_decode_tokens): arrivals and lengths.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["rate", "concurrency", "lengths_from", "sample_lengths", "prompt_tokens", "output_tokens"])]
    trace: Option<PathBuf>,
    /// Open loop: mean arrival rate, requests/s.
    #[arg(
        long,
        value_name = "REQ_PER_S",
        conflicts_with = "concurrency",
        allow_negative_numbers = true
    )]
    rate: Option<f64>,
    /// Closed loop: users each keeping one request in flight.
    #[arg(long, value_name = "USERS")]
    concurrency: Option<u32>,
    /// Arrival process for --rate.
    #[arg(long, value_enum, default_value_t = ArrivalKind::Poisson)]
    arrival: ArrivalKind,
    /// Coefficient of variation of gaps for --arrival gamma (1 = Poisson, larger = burstier).
    #[arg(long, default_value_t = 2.0, allow_negative_numbers = true)]
    burstiness: f64,
    /// Requests to simulate [default: 1000, or every row of --trace].
    #[arg(long)]
    requests: Option<usize>,
    /// Prompt lengths: N, uniform:MIN:MAX or lognormal:MEDIAN:SIGMA (tokens).
    #[arg(long, default_value = "1024", value_name = "DIST")]
    prompt_tokens: String,
    /// Output lengths: N, uniform:MIN:MAX or lognormal:MEDIAN:SIGMA (tokens).
    #[arg(long, default_value = "256", value_name = "DIST")]
    output_tokens: String,
    /// Take prompt and output lengths in order from a trace CSV (cycling), instead of
    /// --prompt-tokens / --output-tokens.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["prompt_tokens", "output_tokens"])]
    lengths_from: Option<PathBuf>,
    /// Draw (prompt, output) length pairs at random from a dataset, as MLPerf's LoadGen draws
    /// queries: mlperf-llama2-70b, mlperf-llama3.1-405b, mlperf-deepseek-r1 (shipped; see
    /// reference/lengths/README.md) or a CSV with the header prompt_tokens,output_tokens.
    #[arg(long, value_name = "NAME|FILE", conflicts_with_all = ["prompt_tokens", "output_tokens", "lengths_from"])]
    sample_lengths: Option<String>,
    /// Shared prompt prefixes: number of distinct prefixes; each request draws one uniformly.
    #[arg(long, value_name = "N", requires = "prefix_tokens")]
    prefix_groups: Option<u32>,
    /// Shared prompt prefixes: tokens at the start of each prompt shared within its group.
    #[arg(long, value_name = "TOKENS", requires = "prefix_groups")]
    prefix_tokens: Option<u32>,
    /// Random seed (arrivals and lengths).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Request routing across replicas.
    #[arg(long, value_enum, default_value_t = Routing::RoundRobin)]
    routing: Routing,
    /// Iteration priority: decode (running sequences first, chunked prefill) or prefill
    /// (waiting requests are prefilled while decodes pause).
    #[arg(long, value_enum, default_value_t = Priority::Decode)]
    priority: Priority,
    /// Preemption under KV pressure: recompute the evicted KV cache, or swap it to host memory
    /// and back (costed over the host link).
    #[arg(long, value_enum, default_value_t = PreemptionMode::Recompute)]
    preemption: PreemptionMode,
    /// Turn off prefix caching (on by default, as in vLLM V1).
    #[arg(long)]
    no_prefix_caching: bool,
    /// Disaggregated serving: X prefill and Y decode replicas, written XpYd (e.g. 1p3d); the
    /// prompt's KV cache moves over the interconnect after prefill.
    #[arg(long, value_name = "XpYd")]
    disaggregate: Option<String>,
    /// SLO: time-to-first-token limit, s (goodput counts requests meeting every limit).
    #[arg(long, value_name = "S", allow_negative_numbers = true)]
    slo_ttft_s: Option<f64>,
    /// SLO: time-per-output-token limit, s.
    #[arg(long, value_name = "S", allow_negative_numbers = true)]
    slo_tpot_s: Option<f64>,
    /// SLO: percentile of requests that must meet the limits for --find-max-rate.
    #[arg(
        long,
        value_name = "PCT",
        default_value_t = 99.0,
        allow_negative_numbers = true
    )]
    slo_percentile: f64,
    /// Search the highest Poisson arrival rate whose TTFT and TPOT at --slo-percentile meet the
    /// SLO limits (as MLPerf Server does), and report that run.
    #[arg(long, requires = "slo_ttft_s", requires = "slo_tpot_s", conflicts_with_all = ["trace", "concurrency"])]
    find_max_rate: bool,
    /// Most sequences per iteration.
    #[arg(long, default_value_t = ServeSettings::default().max_batch)]
    max_batch: u32,
    /// Token budget per iteration (chunked-prefill chunk size).
    #[arg(long, visible_alias = "chunk", default_value_t = ServeSettings::default().max_batched_tokens)]
    max_batched_tokens: u32,
    /// Tokens per KV-cache block.
    #[arg(long, default_value_t = ServeSettings::default().block_tokens)]
    block_tokens: u32,
    /// Wafers: let KV cache spill from SRAM into external memory (paying for its reads) instead of
    /// queueing requests until SRAM frees up.
    #[arg(long)]
    kv_spill: bool,
    /// Write the simulated timeline as Chrome trace-event JSON (open in ui.perfetto.dev or
    /// chrome://tracing): iterations per instance, requests, queue depth and KV-cache use.
    #[arg(long, value_name = "FILE.json")]
    trace_out: Option<PathBuf>,
    /// Write latency CDFs (TTFT, TPOT, end-to-end) as an SVG chart.
    #[arg(long, value_name = "FILE.svg")]
    plot_out: Option<PathBuf>,
    /// Write one CSV row per request: arrival, first token, completion (s), lengths, latencies.
    #[arg(long, value_name = "FILE.csv")]
    requests_out: Option<PathBuf>,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct CompareArgs {
    /// Users per replica, each keeping one request in flight.
    #[arg(long, default_value_t = CompareLoad::default().users_per_replica)]
    users_per_replica: u32,
    /// Requests each user sends.
    #[arg(long, default_value_t = CompareLoad::default().requests_per_user)]
    requests_per_user: u32,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Draw every row as system throughput against per-user speed (SVG).
    #[arg(long, value_name = "FILE.svg")]
    plot_out: Option<PathBuf>,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct ProfilesArgs {
    #[command(subcommand)]
    action: ProfilesAction,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Subcommand)]
enum ProfilesAction {
    /// List the shipped profiles with their key figures.
    List,
    /// Print one profile as written, with the figures derived from it.
    Show {
        /// A shipped name or a TOML file (hardware or model).
        name: String,
    },
    /// Validate profiles: the shipped ones, or the given files.
    Check {
        /// Files to check [default: every shipped profile].
        files: Vec<String>,
    },
}

/// Parse the process arguments and run; returns what to print on stdout.
pub fn run() -> Result<String> {
    let cli = Cli::parse();
    match cli.command {
        Command::Step(a) => step(&a),
        Command::Simulate(a) => simulate(&a),
        Command::Compare(a) => compare_cmd(&a),
        Command::Profiles(a) => profiles(&a),
        Command::Validate(a) => validate_cmd(&a),
        Command::Calibrate(a) => calibrate_cmd(&a),
        Command::Infer(a) => infer_cmd(&a),
        Command::Sweep(a) => sweep::sweep_cmd(&a),
        Command::Merge(a) => sweep::merge_cmd(&a),
    }
}

fn placement_text(p: &Placement) -> String {
    let d = p.device;
    let home = match p.weights_in {
        WeightHome::Hbm => "HBM",
        WeightHome::Sram => "SRAM",
        WeightHome::ExternalMemory => "external memory (streamed every iteration)",
    };
    let spill = if p.kv_spill_tokens_per_replica > 0 {
        format!(
            " (external memory could take {} more with --kv-spill)",
            p.kv_spill_tokens_per_replica
        )
    } else {
        String::new()
    };
    let adp = if p.attention_dp {
        " (attention data-parallel, experts spread)"
    } else {
        ""
    };
    format!(
        "tp={}{adp} pp={}, {} replica(s) of {} {d}(s) on {} {d}(s); weights in {home}, {:.2} GB/{d}; KV room {:.2} GB/{d} = {} tokens/replica{spill}",
        p.tp,
        p.pp,
        p.replicas,
        p.devices_per_replica,
        p.devices_in_system,
        p.weight_bytes_per_device / 1e9,
        p.kv_capacity_bytes_per_device / 1e9,
        p.kv_capacity_tokens_per_replica
    )
}

fn breakdown_table(c: &StepCost) -> Table {
    let mut t = Table::new([
        "operator",
        "time_ms",
        "share_%",
        "bound",
        "compute_ms",
        "memory_ms",
        "exposed_ms",
        "interconnect_ms",
        "overhead_ms",
        "gflop",
        "gbytes",
    ]);
    let total = c.total_s();
    for k in OpKind::ALL {
        let o = c.op(k);
        if o.time_s() == 0.0 && o.bytes == 0.0 {
            continue;
        }
        t.row([
            k.name().to_string(),
            ms(o.time_s()),
            num(100.0 * o.time_s() / total, 3),
            o.bound().name().to_string(),
            ms(o.compute_s),
            ms(o.memory_s),
            ms(o.exposed_s),
            ms(o.interconnect_s),
            ms(o.overhead_s),
            num(o.flops / 1e9, 4),
            num(o.bytes / 1e9, 4),
        ]);
    }
    t.row([
        "total".to_string(),
        ms(total),
        "100".into(),
        c.bound().name().to_string(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        num(c.ops.iter().map(|o| o.flops).sum::<f64>() / 1e9, 4),
        num(c.ops.iter().map(|o| o.bytes).sum::<f64>() / 1e9, 4),
    ]);
    t
}

fn step(a: &StepArgs) -> Result<String> {
    let overrides = a.common.overrides()?;
    let sys = a.system.build(&overrides)?;
    if a.batch == 0 {
        return Err(Error::arg("--batch", "expected at least 1 sequence"));
    }
    let window = sys.model.architecture.context_window_tokens;
    let mut batch = sys.batch();
    let (per_seq_tokens, seq_len) = match a.phase {
        Phase::Decode => {
            for _ in 0..a.batch {
                batch.push_sequence(1, a.context, true, true);
            }
            // Under speculative decoding one step yields the expected accepted tokens.
            let yielded = sys
                .speculation
                .as_ref()
                .map_or(1.0, Speculation::expected_tokens);
            (yielded, a.context.saturating_add(1))
        }
        Phase::Prefill => {
            if a.prompt == 0 {
                return Err(Error::arg("--prompt", "expected at least 1 token"));
            }
            for _ in 0..a.batch {
                batch.push_sequence(a.prompt, 0, true, false);
            }
            (a.prompt as f64, a.prompt)
        }
    };
    if seq_len > window {
        return Err(Error::arg(
            if a.phase == Phase::Decode {
                "--context"
            } else {
                "--prompt"
            },
            format!(
                "{seq_len} tokens exceed {}'s context window of {window}",
                sys.model.name
            ),
        ));
    }
    let kv_needed = u64::from(a.batch) * seq_len;
    let kv_room = sys.placement.kv_capacity_tokens_per_replica;
    let cost = sys.step(&batch);
    let step_s = cost.total_s();
    let per_user = per_seq_tokens / step_s;
    let total = per_user * f64::from(a.batch);
    let phase = match a.phase {
        Phase::Decode => "decode",
        Phase::Prefill => "prefill",
    };
    let fits_note = if kv_needed > kv_room {
        format!("no: the batch needs {kv_needed} tokens of KV cache, a replica holds {kv_room}")
    } else {
        "yes".into()
    };
    match a.common.format {
        Format::Json => {
            let breakdown: Vec<_> = OpKind::ALL
                .iter()
                .map(|k| {
                    let o = cost.op(*k);
                    json!({
                        "op": k.name(), "time_s": o.time_s(), "bound": o.bound(),
                        "compute_s": o.compute_s, "memory_s": o.memory_s,
                        "exposed_s": o.exposed_s, "interconnect_s": o.interconnect_s, "overhead_s": o.overhead_s,
                        "flops": o.flops, "bytes": o.bytes,
                    })
                })
                .collect();
            let v = json!({
                "hardware": sys.hardware.name, "model": sys.model.name, "phase": phase,
                "batch": a.batch, "context_tokens": if a.phase == Phase::Decode { a.context } else { 0 },
                "prompt_tokens": if a.phase == Phase::Prefill { a.prompt } else { 0 },
                "step_s": step_s, "tokens_per_s_per_user": per_user, "tokens_per_s_total": total,
                "bound": cost.bound(), "kv_fits": kv_needed <= kv_room,
                "placement": sys.placement, "breakdown": breakdown,
            });
            Ok(pretty(&v))
        }
        Format::Csv => Ok(breakdown_table(&cost).csv()),
        Format::Table => {
            let head = key_values(&[
                ("hardware", sys.hardware.name.clone()),
                ("model", sys.model.name.clone()),
                ("placement", placement_text(&sys.placement)),
                (
                    "iteration",
                    match a.phase {
                        Phase::Decode => format!(
                            "decode, batch {} x 1 token after {} cached tokens",
                            a.batch, a.context
                        ),
                        Phase::Prefill => {
                            format!("prefill, batch {} x {} prompt tokens", a.batch, a.prompt)
                        }
                    },
                ),
                ("KV cache fits", fits_note),
                (
                    "KV room holds",
                    format!(
                        "{} sequences of {seq_len} tokens, or {} of the model's full {window}-token context",
                        kv_room / seq_len.max(1),
                        kv_room / window
                    ),
                ),
                (
                    "step time",
                    format!("{} ms ({}-bound)", ms(step_s), cost.bound().name()),
                ),
                ("per user", format!("{} tokens/s", num(per_user, 4))),
                ("total", format!("{} tokens/s", num(total, 4))),
            ]);
            Ok(format!("{head}\n{}", breakdown_table(&cost).render()))
        }
    }
}

/// Write an output file, naming it in any error.
fn write_file(path: &std::path::Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })
}

fn pretty(v: &serde_json::Value) -> String {
    let mut s =
        serde_json::to_string_pretty(v).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    s.push('\n');
    s
}

impl SimulateArgs {
    fn scenario(&self) -> Result<Scenario> {
        let prompt_tokens = LengthText::Text(self.prompt_tokens.clone());
        let output_tokens = LengthText::Text(self.output_tokens.clone());
        if self.requests == Some(0) {
            return Err(Error::arg("--requests", "expected at least 1"));
        }
        Ok(Scenario {
            hardware: self.system.hardware.clone(),
            model: self.system.model.clone(),
            overrides: self.common.overrides()?,
            serve: ServeSpec {
                tp: self.system.tp,
                attention_dp: self.system.attention_dp,
                pp: self.system.pp,
                replicas: self.system.replicas,
                draft: self.system.draft.clone(),
                gamma: self.system.gamma,
                alpha: self.system.alpha,
                max_batch: self.max_batch,
                max_batched_tokens: self.max_batched_tokens,
                block_tokens: self.block_tokens,
                kv_spill: self.kv_spill,
                routing: self.routing,
                priority: self.priority,
                preemption: self.preemption,
                prefix_caching: !self.no_prefix_caching,
                disaggregate: self.disaggregate.clone(),
            },
            workload: WorkloadSpec {
                rate_per_s: self.rate,
                concurrency: self.concurrency,
                arrival: self.arrival,
                burstiness: self.burstiness,
                requests: self.requests,
                prompt_tokens,
                output_tokens,
                trace: self.trace.clone(),
                lengths_from: self.lengths_from.clone(),
                sample_lengths: self.sample_lengths.clone(),
                prefix_groups: self.prefix_groups,
                prefix_tokens: self.prefix_tokens,
                seed: self.seed,
            },
            record_timeline: self.trace_out.is_some(),
        })
    }
}

fn dist_json(d: &Dist) -> serde_json::Value {
    json!({"mean": d.mean, "p50": d.p50, "p90": d.p90, "p99": d.p99})
}

fn summary_rows(s: &Summary) -> Vec<(&'static str, &'static str, Dist, f64)> {
    vec![
        ("ttft", "ms", s.ttft_s, 1e3),
        ("tpot", "ms", s.tpot_s, 1e3),
        ("itl", "ms", s.itl_s, 1e3),
        ("e2e", "s", s.e2e_s, 1.0),
        ("per-user speed", "tokens/s", s.tokens_per_s_per_user, 1.0),
    ]
}

impl SimulateArgs {
    fn slo(&self) -> Result<Option<Slo>> {
        if self.slo_ttft_s.is_none() && self.slo_tpot_s.is_none() {
            return Ok(None);
        }
        let slo = Slo {
            ttft_s: self.slo_ttft_s,
            tpot_s: self.slo_tpot_s,
            percentile: self.slo_percentile,
        };
        slo.check()?;
        Ok(Some(slo))
    }
}

fn policy_text(s: &ServeSettings) -> String {
    let mut t = format!(
        "routing {}, {} first, preemption by {}, prefix caching {}",
        value_name(s.routing),
        value_name(s.priority),
        value_name(s.preemption),
        if s.prefix_caching { "on" } else { "off" }
    );
    match s.disaggregate {
        Some(d) => t.push_str(&format!(", disaggregated {d}")),
        None => t.push_str(", colocated"),
    }
    t
}

/// A percentile for labels: `99`, `99.9`.
fn pct_text(p: f64) -> String {
    if p.fract() == 0.0 {
        format!("{p:.0}")
    } else {
        format!("{p}")
    }
}

fn value_name(v: impl ValueEnum) -> String {
    v.to_possible_value()
        .map_or_else(String::new, |p| p.get_name().to_string())
}

fn simulate(a: &SimulateArgs) -> Result<String> {
    let slo = a.slo()?;
    let scenario = a.scenario()?;
    let (max_rate, run) = match (&slo, a.find_max_rate) {
        (Some(slo), true) => {
            let (rate, run) = crate::study::slo::find_max_rate(&scenario, slo)?;
            (Some(rate), run)
        }
        _ => (None, scenario.run()?),
    };
    // At the highest rate found, the verdict that found it: the run's steady state.
    let slo_report = slo.map(|x| match max_rate {
        Some(_) => x.evaluate_steady(&run.outcome, run.summary.duration_s),
        None => x.evaluate(&run.outcome, run.summary.duration_s),
    });
    let (sys, settings, mode, s) = (&run.system, run.settings, run.mode, &run.summary);
    let energy = EnergyCost::of(sys, s);
    let title = format!("{} on {}", sys.model.name, sys.hardware.name);
    if let Some(path) = &a.trace_out {
        let trace = perfetto::trace_json(&run.outcome, &title);
        write_file(path, &serde_json::to_string(&trace).unwrap_or_default())?;
    }
    if let Some(path) = &a.plot_out {
        write_file(path, &plot::latency_cdfs(&run.outcome, &title)?)?;
    }
    if let Some(path) = &a.requests_out {
        write_file(path, &requests_csv(&run.outcome))?;
    }
    match a.common.format {
        Format::Json => {
            let v = json!({
                "hardware": sys.hardware.name, "model": sys.model.name,
                "placement": sys.placement, "settings": settings, "seed": a.seed,
                "loop": mode,
                "requests": s.requests, "duration_s": s.duration_s,
                "output_tokens": s.output_tokens,
                "throughput_output_tokens_per_s": s.throughput_output_tokens_per_s,
                "throughput_input_tokens_per_s": s.throughput_input_tokens_per_s,
                "throughput_requests_per_s": s.throughput_requests_per_s,
                "ttft_s": dist_json(&s.ttft_s), "tpot_s": dist_json(&s.tpot_s),
                "itl_s": dist_json(&s.itl_s), "e2e_s": dist_json(&s.e2e_s),
                "tokens_per_s_per_user": dist_json(&s.tokens_per_s_per_user),
                "utilisation": s.utilisation, "mean_batch_sequences": s.mean_batch_sequences,
                "mean_batch_tokens": s.mean_batch_tokens, "kv_peak_fraction": s.kv_peak_fraction,
                "preemptions": s.preemptions, "steps": s.steps, "saturation": s.saturation,
                "prefix_cache_hit_fraction": s.prefix_cache_hit_fraction,
                "swapped_tokens": s.swapped_tokens, "kv_transfers": s.kv_transfers,
                "kv_transfer_mean_s": s.kv_transfer_mean_s,
                "slo": slo, "slo_report": slo_report, "max_rate_per_s": max_rate,
                "energy_j_per_output_token": energy.j_per_output_token(),
                "cost_usd_per_million_output_tokens": energy.usd_per_million_output_tokens(),
                "energy": energy,
            });
            Ok(pretty(&v))
        }
        Format::Csv => {
            let mut headers = vec![
                "hardware".to_string(),
                "model".into(),
                "requests".into(),
                "duration_s".into(),
                "throughput_output_tokens_per_s".into(),
                "throughput_input_tokens_per_s".into(),
                "utilisation".into(),
                "saturated".into(),
                "prefix_cache_hit_fraction".into(),
                "goodput_requests_per_s".into(),
                "max_rate_per_s".into(),
                "devices".into(),
                "mean_power_w".into(),
                "energy_j_per_output_token".into(),
                "cost_usd_per_million_output_tokens".into(),
            ];
            let mut row = vec![
                sys.hardware.name.clone(),
                sys.model.name.clone(),
                s.requests.to_string(),
                s.duration_s.to_string(),
                s.throughput_output_tokens_per_s.to_string(),
                s.throughput_input_tokens_per_s.to_string(),
                s.utilisation.to_string(),
                s.saturation.saturated.to_string(),
                s.prefix_cache_hit_fraction.to_string(),
                slo_report.map_or(String::new(), |r| r.goodput_requests_per_s.to_string()),
                max_rate.map_or(String::new(), |r| r.to_string()),
                energy.usage.devices.to_string(),
                opt_cell(energy.mean_power_w()),
                opt_cell(energy.j_per_output_token()),
                opt_cell(energy.usd_per_million_output_tokens()),
            ];
            for (name, d) in [
                ("ttft_s", s.ttft_s),
                ("tpot_s", s.tpot_s),
                ("itl_s", s.itl_s),
                ("e2e_s", s.e2e_s),
                ("tokens_per_s_per_user", s.tokens_per_s_per_user),
            ] {
                for (stat, v) in [
                    ("mean", d.mean),
                    ("p50", d.p50),
                    ("p90", d.p90),
                    ("p99", d.p99),
                ] {
                    headers.push(format!("{name}_{stat}"));
                    row.push(v.to_string());
                }
            }
            let mut t = Table::new(headers);
            t.row(row);
            Ok(t.csv())
        }
        Format::Table => {
            let sat = if s.saturation.saturated {
                format!(
                    "YES: arrivals outpace service ({} requests still waiting at the last arrival; late TTFT {}x early)",
                    s.saturation.backlog_at_last_arrival,
                    num(s.saturation.ttft_growth, 3)
                )
            } else {
                "no".into()
            };
            let mut lines: Vec<(&str, String)> = vec![
                ("hardware", sys.hardware.name.clone()),
                ("model", sys.model.name.clone()),
                ("placement", placement_text(&sys.placement)),
                (
                    "requests",
                    format!("{} over {} s simulated", s.requests, num(s.duration_s, 4)),
                ),
                (
                    "throughput",
                    format!(
                        "{} output tokens/s, {} input tokens/s, {} requests/s",
                        num(s.throughput_output_tokens_per_s, 4),
                        num(s.throughput_input_tokens_per_s, 4),
                        num(s.throughput_requests_per_s, 4)
                    ),
                ),
                (
                    "utilisation",
                    format!(
                    "{}% busy; mean batch {} sequences / {} tokens; KV peak {}%; {} preemptions",
                    num(100.0 * s.utilisation, 3),
                    num(s.mean_batch_sequences, 3),
                    num(s.mean_batch_tokens, 4),
                    num(100.0 * s.kv_peak_fraction, 3),
                    s.preemptions
                ),
                ),
                ("serving", policy_text(&settings)),
                (
                    "kv cache",
                    format!(
                        "{}% of prompt tokens from the prefix cache; {} tokens swapped; {} transfers to decode replicas{}",
                        num(100.0 * s.prefix_cache_hit_fraction, 3),
                        s.swapped_tokens,
                        s.kv_transfers,
                        if s.kv_transfers > 0 {
                            format!(" (mean {} ms)", num(1e3 * s.kv_transfer_mean_s, 3))
                        } else {
                            String::new()
                        }
                    ),
                ),
                ("saturated", sat),
                ("energy", energy_text(&energy)),
                ("cost", cost_text(&energy)),
            ];
            if let (Some(slo), Some(r)) = (&slo, &slo_report) {
                let limits = [
                    slo.ttft_s
                        .map(|v| format!("TTFT <= {} ms", num(1e3 * v, 4))),
                    slo.tpot_s
                        .map(|v| format!("TPOT <= {} ms", num(1e3 * v, 4))),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", ");
                let pct = pct_text(slo.percentile);
                lines.extend([
                    ("slo", format!("{limits} at p{pct}")),
                    (
                        "goodput",
                        format!(
                            "{} requests/s meet every limit ({}% of requests); p{pct} TTFT {} ms, TPOT {} ms: {}",
                            num(r.goodput_requests_per_s, 4),
                            num(100.0 * r.met_fraction, 3),
                            num(1e3 * r.ttft_at_percentile_s, 4),
                            num(1e3 * r.tpot_at_percentile_s, 4),
                            if r.met { "met" } else { "missed" }
                        ),
                    ),
                ]);
                if let Some(rate) = max_rate {
                    lines.push((
                        "max rate",
                        format!(
                            "{} requests/s (Poisson) is the highest rate meeting the SLO; the run below is at that rate",
                            num(rate, 4)
                        ),
                    ));
                }
            }
            let head = key_values(&lines);
            let mut t = Table::new(["metric", "unit", "mean", "p50", "p90", "p99"]);
            for (name, unit, d, scale) in summary_rows(s) {
                t.row([
                    name.to_string(),
                    unit.to_string(),
                    num(d.mean * scale, 4),
                    num(d.p50 * scale, 4),
                    num(d.p90 * scale, 4),
                    num(d.p99 * scale, 4),
                ]);
            }
            Ok(format!("{head}\n{}", t.render()))
        }
    }
}

/// A CSV cell: the number, or empty when it is not available.
fn opt_cell(x: Option<f64>) -> String {
    x.filter(|v| v.is_finite())
        .map_or(String::new(), |v| v.to_string())
}

/// `GPU` or `wafer`, for text.
fn device_noun(device: &str) -> &'static str {
    if device == "wafer" {
        "wafer"
    } else {
        "GPU"
    }
}

/// `1 GPU`, `72 GPUs`, `4 wafers`.
fn devices_text(n: u32, device: &str) -> String {
    let d = device_noun(device);
    if n == 1 {
        format!("1 {d}")
    } else {
        format!("{n} {d}s")
    }
}

/// The energy line of a run: J per output token and what it rests on, or why it is missing.
fn energy_text(e: &EnergyCost) -> String {
    let d = device_noun(e.device);
    match &e.energy {
        Some(x) => format!(
            "{} J per output token; mean {} kW over {} {}% busy ({} W busy, {} W idle per {d}, {} boundary)",
            num(x.energy_j_per_output_token, 4),
            num(x.mean_power_w / 1e3, 4),
            devices_text(e.usage.devices, e.device),
            num(100.0 * e.usage.utilisation, 3),
            num(x.busy_w_per_device, 4),
            num(x.idle_w_per_device, 4),
            x.boundary.name()
        ),
        None => "not available: the hardware profile has no [power] table".into(),
    }
}

/// The cost line of a run: dollars per million output tokens and the price, or why it is missing.
fn cost_text(e: &EnergyCost) -> String {
    let d = device_noun(e.device);
    match &e.cost {
        Some(c) => format!(
            "${} per million output tokens; {} x ${} per {d}-hour ({} basis)",
            num(c.cost_usd_per_million_output_tokens, 4),
            devices_text(e.usage.devices, e.device),
            num(c.usd_per_device_hour, 4),
            c.basis.name()
        ),
        None => "not available: the hardware profile has no [price] table".into(),
    }
}

fn opt(x: Option<f64>, scale: f64, sig: usize) -> String {
    x.map_or("-".into(), |v| num(v * scale, sig))
}

fn compare_cmd(a: &CompareArgs) -> Result<String> {
    let overrides = a.common.overrides()?;
    let load = CompareLoad {
        users_per_replica: a.users_per_replica,
        requests_per_user: a.requests_per_user,
        ..CompareLoad::default()
    };
    if load.users_per_replica == 0 || load.requests_per_user == 0 {
        return Err(Error::arg(
            "--users-per-replica/--requests-per-user",
            "expected at least 1",
        ));
    }
    let rows = compare::run(&load, &overrides, a.seed);
    if let Some(path) = &a.plot_out {
        write_file(path, &plot::compare_chart(&rows)?)?;
    }
    let flagship = rows
        .iter()
        .find(|r| r.model == "gpt-5.3-codex")
        .and_then(|r| r.tokens_per_s_per_user);
    let spark = rows
        .iter()
        .find(|r| r.model == "gpt-5.3-codex-spark")
        .and_then(|r| r.tokens_per_s_per_user);
    let ratio = flagship.zip(spark).map(|(f, s)| s / f);
    let references = compare::wafer_references(&overrides)?;
    match a.common.format {
        Format::Json => {
            let v = json!({
                "load": load, "seed": a.seed,
                "rows": rows.iter().map(|r| json!({
                    "hardware": r.hardware, "model": r.model, "status": r.status,
                    "placement": r.placement,
                    "tokens_per_s_per_user": r.tokens_per_s_per_user, "ttft_s": r.ttft_s,
                    "itl_p50_s": r.itl_p50_s, "itl_p99_s": r.itl_p99_s,
                    "throughput_output_tokens_per_s": r.throughput_output_tokens_per_s,
                    "published_tokens_per_s_per_user": r.published_tokens_per_s_per_user,
                    "published_source": r.published_source,
                    "energy_j_per_output_token": r.energy.and_then(|e| e.j_per_output_token()),
                    "cost_usd_per_million_output_tokens": r.energy.and_then(|e| e.usd_per_million_output_tokens()),
                    "energy": r.energy,
                })).collect::<Vec<_>>(),
                "speed_ratio_spark_over_full": ratio,
                "published_speed_ratio": 15.0,
                "wafer_reference_rows": references.iter().map(|(r, _)| r).collect::<Vec<_>>(),
            });
            Ok(pretty(&v))
        }
        Format::Csv | Format::Table => {
            let mut t = Table::new([
                "hardware",
                "model",
                "per_user_tok/s",
                "published_tok/s",
                "ttft_p50_ms",
                "itl_p50_ms",
                "itl_p99_ms",
                "throughput_tok/s",
                "J/token",
                "$/M_tokens",
                "placement",
                "status",
            ]);
            for r in &rows {
                t.row([
                    r.hardware.clone(),
                    r.model.clone(),
                    opt(r.tokens_per_s_per_user, 1.0, 4),
                    opt(r.published_tokens_per_s_per_user, 1.0, 4),
                    opt(r.ttft_s, 1e3, 4),
                    opt(r.itl_p50_s, 1e3, 4),
                    opt(r.itl_p99_s, 1e3, 4),
                    opt(r.throughput_output_tokens_per_s, 1.0, 4),
                    opt(r.energy.and_then(|e| e.j_per_output_token()), 1.0, 4),
                    opt(
                        r.energy.and_then(|e| e.usd_per_million_output_tokens()),
                        1.0,
                        4,
                    ),
                    r.placement.clone(),
                    r.status.clone(),
                ]);
            }
            if a.common.format == Format::Csv {
                return Ok(t.csv());
            }
            let mut refs = Table::new([
                "model",
                "row",
                "predicted_tok/s",
                "published_tok/s",
                "error_%",
                "role",
                "source",
            ]);
            for (r, row) in &references {
                refs.row([
                    r.model.clone(),
                    r.id.clone(),
                    num(r.predicted, 4),
                    num(r.published, 4),
                    num(100.0 * r.rel_error, 3),
                    if r.fitted { "fitted" } else { "prediction" }.to_string(),
                    if r.status == "ok" {
                        row.source.clone()
                    } else {
                        r.status.clone()
                    },
                ]);
            }
            let ratio_text = match ratio {
                Some(x) => format!("Spark on the wafer is {}x faster per user than the full model on the rack (published: \"15x\")", num(x, 3)),
                None => "speed ratio Spark / full: not available until both rows are simulated (published: \"15x\")".into(),
            };
            Ok(format!(
                "Flagship comparison: closed loop, {} users per replica x {} requests each; prompts lognormal(median {} tokens), outputs lognormal(median {} tokens), sigma {}.\nPer-user speed and latencies are medians over requests; published figures are per-user decode speeds.\n\n{}\n{ratio_text}\n\n{}\nSources of published figures:\n{}\nWafer reference rows: one sequence decoding after 1024 tokens on wse-3, 16-bit unless the model profile says otherwise; the fitted rows set the profile's two free parameters, the others are predictions.\n\n{}",
                load.users_per_replica, load.requests_per_user, load.prompt_median_tokens, load.output_median_tokens, load.sigma,
                t.render(),
                energy_assumptions(&rows),
                rows.iter().filter(|r| !r.published_source.is_empty()).map(|r| format!("  {} on {}: {}\n", r.model, r.hardware, r.published_source)).collect::<String>(),
                refs.render()
            ))
        }
    }
}

/// What the compare table's J/token and $/M_tokens rest on: per-device power and price of each
/// machine with their boundary and basis, the devices each row counts, and what is left out.
fn energy_assumptions(rows: &[compare::CompareRow]) -> String {
    let mut out = String::from(
        "Energy and cost (J/token and $/M_tokens are per output token): mean power n x (u x busy + (1 - u) x idle) and n x price per device-hour, over the run, divided by its output tokens; n = devices counted, u = utilisation.\nPer device, from the hardware profiles (change with --set hardware.power.* and hardware.price.*):\n",
    );
    let mut machines: Vec<(&str, EnergyCost)> = Vec::new();
    for r in rows {
        if let Some(e) = r.energy {
            if !machines.iter().any(|(h, _)| *h == r.hardware) {
                machines.push((&r.hardware, e));
            }
        }
    }
    for (h, e) in &machines {
        let d = device_noun(e.device);
        let power = match &e.energy {
            Some(p) => format!(
                "{} W busy, {} W idle per {d} ({})",
                num(p.busy_w_per_device, 4),
                num(p.idle_w_per_device, 4),
                p.boundary.describe()
            ),
            None => "no [power] table: energy not available".into(),
        };
        let price = match &e.cost {
            Some(c) => format!(
                "${} per {d}-hour ({})",
                num(c.usd_per_device_hour, 4),
                c.basis.describe()
            ),
            None => "no [price] table: cost not available".into(),
        };
        out.push_str(&format!(
            "  {h}: {power};\n  {:w$}  {price}\n",
            "",
            w = h.len()
        ));
    }
    out.push_str("Devices counted (replicas x devices per replica) and utilisation:\n");
    for r in rows {
        if let Some(e) = r.energy {
            out.push_str(&format!(
                "  {} on {}: {} ({}), {}% busy\n",
                r.model,
                r.hardware,
                devices_text(e.usage.devices, e.device),
                r.placement,
                num(100.0 * e.usage.utilisation, 3)
            ));
        }
    }
    let differ = |names: Vec<(&str, &'static str)>| -> Option<String> {
        let first = names.first()?.1;
        names.iter().any(|(_, n)| *n != first).then(|| {
            names
                .iter()
                .map(|(h, n)| format!("{n} on {h}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
    };
    let bases = machines
        .iter()
        .filter_map(|(h, e)| e.cost.map(|c| (*h, c.basis.name())))
        .collect();
    if let Some(list) = differ(bases) {
        out.push_str(&format!("Not like with like: the price bases differ ({list}); $/M_tokens across them sets a provider's list price against an owner's cost.\n"));
    }
    let boundaries = machines
        .iter()
        .filter_map(|(h, e)| e.energy.map(|p| (*h, p.boundary.name())))
        .collect();
    if let Some(list) = differ(boundaries) {
        out.push_str(&format!("Not like with like: the power boundaries differ ({list}); J/token across them counts different equipment.\n"));
    }
    out.push_str("Left out: facility overhead (PUE), networking and storage outside each system; busy power is a rating, an upper bound on the draw.\n");
    out
}

fn profiles(a: &ProfilesArgs) -> Result<String> {
    let overrides = a.common.overrides()?;
    match &a.action {
        ProfilesAction::List => {
            let mut hw = Table::new([
                "hardware",
                "kind",
                "devices",
                "memory_gb/device",
                "memory_tb/s/device",
                "peak_16bit_pflop/s/device",
                "busy_w/device",
                "usd/device-hour",
                "description",
            ]);
            let mut json_hw = Vec::new();
            for name in hardware_names() {
                let h = load_hardware(name, &overrides)?;
                let (kind, devices, mem, bw, flops) = match h.kind() {
                    Some(HardwareKind::Gpu(g)) => (
                        "gpu (HBM)",
                        g.devices,
                        g.hbm_capacity_bytes,
                        g.hbm_bandwidth_bytes_per_s,
                        g.peak_flops_per_s.bf16,
                    ),
                    Some(HardwareKind::Wafer(w)) => (
                        "wafer (SRAM)",
                        w.wafers,
                        w.sram_capacity_bytes,
                        w.sram_bandwidth_bytes_per_s,
                        w.peak_flops_per_s,
                    ),
                    None => continue,
                };
                hw.row([
                    h.name.clone(),
                    kind.to_string(),
                    devices.to_string(),
                    num(mem / 1e9, 4),
                    num(bw / 1e12, 4),
                    num(flops / 1e15, 4),
                    opt(h.power.as_ref().map(|p| p.busy_w_per_device), 1.0, 4),
                    opt(h.price.as_ref().map(|p| p.usd_per_device_hour), 1.0, 4),
                    h.description.clone(),
                ]);
                json_hw.push(json!({"name": h.name, "description": h.description,
                    "power": h.power, "price": h.price}));
            }
            let mut md = Table::new([
                "model",
                "kind",
                "params_total_b",
                "params_active_b",
                "weights_gb",
                "kv_kb/token",
                "context_tokens",
                "description",
            ]);
            let mut json_md = Vec::new();
            for name in model_names() {
                let m = load_model(name, &overrides)?;
                let d = m.dims();
                md.row([
                    m.name.clone(),
                    format!(
                        "{}{}",
                        if m.moe.is_some() { "moe" } else { "dense" },
                        if m.hypothesis { " (hypothesis)" } else { "" }
                    ),
                    num(d.total_params / 1e9, 4),
                    num(d.active_params / 1e9, 4),
                    num(m.weight_bytes() / 1e9, 4),
                    num(m.kv_bytes_per_token() / 1e3, 4),
                    m.architecture.context_window_tokens.to_string(),
                    m.description.clone(),
                ]);
                json_md.push(json!({"name": m.name, "description": m.description, "hypothesis": m.hypothesis,
                    "total_params": d.total_params, "active_params": d.active_params, "weight_bytes": m.weight_bytes()}));
            }
            Ok(match a.common.format {
                Format::Json => pretty(&json!({"hardware": json_hw, "models": json_md})),
                Format::Csv => format!("{}\n{}", hw.csv(), md.csv()),
                Format::Table => format!("{}\n{}", hw.render(), md.render()),
            })
        }
        ProfilesAction::Show { name } => {
            let is_hw = hardware_names().contains(&name.as_str())
                || (!model_names().contains(&name.as_str()) && is_hardware_file(name));
            if is_hw {
                let h = load_hardware(name, &overrides)?;
                let (_, text) = profile_text("hardware", name)?;
                return Ok(match a.common.format {
                    Format::Json => pretty(&json!(h)),
                    _ => text,
                });
            }
            let m = load_model(name, &overrides).map_err(|e| match e {
                Error::UnknownProfile { .. } => Error::UnknownProfile {
                    kind: "hardware or model",
                    name: name.clone(),
                    available: hardware_names()
                        .into_iter()
                        .chain(model_names())
                        .collect::<Vec<_>>()
                        .join(", "),
                },
                other => other,
            })?;
            let (_, text) = profile_text("model", name)?;
            let d = m.dims();
            Ok(match a.common.format {
                Format::Json => pretty(&json!({"profile": m, "derived": d, "weight_bytes": m.weight_bytes(), "kv_bytes_per_token": m.kv_bytes_per_token()})),
                _ => format!(
                    "{text}\n# derived: {:.4e} parameters ({:.4e} active), weights {:.2} GB, KV cache {:.1} KB/token\n",
                    d.total_params, d.active_params, m.weight_bytes() / 1e9, m.kv_bytes_per_token() / 1e3
                ),
            })
        }
        ProfilesAction::Check { files } => {
            let targets: Vec<(String, bool)> = if files.is_empty() {
                hardware_names()
                    .into_iter()
                    .map(|n| (n.to_string(), true))
                    .chain(model_names().into_iter().map(|n| (n.to_string(), false)))
                    .collect()
            } else {
                files
                    .iter()
                    .map(|f| (f.clone(), is_hardware_file(f)))
                    .collect()
            };
            let mut t = Table::new(["profile", "kind", "result"]);
            let mut failures = Vec::new();
            for (name, hw) in targets {
                let r = if hw {
                    load_hardware(&name, &overrides).map(|_| ())
                } else {
                    load_model(&name, &overrides).map(|_| ())
                };
                let kind = if hw { "hardware" } else { "model" };
                match r {
                    Ok(()) => t.row([name, kind.to_string(), "ok".into()]),
                    Err(e) => {
                        t.row([name, kind.to_string(), "INVALID".into()]);
                        failures.push(e);
                    }
                }
            }
            if let Some(first) = failures.into_iter().next() {
                // The first error carries file, field and expectation; exit 2.
                return Err(first);
            }
            Ok(match a.common.format {
                Format::Json => pretty(&json!({"ok": true, "checked": t.rows.len()})),
                Format::Csv => t.csv(),
                Format::Table => t.render(),
            })
        }
    }
}

/// A file is a hardware profile if it has a top-level machine section.
fn is_hardware_file(path: &str) -> bool {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .is_some_and(|t| t.contains_key("gpu") || t.contains_key("wafer"))
}

fn reference_rows(path: &Option<PathBuf>) -> Result<Vec<validate::ReferenceRow>> {
    match path {
        None => validate::parse("reference/published.toml", validate::SHIPPED),
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|source| Error::Io {
                path: p.display().to_string(),
                source,
            })?;
            validate::parse(&p.display().to_string(), &text)
        }
    }
}

fn calibrate_cmd(a: &CalibrateArgs) -> Result<String> {
    let params = a
        .params
        .iter()
        .map(|p| calibrate::Param::parse(p))
        .collect::<Result<Vec<_>>>()?;
    let rows: Vec<_> = reference_rows(&a.reference)?
        .into_iter()
        .filter(|r| r.hardware == a.hardware && (a.rows.is_empty() || a.rows.contains(&r.id)))
        .collect();
    // Start from the profile's own values.
    let (label, text) = profile_text("hardware", &a.hardware)?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| Error::Parse {
        file: label.clone(),
        message: e.to_string(),
    })?;
    let start = params
        .iter()
        .map(|p| {
            let mut v = &toml::Value::Table(table.clone());
            for k in p.path.split('.').skip(1) {
                v = v.get(k).ok_or_else(|| {
                    Error::arg("--param", format!("{} is not a field of {label}", p.path))
                })?;
            }
            v.as_float()
                .or_else(|| v.as_integer().map(|i| i as f64))
                .ok_or_else(|| Error::arg("--param", format!("{} is not a number", p.path)))
        })
        .collect::<Result<Vec<f64>>>()?;
    let c = calibrate::calibrate(&rows, &params, &start)?;
    if let Some(out) = &a.write {
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        let note = format!("fitted by infersim calibrate to rows {}", ids.join(", "));
        let new = calibrate::write_values(&text, &params, &c.values, &note)?;
        std::fs::write(out, new).map_err(|source| Error::Io {
            path: out.display().to_string(),
            source,
        })?;
    }
    match a.common.format {
        Format::Json => Ok(pretty(&json!(c))),
        Format::Csv | Format::Table => {
            let mut pt = Table::new(["parameter", "start", "fitted", "min", "max"]);
            for ((p, v), s0) in c.params.iter().zip(&c.values).zip(&start) {
                pt.row([
                    p.path.clone(),
                    format!("{s0:.4e}"),
                    format!("{v:.4e}"),
                    format!("{:e}", p.min),
                    format!("{:e}", p.max),
                ]);
            }
            let mut rt = Table::new([
                "row",
                "published",
                "fitted_prediction",
                "fitted_error_%",
                "leave_one_out_error_%",
            ]);
            for r in &c.rows {
                rt.row([
                    r.id.clone(),
                    num(r.published, 4),
                    num(r.fitted_prediction, 4),
                    num(100.0 * r.fitted_rel_error, 3),
                    num(100.0 * r.loo_rel_error, 3),
                ]);
            }
            if a.common.format == Format::Csv {
                return Ok(format!("{}\n{}", pt.csv(), rt.csv()));
            }
            Ok(format!(
                "{}\n{}\nmedian |leave-one-out error|: {}%\n",
                pt.render(),
                rt.render(),
                num(100.0 * c.median_abs_loo_rel_error, 3)
            ))
        }
    }
}

fn validate_cmd(a: &ValidateArgs) -> Result<String> {
    let overrides = a.common.overrides()?;
    let rows = reference_rows(&a.reference)?;
    let results = validate::run(&rows, &overrides);
    let summary = validate::summarise(&results);
    match a.common.format {
        Format::Json => Ok(pretty(&json!({
            "rows": results.iter().map(|r| json!({
                "id": r.id, "family": r.family, "hardware": r.hardware, "model": r.model,
                "metric": r.metric, "predicted": r.predicted, "published": r.published,
                "rel_error": r.rel_error, "tolerance": r.tolerance, "fitted": r.fitted,
                "status": r.status,
            })).collect::<Vec<_>>(),
            "summary": summary,
        }))),
        Format::Csv | Format::Table => {
            let mut t = Table::new([
                "family",
                "id",
                "metric",
                "predicted",
                "published",
                "error_%",
                "tolerance_%",
                "role",
                "status",
            ]);
            let mut sorted: Vec<&validate::RowResult> = results.iter().collect();
            sorted.sort_by(|x, y| x.family.cmp(&y.family));
            for r in sorted {
                t.row([
                    r.family.clone(),
                    r.id.clone(),
                    r.metric.name().to_string(),
                    num(r.predicted, 4),
                    num(r.published, 4),
                    num(100.0 * r.rel_error, 3),
                    num(100.0 * r.tolerance, 3),
                    if r.fitted { "fitted" } else { "prediction" }.to_string(),
                    r.status.clone(),
                ]);
            }
            if a.common.format == Format::Csv {
                return Ok(t.csv());
            }
            Ok(format!(
                "{}\n{} rows predicted; median |error| {}% (rows not fitted to: {}%), max |error| {}%\n",
                t.render(),
                summary.n,
                num(100.0 * summary.median_abs_rel_error, 3),
                num(100.0 * summary.median_abs_rel_error_unfitted, 3),
                num(100.0 * summary.max_abs_rel_error, 3)
            ))
        }
    }
}

fn infer_cmd(a: &InferArgs) -> Result<String> {
    let overrides = a.common.overrides()?;
    let hw = load_hardware(&a.hardware, &overrides)?;
    let template = load_model(&a.model, &overrides)?;
    let paths: Vec<String> = if a.scale.is_empty() {
        vec![if template.moe.is_some() {
            "moe.expert_intermediate_size".to_string()
        } else {
            "architecture.intermediate_size".to_string()
        }]
    } else {
        a.scale
            .iter()
            .map(|p| p.trim_start_matches("model.").to_string())
            .collect()
    };
    let cond = match a.condition {
        InferCondition::SingleStream => infer::Condition::SingleStream { context: a.context },
        InferCondition::CompareLoad => infer::Condition::CompareLoad,
    };
    // The simulator's error on this hardware: reference rows on it that nothing was fitted to.
    let rows: Vec<_> = validate::parse("reference/published.toml", validate::SHIPPED)?
        .into_iter()
        .filter(|r| r.hardware == hw.name && !r.fitted)
        .collect();
    let errors: Vec<f64> = validate::run(&rows, &[])
        .iter()
        .map(|r| (r.predicted / r.published).ln())
        .filter(|e| e.is_finite())
        .collect();
    let inf = infer::infer(&hw, &template, &paths, cond, a.tokens_per_s, &errors)?;
    match a.common.format {
        Format::Json => Ok(pretty(
            &json!({"scaled_fields": paths, "condition": cond, "reference_rows_used": errors.len(), "inference": inf}),
        )),
        Format::Csv | Format::Table => {
            let mut t = Table::new([
                "case",
                "target_tok/s",
                "scale",
                "total_params_b",
                "active_params_b",
                "weights_gb",
                "devices/replica",
            ]);
            let mut add = |name: &str, s: &infer::Solution| {
                t.row([
                    name.to_string(),
                    num(s.target_tokens_per_s, 4),
                    num(s.scale, 4),
                    num(s.total_params / 1e9, 4),
                    num(s.active_params / 1e9, 4),
                    num(s.weight_bytes / 1e9, 4),
                    s.devices_per_replica.to_string(),
                ]);
            };
            if let Some(l) = &inf.low {
                add("low (10%)", l);
            }
            if let Some(u) = &inf.uncorrected {
                add("as published", u);
            }
            if let Some(c) = &inf.central {
                add("bias-corrected", c);
            }
            if let Some(h) = &inf.high {
                add("high (90%)", h);
            }
            if inf.uncorrected.is_none() {
                t.row([
                    "as published".to_string(),
                    "out of reach".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                ]);
            }
            if inf.central.is_none() {
                t.row([
                    "bias-corrected".to_string(),
                    "out of reach".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                ]);
            }
            if a.common.format == Format::Csv {
                return Ok(t.csv());
            }
            let err = match inf.error_model {
                Some((m, sd)) => format!(
                    "error model: ln(predicted/published) ~ Normal({}, {}) from {} reference rows on {}",
                    num(m, 3), num(sd, 3), errors.len(), hw.name
                ),
                None => format!("no error range: fewer than 2 unfitted reference rows on {}", hw.name),
            };
            Ok(format!(
                "{} scaled along {} to {} tokens/s per user on {}:\n{err}\n\n{}{}",
                template.name,
                paths.join(", "),
                num(a.tokens_per_s, 4),
                hw.name,
                t.render(),
                inf.note
                    .as_ref()
                    .map_or(String::new(), |n| format!("\n{n}\n"))
            ))
        }
    }
}
