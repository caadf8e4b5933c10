//! Cost models: pure functions from a batch shape to the duration of one iteration, broken down
//! by operator and by what bounds each (compute, memory, interconnect, fixed overhead).
//! No state, no randomness.

mod attention;
pub mod batch;
pub mod collective;
pub mod constant;
mod gemm;
pub mod gpu;
pub mod kernel;
mod moe;
pub mod speculative;
pub mod wafer;

use serde::Serialize;

pub use batch::{expected_tokens_per_step, Batch, Sums};
pub use constant::ConstantCost;
pub use gpu::GpuCost;
pub use speculative::SpeculativeCost;
pub use wafer::WaferCost;

/// The operators an iteration is broken into; keys both the cost model and the breakdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// Token embedding lookup.
    Embedding,
    /// Q, K, V and output projections (with norms and rotary embedding).
    AttentionProjections,
    /// Attention over the KV cache (scores and weighted values).
    Attention,
    /// Dense feed-forward layers.
    Mlp,
    /// Mixture-of-experts layers: router, routed and shared experts.
    Experts,
    /// Memory-bound element-wise kernels of every layer: the two residual-add-and-norm kernels
    /// and, in dense layers, the gated activation.
    Elementwise,
    /// Final norm, LM head and sampling kernels.
    LmHead,
    /// Tensor-parallel all-reduces.
    TensorParallelComm,
    /// Expert-parallel all-to-alls under attention data parallelism (dispatch and combine).
    ExpertParallelComm,
    /// Activations sent between pipeline stages.
    PipelineComm,
    /// Wafer: matrix work on every layer's weights (projections, MLP or experts, LM head).
    LayerWeights,
    /// Wafer: traversal of the on-wafer fabric in every stage.
    Fabric,
    /// Wafer: weights streamed from external memory when they do not fit in SRAM.
    WeightStreaming,
    /// Speculative decoding: the draft model's steps.
    DraftModel,
    /// Host time: scheduling, sampling bookkeeping, detokenisation.
    Host,
}

impl OpKind {
    /// Every operator, in breakdown order.
    pub const ALL: [OpKind; 15] = [
        OpKind::Embedding,
        OpKind::AttentionProjections,
        OpKind::Attention,
        OpKind::Mlp,
        OpKind::Experts,
        OpKind::Elementwise,
        OpKind::LmHead,
        OpKind::TensorParallelComm,
        OpKind::ExpertParallelComm,
        OpKind::PipelineComm,
        OpKind::LayerWeights,
        OpKind::Fabric,
        OpKind::WeightStreaming,
        OpKind::DraftModel,
        OpKind::Host,
    ];

    /// Name as printed.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Embedding => "embedding",
            OpKind::AttentionProjections => "attention_projections",
            OpKind::Attention => "attention",
            OpKind::Mlp => "mlp",
            OpKind::Experts => "experts",
            OpKind::Elementwise => "elementwise",
            OpKind::LmHead => "lm_head",
            OpKind::TensorParallelComm => "tensor_parallel_comm",
            OpKind::ExpertParallelComm => "expert_parallel_comm",
            OpKind::PipelineComm => "pipeline_comm",
            OpKind::LayerWeights => "layer_weights",
            OpKind::Fabric => "fabric",
            OpKind::WeightStreaming => "weight_streaming",
            OpKind::DraftModel => "draft_model",
            OpKind::Host => "host",
        }
    }
}

/// What limits an operator or a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    /// Arithmetic throughput.
    Compute,
    /// Memory bandwidth (HBM or SRAM).
    Memory,
    /// Interconnect bandwidth or latency.
    Interconnect,
    /// Fixed per-kernel and host overheads.
    Overhead,
}

impl Bound {
    /// Name as printed.
    pub fn name(self) -> &'static str {
        match self {
            Bound::Compute => "compute",
            Bound::Memory => "memory",
            Bound::Interconnect => "interconnect",
            Bound::Overhead => "overhead",
        }
    }
}

