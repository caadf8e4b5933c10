//! The flagship comparison: the full model on a GPU rack against its distilled sibling on a
//! wafer, plus public models on both machines, all from the shipped profiles and beside the
//! published per-user speeds.
//!
//! Load: closed loop, a fixed number of users per replica each sending a request as soon as the
//! previous one finishes; prompts and outputs log-normal around a coding-assistant shape. Every
//! row uses the same load so rows differ only by machine and model.

use serde::Serialize;

use crate::energy::EnergyCost;
use crate::engine::Loop;
use crate::error::{Error, Result};
use crate::limits::{check_count, MAX_REQUESTS, MAX_USERS};
use crate::metrics::{ClientModel, ClientSummary, FrontendScale};
use crate::placement::ParallelRequest;
use crate::profile::catalog::Target;
use crate::profile::{load_hardware, load_model, Override};
use crate::report::count;
use crate::system::{ServeSettings, System};
use crate::warning::Warnings;
use crate::workload::{Arrivals, LengthDist, Workload};

/// One comparison row to run.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// Shipped hardware profile.
    pub hardware: &'static str,
    /// Shipped model profile.
    pub model: &'static str,
    /// Overrides that size the machine for this row (e.g. the wafers of a cluster).
    pub sets: &'static [&'static str],
    /// Published per-user decode speed, tokens/s, if any.
    pub published_tokens_per_s_per_user: Option<f64>,
    /// Where the published figure comes from.
    pub published_source: &'static str,
}

/// Flagship and public-model rows. Each wafer row's cluster is one replica's worth of wafers:
/// the fewest whose SRAM holds the model's weights (Llama 3.1 70B: 4, as Cerebras served it).
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        hardware: "gb200-nvl72",
        model: "gpt-5.3-codex",
        sets: &[],
        published_tokens_per_s_per_user: Some(65.0),
        published_source: "~65 tok/s per user, comparison articles 2026-02 [S]",
    },
    Scenario {
        hardware: "wse-3",
        model: "gpt-5.3-codex-spark",
        sets: &["hardware.wafer.wafers=4"],
        published_tokens_per_s_per_user: Some(1000.0),
        published_source: "1,000+ tok/s per user, OpenAI/Cerebras via press 2026 [S]",
    },
    Scenario {
        hardware: "gb200-nvl72",
        model: "llama-3.1-70b",
        sets: &[],
        published_tokens_per_s_per_user: None,
        published_source: "",
    },
    Scenario {
        hardware: "wse-3",
        model: "llama-3.1-70b",
        sets: &["hardware.wafer.wafers=4"],
        // The profile prices the newest serving software, so the figure is that software's.
        published_tokens_per_s_per_user: Some(2100.0),
        published_source: "2,100 tok/s (systems unstated), Cerebras blog 2024-10-24 [P]",
    },
    Scenario {
        hardware: "gb200-nvl72",
        model: "gpt-oss-120b",
        sets: &[],
        published_tokens_per_s_per_user: None,
        published_source: "",
    },
    Scenario {
        hardware: "wse-3",
        model: "gpt-oss-120b",
        sets: &["hardware.wafer.wafers=2"],
        published_tokens_per_s_per_user: Some(1844.0),
        published_source: "1,844 tok/s, Artificial Analysis measurement 2025 [S]",
    },
];

/// Load shared by every row.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CompareLoad {
    /// Users per replica, each with one request in flight.
    pub users_per_replica: u32,
    /// Requests each user sends.
    pub requests_per_user: u32,
    /// Median prompt, tokens.
    pub prompt_median_tokens: f64,
    /// Median output, tokens.
    pub output_median_tokens: f64,
    /// Log-space sigma of both length distributions.
    pub sigma: f64,
}

impl Default for CompareLoad {
    fn default() -> Self {
        // A coding assistant: several thousand tokens of context in, a few hundred out.
        CompareLoad {
            users_per_replica: 16,
            requests_per_user: 4,
            prompt_median_tokens: 4096.0,
            output_median_tokens: 512.0,
            sigma: 0.5,
        }
    }
}

