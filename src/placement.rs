//! Placement: how a model lands on a GPU system. Chooses tensor- and pipeline-parallel degrees
//! (the smallest tensor-parallel group that holds the weights plus one full-context sequence,
//! pipelining only when none does, unless overridden), the number of replicas, and the weight and
//! KV-cache bytes on each device.
//!
//! Model: attention and dense MLPs are split tensor-parallel over `tp` GPUs (heads divided);
//! MoE layers spread their experts over the same `tp` GPUs (expert parallelism of degree `tp`);
//! `pp` pipeline stages each hold a contiguous block of layers. KV heads are split across the
//! tensor-parallel group up to the KV-head count and replicated beyond it; an MLA latent cache
//! cannot be split by heads and is replicated on every tensor-parallel GPU.
//!
//! On a wafer cluster the model is pipelined by layers over the fewest wafers whose SRAM holds
//! its weights; the KV cache takes the SRAM left over and spills to external memory beyond it.
//! When no number of wafers in the cluster holds the weights, they stream from external memory
//! every iteration (the collapse in speed is the cost model's business).
//!
//! Attention data parallelism (`attention_dp`, MoE models on GPUs): every GPU of the group holds
//! the whole attention, dense-MLP, shared-expert, router, embedding and LM-head weights and runs
//! them for its own sequences, whose KV cache it alone keeps (one copy of each sequence, where
//! tensor parallelism replicates an MLA latent on every GPU); the routed experts stay spread over
//! the group (expert parallelism of degree `tp`). This is the wide-EP layout of SGLang and
//! TensorRT-LLM (`enable_attention_dp`) for DeepSeek-style models.
//!
//! Ignored: uneven stage balancing, uneven spreading of sequences over attention-data-parallel
//! GPUs (a sequence's KV cache must fit one GPU, but the replica's room is counted as a pool),
//! activation memory beyond the profile's reserved bytes.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::profile::model::AttentionKind;
use crate::profile::{GpuSystem, HardwareKind, HardwareProfile, ModelProfile, WaferSystem};

/// Requested parallelism; `None` means choose automatically.
#[derive(Debug, Clone, Copy, Default)]
pub struct ParallelRequest {
    /// Tensor-parallel degree.
    pub tp: Option<u32>,
    /// Pipeline-parallel degree.
    pub pp: Option<u32>,
    /// Model replicas in the system (default: as many as fit).
    pub replicas: Option<u32>,
    /// Attention data parallelism over the `tp` GPUs, experts spread over them (MoE only).
    pub attention_dp: bool,
    /// Most tokens (prompt plus output) one sequence may hold (vLLM's `max_model_len`); default:
    /// the model's context window, or what fits when the window does not.
    pub max_context: Option<u64>,
    /// What the layout maximises when it is not given; default: the machine's
    /// ([`Objective::default_for`]).
    pub objective: Option<Objective>,
}

/// What an automatic layout maximises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Objective {
    /// The speed one user sees: of the layouts that hold the model, the one whose single
    /// sequence decodes fastest (more devices per replica where that helps, fewer replicas).
    PerUserSpeed,
    /// The most replicas: the fewest devices per replica that hold the model.
    Throughput,
}

impl Objective {
    /// The default of a machine kind: per-user speed on wafer clusters (the figure wafer
    /// deployments are served and published for), throughput on GPU systems (the layouts of
    /// the published GPU serving rows: the fewest GPUs that hold the model, replicated).
    pub fn default_for(device: &str) -> Objective {
        if device == "wafer" {
            Objective::PerUserSpeed
        } else {
            Objective::Throughput
        }
    }

    /// The name used in flags, TOML and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Objective::PerUserSpeed => "per-user-speed",
            Objective::Throughput => "throughput",
        }
    }
}

/// Where the weights live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightHome {
    /// GPU high-bandwidth memory, read every iteration.
    Hbm,
    /// On-chip SRAM, resident.
    Sram,
    /// Off-chip memory, streamed onto the wafer every iteration.
    ExternalMemory,
}