/// Cost of one operator summed over the layers it runs in, on one device of the replica.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct OpCost {
    /// FLOPs executed per device.
    pub flops: f64,
    /// Bytes moved to or from memory per device.
    pub bytes: f64,
    /// Time at the achieved compute rate, s.
    pub compute_s: f64,
    /// Time at the achieved memory bandwidth, s.
    pub memory_s: f64,
    /// Part of the shorter of `compute_s` and `memory_s` that the longer does not hide, s.
    pub exposed_s: f64,
    /// Interconnect time, s.
    pub interconnect_s: f64,
    /// Fixed overheads, s.
    pub overhead_s: f64,
}

impl OpCost {
    /// Duration: the roofline (the slower of compute and memory, plus the exposed part of the
    /// other) plus interconnect and overheads.
    pub fn time_s(&self) -> f64 {
        self.roof_s() + self.interconnect_s + self.overhead_s
    }

    /// Compute and memory together: the slower of the two plus the exposed part of the other.
    pub fn roof_s(&self) -> f64 {
        self.compute_s.max(self.memory_s) + self.exposed_s
    }

    /// The component that contributes most of this operator's time.
    pub fn bound(&self) -> Bound {
        let roof = self.roof_s();
        let roof_bound = if self.compute_s >= self.memory_s {
            Bound::Compute
        } else {
            Bound::Memory
        };
        [
            (roof, roof_bound),
            (self.interconnect_s, Bound::Interconnect),
            (self.overhead_s, Bound::Overhead),
        ]
        .into_iter()
        .fold((f64::NEG_INFINITY, Bound::Overhead), |best, x| {
            if x.0 > best.0 {
                x
            } else {
                best
            }
        })
        .1
    }
}

/// The cost of one iteration with its breakdown (a fixed array: no allocation).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StepCost {
    /// Per-operator costs, indexed like [`OpKind::ALL`].
    pub ops: [OpCost; 15],
}

impl StepCost {
    /// Mutable access to one operator's cost.
    pub fn op_mut(&mut self, kind: OpKind) -> &mut OpCost {
        &mut self.ops[kind as usize]
    }

    /// One operator's cost.
    pub fn op(&self, kind: OpKind) -> &OpCost {
        &self.ops[kind as usize]
    }

    /// Duration of the iteration, s.
    pub fn total_s(&self) -> f64 {
        self.ops.iter().map(OpCost::time_s).sum()
    }

    /// Time attributed to each bound: every operator's time goes to its own bound, except that
    /// its interconnect and overhead parts always go to those bounds.
    pub fn time_by_bound(&self) -> [(Bound, f64); 4] {
        let mut out = [
            (Bound::Compute, 0.0),
            (Bound::Memory, 0.0),
            (Bound::Interconnect, 0.0),
            (Bound::Overhead, 0.0),
        ];
        for op in &self.ops {
            let roof = op.roof_s();
            if op.compute_s >= op.memory_s {
                out[0].1 += roof;
            } else {
                out[1].1 += roof;
            }
            out[2].1 += op.interconnect_s;
            out[3].1 += op.overhead_s;
        }
        out
    }

    /// What limits the iteration: the bound holding the largest share of its time.
    pub fn bound(&self) -> Bound {
        self.time_by_bound()
            .into_iter()
            .fold((Bound::Overhead, f64::NEG_INFINITY), |best, x| {
                if x.1 > best.1 {
                    x
                } else {
                    best
                }
            })
            .0
    }
}

/// The times of one iteration's operators, s, indexed like [`OpKind::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StepTimes {
    times: [f64; 15],
}

const ATTENTION: usize = OpKind::Attention as usize;

impl StepTimes {
    /// The times of `cost`'s operators.
    pub fn of(cost: &StepCost) -> Self {
        StepTimes {
            times: cost.ops.map(|o| o.time_s()),
        }
    }

    /// Duration of the iteration, s: [`StepCost::total_s`] of the cost they came from, bit for
    /// bit (the same sum in the same order).
    pub fn total_s(&self) -> f64 {
        self.times.iter().sum()
    }

