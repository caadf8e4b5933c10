//! `infersim simulate`: serve a workload on a system and print what it achieved: placement,
//! throughput, utilisation, serving policy, KV-cache use, saturation, energy and cost, the SLO
//! verdict and the highest rate meeting it when asked, and latency percentiles (table, one CSV
//! row, or JSON); optionally also a timeline trace, latency CDF chart and per-request CSV.

use std::path::PathBuf;

use clap::Args;

use super::args::{Common, SystemArgs};
use super::files::{check_output_path, write_file, AtomicFile};
use super::text::LateProgress;
use crate::energy::EnergyCost;
use crate::engine::{PreemptionMode, Priority, RequestRecord, Routing};
use crate::error::{Error, Result};
use crate::metrics::{ClientCollector, ClientModel, ClientSummary, FrontendScale, Tally};
use crate::profile::load_hardware;
use crate::report::{perfetto, plot, requests_csv, requests_csv_header, requests_csv_row, Format};
use crate::scenario::{ArrivalKind, LengthText, Run, Scenario, ServeSpec, WorkloadSpec};
use crate::study::slo::{Slo, SloReport};
use crate::system::ServeSettings;

mod print;

#[derive(Debug, Args)]
pub(super) struct SimulateArgs {
    #[command(flatten)]
    system: SystemArgs,
    /// Replay a trace CSV (arrived_at,num_prefill_tokens,num_decode_tokens): arrivals and lengths.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["rate", "rate_schedule", "concurrency", "lengths_from", "sample_lengths", "prompt_tokens", "output_tokens"])]
    trace: Option<PathBuf>,
    /// Open loop: mean arrival rate, requests/s.
    #[arg(
        long,
        value_name = "REQ_PER_S",
        conflicts_with = "concurrency",
        allow_negative_numbers = true
    )]
    rate: Option<f64>,
    /// Open loop, a rate changing over time: START_S:RATE,... (seconds, requests/s; Poisson
    /// arrivals, each rate holding until the next piece starts, the last for ever), e.g.
    /// 0:5,600:20,1200:5 for a ten-minute peak; or a CSV file with the header start_s,rate_per_s.
    #[arg(long, value_name = "SCHEDULE", conflicts_with_all = ["rate", "concurrency"])]
    rate_schedule: Option<String>,
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
    /// Agentic sessions: how many to draw. --rate (or --rate-schedule) then starts sessions,
    /// --prompt-tokens is each first turn's prompt and --output-tokens every turn's output; a
    /// later turn's prompt is the whole context so far plus --turn-input-tokens, sent --think-s
    /// after the previous turn's last token.
    #[arg(long, value_name = "N", conflicts_with_all = ["trace", "concurrency", "requests", "prefix_groups", "session_file"])]
    sessions: Option<usize>,
    /// Agentic sessions: turns per session: N, uniform:MIN:MAX or lognormal:MEDIAN:SIGMA.
    #[arg(long, default_value = "20", value_name = "DIST")]
    session_turns: String,
    /// Agentic sessions: new tokens each later turn adds (tool results, a user message): N,
    /// uniform:MIN:MAX or lognormal:MEDIAN:SIGMA.
    #[arg(long, default_value = "2000", value_name = "DIST")]
    turn_input_tokens: String,
    /// Agentic sessions: time from a turn's last token to the next turn (tools running), s.
    #[arg(
        long,
        default_value_t = 5.0,
        value_name = "S",
        allow_negative_numbers = true
    )]
    think_s: f64,
    /// Agentic sessions from a JSONL file, one session per line: {"start_s": S, "turns":
    /// [{"input_tokens": N, "output_tokens": M, "think_s": S}, ...]} (start_s and think_s
    /// optional).
    #[arg(long, value_name = "FILE.jsonl", conflicts_with_all = ["trace", "concurrency", "requests", "prefix_groups"])]
    session_file: Option<PathBuf>,
    /// Keep idle sessions' KV cache in the tiers below HBM or SRAM (host or Grace memory on
    /// GPUs, external memory on wafers) when it is evicted, and reload it on the session's next
    /// turn over the tier's link instead of recomputing it.
    #[arg(long)]
    kv_offload: bool,
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
    /// Compute each prompt whole in one iteration (TensorRT-LLM's default,
    /// `enable_chunked_context` false) instead of splitting it within the token budget (vLLM
    /// V1's default); a request whose prompt does not fit the budget left waits, and the
    /// requests behind it with it.
    #[arg(long)]
    no_chunked_prefill: bool,
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
    /// What-if on the hardware profile's [frontend] (the network and API stack in front of the
    /// deployment): factors on the per-roundtrip overhead (connection round trips and
    /// per-request API time) and on the per-token overhead, e.g. roundtrip=0.2,token=0.7.
    #[arg(long, value_name = "roundtrip=F,token=F")]
    frontend_scale: Option<String>,
    /// No progress counter (shown on a terminal once a run has taken a second).
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    common: Common,
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
                max_context: self.system.max_context,
                objective: self.system.objective,
                draft: self.system.draft.clone(),
                gamma: self.system.gamma,
                alpha: self.system.alpha,
                max_batch: self.max_batch,
                max_batched_tokens: self.max_batched_tokens,
                block_tokens: self.block_tokens,
                kv_spill: self.kv_spill,
                kv_offload: self.kv_offload,
                routing: self.routing,
                priority: self.priority,
                preemption: self.preemption,
                prefix_caching: !self.no_prefix_caching,
                chunked_prefill: !self.no_chunked_prefill,
                disaggregate: self.disaggregate.clone(),
            },
            workload: WorkloadSpec {
                rate_per_s: self.rate,
                rate_schedule: self.rate_schedule.clone(),
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
                sessions: self.sessions,
                session_turns: LengthText::Text(self.session_turns.clone()),
                turn_input_tokens: LengthText::Text(self.turn_input_tokens.clone()),
                think_s: self.think_s,
                session_file: self.session_file.clone(),
                seed: self.seed,
            },
            record_timeline: self.trace_out.is_some(),
            // Charts and traces read every record, and so does --requests-out under
            // --find-max-rate (the chosen run's); otherwise --requests-out streams them and SLO
            // verdicts count them as they complete.
            keep_records: self.trace_out.is_some()
                || self.plot_out.is_some()
                || (self.find_max_rate && self.requests_out.is_some()),
        })
    }

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