/// Where the model lives and how much room is left for KV cache.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Placement {
    /// What a device is: `gpu` or `wafer`.
    pub device: &'static str,
    /// Tensor-parallel (and expert-parallel) degree; 1 on wafers. Under attention data
    /// parallelism, the GPUs of the group: attention runs data-parallel, experts spread over them.
    pub tp: u32,
    /// Attention data parallelism over the `tp` GPUs (see the module docs).
    pub attention_dp: bool,
    /// Pipeline stages: GPUs or wafers in a row.
    pub pp: u32,
    /// Independent batch streams per replica: `pp` on GPUs (one per pipeline lane), 1 on wafers
    /// (whose pipeline holds every sequence of the batch at once).
    pub lanes: u32,
    /// Where the weights live.
    pub weights_in: WeightHome,
    /// Independent model replicas.
    pub replicas: u32,
    /// GPUs per replica (tp x pp).
    pub devices_per_replica: u32,
    /// GPUs in the system.
    pub devices_in_system: u32,
    /// Weight bytes on the most loaded GPU.
    pub weight_bytes_per_device: f64,
    /// KV-cache bytes one token occupies on each GPU of its stage (under attention data
    /// parallelism, on the one GPU that holds its sequence).
    pub kv_bytes_per_token_per_device: f64,
    /// HBM per GPU left for KV cache, bytes.
    pub kv_capacity_bytes_per_device: f64,
    /// Tokens of KV cache one replica holds in fast memory (HBM or SRAM).
    pub kv_capacity_tokens_per_replica: u64,
    /// Further tokens of KV cache one replica may spill to external memory (wafers only).
    pub kv_spill_tokens_per_replica: u64,
    /// Most tokens (prompt plus output) one sequence may hold: the model's context window, what
    /// `max_context` asked for, or, when one window-long sequence does not fit beside the
    /// weights, the most that does.
    pub max_context_tokens: u64,
    /// True when `max_context_tokens` was lowered below the window because it did not fit.
    pub context_capped: bool,
    /// What the layout maximised, when it was chosen automatically; `None` when the request
    /// fixed it (`tp` on GPUs, `pp` on wafers).
    pub objective: Option<Objective>,
}

impl Placement {
    /// KV-cache tokens one sequence may hold on one replica: under attention data parallelism a
    /// sequence lives on one GPU of the group.
    fn per_sequence_room(&self) -> u64 {
        if self.attention_dp {
            self.kv_capacity_tokens_per_replica / u64::from(self.tp)
        } else {
            self.kv_capacity_tokens_per_replica
        }
    }
}

/// The context limit asked for, checked against the model's window: `None` for the default.
fn asked_context(model: &ModelProfile, req: &ParallelRequest) -> Result<Option<u64>> {
    let window = model.architecture.context_window_tokens;
    match req.max_context {
        Some(c) if c < 2 || c > window => Err(Error::arg(
            "--max-context",
            format!(
                "expected 2 to {window} tokens ({}'s context window), found {c}",
                model.name
            ),
        )),
        c => Ok(c),
    }
}

/// The target model and its optional draft.
#[derive(Clone, Copy)]
struct Models<'a> {
    model: &'a ModelProfile,
    draft: Option<&'a ModelProfile>,
}

impl Models<'_> {
    /// Weight and KV bytes per device of both models for a given (tp, pp).
    fn footprint(&self, tp: u32, pp: u32, adp: bool) -> (f64, f64) {
        let (w, kv) = footprint(self.model, tp, pp, adp);
        match self.draft {
            None => (w, kv),
            Some(d) => {
                let (dw, dkv) = footprint(d, tp, pp.min(d.architecture.layers), adp);
                (w + dw, kv + dkv)
            }
        }
    }

    /// Whether `tp` divides the attention heads of both models.
    fn splits_heads(&self, tp: u32) -> bool {
        std::iter::once(self.model)
            .chain(self.draft)
            .all(|m| m.attention.heads.is_multiple_of(u64::from(tp)))
    }
}