    /// The sum arranged for other attention times ([`CostModel::step_s_varied`]).
    pub fn around_attention(&self) -> AroundAttention {
        let mut after = [0.0; 11];
        let mut after_len = 0;
        for &t in &self.times[ATTENTION + 1..] {
            if t != 0.0 {
                after[after_len] = t;
                after_len += 1;
            }
        }
        AroundAttention {
            times: self.times,
            before: self.times[..ATTENTION].iter().sum(),
            after,
            after_len,
        }
    }
}

/// An iteration's operator times arranged to sum them with attention taking another time: the
/// sum before attention, and the times after it without the zeros (`x + 0.0` is `x` unless `x`
/// is `-0.0`, and `x + -0.0` is `x`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AroundAttention {
    times: [f64; 15],
    before: f64,
    after: [f64; 11],
    after_len: usize,
}

impl AroundAttention {
    /// [`StepTimes::total_s`] with attention taking `attention_s` instead, bit for bit: the same
    /// sum in the same order, less the additions of zeros that leave it unchanged.
    pub fn total_s(&self, attention_s: f64) -> f64 {
        let mut total = self.before + attention_s;
        if total == 0.0 && total.is_sign_negative() {
            // Adding 0.0 would change the sign: the whole sum.
            for &t in &self.times[ATTENTION + 1..] {
                total += t;
            }
            return total;
        }
        for &t in &self.after[..self.after_len] {
            total += t;
        }
        total
    }
}

/// A pure function from a batch to the cost of one iteration.
pub trait CostModel: Sync {
    /// The cost of one iteration over `batch`, with its breakdown.
    fn step(&self, batch: &Batch) -> StepCost;

    /// The duration of one iteration over `batch`, s.
    fn step_s(&self, batch: &Batch) -> f64 {
        self.step(batch).total_s()
    }

    /// The operators' times of one iteration over `batch`; their
    /// [`total_s`](StepTimes::total_s) is [`CostModel::step_s`].
    fn step_times(&self, batch: &Batch) -> StepTimes {
        StepTimes::of(&self.step(batch))
    }

    /// [`CostModel::step_s`] of `batch`, bit for bit, where `base` holds the times of an
    /// iteration over a batch that differs from `batch` in its attention sums alone
    /// (`pairs_*`, `kv_read_*`: the same sequences, each with a longer context). A model whose
    /// other operators do not read those sums prices attention alone; by default the whole
    /// iteration is priced.
    fn step_s_varied(&self, base: &AroundAttention, batch: &Batch) -> f64 {
        let _ = base;
        self.step_s(batch)
    }

    /// The model's sliding window, to shape batches.
    fn window(&self) -> Option<u64>;

    /// What prices `op`'s time: a curve fitted to measured kernels, the scalar roofline, a
    /// link's bandwidth and latency, ... (the step breakdown's `priced_by` column).
    fn priced_by(&self, op: OpKind) -> &'static str {
        let _ = op;
        "-"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_times_with_another_attention_sum_as_the_whole_cost_does() {
        // Operators with times, zeros of both signs, and an all-negative-zero iteration (whose
        // sum keeps its sign only while every term is -0.0).
        let op = |x: f64| OpCost {
            compute_s: x,
            memory_s: x,
            exposed_s: x,
            interconnect_s: x,
            overhead_s: x,
            ..OpCost::default()
        };
        let costs = [
            [
                1e-3, 2e-4, 3e-5, 0.0, 7e-7, 2e-6, -0.0, 1.5e-3, 0.0, 0.0, 1e-9, 0.0, 0.0, 0.0,
                4e-5,
            ],
            [0.0; 15],
            [-0.0; 15],
            [
                -0.0, -0.0, -0.0, 0.0, -0.0, -0.0, 1e-6, -0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
            ],
        ];
        for times in costs {
            let mut c = StepCost { ops: times.map(op) };
            let times = StepTimes::of(&c);
            assert_eq!(times.total_s().to_bits(), c.total_s().to_bits());
            let base = times.around_attention();
            for attention in [0.0, -0.0, 1e-12, 3.3e-4, 0.1] {
                *c.op_mut(OpKind::Attention) = op(attention);
                let t = c.op(OpKind::Attention).time_s();
                assert_eq!(
                    base.total_s(t).to_bits(),
                    c.total_s().to_bits(),
                    "{times:?} with {attention}"
                );
            }
        }
    }
}