/// A finished run and what is reported with it, as every output format reads it.
struct Report<'a> {
    run: &'a Run,
    slo: Option<Slo>,
    slo_report: Option<SloReport>,
    /// The highest rate meeting the SLO, under --find-max-rate.
    max_rate: Option<f64>,
    energy: EnergyCost,
    /// Client-side latencies, when the hardware profile has a [frontend].
    client: Option<ClientSummary>,
}

pub(super) fn run(a: &SimulateArgs) -> Result<String> {
    for (flag, path) in [
        ("--trace-out", &a.trace_out),
        ("--plot-out", &a.plot_out),
        ("--requests-out", &a.requests_out),
    ] {
        if let Some(p) = path {
            check_output_path(flag, p)?;
        }
    }
    let slo = a.slo()?;
    let mut scenario = a.scenario()?;
    let model = client_model(a, &scenario)?;
    // Under --find-max-rate the chosen run's records give its client view.
    scenario.keep_records |= a.find_max_rate && model.is_some();
    let (max_rate, run, slo_report, client) = match (&slo, a.find_max_rate) {
        (Some(slo), true) => {
            let (rate, run, windowed) = crate::study::slo::find_max_rate(&scenario, slo)?;
            // At the highest rate found, the verdict that found it: the run's steady state.
            let report = slo.evaluate_windowed(&windowed, run.summary.duration_s);
            let client = model.map(|m| ClientSummary::of(m, &run.outcome.requests));
            (Some(rate), run, Some(report), client)
        }
        _ => {
            let bar = LateProgress::new(a.quiet, "requests completed");
            let limits = slo.map(|x| x.limits());
            let mut tally = Tally::default();
            let mut client = model.map(ClientCollector::new);
            let path = a.requests_out.as_deref();
            let run = run_writing_requests(&scenario, path, model.as_ref(), &bar, |r| {
                if let Some(l) = &limits {
                    tally.add(l, r);
                }
                if let Some(c) = client.as_mut() {
                    c.add(r);
                }
            });
            bar.finish();
            let run = run?;
            let report = slo.map(|x| x.report(&tally, run.summary.duration_s));
            (None, run, report, client.map(|c| c.summary()))
        }
    };
    let energy = EnergyCost::of(&run.system, &run.summary);
    // Without --find-max-rate, records went to --requests-out as the run went.
    write_outputs(a, &run, model.as_ref(), max_rate.is_none())?;
    let r = Report {
        run: &run,
        slo,
        slo_report,
        max_rate,
        energy,
        client,
    };
    match a.common.format {
        Format::Json => Ok(print::json(a, &r)),
        Format::Csv => Ok(print::csv(&r)),
        Format::Table => Ok(print::table(&r)),
    }
}