/// Weight and KV bytes per device for a given (tp, pp), with attention data parallelism or not.
fn footprint(model: &ModelProfile, tp: u32, pp: u32, adp: bool) -> (f64, f64) {
    let d = model.dims();
    let layers = model.architecture.layers as f64;
    let stage_layers = (model.architecture.layers as f64 / pp as f64).ceil();
    let wb = model.precision.weights.bytes();
    let eb = model.expert_weight_precision().bytes();
    let experts = model.moe.as_ref().map_or(0.0, |m| m.experts as f64);
    let routed_bytes = d.moe_layers as f64 * experts * d.expert_params * eb;
    let layer_bytes = layers * d.attn_params_per_layer * wb
        + d.dense_layers as f64 * d.dense_mlp_params_per_layer * wb
        + d.moe_layers as f64
            * (d.shared_expert_params_per_layer * eb + d.router_params_per_layer * wb);
    let head = if model.architecture.tied_embeddings {
        0.0
    } else {
        d.lm_head_params
    };
    // One stage holds both ends when pp = 1; otherwise the first holds the embedding, the last
    // the head, and the larger of the two bounds the most loaded GPU.
    let ends = if pp == 1 {
        d.embedding_params + head
    } else {
        d.embedding_params.max(d.lm_head_params)
    } * wb;
    let stage = stage_layers / layers;
    // Attention data parallelism replicates all but the routed experts and keeps each sequence's
    // KV cache whole on one GPU; tensor parallelism splits everything.
    let (weights, kv_split) = if adp {
        (
            layer_bytes * stage + ends + routed_bytes * stage / tp as f64,
            1.0,
        )
    } else {
        let kv_split = match model.attention.kind {
            AttentionKind::Gqa => (tp as u64).min(model.attention.kv_heads) as f64,
            AttentionKind::Mla => 1.0,
        };
        (
            (layer_bytes * stage + routed_bytes * stage + ends) / tp as f64,
            kv_split,
        )
    };
    let kv = stage_layers * d.kv_elements_per_token_per_layer * model.precision.kv_cache.bytes()
        / kv_split;
    (weights, kv)
}

/// The placement of `models` on `tp` x `pp` GPUs, its KV room counted for sequences of up to
/// `limit` tokens (sliding-window layers keep at most their window of each).
fn build(models: Models, gpu: &GpuSystem, tp: u32, pp: u32, adp: bool, limit: u64) -> Placement {
    let (weights, kv_per_token) = models.footprint(tp, pp, adp);
    let room = gpu.overheads.kv_room_bytes(gpu.hbm_capacity_bytes, weights);
    let tokens_per_device = if room > 0.0 {
        (room / (kv_per_token * models.model.kv_share(limit))).floor() as u64
    } else {
        0
    };
    // Under attention data parallelism each GPU keeps its own sequences: the group's room pools.
    let tokens = if adp {
        tokens_per_device.saturating_mul(u64::from(tp))
    } else {
        tokens_per_device
    };
    Placement {
        device: "gpu",
        tp,
        attention_dp: adp,
        pp,
        lanes: pp,
        weights_in: WeightHome::Hbm,
        replicas: 1,
        devices_per_replica: tp * pp,
        devices_in_system: gpu.devices,
        weight_bytes_per_device: weights,
        kv_bytes_per_token_per_device: kv_per_token,
        kv_capacity_bytes_per_device: room.max(0.0),
        kv_capacity_tokens_per_replica: tokens,
        kv_spill_tokens_per_replica: 0,
        max_context_tokens: limit,
        context_capped: false,
        objective: None,
    }
}

/// Tensor-parallel degrees worth trying: every divisor of the query heads up to the system size.
fn tp_candidates(models: Models, devices: u32) -> Vec<u32> {
    (1..=devices).filter(|t| models.splits_heads(*t)).collect()
}

