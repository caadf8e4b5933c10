//! A system: one model placed on one machine, with its cost model. The glue from profiles to
//! the engine: `System::new` places the model, `step` prices one iteration, `simulate` serves a
//! workload and aggregates the metrics.

use crate::cost::{
    AroundAttention, Batch, CostModel, GpuCost, OpKind, SpeculativeCost, StepCost, StepTimes,
    WaferCost,
};
use crate::engine::event::{ns_from_s, s_from_ns};
use crate::engine::{
    self, Disaggregation, EngineConfig, KvTier, Loop, Observe, Outcome, PreemptionMode,
    RequestRecord, ServingPolicy, SpecConfig, MAX_TIERS,
};
use crate::error::{Error, Result};
use crate::metrics::{summarise_collected, Collector, Summary};
use crate::placement::{place_with_draft, Objective, ParallelRequest, Placement, WeightHome};
use crate::profile::{HardwareKind, HardwareProfile, ModelProfile};
use crate::warning::Warnings;
use crate::workload::RequestSource;

mod settings;
pub use settings::{ServeSettings, Speculation, Split};

/// Cached tokens of the sequence a per-user-speed layout search prices, when no context limit
/// is asked: the context of the published single-stream rows (reference/published.toml).
pub const LAYOUT_CONTEXT_TOKENS: u64 = 1024;

/// A model placed on a machine.
#[derive(Debug, Clone)]
pub struct System {
    /// The machine.
    pub hardware: HardwareProfile,
    /// The model.
    pub model: ModelProfile,
    /// Where the model lives.
    pub placement: Placement,
    /// Speculative decoding, if on.
    pub speculation: Option<Speculation>,
    cost: SpeculativeCost<MachineCost>,
}

/// A speculative-decoding request's own checks: an acceptance rate in [0, 1], at least one draft
/// token, a draft sharing its target's tokenizer.
fn check_speculation(model: &ModelProfile, speculation: Option<&Speculation>) -> Result<()> {
    if let Some(s) = speculation {
        if !(s.alpha.is_finite() && (0.0..=1.0).contains(&s.alpha)) {
            return Err(Error::arg(
                "--alpha",
                format!("expected an acceptance rate in [0, 1], found {}", s.alpha),
            ));
        }
        crate::limits::check_count("--gamma", s.gamma.into(), crate::limits::MAX_GAMMA)?;
        if s.draft.architecture.vocab_size != model.architecture.vocab_size {
            return Err(Error::arg(
                "--draft",
                format!(
                    "{} has a {}-token vocabulary but {} has {}; a draft must share its target's tokenizer",
                    s.draft.name,
                    s.draft.architecture.vocab_size,
                    model.name,
                    model.architecture.vocab_size
                ),
            ));
        }
    }
    Ok(())
}

/// The cost model of the machine kind.
#[derive(Debug, Clone)]
enum MachineCost {
    Gpu(GpuCost),
    Wafer(WaferCost),
}

impl CostModel for MachineCost {
    fn step(&self, batch: &Batch) -> StepCost {
        match self {
            MachineCost::Gpu(c) => c.step(batch),
            MachineCost::Wafer(c) => c.step(batch),
        }
    }

    fn step_s(&self, batch: &Batch) -> f64 {
        match self {
            MachineCost::Gpu(c) => c.step_s(batch),
            MachineCost::Wafer(c) => c.step_s(batch),
        }
    }

    fn step_times(&self, batch: &Batch) -> StepTimes {
        match self {
            MachineCost::Gpu(c) => c.step_times(batch),
            MachineCost::Wafer(c) => c.step_times(batch),
        }
    }

    fn step_s_varied(&self, base: &AroundAttention, batch: &Batch) -> f64 {
        match self {
            MachineCost::Gpu(c) => c.step_s_varied(base, batch),
            MachineCost::Wafer(c) => c.step_s_varied(base, batch),
        }
    }

    fn window(&self) -> Option<u64> {
        match self {
            MachineCost::Gpu(c) => c.window(),
            MachineCost::Wafer(c) => c.window(),
        }
    }

