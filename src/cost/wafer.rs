//! Cost of one iteration on a wafer-scale replica whose weights sit in on-chip SRAM
//! (DESIGN.md section 3), from per-core physics.
//!
//! Layout. The model is a pipeline of layers (plus the LM head) over `pp` wafers, as evenly as
//! the layer count allows (the last wafer also holds the head). On each wafer every stage gets a
//! square region of cores in proportion to its weight bytes, and every core of a region holds a
//! slice of each of the stage's matrices, so all cores hold the same bytes `b = W_wafer / cores`.
//! A routed expert of an MoE layer lives on its own `N / E` cores of the layer's region `N`.
//!
//! One pass of a block of `k` tokens of one sequence (a decode token, `gamma + 1` tokens being
//! verified, a prefill chunk) through one layer costs
//!
//! ```text
//! t_layer = t_sync                                   software generation's sync/reduction
//!         + sum over phase groups max(b_g / r, 2 k p_g / f)   weight reads vs arithmetic
//!         + max(kv_layer / (N r), attn_flops / (N f))        KV-cache reads vs attention
//!         + hops x cycles_per_hop / clock                    fabric traversal
//! ```
//!
//! with `r` a core's SRAM read rate, `f` its dense FLOP/s, `b_g`/`p_g` the bytes/parameters a
//! core holds of the phase group (attention and always-active weights; the routed experts),
//! and hops per layer `2 sqrt(N)` per matrix phase (a broadcast along the rows, a reduction
//! along the columns): dense layers have `phases` of them over `N`; MoE layers half of them over
//! `N` (attention), a dispatch and combine across `N`, and half over an expert's `N / E`.
//! Between wafers each pass adds a link latency and the block's activations over the link.
//!
//! Blocks follow one another through the pipeline: an iteration costs the traversal of one block
//! plus, for every further block, the occupancy of the busiest stage (its sync, reads or
//! arithmetic, and attention; fabric latency overlaps the next block). A block is either one
//! sequence's new tokens together (weights read once for all of them) or a single token (the
//! tokens of a prefill chunk or of a verification stream one behind another, every stage busy at
//! once); the faster of the two is taken. Per-user speed is therefore bounded by the traversal,
//! throughput by the busiest stage. A speculative-decoding draft is co-resident: it holds its
//! share of every wafer's cores, by bytes, and pays its own layers' costs.
//!
//! Also: KV beyond the SRAM room is read from external memory, and weights that do not fit
//! stream from external memory every iteration; host time per iteration and per sequence.
//!
//! Ignored: fabric congestion, the softmax reductions of attention, uneven expert loads beyond
//! the expected tokens per touched expert, overlap of streamed weights with compute.

use super::{Batch, CostModel, OpCost, OpKind, StepCost};
use crate::placement::{Placement, WeightHome};
use crate::profile::{ModelProfile, WaferSystem};

/// One kind of wafer of the pipeline: how many there are and what a core of it holds.
#[derive(Debug, Clone, Copy, Default)]
struct WaferClass {
    /// Wafers of this kind.
    count: f64,
    /// Layers on each.
    layers: f64,
    /// Whether it holds the LM head.
    head: bool,
    /// Bytes a core holds of one layer's always-active weights (attention, dense MLP, shared
    /// experts, router).
    core_dense_bytes: f64,
    /// Bytes a core holds of one layer's routed-expert weights.
    core_expert_bytes: f64,
    /// Bytes a core of the head's region holds.
    core_head_bytes: f64,
    /// Cores of one layer's region.
    layer_cores: f64,
    /// Cores of the head's region.
    head_cores: f64,
}

/// Per-replica constants of one placed model on one wafer cluster.
#[derive(Debug, Clone)]
pub struct WaferCost {
    classes: [WaferClass; 3],
    wafers: f64,
    layers: f64,
    window_layers: f64,
    dense_bytes_per_param: f64,
    expert_bytes_per_param: f64,
    experts: f64,
    active_experts: f64,
    hops_per_sqrt_layer_core: f64,
    hops_per_sqrt_expert_core: f64,
    kv_bytes_per_token_layer: f64,
    kv_bytes_per_token: f64,
    attn_flops_per_pair_layer: f64,
    act_bytes_per_token: f64,
    window: Option<u64>,
    read_bytes_per_s: f64,
    flops_per_s: f64,
    hop_s: f64,
    sync_s: f64,
    link_bytes_per_s: f64,
    link_latency_s: f64,
    external_bytes_per_s: f64,
    stream_bytes_per_wafer: f64,
    resident_bytes: f64,
    kv_sram_tokens: f64,
    iteration_s: f64,
    per_sequence_s: f64,
    active_params: f64,
}

