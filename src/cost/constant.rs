//! A test double: every iteration costs the same, so engine results can be computed by hand.

use super::{Batch, CostModel, OpKind, StepCost};

/// Constant cost per iteration plus a constant cost per computed token.
#[derive(Debug, Clone, Copy)]
pub struct ConstantCost {
    /// Fixed time per iteration, s.
    pub per_step_s: f64,
    /// Additional time per token computed, s.
    pub per_token_s: f64,
}

impl CostModel for ConstantCost {
    fn step(&self, batch: &Batch) -> StepCost {
        let mut c = StepCost::default();
        c.op_mut(OpKind::Host).overhead_s =
            self.per_step_s + self.per_token_s * batch.tokens as f64;
        c
    }

    fn window(&self) -> Option<u64> {
        None
    }
}