    fn priced_by(&self, op: OpKind) -> &'static str {
        match self {
            MachineCost::Gpu(c) => c.priced_by(op),
            MachineCost::Wafer(c) => c.priced_by(op),
        }
    }
}

impl System {
    /// Place `model` on `hardware` and build its cost model.
    pub fn new(
        hardware: HardwareProfile,
        model: ModelProfile,
        parallel: ParallelRequest,
    ) -> Result<System> {
        System::with_speculation(hardware, model, None, parallel)
    }

    /// Like [`System::new`], optionally with speculative decoding by a draft model. A layout the
    /// request leaves open (`tp` on GPUs, `pp` on wafers) is chosen for the request's
    /// [`Objective`]: for per-user speed, every wider layout that holds the model is priced on one
    /// sequence decoding after [`LAYOUT_CONTEXT_TOKENS`] cached tokens (or at `max_context`, when
    /// asked) and the fastest kept, ties going to the fewest devices.
    pub fn with_speculation(
        hardware: HardwareProfile,
        model: ModelProfile,
        speculation: Option<Speculation>,
        parallel: ParallelRequest,
    ) -> Result<System> {
        check_speculation(&model, speculation.as_ref())?;
        let wafer = matches!(hardware.kind(), Some(HardwareKind::Wafer(_)));
        let fixed = if wafer {
            parallel.pp.is_some()
        } else {
            parallel.tp.is_some()
        };
        if fixed {
            return System::placed(hardware, model, speculation, parallel);
        }
        let objective = parallel
            .objective
            .unwrap_or(Objective::default_for(if wafer { "wafer" } else { "gpu" }));
        let mut best = System::placed(
            hardware.clone(),
            model.clone(),
            speculation.clone(),
            parallel,
        )?;
        if objective == Objective::PerUserSpeed {
            let context = parallel
                .max_context
                .map_or(LAYOUT_CONTEXT_TOKENS, |c| c.saturating_sub(1));
            let mut best_speed = best.single_stream_tokens_per_s(context);
            for req in best.wider_layouts(parallel) {
                let Ok(s) =
                    System::placed(hardware.clone(), model.clone(), speculation.clone(), req)
                else {
                    continue;
                };
                let speed = s.single_stream_tokens_per_s(context);
                if speed > best_speed * (1.0 + 1e-9) {
                    (best, best_speed) = (s, speed);
                }
            }
        }
        best.placement.objective = Some(objective);
        Ok(best)
    }

    /// Layouts wider than this one's, for the per-user-speed search: on wafers every pipeline
    /// longer than this one's (up to a wafer per layer), when its weights sit in SRAM; on GPUs
    /// every tensor-parallel group twice, four times, ... as wide that the system holds.
    fn wider_layouts(&self, parallel: ParallelRequest) -> Vec<ParallelRequest> {
        let p = &self.placement;
        match self.hardware.kind() {
            Some(HardwareKind::Wafer(w)) if p.weights_in == WeightHome::Sram => {
                let most = w.wafers.min(self.model.architecture.layers);
                (p.pp + 1..=most)
                    .map(|pp| ParallelRequest {
                        pp: Some(pp),
                        ..parallel
                    })
                    .collect()
            }
            Some(HardwareKind::Gpu(g)) => {
                std::iter::successors(Some(p.tp.saturating_mul(2)), |t| t.checked_mul(2))
                    .take_while(|t| t.saturating_mul(p.pp) <= g.devices)
                    .map(|tp| ParallelRequest {
                        tp: Some(tp),
                        pp: Some(p.pp),
                        ..parallel
                    })
                    .collect()
            }
            _ => Vec::new(),
        }
    }

    /// Tokens per second one sequence decodes at after `context` cached tokens (capped to the
    /// context limit), counting speculative decoding's expected tokens per step.
    pub fn single_stream_tokens_per_s(&self, context: u64) -> f64 {
        let mut b = self.batch();
        let context = context.min(self.context_limit().0.saturating_sub(1));
        b.push_sequence(1, context, true, true);
        let yielded = self
            .speculation
            .as_ref()
            .map_or(1.0, Speculation::expected_tokens);
        yielded / self.step(&b).total_s()
    }