/// What one block costs in one stage (or summed over stages), by what bounds each part.
#[derive(Debug, Clone, Copy, Default)]
struct StageTime {
    /// Weight reads at the SRAM port and their arithmetic, each phase group's slower one.
    weights_s: f64,
    /// Of `weights_s`, the part where arithmetic is the slower.
    weights_compute_bound_s: f64,
    /// KV-cache reads and attention arithmetic, the slower one.
    attention_s: f64,
    /// Of `attention_s`, the part where arithmetic is the slower.
    attention_compute_bound_s: f64,
    /// Fabric traversal, s.
    hops_s: f64,
    /// Synchronisation of the stages, s.
    sync_s: f64,
}

impl StageTime {
    fn add(&mut self, o: &StageTime, times: f64) {
        self.weights_s += o.weights_s * times;
        self.weights_compute_bound_s += o.weights_compute_bound_s * times;
        self.attention_s += o.attention_s * times;
        self.attention_compute_bound_s += o.attention_compute_bound_s * times;
        self.hops_s += o.hops_s * times;
        self.sync_s += o.sync_s * times;
    }

    /// Time the stage's cores are busy with the block (fabric latency excluded: it overlaps the
    /// next block's work).
    fn occupancy_s(&self) -> f64 {
        self.sync_s + self.weights_s + self.attention_s
    }

    fn total_s(&self) -> f64 {
        self.occupancy_s() + self.hops_s
    }
}

/// The slower of reading `bytes` at `read` bytes/s and `flops` at `flops_per_s`, and that part
/// again if arithmetic is the slower (else 0).
fn roof(bytes: f64, read: f64, flops: f64, flops_per_s: f64) -> (f64, f64) {
    let (m, c) = (bytes / read, flops / flops_per_s);
    (m.max(c), if c > m { c } else { 0.0 })
}

/// One block's share of a batch: tokens, and per layer the attention pairs and KV tokens read.
#[derive(Debug, Clone, Copy)]
struct Block {
    tokens: f64,
    head_tokens: f64,
    pairs: f64,
    kv_tokens: f64,
}

impl WaferCost {
    /// Precompute the constants of `model` placed by `placement` on `wafer`, alone on its cores.
    pub fn new(model: &ModelProfile, wafer: &WaferSystem, placement: &Placement) -> Self {
        WaferCost::sharing(model, wafer, placement, 1.0)
    }

