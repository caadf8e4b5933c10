//! Cost of one iteration on a wafer-scale replica whose weights sit in on-chip SRAM
//! (DESIGN.md section 3).
//!
//! The model is a pipeline of stages, one per layer plus the LM head, laid out over `pp` wafers.
//! Each wafer's cores are shared among its stages in proportion to their work per token, so every
//! stage on a wafer takes the same time per token: the wafer's active FLOPs per token over its
//! achieved FLOP/s, or its active weight bytes over its SRAM bandwidth if that is longer. Tokens
//! flow through the stages one behind another: an iteration over T new tokens costs the pipeline
//! fill (N - 1 stages for the first token) plus T tokens through the slowest stage. Per-user speed
//! is therefore bounded by the traversal time, throughput by the slowest stage.
//!
//! Latency terms on top: fabric traversal in every stage (`phases x 2 sqrt(cores of the stage)`
//! hops, a broadcast and a reduction across a square region per matrix phase), wafer-to-wafer
//! hops, host time. Attention reads the KV cache from SRAM at the stage's share of the bandwidth;
//! KV beyond the SRAM room is read from external memory, and weights that do not fit stream from
//! external memory every iteration.
//!
//! Ignored: congestion on the fabric, uneven core allocation between attention and projections,
//! overlap of streamed weights with compute beyond one layer's double buffer.

use super::{Batch, CostModel, OpCost, OpKind, StepCost};
use crate::error::{Error, Result};
use crate::placement::{Placement, WeightHome};
use crate::profile::{ModelProfile, WaferSystem};

/// Per-replica constants of one placed model on one wafer cluster.
#[derive(Debug, Clone)]
pub struct WaferCost {
    stages: f64,
    wafers: f64,
    layers: f64,
    window_layers: f64,
    stages_per_wafer: f64,
    flops_per_token_wafer: f64,
    weight_bytes_per_token_wafer: f64,
    kv_bytes_per_token_layer: f64,
    kv_bytes_per_token: f64,
    attn_flops_per_pair_layer: f64,
    act_bytes_per_token: f64,
    window: Option<u64>,
    flops_per_s: f64,
    sram_bytes_per_s: f64,
    hop_s_per_stage: f64,
    link_bytes_per_s: f64,
    link_latency_s: f64,
    external_bytes_per_s: f64,
    stream_bytes_per_wafer: f64,
    kv_sram_tokens: f64,
    iteration_s: f64,
    per_sequence_s: f64,
}

impl WaferCost {
    /// Precompute the constants of `model` placed by `placement` on `wafer`.
    pub fn new(model: &ModelProfile, wafer: &WaferSystem, placement: &Placement) -> Self {
        let d = model.dims();
        let p = &model.precision;
        let wafers = placement.pp as f64;
        let layers = model.architecture.layers as f64;
        let layers_per_wafer = (layers / wafers).ceil();
        let moe = model.moe.as_ref();
        // Active work per token of one layer, averaged over dense and MoE layers.
        let active_layer_params = d.attn_params_per_layer
            + (d.dense_layers as f64 * d.dense_mlp_params_per_layer
                + d.moe_layers as f64
                    * (moe.map_or(0.0, |m| m.active_experts as f64) * d.expert_params
                        + d.shared_expert_params_per_layer
                        + d.router_params_per_layer))
                / layers;
        let layer_bytes = d.attn_params_per_layer * p.weights.bytes()
            + (d.dense_layers as f64 * d.dense_mlp_params_per_layer * p.weights.bytes()
                + d.moe_layers as f64
                    * ((moe.map_or(0.0, |m| m.active_experts as f64) * d.expert_params
                        + d.shared_expert_params_per_layer)
                        * model.expert_weight_precision().bytes()
                        + d.router_params_per_layer * p.weights.bytes()))
                / layers;
        // The last wafer carries the LM head as one more stage: the busiest wafer bounds the pipeline.
        let head_flops = 2.0 * d.lm_head_params;
        let flops_per_token_wafer = 2.0 * active_layer_params * layers_per_wafer + head_flops;
        let weight_bytes_per_token_wafer =
            layer_bytes * layers_per_wafer + d.lm_head_params * p.weights.bytes();
        let stages_per_wafer = layers_per_wafer + 1.0;
        let cores_per_stage = wafer.cores as f64 / stages_per_wafer;
        let hop_s_per_stage = wafer.overheads.fabric_phases_per_layer
            * 2.0
            * cores_per_stage.sqrt()
            * wafer.fabric_hop_latency_s;
        let stream_bytes_per_wafer = if placement.weights_in == WeightHome::ExternalMemory {
            placement.weight_bytes_per_device
        } else {
            0.0
        };
        WaferCost {
            stages: layers + 1.0,
            wafers,
            layers,
            window_layers: model
                .attention
                .sliding_window_layer_fraction
                .map_or(0.0, |f| (f * layers).round()),
            stages_per_wafer,
            flops_per_token_wafer,
            weight_bytes_per_token_wafer,
            kv_bytes_per_token_layer: d.kv_elements_per_token_per_layer * p.kv_cache.bytes(),
            kv_bytes_per_token: model.kv_bytes_per_token(),
            attn_flops_per_pair_layer: d.attn_flops_per_pair_per_layer,
            act_bytes_per_token: model.architecture.hidden_size as f64 * p.activations.bytes(),
            window: model.attention.sliding_window_tokens,
            flops_per_s: wafer.peak_flops_per_s * wafer.efficiency.compute,
            sram_bytes_per_s: wafer.sram_bandwidth_bytes_per_s,
            hop_s_per_stage,
            link_bytes_per_s: wafer.link.bandwidth_bytes_per_s,
            link_latency_s: wafer.link.latency_s,
            external_bytes_per_s: wafer.external_memory.bandwidth_bytes_per_s,
            stream_bytes_per_wafer,
            kv_sram_tokens: placement.kv_capacity_tokens_per_replica as f64,
            iteration_s: wafer.overheads.iteration_s,
            per_sequence_s: wafer.overheads.per_sequence_s,
        }
    }

