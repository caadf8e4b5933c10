//! A system: one model placed on one machine, with its cost model. The glue from profiles to
//! the engine: `System::new` places the model, `step` prices one iteration, `simulate` serves a
//! workload and aggregates the metrics.

use serde::Serialize;

use crate::cost::{Batch, CostModel, GpuCost, StepCost};
use crate::engine::{self, EngineConfig, Loop, Outcome};
use crate::error::{Error, Result};
use crate::metrics::{summarise, Summary};
use crate::placement::{place, ParallelRequest, Placement};
use crate::profile::{HardwareKind, HardwareProfile, ModelProfile};
use crate::workload::RequestSpec;

/// Serving-engine settings a user may change.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ServeSettings {
    /// Most sequences per iteration (vLLM `max_num_seqs`, default 256).
    pub max_batch: u32,
    /// Token budget per iteration: the chunked-prefill chunk (vLLM `max_num_batched_tokens`).
    pub max_batched_tokens: u32,
    /// Tokens per KV-cache block (vLLM default 16).
    pub block_tokens: u32,
}

impl Default for ServeSettings {
    fn default() -> Self {
        ServeSettings {
            max_batch: 256,
            max_batched_tokens: 2048,
            block_tokens: 16,
        }
    }
}

/// A model placed on a machine.
#[derive(Debug, Clone)]
pub struct System {
    /// The machine.
    pub hardware: HardwareProfile,
    /// The model.
    pub model: ModelProfile,
    /// Where the model lives.
    pub placement: Placement,
    cost: GpuCost,
}

impl System {
    /// Place `model` on `hardware` and build its cost model.
    pub fn new(
        hardware: HardwareProfile,
        model: ModelProfile,
        parallel: ParallelRequest,
    ) -> Result<System> {
        let placement = place(&model, &hardware, parallel)?;
        let cost = match hardware.kind() {
            HardwareKind::Gpu(g) => GpuCost::new(&model, g, &placement),
        };
        Ok(System {
            hardware,
            model,
            placement,
            cost,
        })
    }

    /// The cost model of one replica.
    pub fn cost_model(&self) -> &dyn CostModel {
        &self.cost
    }

    /// An empty batch shaped for this model (its sliding window).
    pub fn batch(&self) -> Batch {
        Batch::new(self.cost.window())
    }

    /// Cost of one iteration of one replica.
    pub fn step(&self, batch: &Batch) -> StepCost {
        self.cost.step(batch)
    }

    /// Engine settings for this placement: one instance per replica and pipeline lane.
    pub fn engine_config(&self, s: &ServeSettings) -> EngineConfig {
        let p = &self.placement;
        EngineConfig {
            instances: p.replicas * p.pp,
            kv_tokens_per_instance: p.kv_capacity_tokens_per_replica / u64::from(p.pp),
            max_batch: s.max_batch,
            max_batched_tokens: s.max_batched_tokens,
            block_tokens: s.block_tokens,
        }
    }

    /// Serve `requests` and aggregate the metrics.
    pub fn simulate(
        &self,
        requests: &[RequestSpec],
        s: &ServeSettings,
        mode: Loop,
    ) -> Result<(Outcome, Summary)> {
        let window = self.model.architecture.context_window_tokens;
        if let Some((i, r)) = requests
            .iter()
            .enumerate()
            .find(|(_, r)| u64::from(r.prompt_tokens) + u64::from(r.output_tokens) > window)
        {
            return Err(Error::arg(
                "workload",
                format!(
                    "request {i} has {} prompt + {} output tokens, more than {}'s context window of {window}",
                    r.prompt_tokens, r.output_tokens, self.model.name
                ),
            ));
        }
        let out = engine::run(requests, &self.cost, self.engine_config(s), mode)?;
        let summary = summarise(&out, mode == Loop::Open);
        Ok((out, summary))
    }
}
