//! Speculative decoding on either machine: a draft model proposes `gamma` tokens one step at a
//! time, then the target verifies them (and yields one more) in a single step over `gamma + 1`
//! tokens per decoding sequence. The draft runs on the same devices as the target, in turn with
//! it, within the same engine iteration (so without host scheduling time of its own); its cost
//! appears as one operator of the breakdown.
//!
//! The verification prices the target over `gamma + 1` tokens per decoding sequence like any
//! other step, so it pays what those tokens touch (a MoE layer's routed experts above all). A
//! chain draft head built as a layer of the target (DeepSeek-V3's multi-token-prediction module,
//! `models/deepseek-v3-mtp.toml`) is a draft model here: its use of the target's hidden state
//! costs only its input projection, ignored like norms.
//!
//! Ignored: tree drafts, other draft heads (EAGLE, Medusa), sampling and acceptance work per draft
//! token, and overlap of draft and target work.

use super::{AroundAttention, Batch, Bound, CostModel, OpCost, OpKind, StepCost, StepTimes};

/// A target and a draft cost model sharing one replica.
#[derive(Debug, Clone)]
pub struct SpeculativeCost<C> {
    /// Cost of the target model.
    pub target: C,
    /// Cost of the draft model on the same devices.
    pub draft: C,
}

impl<C: CostModel> CostModel for SpeculativeCost<C> {
    fn step(&self, b: &Batch) -> StepCost {
        let mut c = self.target.step(b);
        if b.gamma == 0 {
            return c;
        }
        // Drafting runs inside the engine's iteration: no host scheduling time of its own.
        let draft = |batch: &Batch| {
            let mut s = self.draft.step(batch);
            *s.op_mut(OpKind::Host) = OpCost::default();
            s
        };
        let decode = draft(&b.draft_decode.as_batch());
        let prefill = draft(&b.draft_prefill.as_batch());
        let g = f64::from(b.gamma);
        let mut op = OpCost::default();
        for (step, times) in [(&decode, g), (&prefill, 1.0)] {
            for (bound, t) in step.time_by_bound() {
                let t = t * times;
                match bound {
                    Bound::Compute => op.compute_s += t,
                    Bound::Memory => op.memory_s += t,
                    Bound::Interconnect => op.interconnect_s += t,
                    Bound::Overhead => op.overhead_s += t,
                }
            }
            op.flops += times * step.ops.iter().map(|o| o.flops).sum::<f64>();
            op.bytes += times * step.ops.iter().map(|o| o.bytes).sum::<f64>();
        }
        // The draft's compute-bound and memory-bound operators run one after another, so their
        // times add; keep the sum on the larger side of the roofline.
        let roof = op.compute_s + op.memory_s;
        if op.compute_s >= op.memory_s {
            op.compute_s = roof;
        } else {
            op.memory_s = roof;
        }
        *c.op_mut(OpKind::DraftModel) = op;
        c
    }

    fn step_s(&self, b: &Batch) -> f64 {
        if b.gamma == 0 {
            return self.target.step_s(b);
        }
        self.step(b).total_s()
    }

    fn step_times(&self, b: &Batch) -> StepTimes {
        if b.gamma == 0 {
            return self.target.step_times(b);
        }
        StepTimes::of(&self.step(b))
    }

    fn step_s_varied(&self, base: &AroundAttention, b: &Batch) -> f64 {
        if b.gamma == 0 {
            return self.target.step_s_varied(base, b);
        }
        self.step_s(b)
    }

    fn window(&self) -> Option<u64> {
        self.target.window()
    }

    fn priced_by(&self, op: OpKind) -> &'static str {
        match op {
            OpKind::DraftModel => "the draft model's steps (its own cost model)",
            _ => self.target.priced_by(op),
        }
    }
}