    /// Like [`WaferCost::new`] for a model holding `core_share` of every wafer's cores (a
    /// speculative-decoding target and its co-resident draft split them by weight bytes, so
    /// every core holds the same bytes and the draft's layers have small regions of their own).
    pub fn sharing(
        model: &ModelProfile,
        wafer: &WaferSystem,
        placement: &Placement,
        core_share: f64,
    ) -> Self {
        let d = model.dims();
        let p = &model.precision;
        let layers_n = model.architecture.layers.max(1);
        let layers = layers_n as f64;
        let pp = placement.pp.clamp(1, layers_n);
        let moe = model.moe.as_ref();
        let (wb, eb) = (p.weights.bytes(), model.expert_weight_precision().bytes());
        let experts = moe.map_or(0.0, |m| m.experts as f64);
        let active_experts = moe.map_or(0.0, |m| m.active_experts as f64);
        let moe_share = d.moe_layers as f64 / layers;
        // Always-active and routed-expert bytes of an average layer.
        let dense_layer_bytes = d.attn_params_per_layer * wb
            + (d.dense_layers as f64 * d.dense_mlp_params_per_layer * wb
                + d.moe_layers as f64
                    * (d.shared_expert_params_per_layer * eb + d.router_params_per_layer * wb))
                / layers;
        let expert_layer_bytes = moe_share * experts * d.expert_params * eb;
        let layer_bytes = dense_layer_bytes + expert_layer_bytes;
        let head_bytes = d.lm_head_params * wb;
        let cores = wafer.cores as f64 * core_share.clamp(f64::MIN_POSITIVE, 1.0);
        // Layers spread as evenly as the count allows: `layers % pp` wafers hold one more; the
        // last wafer (one of the others) also holds the head.
        let lo = f64::from(layers_n / pp);
        let hi_count = f64::from(layers_n % pp);
        let class = |count: f64, n: f64, head: bool| {
            let wafer_bytes = n * layer_bytes + if head { head_bytes } else { 0.0 };
            // Regions in proportion to bytes: every core holds wafer_bytes / cores.
            let cores_per_byte = cores / wafer_bytes;
            let layer_cores = layer_bytes * cores_per_byte;
            WaferClass {
                count,
                layers: n,
                head,
                core_dense_bytes: dense_layer_bytes / layer_cores,
                core_expert_bytes: expert_layer_bytes / layer_cores,
                core_head_bytes: wafer_bytes / cores,
                layer_cores,
                head_cores: head_bytes * cores_per_byte,
            }
        };
        let classes = [
            class(hi_count, lo + 1.0, false),
            class(f64::from(pp) - hi_count - 1.0, lo, false),
            class(1.0, lo, true),
        ];
        // Matrix phases: a dense layer has `phases`, each a broadcast and a reduction across its
        // region (2 sqrt(N) hops); an MoE layer has half of them (attention) across N, a dispatch
        // and combine across N, and half (the expert's up and down) across an expert's N / E.
        let phases = wafer.overheads.fabric_phases_per_layer;
        let hops_per_sqrt_layer_core =
            (1.0 - moe_share) * 2.0 * phases + moe_share * (phases + 2.0);
        let hops_per_sqrt_expert_core = moe_share * phases;
        let stream_bytes_per_wafer = if placement.weights_in == WeightHome::ExternalMemory {
            placement.weight_bytes_per_device
        } else {
            0.0
        };
        WaferCost {
            classes,
            wafers: f64::from(pp),
            layers,
            window_layers: model
                .attention
                .sliding_window_layer_fraction
                .map_or(0.0, |f| (f * layers).round()),
            dense_bytes_per_param: wb,
            expert_bytes_per_param: eb,
            experts,
            active_experts,
            hops_per_sqrt_layer_core,
            hops_per_sqrt_expert_core,
            kv_bytes_per_token_layer: d.kv_elements_per_token_per_layer * p.kv_cache.bytes(),
            kv_bytes_per_token: model.kv_bytes_per_token(),
            attn_flops_per_pair_layer: d.attn_flops_per_pair_per_layer,
            act_bytes_per_token: model.architecture.hidden_size as f64 * p.activations.bytes(),
            window: model.attention.sliding_window_tokens,
            read_bytes_per_s: wafer.core_read_bytes_per_s()
                * wafer.generation().map_or(1.0, |g| g.sram_read_fraction),
            flops_per_s: wafer.core_flops_per_s(),
            hop_s: wafer.hop_s(),
            // A profile that passed validation has a generation.
            sync_s: wafer.generation().map_or(0.0, |g| g.layer_sync_s),
            link_bytes_per_s: wafer.link.bandwidth_bytes_per_s,
            link_latency_s: wafer.link.latency_s,
            external_bytes_per_s: wafer.external_memory.bandwidth_bytes_per_s,
            stream_bytes_per_wafer,
            resident_bytes: layers * layer_bytes + head_bytes,
            kv_sram_tokens: placement.kv_capacity_tokens_per_replica as f64,
            iteration_s: wafer.overheads.iteration_s,
            per_sequence_s: wafer.overheads.per_sequence_s,
            active_params: d.active_params,
        }
    }