impl CompareLoad {
    /// Serve this load on `system`: users per replica (and pipeline lane) in a closed loop. The
    /// warnings count what was adjusted (a context limit, lengths cut to fit it).
    pub fn run(&self, system: &System, seed: u64) -> Result<(crate::metrics::Summary, Warnings)> {
        self.run_seen(system, seed, None)
            .map(|(summary, _, warnings)| (summary, warnings))
    }

    /// As [`CompareLoad::run`], with the client-side latencies of the hardware profile's
    /// `[frontend]` under `scale` (`None` without a `[frontend]`).
    pub fn run_seen(
        &self,
        system: &System,
        seed: u64,
        scale: Option<FrontendScale>,
    ) -> Result<(crate::metrics::Summary, Option<ClientSummary>, Warnings)> {
        let p = &system.placement;
        // In 64 bits: the product of four 32-bit counts, checked against the bounds below.
        let users = u64::from(self.users_per_replica) * u64::from(p.replicas) * u64::from(p.lanes);
        let requests = users.saturating_mul(u64::from(self.requests_per_user));
        check_count("users (--users-per-replica x replicas)", users, MAX_USERS)?;
        check_count(
            "requests (--users-per-replica x replicas x --requests-per-user)",
            requests,
            MAX_REQUESTS,
        )?;
        let users = users as u32;
        let workload = Workload {
            requests: requests as usize,
            arrivals: Arrivals::AllAtOnce,
            prompt: LengthDist::LogNormal {
                median: self.prompt_median_tokens,
                sigma: self.sigma,
            },
            output: LengthDist::LogNormal {
                median: self.output_median_tokens,
                sigma: self.sigma,
            },
            prefixes: None,
            sessions: None,
        };
        let mut warnings = system.warnings();
        let (requests, cut) = workload.generate(seed, system.context_limit().0)?;
        warnings.extend(&cut);
        let (out, summary) = system.simulate(
            &requests,
            &ServeSettings::default(),
            Loop::Closed { concurrency: users },
        )?;
        let client = system.hardware.frontend.as_ref().map(|f| {
            ClientSummary::of(
                ClientModel::new(f, scale.unwrap_or_default()),
                &out.requests,
            )
        });
        Ok((summary, client, warnings))
    }
}

/// The outcome of one row.
#[derive(Debug, Clone, Serialize)]
pub struct CompareRow {
    /// Hardware profile.
    pub hardware: String,
    /// Model profile.
    pub model: String,
    /// `ok`, or why the row has no prediction.
    pub status: String,
    /// Placement summary, e.g. `tp=8 pp=1 x9`.
    pub placement: String,
    /// Median per-user decode speed, tokens/s.
    pub tokens_per_s_per_user: Option<f64>,
    /// Median time to first token, s.
    pub ttft_s: Option<f64>,
    /// Median time to first token seen by the client (the hardware profile's `[frontend]`
    /// added), s; `None` without a `[frontend]`.
    pub client_ttft_s: Option<f64>,
    /// Median inter-token latency, s.
    pub itl_p50_s: Option<f64>,
    /// 99th-percentile inter-token latency, s.
    pub itl_p99_s: Option<f64>,
    /// System output throughput, tokens/s.
    pub throughput_output_tokens_per_s: Option<f64>,
    /// Published per-user speed, tokens/s.
    pub published_tokens_per_s_per_user: Option<f64>,
    /// Source of the published figure.
    pub published_source: String,
    /// Energy and cost per output token of the row's run, with the figures they rest on.
    pub energy: Option<EnergyCost>,
    /// What was adjusted to run the row (a context limit, lengths cut to fit it).
    pub warnings: Warnings,
}

/// The system a row runs on: its own sizing first, so that the user's `--set` can still change
/// it; a `--set` goes only to the machines that have its field.
fn row_system(s: &Scenario, overrides: &[Override]) -> Result<System> {
    let mut sets = s
        .sets
        .iter()
        .map(|x| Override::parse(x))
        .collect::<Result<Vec<_>>>()?;
    let base = load_hardware(s.hardware, &[])?;
    sets.extend(overrides.iter().filter(|o| o.applies_to(&base)).cloned());
    let hw = load_hardware(s.hardware, &sets)?;
    let model = load_model(s.model, &sets)?;
    System::new(hw, model, ParallelRequest::default())
}