    /// Place and price as asked, with no layout search.
    fn placed(
        hardware: HardwareProfile,
        model: ModelProfile,
        speculation: Option<Speculation>,
        parallel: ParallelRequest,
    ) -> Result<System> {
        let draft = speculation.as_ref().map(|s| &s.draft);
        let placement = place_with_draft(&model, draft, &hardware, parallel)?;
        // On a wafer a co-resident draft takes its share of the cores, by bytes.
        let all_bytes = model.weight_bytes() + draft.map_or(0.0, |d| d.weight_bytes());
        let cost_of = |m: &ModelProfile| match hardware.kind() {
            Some(HardwareKind::Gpu(g)) => MachineCost::Gpu(GpuCost::new(m, g, &placement)),
            Some(HardwareKind::Wafer(w)) => MachineCost::Wafer(WaferCost::sharing(
                m,
                w,
                &placement,
                m.weight_bytes() / all_bytes,
            )),
            None => unreachable!("placement rejects a profile without a machine section"),
        };
        let target = cost_of(&model);
        let draft_cost = match draft {
            Some(d) => cost_of(d),
            None => target.clone(),
        };
        Ok(System {
            cost: SpeculativeCost {
                target,
                draft: draft_cost,
            },
            hardware,
            model,
            placement,
            speculation,
        })
    }

    /// The cost model of one replica.
    pub fn cost_model(&self) -> &dyn CostModel {
        &self.cost
    }

    /// An empty batch shaped for this model (its sliding window, its speculative decoding).
    pub fn batch(&self) -> Batch {
        Batch::speculative(
            self.cost.window(),
            self.speculation.as_ref().map_or(0, |s| s.gamma),
        )
    }

    /// Cost of one iteration of one replica.
    pub fn step(&self, batch: &Batch) -> StepCost {
        self.cost.step(batch)
    }