    /// One layer of wafer class `c` for `block`.
    fn layer(&self, c: &WaferClass, block: &Block) -> StageTime {
        let (r, f) = (self.read_bytes_per_s, self.flops_per_s);
        let k = block.tokens;
        let dense_params = c.core_dense_bytes / self.dense_bytes_per_param;
        let (dense_s, dense_c) = roof(c.core_dense_bytes, r, 2.0 * k * dense_params, f);
        let (expert_s, expert_c) = if self.experts > 0.0 && c.core_expert_bytes > 0.0 {
            // Tokens of the block routed to each expert it touches.
            let touched =
                self.experts * (1.0 - (1.0 - self.active_experts / self.experts).powf(k.max(1.0)));
            let per_expert = k * self.active_experts / touched.max(1.0);
            let params = c.core_expert_bytes / self.expert_bytes_per_param;
            roof(c.core_expert_bytes, r, 2.0 * per_expert * params, f)
        } else {
            (0.0, 0.0)
        };
        // The layer's KV cache sits in the spare SRAM of its region's cores.
        let n = c.layer_cores;
        let (attention_s, attention_c) = roof(
            block.kv_tokens * self.kv_bytes_per_token_layer / n,
            r,
            block.pairs * self.attn_flops_per_pair_layer / n,
            f,
        );
        let expert_cores = n / self.experts.max(1.0);
        let hops = self.hops_per_sqrt_layer_core * n.sqrt()
            + self.hops_per_sqrt_expert_core * expert_cores.sqrt();
        StageTime {
            weights_s: dense_s + expert_s,
            weights_compute_bound_s: dense_c + expert_c,
            attention_s,
            attention_compute_bound_s: attention_c,
            hops_s: hops * self.hop_s,
            sync_s: self.sync_s,
        }
    }

    /// The LM head stage for `block`.
    fn head(&self, c: &WaferClass, block: &Block) -> StageTime {
        let params = c.core_head_bytes / self.dense_bytes_per_param;
        let (weights_s, compute_s) = roof(
            c.core_head_bytes,
            self.read_bytes_per_s,
            2.0 * block.head_tokens * params,
            self.flops_per_s,
        );
        StageTime {
            weights_s,
            weights_compute_bound_s: compute_s,
            hops_s: 2.0 * c.head_cores.sqrt() * self.hop_s,
            sync_s: self.sync_s,
            ..StageTime::default()
        }
    }

    /// `blocks` blocks like `block` through the pipeline: the first's traversal, then the others
    /// one busiest-stage occupancy apart (their fabric latency overlaps); and the wafer-to-wafer
    /// links' time: each boundary's latency once, and every block's activations.
    fn schedule(&self, block: &Block, blocks: f64) -> (StageTime, f64) {
        let (mut time, busiest) = self.pass(block);
        let occupancy = StageTime {
            hops_s: 0.0,
            ..busiest
        };
        time.add(&occupancy, blocks - 1.0);
        let link_s = if self.wafers > 1.0 {
            (self.wafers - 1.0) * self.link_latency_s
                + (self.wafers - 1.0 + blocks - 1.0) * block.tokens * self.act_bytes_per_token
                    / self.link_bytes_per_s
        } else {
            0.0
        };
        (time, link_s)
    }

    /// The traversal of one block through every stage, and the busiest stage's occupancy.
    fn pass(&self, block: &Block) -> (StageTime, StageTime) {
        let mut traversal = StageTime::default();
        let mut busiest = StageTime::default();
        for c in self
            .classes
            .iter()
            .filter(|c| c.count > 0.0 && c.layers > 0.0)
        {
            let layer = self.layer(c, block);
            traversal.add(&layer, c.count * c.layers);
            if layer.occupancy_s() > busiest.occupancy_s() {
                busiest = layer;
            }
        }
        let last = self
            .classes
            .iter()
            .find(|c| c.head)
            .expect("one class holds the head");
        let head = self.head(last, block);
        traversal.add(&head, 1.0);
        if head.occupancy_s() > busiest.occupancy_s() {
            busiest = head;
        }
        (traversal, busiest)
    }
}