/// The client model of the hardware profile's [frontend] under --frontend-scale, or `None`
/// without a [frontend]; a scale without one to apply it to is an error.
fn client_model(a: &SimulateArgs, scenario: &Scenario) -> Result<Option<ClientModel>> {
    let scale = a
        .frontend_scale
        .as_deref()
        .map(|t| FrontendScale::parse("--frontend-scale", t))
        .transpose()?;
    let hw = load_hardware(&scenario.hardware, &scenario.overrides)?;
    match (&hw.frontend, scale) {
        (Some(f), scale) => Ok(Some(ClientModel::new(f, scale.unwrap_or_default()))),
        (None, Some(_)) => Err(crate::error::Error::arg(
            "--frontend-scale",
            format!(
                "expected a hardware profile with a [frontend] table to scale; {} has none (see docs/profiles.md, or give its fields with --set hardware.frontend.FIELD=VALUE)",
                hw.name
            ),
        )),
        (None, None) => Ok(None),
    }
}

/// The workload as asked, for chart titles: arrivals, requests and lengths.
fn workload_text(a: &SimulateArgs, requests: usize) -> String {
    let arrivals = match (&a.trace, a.rate, &a.rate_schedule, a.concurrency) {
        (Some(t), ..) => format!("trace {}", t.display()),
        (_, Some(r), ..) => format!("{r} requests/s"),
        (_, _, Some(s), _) => format!("rate schedule {s}"),
        (_, _, _, Some(c)) => format!("closed loop of {c} users"),
        _ => String::new(),
    };
    let lengths = match (&a.lengths_from, &a.sample_lengths) {
        _ if a.trace.is_some() => String::new(),
        (Some(f), _) => format!(", lengths from {}", f.display()),
        (_, Some(d)) => format!(", lengths sampled from {d}"),
        _ => format!(", prompts {}, outputs {}", a.prompt_tokens, a.output_tokens),
    };
    format!("{arrivals}, {requests} requests{lengths}")
}

/// The files asked for with --trace-out, --plot-out and --requests-out.
fn write_outputs(
    a: &SimulateArgs,
    run: &Run,
    client: Option<&ClientModel>,
    streamed: bool,
) -> Result<()> {
    let sys = &run.system;
    let title = format!(
        "{} on {}: {}",
        sys.model.name,
        sys.hardware.name,
        workload_text(a, run.summary.requests)
    );
    if let Some(path) = &a.trace_out {
        let trace = perfetto::trace_json(&run.outcome, &title);
        write_file(path, &serde_json::to_string(&trace).unwrap_or_default())?;
    }
    if let Some(path) = &a.plot_out {
        write_file(path, &plot::latency_cdfs(&run.outcome, &title)?)?;
    }
    if let (Some(path), false) = (&a.requests_out, streamed) {
        write_file(path, &requests_csv(&run.outcome, client))?;
    }
    Ok(())
}

/// Run `scenario`, counting requests as they complete on `bar` and, with `path`, writing each
/// one's CSV row there (in completion order, with client columns under `client`; the file
/// appears whole once the run has ended, as every output does).
fn run_writing_requests(
    scenario: &Scenario,
    path: Option<&std::path::Path>,
    client: Option<&ClientModel>,
    bar: &LateProgress,
    mut each: impl FnMut(&RequestRecord),
) -> Result<Run> {
    use std::io::Write;
    let Some(path) = path else {
        return scenario.run_streamed(&mut |_, r| {
            bar.inc();
            each(r);
        });
    };
    let mut file = AtomicFile::create(path)?;
    let header = requests_csv_header(client.is_some());
    let mut failed = file.write_all(header.as_bytes()).err();
    let run = scenario.run_streamed(&mut |i, r| {
        bar.inc();
        each(r);
        if failed.is_none() {
            failed = file
                .write_all(requests_csv_row(i, r, client).as_bytes())
                .err();
        }
    })?;
    if let Some(e) = failed {
        return Err(file.error(e));
    }
    file.commit()?;
    Ok(run)
}