    /// What prices operator `op` of a step (see [`CostModel::priced_by`]).
    pub fn priced_by(&self, op: OpKind) -> &'static str {
        self.cost.priced_by(op)
    }

    /// Time to move one token's KV cache between two replicas, s, and the fixed time of one
    /// transfer: each device sends its share over its own link at once (GPUs: the scale-up
    /// interconnect at its achieved efficiency; wafers: the wafer-to-wafer link).
    pub fn kv_transfer_cost(&self) -> (f64, f64) {
        let bytes = self.placement.kv_bytes_per_token_per_device;
        match self.hardware.kind() {
            Some(HardwareKind::Gpu(g)) => (
                bytes / (g.interconnect.bandwidth_bytes_per_s * g.efficiency.interconnect),
                g.interconnect.latency_s,
            ),
            Some(HardwareKind::Wafer(w)) => {
                (bytes / w.link.bandwidth_bytes_per_s, w.link.latency_s)
            }
            None => (f64::INFINITY, 0.0),
        }
    }

    /// Time to copy one token's KV cache to or from host memory, s: each device over its own
    /// host link (GPUs: `gpu.host_bandwidth_bytes_per_s`; wafers: the external memory).
    pub fn swap_s_per_token(&self) -> Result<f64> {
        self.host_s_per_token("preemption = swap", "use recompute")
    }

    /// KV-cache bytes one cached token occupies on each device, as the KV pool counts them:
    /// sliding-window layers at their share of a sequence at the context limit.
    pub fn kv_bytes_per_cached_token_per_device(&self) -> f64 {
        let p = &self.placement;
        p.kv_bytes_per_token_per_device * self.model.kv_share(p.max_context_tokens)
    }

    /// As [`System::swap_s_per_token`]; `setting` names what needs it in errors, `instead`
    /// what to do without it.
    fn host_s_per_token(&self, setting: &str, instead: &str) -> Result<f64> {
        let bytes = self.kv_bytes_per_cached_token_per_device();
        match self.hardware.kind() {
            Some(HardwareKind::Gpu(g)) => match g.host_bandwidth_bytes_per_s {
                Some(bw) => Ok(bytes / bw),
                None => Err(Error::arg(
                    setting,
                    format!(
                        "{} has no gpu.host_bandwidth_bytes_per_s (GPU to host memory, bytes/s); add it to the profile or {instead}",
                        self.hardware.name
                    ),
                )),
            },
            Some(HardwareKind::Wafer(w)) => Ok(bytes / w.external_memory.bandwidth_bytes_per_s),
            None => Ok(f64::INFINITY),
        }
    }

    /// Most tokens (prompt plus output) one sequence may hold here, and what sets it: the
    /// deployment's context limit ([`crate::placement::Placement::max_context_tokens`]), or a
    /// draft's shorter window (a draft must see the whole sequence too).
    pub fn context_limit(&self) -> (u64, String) {
        let limit = self.placement.max_context_tokens;
        let by = if limit < self.model.architecture.context_window_tokens {
            format!("the deployment's context limit for {}", self.model.name)
        } else {
            format!("{}'s context window", self.model.name)
        };
        match &self.speculation {
            Some(s) if s.draft.architecture.context_window_tokens < limit => (
                s.draft.architecture.context_window_tokens,
                format!("{}'s context window", s.draft.name),
            ),
            _ => (limit, by),
        }
    }

    /// What the placement adjusted of what was asked: a context limit lowered below the model's
    /// window because one window-long sequence does not fit.
    pub fn warnings(&self) -> Warnings {
        let mut w = Warnings::default();
        let p = &self.placement;
        if p.context_capped {
            w.add(
                "context_limited",
                1,
                format!(
                    "one {}-token sequence of {} does not fit beside the weights here: sequences are limited to {} tokens (set --max-context to choose the limit, or add devices)",
                    self.model.architecture.context_window_tokens, self.model.name, p.max_context_tokens
                ),
            );
        }
        w
    }

    /// The KV tiers of `--kv-offload`, as one instance sees them: host memory (GPUs: each GPU's
    /// `gpu.host_memory_bytes` holds its share of every token, over its own host link) or the
    /// external memory (wafers: the share of it KV may use, as `--kv-spill` counts it).
    fn kv_tiers(&self, s: &ServeSettings) -> Result<[Option<KvTier>; MAX_TIERS]> {
        if !s.kv_offload {
            return Ok([None; MAX_TIERS]);
        }
        let p = &self.placement;
        let s_per_token =
            self.host_s_per_token("kv_offload (--kv-offload)", "drop --kv-offload")?;
        let tokens_per_replica = match self.hardware.kind() {
            Some(HardwareKind::Gpu(g)) => {
                let bytes = g.host_memory_bytes.ok_or_else(|| {
                    Error::arg(
                        "kv_offload (--kv-offload)",
                        format!(
                            "{} has no gpu.host_memory_bytes (host memory per GPU for KV offload, bytes); add it to the profile or drop --kv-offload",
                            self.hardware.name
                        ),
                    )
                })?;
                // Under attention data parallelism each GPU holds whole sequences.
                let holders = if p.attention_dp { p.tp } else { 1 };
                (bytes / self.kv_bytes_per_cached_token_per_device()).floor() as u64
                    * u64::from(holders)
            }
            Some(HardwareKind::Wafer(_)) if s.kv_spill => {
                return Err(Error::arg(
                    "kv_offload (--kv-offload)",
                    "offload and --kv-spill would both use the external memory; choose one",
                ))
            }
            Some(HardwareKind::Wafer(_)) => p.kv_spill_tokens_per_replica,
            None => 0,
        };
        Ok([
            Some(KvTier {
                capacity_tokens: tokens_per_replica / u64::from(p.lanes),
                s_per_token,
            }),
            None,
        ])
    }

    /// Engine settings for this placement: one instance per replica and pipeline lane.
    pub fn engine_config(&self, s: &ServeSettings) -> Result<EngineConfig> {
        let p = &self.placement;
        let disaggregation = match s.disaggregate {
            None => None,
            Some(split) if split.replicas() != p.replicas => {
                return Err(Error::arg(
                    "disaggregate",
                    format!(
                        "{split} needs {} replicas but the placement has {}; set replicas to {} or change the split",
                        split.replicas(),
                        p.replicas,
                        split.replicas()
                    ),
                ))
            }
            Some(split) => {
                let (per_token, latency) = self.kv_transfer_cost();
                Some(Disaggregation {
                    prefill_instances: split.prefill * p.lanes,
                    transfer_s_per_token: per_token,
                    transfer_latency_s: latency,
                })
            }
        };
        let swap_s_per_token = match s.preemption {
            PreemptionMode::Swap => self.swap_s_per_token()?,
            PreemptionMode::Recompute | PreemptionMode::Never => 0.0,
        };
        Ok(EngineConfig {
            instances: p.replicas * p.lanes,
            kv_tokens_per_instance: (p.kv_capacity_tokens_per_replica
                + if s.kv_spill {
                    p.kv_spill_tokens_per_replica
                } else {
                    0
                })
                / u64::from(p.lanes),
            max_batch: s.max_batch,
            max_batched_tokens: s.max_batched_tokens,
            block_tokens: s.block_tokens,
            speculative: self.speculation.as_ref().map(|x| SpecConfig {
                gamma: x.gamma,
                expected_tokens: x.expected_tokens(),
            }),
            policy: ServingPolicy {
                routing: s.routing,
                priority: s.priority,
                preemption: s.preemption,
                swap_s_per_token,
                prefix_caching: s.prefix_caching,
                chunked_prefill: s.chunked_prefill,
                disaggregation,
                kv_tiers: self.kv_tiers(s)?,
                turn_gap_s: self
                    .hardware
                    .frontend
                    .as_ref()
                    .map_or(0.0, |f| f.turn_gap_s()),
            },
        })
    }

    /// Serve `requests` and aggregate the metrics.
    pub fn simulate<R: RequestSource + ?Sized>(
        &self,
        requests: &R,
        s: &ServeSettings,
        mode: Loop,
    ) -> Result<(Outcome, Summary)> {
        self.simulate_recorded(requests, s, mode, false)
    }

    /// As [`System::simulate`], keeping every iteration in the outcome's timeline if `record`.
    pub fn simulate_recorded<R: RequestSource + ?Sized>(
        &self,
        requests: &R,
        s: &ServeSettings,
        mode: Loop,
        record: bool,
    ) -> Result<(Outcome, Summary)> {
        let observe = Observe {
            timeline: record,
            records: true,
            on_complete: None,
        };
        self.simulate_observed(requests, s, mode, observe)
    }

    /// Serve `requests`, keeping and reporting what `observe` asks for, and aggregate the
    /// metrics as requests complete (in memory independent of the number of requests unless
    /// records or a timeline are kept).
    pub fn simulate_observed<R: RequestSource + ?Sized>(
        &self,
        requests: &R,
        s: &ServeSettings,
        mode: Loop,
        observe: Observe<'_>,
    ) -> Result<(Outcome, Summary)> {
        let (window, what) = self.context_limit();
        // One pass: every request fits the window; the first and last arrival, as the engine's
        // clock holds them.
        let clock = |x: f64| s_from_ns(ns_from_s(x));
        let mut span: Option<(f64, f64)> = None;
        for (i, r) in requests.specs().enumerate() {
            if u64::from(r.prompt_tokens) + u64::from(r.output_tokens) > window {
                return Err(Error::arg(
                    "workload",
                    format!(
                        "request {i} has {} prompt + {} output tokens, more than {what} of {window}",
                        r.prompt_tokens, r.output_tokens
                    ),
                ));
            }
            let a = clock(r.arrival_s);
            span = Some(span.map_or((a, a), |(f, l)| (f.min(a), l.max(a))));
        }
        let open = mode == Loop::Open;
        let mut collector = Collector::new(requests.count(), span.filter(|_| open));
        let mut then = observe.on_complete;
        let mut on_complete = |i: u32, r: &RequestRecord| {
            collector.add(i, r);
            if let Some(f) = then.as_mut() {
                f(i, r);
            }
        };
        let observe = Observe {
            on_complete: Some(&mut on_complete),
            ..observe
        };
        let out =
            engine::run_observed(requests, &self.cost, self.engine_config(s)?, mode, observe)?;
        let summary = summarise_collected(&out, &collector, open);
        Ok((out, summary))
    }
}