    /// Time one token spends in the slowest stage for its weights (compute or SRAM), s.
    fn stage_s(&self) -> (f64, f64) {
        (
            self.flops_per_token_wafer / self.flops_per_s,
            self.weight_bytes_per_token_wafer / self.sram_bytes_per_s,
        )
    }
}

impl CostModel for WaferCost {
    fn step(&self, b: &Batch) -> StepCost {
        let mut c = StepCost::default();
        if b.tokens == 0 {
            return c;
        }
        let t = b.tokens as f64;
        let fill = self.stages - 1.0;
        let (compute_s, memory_s) = self.stage_s();

        // Attention of the whole batch in one layer's stage, which holds 1/stages_per_wafer of
        // the wafer's cores and SRAM bandwidth.
        let full_layers = self.layers - self.window_layers;
        let pairs =
            (full_layers * b.pairs_full + self.window_layers * b.pairs_window) / self.layers;
        let kv_tokens =
            (full_layers * b.kv_read_full + self.window_layers * b.kv_read_window) / self.layers;
        let share = 1.0 / self.stages_per_wafer;
        let attn_flops = pairs * self.attn_flops_per_pair_layer;
        let attn_bytes = (kv_tokens + t) * self.kv_bytes_per_token_layer;
        let attn_compute = attn_flops / (self.flops_per_s * share);
        let attn_memory = attn_bytes / (self.sram_bytes_per_s * share);

        // Weights: every token passes the slowest stage; the first also fills the pipeline.
        let tokens_through = t + fill;
        *c.op_mut(OpKind::LayerWeights) = OpCost {
            flops: self.flops_per_token_wafer * self.wafers * t,
            bytes: self.weight_bytes_per_token_wafer * self.wafers,
            compute_s: tokens_through * compute_s,
            memory_s: tokens_through * memory_s,
            ..OpCost::default()
        };
        // Attention: the last stage sees the whole batch's attention; the fill carries one
        // token's average share per stage.
        let attn_scale = 1.0 + fill / t;
        let external_kv = (b.kv_read_full - self.kv_sram_tokens).max(0.0) * self.kv_bytes_per_token;
        *c.op_mut(OpKind::Attention) = OpCost {
            flops: attn_flops * self.layers,
            bytes: attn_bytes * self.layers + external_kv,
            compute_s: attn_compute * attn_scale,
            memory_s: attn_memory * attn_scale,
            exposed_s: 0.0,
            // KV spilled beyond SRAM is read over every wafer's external-memory link in parallel.
            interconnect_s: external_kv / (self.external_bytes_per_s * self.wafers),
            overhead_s: 0.0,
        };
        // Fabric traversal in every stage (latency, paid once per iteration), and hops between wafers.
        c.op_mut(OpKind::Fabric).interconnect_s = self.stages * self.hop_s_per_stage;
        if self.wafers > 1.0 {
            let op = c.op_mut(OpKind::PipelineComm);
            op.bytes = (self.wafers - 1.0) * t * self.act_bytes_per_token;
            op.interconnect_s = (self.wafers - 1.0)
                * (self.link_latency_s + t * self.act_bytes_per_token / self.link_bytes_per_s);
        }
        if self.stream_bytes_per_wafer > 0.0 {
            // Weights stream in over each wafer's external-memory link, in parallel across wafers.
            let op = c.op_mut(OpKind::WeightStreaming);
            op.bytes = self.stream_bytes_per_wafer * self.wafers;
            op.interconnect_s = self.stream_bytes_per_wafer / self.external_bytes_per_s;
        }
        c.op_mut(OpKind::Host).overhead_s =
            self.iteration_s + self.per_sequence_s * b.sequences as f64;
        c
    }