/// Place `model` on `hw`.
///
/// Automatic choice: the smallest tensor-parallel group (no pipeline) whose KV room holds at
/// least one sequence of the model's full context window; pipeline stages only when the widest
/// tensor-parallel group cannot; then as many replicas as the system holds. Small groups give the
/// most throughput per GPU; pass `tp` for lower latency per user. This is the `throughput`
/// [`Objective`]; `System::new` searches wider layouts for `per-user-speed`, which needs the
/// cost model.
pub fn place(
    model: &ModelProfile,
    hw: &HardwareProfile,
    req: ParallelRequest,
) -> Result<Placement> {
    place_with_draft(model, None, hw, req)
}

/// Like [`place`], with a speculative-decoding draft model sharing every device: its weights
/// and KV cache take room beside the target's, split the same way.
pub fn place_with_draft(
    model: &ModelProfile,
    draft: Option<&ModelProfile>,
    hw: &HardwareProfile,
    req: ParallelRequest,
) -> Result<Placement> {
    let pair = Models { model, draft };
    match hw.kind() {
        Some(HardwareKind::Gpu(g)) => place_gpu(pair, hw, g, req),
        Some(HardwareKind::Wafer(w)) => place_wafer(pair, hw, w, req),
        None => Err(Error::arg(
            "hardware",
            format!("{} has no machine section", hw.name),
        )),
    }
}

fn place_gpu(
    models: Models,
    hw: &HardwareProfile,
    gpu: &GpuSystem,
    req: ParallelRequest,
) -> Result<Placement> {
    let model = models.model;
    let devices = gpu.devices;
    let asked = asked_context(model, &req)?;
    let need_tokens = asked.unwrap_or(model.architecture.context_window_tokens);
    if let Some(tp) = req.tp {
        if tp == 0 || tp > devices || !models.splits_heads(tp) {
            return Err(Error::arg(
                "--tp",
                format!(
                    "expected a divisor of the model's {} attention heads between 1 and the system's {} GPUs, found {tp}",
                    model.attention.heads, devices
                ),
            ));
        }
    }
    if let Some(pp) = req.pp {
        if pp == 0 || pp > model.architecture.layers {
            return Err(Error::arg(
                "--pp",
                format!(
                    "expected 1 to {} (the model's layers), found {pp}",
                    model.architecture.layers
                ),
            ));
        }
    }
    if req.attention_dp {
        if model.moe.is_none() {
            return Err(Error::arg(
                "--attention-dp",
                format!(
                    "expected a mixture-of-experts model (attention data parallelism spreads its experts over the GPUs), but {} is dense; use replicas instead",
                    model.name
                ),
            ));
        }
        if req.pp.is_some_and(|p| p != 1) {
            return Err(Error::arg(
                "--attention-dp",
                "attention data parallelism is modelled without pipeline stages; leave --pp unset or 1",
            ));
        }
    }
    let tps = match req.tp {
        Some(t) => vec![t],
        None => tp_candidates(models, devices),
    };
    let pps: Vec<u32> = match req.pp {
        Some(p) => vec![p],
        None if req.attention_dp => vec![1],
        None => (1..=devices.min(model.architecture.layers)).collect(),
    };
    // Tensor parallelism first (fewest GPUs that hold the model without pipelining), pipeline
    // stages only when the widest tensor-parallel group cannot hold it.
    let mut splits: Vec<(u32, u32)> = pps
        .iter()
        .flat_map(|&pp| tps.iter().map(move |&tp| (tp, pp)))
        .filter(|(tp, pp)| tp * pp <= devices)
        .collect();
    splits.sort_by_key(|&(tp, pp)| (pp, tp));
    let mut best_miss: Option<(f64, Placement)> = None;
    let mut roomiest: Option<Placement> = None;
    let mut chosen = None;
    for (tp, pp) in splits {
        let p = build(models, gpu, tp, pp, req.attention_dp, need_tokens);
        if p.per_sequence_room() >= need_tokens {
            chosen = Some(p);
            break;
        }
        // Missing bytes per device for weights + one sequence of the context asked.
        let missing = p.weight_bytes_per_device
            + p.kv_bytes_per_token_per_device * model.kv_share(need_tokens) * need_tokens as f64
                / gpu.overheads.kv_free_fraction.unwrap_or(1.0)
            + gpu.overheads.reserved_bytes
            - gpu.hbm_capacity_bytes;
        if best_miss.as_ref().is_none_or(|(m, _)| missing < *m) {
            best_miss = Some((missing, p.clone()));
        }
        if roomiest
            .as_ref()
            .is_none_or(|r| p.per_sequence_room() > r.per_sequence_room())
        {
            roomiest = Some(p);
        }
    }
    // The window does not fit one sequence anywhere: unless a limit was asked for, serve the
    // most context that fits, on the split that holds the most (as vLLM caps max_model_len).
    if chosen.is_none() && asked.is_none() {
        if let Some(r) = roomiest.filter(|r| r.per_sequence_room() >= 2) {
            let p = build(
                models,
                gpu,
                r.tp,
                r.pp,
                req.attention_dp,
                r.per_sequence_room(),
            );
            let limit = p.per_sequence_room().min(need_tokens);
            chosen = Some(Placement {
                max_context_tokens: limit,
                context_capped: true,
                ..p
            });
        }
    }
    let Some(mut p) = chosen else {
        let (missing, p) = best_miss.ok_or_else(|| {
            Error::arg(
                "--tp/--pp",
                format!("tp x pp exceeds the system's {devices} GPUs"),
            )
        })?;
        return Err(Error::DoesNotFit {
            model: model.name.clone(),
            hardware: hw.name.clone(),
            detail: format!(
                "weights need {:.1} GB per GPU and one {}-token sequence{} {:.1} GB of KV cache, but each GPU has {:.1} GB ({:.1} GB reserved); short by {:.1} GB per GPU even at the best split tp={} pp={} ({} GPUs)",
                p.weight_bytes_per_device / 1e9,
                need_tokens,
                if asked.is_some() { " (--max-context)" } else { "" },
                p.kv_bytes_per_token_per_device * model.kv_share(need_tokens) * need_tokens as f64 / 1e9,
                gpu.hbm_capacity_bytes / 1e9,
                gpu.overheads.reserved_bytes / 1e9,
                missing / 1e9,
                p.tp,
                p.pp,
                p.devices_per_replica
            ),
        });
    };
    p.replicas = replicas(req, devices / p.devices_per_replica, "GPUs")?;
    Ok(p)
}