/// Placement summary, e.g. `tp=8 pp=1 x9 replicas`, `4 wafers x1 replica`.
fn placement_text(system: &System) -> String {
    let p = &system.placement;
    let replicas = count(u64::from(p.replicas), "replica");
    match p.device {
        "wafer" => format!("{} x{replicas}", count(u64::from(p.pp), "wafer")),
        _ if p.attention_dp => format!(
            "tp={} (attention data-parallel) pp={} x{replicas}",
            p.tp, p.pp
        ),
        _ => format!("tp={} pp={} x{replicas}", p.tp, p.pp),
    }
}

fn run_row(
    s: &Scenario,
    load: &CompareLoad,
    overrides: &[Override],
    seed: u64,
    scale: Option<FrontendScale>,
) -> Result<CompareRow> {
    let system = row_system(s, overrides)?;
    let (sum, client, warnings) = load.run_seen(&system, seed, scale)?;
    Ok(CompareRow {
        hardware: s.hardware.into(),
        model: s.model.into(),
        status: "ok".into(),
        placement: placement_text(&system),
        tokens_per_s_per_user: Some(sum.tokens_per_s_per_user.p50),
        ttft_s: Some(sum.ttft_s.p50),
        client_ttft_s: client.map(|c| c.ttft_s.p50),
        itl_p50_s: Some(sum.itl_s.p50),
        itl_p99_s: Some(sum.itl_s.p99),
        throughput_output_tokens_per_s: Some(sum.throughput_output_tokens_per_s),
        published_tokens_per_s_per_user: s.published_tokens_per_s_per_user,
        published_source: s.published_source.into(),
        energy: Some(EnergyCost::of(&system, &sum)),
        warnings,
    })
}

/// Users per replica at which [`interactivity`] runs each row by default: 1 to 256, doubling.
pub const INTERACTIVITY_USERS: [u32; 9] = [1, 2, 4, 8, 16, 32, 64, 128, 256];

/// One concurrency level of an interactivity curve.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CurvePoint {
    /// Users per replica, each with one request in flight.
    pub users_per_replica: u32,
    /// Median per-user decode speed, tokens/s.
    pub tokens_per_s_per_user: f64,
    /// Output throughput per device in use (GPU or wafer), tokens/s.
    pub tokens_per_s_per_device: f64,
    /// Median time to first token, s.
    pub ttft_s: f64,
}

/// A row's interactivity curve: per-device throughput against per-user speed as concurrency
/// grows, the trade-off NVIDIA and SemiAnalysis publish for GB200.
#[derive(Debug, Clone, Serialize)]
pub struct Curve {
    /// Hardware profile.
    pub hardware: String,
    /// Model profile.
    pub model: String,
    /// `gpu` or `wafer`.
    pub device: &'static str,
    /// Placement summary.
    pub placement: String,
    /// One point per level that ran, in order of concurrency.
    pub points: Vec<CurvePoint>,
}

/// Run every row of the comparison at each of `levels` users per replica (the rest of `load`
/// as given). Rows that cannot run are left out (the comparison table says why); so are levels
/// past the bounds on users and requests.
pub fn interactivity(
    load: &CompareLoad,
    overrides: &[Override],
    seed: u64,
    levels: &[u32],
) -> Result<Vec<Curve>> {
    use rayon::prelude::*;
    check_overrides_apply(overrides)?;
    Ok(SCENARIOS
        .par_iter()
        .filter_map(|s| {
            let system = row_system(s, overrides).ok()?;
            let p = &system.placement;
            let devices = f64::from(p.replicas) * f64::from(p.devices_per_replica);
            let points = levels
                .par_iter()
                .filter_map(|&users| {
                    let l = CompareLoad {
                        users_per_replica: users,
                        ..*load
                    };
                    let (sum, _) = l.run(&system, seed).ok()?;
                    Some(CurvePoint {
                        users_per_replica: users,
                        tokens_per_s_per_user: sum.tokens_per_s_per_user.p50,
                        tokens_per_s_per_device: sum.throughput_output_tokens_per_s / devices,
                        ttft_s: sum.ttft_s.p50,
                    })
                })
                .collect();
            Some(Curve {
                hardware: s.hardware.into(),
                model: s.model.into(),
                device: p.device,
                placement: placement_text(&system),
                points,
            })
        })
        .collect())
}