    fn window(&self) -> Option<u64> {
        self.window
    }
}

/// Solve for the two free latency parameters of a wafer profile, `efficiency.compute` and
/// `fabric_hop_latency_s`, so that single-sequence decode speed matches two published figures.
///
/// Each row is (hardware, model, context tokens, published tokens/s per user). The decode time
/// of one token is linear in `1 / (peak x efficiency)` and in the hop latency as long as stages
/// are compute-bound, so two rows determine both exactly; the rows' cost models are probed to
/// find the coefficients. Returns (efficiency, hop latency in s).
pub fn fit_two_rows(rows: &[(crate::system::System, u64, f64); 2]) -> Result<(f64, f64)> {
    use crate::profile::HardwareKind;
    let mut a = [[0.0; 2]; 2];
    let mut rhs = [0.0; 2];
    for (i, (sys, context, tok_s)) in rows.iter().enumerate() {
        let Some(HardwareKind::Wafer(w)) = sys.hardware.kind() else {
            return Err(Error::arg(
                "fit",
                format!("{} is not a wafer profile", sys.hardware.name),
            ));
        };
        let at = |eff: f64, hop: f64| {
            let mut w = w.clone();
            w.efficiency.compute = eff;
            w.fabric_hop_latency_s = hop;
            let cost = WaferCost::new(&sys.model, &w, &sys.placement);
            cost.step_s(&Batch::decode(1, *context, cost.window()))
        };
        // Probe where stages are compute-bound: tiny efficiencies.
        let (e1, e2, h) = (1e-3, 2e-3, 1e-9);
        let (t1, t2, t3) = (at(e1, 0.0), at(e2, 0.0), at(e1, h));
        let (x1, x2) = (
            1.0 / (w.peak_flops_per_s * e1),
            1.0 / (w.peak_flops_per_s * e2),
        );
        let slope_x = (t1 - t2) / (x1 - x2);
        let slope_h = (t3 - t1) / h;
        let constant = t1 - slope_x * x1;
        a[i] = [slope_x, slope_h];
        rhs[i] = 1.0 / tok_s - constant;
    }
    let det = a[0][0] * a[1][1] - a[0][1] * a[1][0];
    let x = (rhs[0] * a[1][1] - a[0][1] * rhs[1]) / det;
    let h = (a[0][0] * rhs[1] - a[1][0] * rhs[0]) / det;
    if !(det.abs() > 0.0 && x > 0.0 && h >= 0.0) {
        return Err(Error::arg(
            "fit",
            format!("the two rows admit no physical solution (1/FLOP/s = {x:e}, hop = {h:e} s)"),
        ));
    }
    let peak = rows[0]
        .0
        .hardware
        .wafer()
        .map_or(f64::NAN, |w| w.peak_flops_per_s);
    Ok((1.0 / (x * peak), h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::ParallelRequest;
    use crate::profile::{load_hardware, load_model, Override};
    use crate::system::System;

    fn sys(model: &str, sets: &[&str]) -> System {
        let o: Vec<Override> = sets.iter().map(|s| Override::parse(s).unwrap()).collect();
        System::new(
            load_hardware("wse-3", &o).unwrap(),
            load_model(model, &o).unwrap(),
            ParallelRequest::default(),
        )
        .unwrap()
    }

    fn launch_rows() -> [(System, u64, f64); 2] {
        [
            (sys("llama-3.1-8b", &[]), 1024, 1800.0),
            (
                sys("llama-3.1-70b", &["hardware.wafer.wafers=4"]),
                1024,
                450.0,
            ),
        ]
    }

    fn per_user(s: &System, batch: u32, context: u64) -> f64 {
        1.0 / s
            .step(&Batch::decode(batch, context, s.batch().window))
            .total_s()
    }

    #[test]
    fn wse3_fit_is_reproduced() {
        let (eff, hop) = fit_two_rows(&launch_rows()).unwrap();
        let w = load_hardware("wse-3", &[]).unwrap().wafer.unwrap();
        approx::assert_relative_eq!(w.efficiency.compute, eff, max_relative = 1e-3);
        approx::assert_relative_eq!(w.fabric_hop_latency_s, hop, max_relative = 1e-3);
        // And with the shipped values the launch rows come out at their published speeds.
        for (s, ctx, published) in launch_rows() {
            approx::assert_relative_eq!(per_user(&s, 1, ctx), published, max_relative = 2e-3);
        }
    }

    #[test]
    fn a_model_too_big_for_the_sram_streams_at_the_stated_cost() {
        // 70B in 16-bit needs 4 wafers; on 2 its weights stream from external memory.
        let resident = sys("llama-3.1-70b", &["hardware.wafer.wafers=4"]);
        let streamed = sys("llama-3.1-70b", &["hardware.wafer.wafers=2"]);
        assert_eq!(resident.placement.weights_in, WeightHome::Sram);
        assert_eq!(resident.placement.pp, 4);
        assert_eq!(streamed.placement.weights_in, WeightHome::ExternalMemory);
        let w = streamed.hardware.wafer().unwrap();
        let stream_s =
            streamed.placement.weight_bytes_per_device / w.external_memory.bandwidth_bytes_per_s;
        let t = streamed.step(&Batch::decode(1, 1024, None)).total_s();
        assert!(t >= stream_s, "{t} < {stream_s}");
        assert!(per_user(&resident, 1, 1024) > 100.0 * per_user(&streamed, 1, 1024));
    }

    #[test]
    fn a_model_beyond_external_memory_is_refused() {
        let o: Vec<Override> = ["hardware.wafer.external_memory.capacity_bytes=1e11"]
            .iter()
            .map(|s| Override::parse(s).unwrap())
            .collect();
        let e = System::new(
            load_hardware("wse-3", &o).unwrap(),
            load_model("llama-3.1-70b", &o).unwrap(),
            ParallelRequest::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("does not fit") && e.contains("external memory"),
            "{e}"
        );
    }

    #[test]
    fn kv_room_holds_fewer_sequences_as_context_grows_and_spills_beyond() {
        let s = sys("llama-3.1-8b", &[]);
        let room = s.placement.kv_capacity_tokens_per_replica;
        let fits = |ctx: u64| room / ctx;
        assert!(fits(8192) > fits(32768) && fits(32768) > fits(131072));
        // A batch whose KV exceeds the SRAM room pays for reading the excess from external memory.
        let inside = (room / 8192) as u32;
        let t_in = s.step(&Batch::decode(inside, 8192, None));
        let t_out = s.step(&Batch::decode(inside * 4, 8192, None));
        assert_eq!(t_in.op(OpKind::Attention).interconnect_s, 0.0);
        assert!(t_out.op(OpKind::Attention).interconnect_s > 0.0);
    }

    #[test]
    fn per_user_speed_is_bounded_by_traversal_and_throughput_by_the_slowest_stage() {
        let s = sys("llama-3.1-8b", &[]);
        let (one, many) = (per_user(&s, 1, 1024), per_user(&s, 64, 1024));
        assert!(many < one);
        assert!(64.0 * many > 10.0 * one, "pipelining raises throughput");
        let c = WaferCost::new(&s.model, s.hardware.wafer().unwrap(), &s.placement);
        let (compute_s, memory_s) = c.stage_s();
        let ceiling = 1.0 / compute_s.max(memory_s);
        assert!(4096.0 * per_user(&s, 4096, 16) < ceiling);
    }
}