/// The requested number of replicas, or as many as fit.
fn replicas(req: ParallelRequest, max: u32, devices: &str) -> Result<u32> {
    match req.replicas {
        None => Ok(max),
        Some(r) if r >= 1 && r <= max => Ok(r),
        Some(r) => Err(Error::arg(
            "--replicas",
            format!("expected 1 to {max} (the replicas the system's {devices} hold), found {r}"),
        )),
    }
}

/// Place `model` on a wafer cluster: `pp` wafers if asked, else the fewest (a pipeline by layers)
/// whose SRAM holds the weights, as many replicas as the cluster holds; weight streaming when
/// none does. (`System::new` prices longer pipelines for the per-user-speed objective.)
fn place_wafer(
    models: Models,
    hw: &HardwareProfile,
    w: &WaferSystem,
    req: ParallelRequest,
) -> Result<Placement> {
    let model = models.model;
    if req.attention_dp {
        return Err(Error::arg(
            "--attention-dp",
            "wafers run attention within their pipeline stages; attention data parallelism is a GPU layout",
        ));
    }
    if req.tp.is_some_and(|t| t != 1) {
        return Err(Error::arg(
            "--tp",
            "wafers are not tensor-parallel; each layer lives on one wafer (use --pp for wafers per replica)",
        ));
    }
    let usable = w.sram_capacity_bytes - w.overheads.reserved_bytes;
    let max_stages = w.wafers.min(model.architecture.layers);
    if let Some(pp) = req.pp {
        if pp == 0 || pp > max_stages {
            return Err(Error::arg(
                "--pp",
                format!("expected 1 to {max_stages} wafers per replica (cluster of {}, {} layers), found {pp}", w.wafers, model.architecture.layers),
            ));
        }
    }
    let candidates: Vec<u32> = match req.pp {
        Some(p) => vec![p],
        None => (1..=max_stages).collect(),
    };
    let resident = candidates
        .iter()
        .map(|&pp| (pp, models.footprint(1, pp, false)))
        .find(|(_, (weights, _))| *weights <= usable);
    let spill_per_token = model.kv_bytes_per_token();
    let (pp, weights, kv_per_token, home, room) = match resident {
        Some((pp, (weights, kv))) => (pp, weights, kv, WeightHome::Sram, usable - weights),
        None => {
            // Stream: the widest pipeline the cluster allows; SRAM keeps a double buffer of the
            // largest layer and gives the rest to KV cache.
            let pp = *candidates.last().expect("at least one candidate");
            let (weights, kv) = models.footprint(1, pp, false);
            let total = model.weight_bytes();
            if total > w.external_memory.capacity_bytes {
                return Err(Error::DoesNotFit {
                    model: model.name.clone(),
                    hardware: hw.name.clone(),
                    detail: format!(
                        "weights need {:.1} GB: more than the SRAM of {} wafer{} ({:.1} GB usable each) and more than the {:.1} GB of external memory",
                        total / 1e9, w.wafers, if w.wafers == 1 { "" } else { "s" }, usable / 1e9, w.external_memory.capacity_bytes / 1e9
                    ),
                });
            }
            let layer_buffer =
                2.0 * weights / (model.architecture.layers as f64 / pp as f64).ceil();
            (
                pp,
                weights,
                kv,
                WeightHome::ExternalMemory,
                (usable - layer_buffer).max(0.0),
            )
        }
    };
    let max_replicas = if home == WeightHome::Sram {
        w.wafers / pp
    } else {
        1
    };
    let replicas = replicas(req, max_replicas, "wafers")?;
    let window = model.architecture.context_window_tokens;
    let asked = asked_context(model, &req)?;
    let share = model.kv_share(asked.unwrap_or(window));
    let sram_tokens = (room / (kv_per_token * share)).floor() as u64;
    let external_share = w.external_memory.capacity_bytes / f64::from(replicas)
        - if home == WeightHome::ExternalMemory {
            model.weight_bytes()
        } else {
            0.0
        };
    let spill_tokens = (external_share.max(0.0) / (spill_per_token * share)).floor() as u64;
    // A sequence may use the SRAM room and, spilling, the external memory beyond it.
    let limit = asked.unwrap_or_else(|| window.min(sram_tokens.saturating_add(spill_tokens)));
    Ok(Placement {
        device: "wafer",
        attention_dp: false,
        tp: 1,
        pp,
        lanes: 1,
        weights_in: home,
        replicas,
        devices_per_replica: pp,
        devices_in_system: w.wafers,
        weight_bytes_per_device: weights,
        kv_bytes_per_token_per_device: kv_per_token,
        kv_capacity_bytes_per_device: room,
        kv_capacity_tokens_per_replica: sram_tokens,
        kv_spill_tokens_per_replica: spill_tokens,
        max_context_tokens: limit,
        context_capped: asked.is_none() && limit < window,
        objective: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{load_hardware, load_model, Override};

    #[test]
    fn small_model_takes_one_gpu_per_replica() {
        let m = load_model("llama-3.1-8b", &[]).unwrap();
        let hw = load_hardware("h100-sxm", &[]).unwrap();
        let p = place(&m, &hw, ParallelRequest::default()).unwrap();
        assert_eq!((p.tp, p.pp, p.replicas), (1, 1, 1));
        // 8.03e9 params x 2 bytes.
        approx::assert_relative_eq!(p.weight_bytes_per_device, 16.06e9, max_relative = 0.01);
        // 32 layers x 2 (K,V) x 8 heads x 128 x 2 bytes = 131072 bytes per token.
        approx::assert_relative_eq!(p.kv_bytes_per_token_per_device, 131072.0);
    }

    #[test]
    fn model_too_big_says_how_much_is_missing() {
        let m = load_model("llama-3.1-8b", &[]).unwrap();
        let o = Override::parse("hardware.gpu.hbm_capacity_bytes=20e9").unwrap();
        let hw = load_hardware("h100-sxm", &[o]).unwrap();
        let e = place(&m, &hw, ParallelRequest::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not fit") && e.contains("short by"), "{e}");
    }

    #[test]
    fn kv_heads_split_up_to_their_count_then_replicate() {
        let m = load_model("llama-3.1-8b", &[]).unwrap();
        let (_, kv4) = footprint(&m, 4, 1, false);
        let (_, kv8) = footprint(&m, 8, 1, false);
        let (_, kv16) = footprint(&m, 16, 1, false);
        let (_, kv1) = footprint(&m, 1, 1, false);
        approx::assert_relative_eq!(kv4, kv1 / 4.0);
        approx::assert_relative_eq!(kv8, kv1 / 8.0);
        approx::assert_relative_eq!(kv16, kv8);
    }

    fn adp(tp: u32) -> ParallelRequest {
        ParallelRequest {
            tp: Some(tp),
            attention_dp: true,
            ..ParallelRequest::default()
        }
    }

    #[test]
    fn attention_data_parallelism_replicates_all_but_the_routed_experts() {
        let m = load_model("deepseek-v3", &[]).unwrap();
        let hw = load_hardware("gb200-nvl72", &[]).unwrap();
        let g = hw.gpu().unwrap();
        let tp = place(
            &m,
            &hw,
            ParallelRequest {
                tp: Some(8),
                ..ParallelRequest::default()
            },
        )
        .unwrap();
        let dp = place(&m, &hw, adp(8)).unwrap();
        assert!(dp.attention_dp && !tp.attention_dp);
        // Everything over 8 GPUs, or the routed experts over 8 and the rest whole on each.
        let d = m.dims();
        let routed = d.moe_layers as f64 * 256.0 * d.expert_params * 1.0;
        let total = m.weight_bytes();
        approx::assert_relative_eq!(tp.weight_bytes_per_device, total / 8.0, max_relative = 1e-9);
        approx::assert_relative_eq!(
            dp.weight_bytes_per_device,
            total - routed + routed / 8.0,
            max_relative = 1e-9
        );
        // The MLA latent is kept once per sequence (on its GPU), not once per GPU of the group:
        // the same bytes per token, but the group's room pools.
        approx::assert_relative_eq!(
            dp.kv_bytes_per_token_per_device,
            tp.kv_bytes_per_token_per_device
        );
        let per_gpu =
            ((g.hbm_capacity_bytes - g.overheads.reserved_bytes - dp.weight_bytes_per_device)
                / dp.kv_bytes_per_token_per_device)
                .floor() as u64;
        assert_eq!(dp.kv_capacity_tokens_per_replica, 8 * per_gpu);
        // Eight GPUs' room instead of one, less the replicated weights: 6.5 times here.
        assert!(dp.kv_capacity_tokens_per_replica > 6 * tp.kv_capacity_tokens_per_replica);
        assert_eq!((dp.replicas, dp.devices_per_replica), (9, 8));
    }

    #[test]
    fn attention_data_parallelism_is_refused_where_it_means_nothing() {
        let gpu = load_hardware("gb200-nvl72", &[]).unwrap();
        let dense = load_model("llama-3.1-70b", &[]).unwrap();
        let e = place(&dense, &gpu, adp(8)).unwrap_err().to_string();
        assert!(e.contains("--attention-dp") && e.contains("dense"), "{e}");
        let moe = load_model("deepseek-v3", &[]).unwrap();
        let piped = ParallelRequest {
            pp: Some(2),
            ..adp(8)
        };
        let e = place(&moe, &gpu, piped).unwrap_err().to_string();
        assert!(e.contains("--pp"), "{e}");
        let o = Override::parse("hardware.wafer.wafers=64").unwrap();
        let wafer = load_hardware("wse-3", &[o]).unwrap();
        let e = place(&moe, &wafer, adp(1)).unwrap_err().to_string();
        assert!(e.contains("--attention-dp") && e.contains("GPU"), "{e}");
    }
}