/// Refuse a `--set` that no row of the comparison can take: a field no machine has (a
/// `hardware.gpu.*` field when no row runs on GPUs, an unknown section) or a value every
/// profile that has the field rejects. The error is the first row's.
fn check_overrides_apply(overrides: &[Override]) -> Result<()> {
    for o in overrides {
        let mut first_error = None;
        for s in SCENARIOS {
            let base = load_hardware(s.hardware, &[])?;
            if !o.applies_to(&base) {
                continue;
            }
            let one = std::slice::from_ref(o);
            let loaded = match o.target {
                Target::Hardware => load_hardware(s.hardware, one).map(|_| ()),
                Target::Model => load_model(s.model, one).map(|_| ()),
            };
            match loaded {
                Ok(()) => {
                    first_error = None;
                    break;
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        if !SCENARIOS
            .iter()
            .any(|s| load_hardware(s.hardware, &[]).is_ok_and(|h| o.applies_to(&h)))
        {
            return Err(Error::Override {
                spec: o.spec.clone(),
                message: "no machine in the comparison has this field: its rows run on GPU systems (hardware.gpu.*) and wafer clusters (hardware.wafer.*)".into(),
            });
        }
    }
    Ok(())
}

/// An error as one line: its lines joined with "; ".
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Run every scenario, client-side latencies under `scale`. A row that cannot be simulated
/// (e.g. a `--set` that makes the model not fit) reports why in one line instead of failing the
/// whole comparison; a `--set` that no machine has is an error.
pub fn run(
    load: &CompareLoad,
    overrides: &[Override],
    seed: u64,
    scale: Option<FrontendScale>,
) -> Result<Vec<CompareRow>> {
    check_overrides_apply(overrides)?;
    Ok(SCENARIOS
        .iter()
        .map(|s| {
            run_row(s, load, overrides, seed, scale).unwrap_or_else(|e| CompareRow {
                hardware: s.hardware.into(),
                model: s.model.into(),
                status: match e {
                    crate::Error::UnknownProfile {
                        kind: "hardware", ..
                    } => "not yet modelled (no wafer cost model)".into(),
                    other => one_line(&other.to_string()),
                },
                placement: String::new(),
                tokens_per_s_per_user: None,
                ttft_s: None,
                client_ttft_s: None,
                itl_p50_s: None,
                itl_p99_s: None,
                throughput_output_tokens_per_s: None,
                published_tokens_per_s_per_user: s.published_tokens_per_s_per_user,
                published_source: s.published_source.into(),
                energy: None,
                warnings: Warnings::default(),
            })
        })
        .collect())
}

/// The per-user speed rows measured on wafers (`reference/published.toml`), predicted: the rows
/// `hardware/wse-3.toml` was fitted to and the predictions beside them.
pub fn wafer_references(
    overrides: &[Override],
) -> Result<
    Vec<(
        crate::study::validate::RowResult,
        crate::study::validate::ReferenceRow,
    )>,
> {
    use crate::study::validate::{run, Fits, Ledger, ReferenceSet};
    let set = ReferenceSet::shipped()?.filtered(|r| {
        r.hardware == "wse-3" && r.metric == crate::study::validate::Metric::TokensPerSPerUser
    });
    let wafer = load_hardware("wse-3", &[])?;
    let overrides: Vec<Override> = overrides
        .iter()
        .filter(|o| o.applies_to(&wafer))
        .cloned()
        .collect();
    let results = run(&set, &overrides, &Ledger::shipped()?, &Fits::shipped()?);
    Ok(results.into_iter().zip(set.rows).collect())
}