impl CostModel for WaferCost {
    fn priced_by(&self, op: OpKind) -> &'static str {
        match op {
            OpKind::LayerWeights => "SRAM reads and arithmetic per core, layer sync",
            OpKind::Attention => "KV reads and arithmetic per core",
            OpKind::Fabric => "fabric hops",
            OpKind::PipelineComm => "wafer-to-wafer link",
            OpKind::WeightStreaming => "external memory bandwidth",
            OpKind::Host => "host overheads",
            _ => "-",
        }
    }

    fn step(&self, b: &Batch) -> StepCost {
        let mut c = StepCost::default();
        if b.tokens == 0 {
            return c;
        }
        let t = b.tokens as f64;
        let sequences = f64::from(b.sequences.max(1));
        // One block per sequence, each the batch's average.
        let full_layers = self.layers - self.window_layers;
        let per_layer = |full: f64, window: f64| {
            (full_layers * full + self.window_layers * window) / self.layers / sequences
        };
        let verified = f64::from(b.gamma) + 1.0;
        let head_tokens = (f64::from(b.sampled) * verified).min(t);
        let (pairs, kv_tokens) = (
            per_layer(b.pairs_full, b.pairs_window) * sequences,
            per_layer(b.kv_read_full, b.kv_read_window) * sequences,
        );
        // Two ways through the pipeline, the faster taken: each sequence's new tokens as one
        // block (its weights read once for all of them), or every token on its own, streaming
        // one behind another (each read the weights again, but the stages work at once).
        let blocked = self.schedule(
            &Block {
                tokens: t / sequences,
                head_tokens: head_tokens / sequences,
                pairs: pairs / sequences,
                kv_tokens: kv_tokens / sequences,
            },
            sequences,
        );
        let streamed = self.schedule(
            &Block {
                tokens: 1.0,
                head_tokens: head_tokens / t,
                pairs: pairs / t,
                kv_tokens: kv_tokens / t,
            },
            t,
        );
        let (time, link_s) = if streamed.0.total_s() + streamed.1 < blocked.0.total_s() + blocked.1
        {
            streamed
        } else {
            blocked
        };

        *c.op_mut(OpKind::LayerWeights) = OpCost {
            flops: 2.0 * self.active_params * t,
            bytes: self.resident_bytes * sequences,
            compute_s: time.weights_compute_bound_s,
            memory_s: time.weights_s - time.weights_compute_bound_s,
            ..OpCost::default()
        }
        .rooflined(time.weights_s);
        let external_kv = (b.kv_read_full - self.kv_sram_tokens).max(0.0) * self.kv_bytes_per_token;
        *c.op_mut(OpKind::Attention) = OpCost {
            flops: (full_layers * b.pairs_full + self.window_layers * b.pairs_window)
                * self.attn_flops_per_pair_layer,
            bytes: (full_layers * b.kv_read_full + self.window_layers * b.kv_read_window)
                * self.kv_bytes_per_token_layer
                + external_kv,
            compute_s: time.attention_compute_bound_s,
            memory_s: time.attention_s - time.attention_compute_bound_s,
            // KV spilled beyond SRAM is read over every wafer's external-memory link in parallel.
            interconnect_s: external_kv / (self.external_bytes_per_s * self.wafers),
            ..OpCost::default()
        }
        .rooflined(time.attention_s);
        let fabric = c.op_mut(OpKind::Fabric);
        fabric.interconnect_s = time.hops_s;
        fabric.overhead_s = time.sync_s;
        if self.wafers > 1.0 {
            let op = c.op_mut(OpKind::PipelineComm);
            op.bytes = (self.wafers - 1.0) * t * self.act_bytes_per_token;
            op.interconnect_s = link_s;
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

impl OpCost {
    /// Keep `compute_s` and `memory_s` such that their roofline is `roof`: the sums of per-phase
    /// maxima are not the maximum of the sums, so the larger side carries the whole.
    fn rooflined(mut self, roof: f64) -> OpCost {
        if self.compute_s >= self.memory_s {
            self.compute_s = roof;
        } else {
            self.memory_s = roof;
        }
        self
    }
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

    fn per_user(s: &System, batch: u32, context: u64) -> f64 {
        1.0 / s
            .step(&Batch::decode(batch, context, s.batch().window))
            .total_s()
    }

    fn cost(s: &System) -> WaferCost {
        WaferCost::new(&s.model, s.hardware.wafer().unwrap(), &s.placement)
    }

    #[test]
    fn every_layer_pays_the_generation_sync_once_per_pass() {
        // 126 layers on 40 wafers (6 wafers of 4 layers, 34 of 3): 126 layer syncs plus the
        // head's, not 40 x ceil(126 / 40) = 160.
        let s = sys(
            "llama-3.1-405b",
            &[
                "hardware.wafer.wafers=64",
                "hardware.wafer.software_generation=2024-10",
            ],
        );
        let s = System::new(
            s.hardware.clone(),
            s.model.clone(),
            ParallelRequest {
                pp: Some(40),
                ..ParallelRequest::default()
            },
        )
        .unwrap();
        let sync = s
            .hardware
            .wafer()
            .unwrap()
            .generation()
            .unwrap()
            .layer_sync_s;
        let c = cost(&s).step(&Batch::decode(1, 1024, None));
        approx::assert_relative_eq!(
            c.op(OpKind::Fabric).overhead_s,
            127.0 * sync,
            max_relative = 1e-12
        );
        // Each block crosses the 39 wafer boundaries once.
        let link = s.hardware.wafer().unwrap().link.latency_s;
        assert!(c.op(OpKind::PipelineComm).interconnect_s > 39.0 * link);
    }

    #[test]
    fn verifying_k_tokens_costs_what_the_cores_arithmetic_says() {
        // 16-bit weights: one token's multiply-adds take 2 flops per 2 bytes a core reads, so a
        // pass over k tokens costs k x (16 flops per cycle at the clock) where one token costs
        // the read at the port rate.
        let s = sys("llama-3.1-8b", &[]);
        let w = s.hardware.wafer().unwrap();
        let fraction = w.generation().unwrap().sram_read_fraction;
        let c = cost(&s);
        let layer = |k: f64| {
            let block = Block {
                tokens: k,
                head_tokens: k,
                pairs: 0.0,
                kv_tokens: 0.0,
            };
            c.layer(&c.classes[2], &block).weights_s
        };
        let (one, five) = (layer(1.0), layer(5.0));
        let per_byte_read = 1.0 / (w.core_read_bytes_per_s() * fraction);
        let per_byte_compute = 1.0 / w.core_flops_per_s();
        assert!(per_byte_read > per_byte_compute, "one token is read-bound");
        approx::assert_relative_eq!(
            five / one,
            5.0 * per_byte_compute / per_byte_read,
            max_relative = 1e-12
        );
    }

    #[test]
    fn moe_fabric_crosses_an_expert_region_not_the_whole_layer_for_its_experts() {
        let s = sys("qwen3-235b-a22b", &["hardware.wafer.wafers=64"]);
        let c = cost(&s);
        let w = s.hardware.wafer().unwrap();
        let hops = c
            .step(&Batch::decode(1, 1024, None))
            .op(OpKind::Fabric)
            .interconnect_s;
        // A dense layout of the same regions: four phases of 2 sqrt(N) each.
        let dense_hops: f64 = c
            .classes
            .iter()
            .map(|k| {
                k.count * k.layers * 8.0 * k.layer_cores.sqrt() * w.hop_s()
                    + if k.head {
                        2.0 * k.head_cores.sqrt() * w.hop_s()
                    } else {
                        0.0
                    }
            })
            .sum();
        assert!(hops < 0.8 * dense_hops, "{hops} against {dense_hops}");
    }

    #[test]
    fn a_long_context_costs_attention_reads_and_arithmetic() {
        let s = sys("llama-3.1-405b", &["hardware.wafer.wafers=64"]);
        let (short, long) = (per_user(&s, 1, 1024), per_user(&s, 1, 100_000));
        assert!(long < 0.9 * short, "{long} against {short}");
    }

    #[test]
    fn a_small_draft_pays_its_own_layers_not_the_target_s() {
        use crate::system::Speculation;
        let o: Vec<Override> = ["hardware.wafer.wafers=4"]
            .iter()
            .map(|s| Override::parse(s).unwrap())
            .collect();
        let s = System::with_speculation(
            load_hardware("wse-3", &o).unwrap(),
            load_model("llama-3.1-70b", &o).unwrap(),
            Some(Speculation::load("llama-3.2-1b", 3, 0.8).unwrap()),
            ParallelRequest {
                pp: Some(4),
                ..ParallelRequest::default()
            },
        )
        .unwrap();
        let mut b = s.batch();
        b.push_sequence(1, 1024, true, true);
        let step = s.step(&b);
        let draft_per_token = step.op(OpKind::DraftModel).time_s() / 3.0;
        let target = sys("llama-3.1-70b", &["hardware.wafer.wafers=4"]);
        let target_token = 1.0 / per_user(&target, 1, 1024);
        assert!(
            draft_per_token < 0.3 * target_token,
            "{draft_per_token} against {target_token}"
        );
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
        // Many sequences run one busiest-stage time apart: throughput approaches its inverse.
        let c = cost(&s);
        let (_, busiest) = c.pass(&Block {
            tokens: 1.0,
            head_tokens: 1.0,
            pairs: 17.0,
            kv_tokens: 17.0,
        });
        let ceiling = 1.0 / busiest.occupancy_s();
        let throughput = 4096.0 * per_user(&s, 4096, 16);
        assert!(
            throughput < ceiling && throughput > 0.9 * ceiling,
            "{throughput} against {ceiling}"
        );
    }
}
