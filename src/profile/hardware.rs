//! Hardware profiles (`hardware/*.toml`): what a machine can do, in SI units, with the
//! efficiency and overhead factors that turn peak figures into achieved ones.
//!
//! Two machine kinds: a GPU system (one NVLink domain of identical devices, weights and KV cache in
//! HBM) and a wafer cluster (wafer-scale engines holding weights in on-chip SRAM, pipelined over
//! several wafers for large models). Deliberately ignored: clocks as such, power states, cache
//! hierarchies and kernel-level detail: the cost models work from rooflines, measured efficiencies
//! and overheads; wafer clusters are described in [`super::wafer`].
//!
//! Optional `[power]` and `[price]` tables give the electrical power and the hourly price of one
//! device (GPU or wafer) for the energy and cost estimates of [`crate::energy`]; a profile without
//! them still loads, and those estimates are then reported as not available.

use serde::{Deserialize, Serialize};

use super::curve::GemmCurves;
use super::kernel_curves::{AttentionCurves, CollectiveCurves};
use super::moe_curve::MoeCurves;
use super::precision::ComputeClass;
use super::validate::range::{
    BANDWIDTH_BYTES_PER_S, CAPACITY_BYTES, FLOPS_PER_S, POWER_W, TIME_S, USD_PER_DEVICE_HOUR,
};
use super::validate::Checker;
pub use super::wafer::{ExternalMemory, Generation, WaferOverheads, WaferSoftware, WaferSystem};
use crate::error::Problem;
use crate::limits::MAX_DEVICES;

/// A hardware profile as written in TOML.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HardwareProfile {
    /// Short identifier, equal to the file stem (e.g. `h100-sxm`).
    pub name: String,
    /// One line for humans.
    pub description: String,
    /// A system of GPUs sharing one NVLink domain.
    pub gpu: Option<GpuSystem>,
    /// A cluster of wafer-scale engines.
    pub wafer: Option<WaferSystem>,
    /// Electrical power per device (GPU or wafer), if known.
    pub power: Option<Power>,
    /// Price per device-hour, if known.
    pub price: Option<Price>,
    /// The network and API stack between a client and the deployment, for client-side
    /// latencies ([`super::frontend`]); without it only server-side latencies are reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frontend: Option<super::frontend::Frontend>,
}

/// Where a power figure draws its line around the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerBoundary {
    /// The device alone: a GPU board's rated power (TDP) or a wafer's, nothing around it.
    Device,
    /// The whole system the devices sit in (host CPUs and memory, NICs, switches, fans, power
    /// conversion), divided by its devices.
    System,
}

impl PowerBoundary {
    /// Short name: `device` or `system`.
    pub fn name(self) -> &'static str {
        match self {
            PowerBoundary::Device => "device",
            PowerBoundary::System => "system",
        }
    }

    /// What the boundary includes, for printed assumptions.
    pub fn describe(self) -> &'static str {
        match self {
            PowerBoundary::Device => "device boundary: the board or chip alone",
            PowerBoundary::System => {
                "system boundary: the whole server, rack or appliance with its host CPUs, switches, NICs, fans and power supplies, divided by its devices"
            }
        }
    }
}

/// Electrical power of one device, in watts at the profile's boundary.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Power {
    /// What the figures include.
    pub boundary: PowerBoundary,
    /// Power while the device runs iterations, W.
    pub busy_w_per_device: f64,
    /// Power while the device waits for work, W.
    pub idle_w_per_device: f64,
}

/// What an hourly price pays for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PriceBasis {
    /// A provider's list price for renting the device by the hour (includes the host, the
    /// facility, power and the provider's margin).
    Rental,
    /// An owner's cost: purchase price amortised over the device's life plus electricity
    /// (excludes facility, staff and margin).
    Ownership,
}

impl PriceBasis {
    /// Short name: `rental` or `ownership`.
    pub fn name(self) -> &'static str {
        match self {
            PriceBasis::Rental => "rental",
            PriceBasis::Ownership => "ownership",
        }
    }

    /// What the basis includes, for printed assumptions.
    pub fn describe(self) -> &'static str {
        match self {
            PriceBasis::Rental => {
                "rental: a provider's hourly list price, paying for host, facility, power and margin"
            }
            PriceBasis::Ownership => {
                "ownership: purchase amortised over the device's life plus electricity, without facility, staff or margin"
            }
        }
    }
}

/// Hourly price of one device.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// What the price pays for.
    pub basis: PriceBasis,
    /// US dollars per device per hour.
    pub usd_per_device_hour: f64,
}

/// The machine kind a profile describes.
#[derive(Debug, Clone, Copy)]
pub enum HardwareKind<'a> {
    /// Weights and KV cache streamed from HBM.
    Gpu(&'a GpuSystem),
    /// Weights resident in on-chip SRAM.
    Wafer(&'a WaferSystem),
}

/// GPUs in one NVLink domain (one server, or one NVL72 rack).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuSystem {
    /// GPUs in the NVLink domain (1 for a lone GPU, 8 for an HGX node, 72 for NVL72).
    pub devices: u32,
    /// HBM capacity per GPU, bytes.
    pub hbm_capacity_bytes: f64,
    /// Peak HBM bandwidth per GPU, bytes/s.
    pub hbm_bandwidth_bytes_per_s: f64,
    /// Dense (non-sparse) peak tensor throughput per GPU, FLOP/s, by operand class.
    pub peak_flops_per_s: PeakFlops,
    /// Streaming multiprocessors per GPU (datasheet). Optional: decode attention curves with
    /// thread-block terms use it to split long caches as the engine's kernel does
    /// ([`crate::profile::kernel_curves::decode_splits`]); without it no cap by SMs applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streaming_multiprocessors: Option<u32>,
    /// Scale-up interconnect (NVLink) seen by one GPU.
    pub interconnect: Interconnect,
    /// Bandwidth between one GPU and host memory in one direction, bytes/s (PCIe, or NVLink-C2C
    /// on Grace-Blackwell); used to price swapping KV cache out on preemption. Optional: without
    /// it, swap preemption is refused.
    pub host_bandwidth_bytes_per_s: Option<f64>,
    /// Host memory per GPU that KV offload may use, bytes (Grace LPDDR5X on Grace-Blackwell,
    /// the server's DRAM shared by its GPUs elsewhere), reached at `host_bandwidth_bytes_per_s`.
    /// Optional: without it, `--kv-offload` is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_memory_bytes: Option<f64>,
    /// Achieved fraction of each peak.
    pub efficiency: Efficiency,
    /// Optional GEMM efficiency curves by tensor-core class, fitted to measured kernels
    /// (`infersim kernels --fit`): the step's dense GEMM operators (projections, MLP, LM head)
    /// and the kernel check price GEMMs of a class with a curve by it instead of `efficiency`
    /// and the per-kernel overhead; without one, the scalars apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gemm_curves: Option<GemmCurves>,
    /// Optional attention curves (prefill, decode), fitted to measured kernels
    /// (`infersim kernels --fit`): the step's attention and the kernel check price attention by
    /// them instead of `efficiency` and the per-kernel overhead; without one, the scalars apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention_curves: Option<AttentionCurves>,
    /// Optional collective curves (all-reduce, all-to-all), fitted to measured collectives
    /// (`infersim kernels --fit`): they replace the interconnect's scalar latency and efficiency
    /// for those collectives in the step and the kernel check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collective_curves: Option<CollectiveCurves>,
    /// Optional MoE grouped-GEMM curves by tensor-core class, fitted to measured fused-MoE
    /// layers (`infersim kernels --fit`): the step's routed experts and the kernel check price
    /// a MoE layer's routed experts by them (routing, permute, grouped GEMMs and combine)
    /// instead of `efficiency` and the per-kernel overhead; without one, the scalars apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moe_curves: Option<MoeCurves>,
    /// Fixed costs that no roofline shows.
    pub overheads: Overheads,
}

/// Dense peak FLOP/s per GPU for each operand class the hardware supports natively.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeakFlops {
    /// FP32 / TF32 rate, FLOP/s (optional).
    pub fp32: Option<f64>,
    /// BF16 / FP16 dense rate, FLOP/s.
    pub bf16: f64,
    /// FP8 (or INT8) dense rate, FLOP/s; absent where unsupported.
    pub fp8: Option<f64>,
    /// FP4 dense rate, FLOP/s; absent where unsupported.
    pub fp4: Option<f64>,
    /// INT8 dense rate, operations/s, where it differs from the FP8 rate (A100: INT8 tensor
    /// cores but no FP8). Optional; absent: the rate `fp8` resolves to. Used by the `int8`
    /// GEMM curve only (GEMMs with 8-bit integer weights and activations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub int8: Option<f64>,
}

impl PeakFlops {
    /// The class whose tensor cores run work of `class`, and its peak FLOP/s: `class` itself if
    /// supported, else the next wider supported class (e.g. FP4 weights on an H100 run at its
    /// FP8 rate).
    pub fn resolve(&self, class: ComputeClass) -> (ComputeClass, f64) {
        let mut c = class;
        loop {
            let rate = match c {
                ComputeClass::Fp4 => self.fp4,
                ComputeClass::Fp8 => self.fp8,
                ComputeClass::Bf16 => Some(self.bf16),
                ComputeClass::Fp32 => self.fp32,
            };
            if let Some(r) = rate {
                return (c, r);
            }
            match c.wider() {
                Some(w) => c = w,
                // FP32 absent: the BF16 rate is the best documented bound.
                None => return (ComputeClass::Bf16, self.bf16),
            }
        }
    }

    /// The INT8 rate: `int8` when given, else the rate FP8 work resolves to.
    pub fn int8_rate(&self) -> f64 {
        self.int8
            .unwrap_or_else(|| self.resolve(ComputeClass::Fp8).1)
    }
}

/// The scale-up network as seen by one GPU.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interconnect {
    /// Bandwidth per GPU in one direction, bytes/s (NVLink 4: 450e9; NVLink 5: 900e9).
    pub bandwidth_bytes_per_s: f64,
    /// Latency of one collective step (one hop of a ring all-reduce), s.
    pub latency_s: f64,
}

/// Achieved fraction of each peak, each in (0, 1].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Efficiency {
    /// Fraction of peak tensor FLOP/s reached by large GEMMs and attention.
    pub compute: f64,
    /// Optional per-precision fractions of peak, replacing `compute` for work that runs on that
    /// class of tensor core (e.g. a measured FP8 matmul ceiling beside a BF16 one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_by_precision: Option<ComputeEfficiencies>,
    /// Fraction of peak HBM bandwidth reached by streaming reads.
    pub memory: f64,
    /// Fraction of link bandwidth reached by collectives.
    pub interconnect: f64,
    /// Fraction of the shorter of an operator's compute and memory times hidden under the
    /// longer, in [0, 1]: 1 is the ideal roofline (the slower of the two), 0 adds them.
    pub overlap: f64,
}

/// Per-precision compute efficiencies, each in (0, 1]; an absent class uses `compute`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComputeEfficiencies {
    /// FP32 / TF32 work.
    pub fp32: Option<f64>,
    /// BF16 / FP16 work.
    pub bf16: Option<f64>,
    /// FP8 / INT8 work.
    pub fp8: Option<f64>,
    /// FP4 work.
    pub fp4: Option<f64>,
}

impl Efficiency {
    /// Fraction of peak reached by work running on `class` tensor cores.
    pub fn compute_for(&self, class: ComputeClass) -> f64 {
        let by = self.compute_by_precision.as_ref();
        let specific = by.and_then(|b| match class {
            ComputeClass::Fp32 => b.fp32,
            ComputeClass::Bf16 => b.bf16,
            ComputeClass::Fp8 => b.fp8,
            ComputeClass::Fp4 => b.fp4,
        });
        specific.unwrap_or(self.compute)
    }
}

/// Costs outside the rooflines.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overheads {
    /// Fixed cost added to every operator (launch, ramp-up and tail of one kernel), s.
    pub kernel_s: f64,
    /// Host time per iteration (scheduling, batch preparation), s.
    pub iteration_s: f64,
    /// Host time per sequence in an iteration (sampling, detokenisation, bookkeeping), s.
    pub per_sequence_s: f64,
    /// HBM per GPU kept from weights and KV cache (CUDA context, activations, workspace), bytes.
    pub reserved_bytes: f64,
    /// Share of the HBM left after the weights and `reserved_bytes` that the KV cache takes, in
    /// (0, 1], as TensorRT-LLM's `free_gpu_memory_fraction` sizes it; absent: all of it (the
    /// profile's `reserved_bytes` then stands for everything else, as vLLM's
    /// `gpu_memory_utilization` sizes a cache).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_free_fraction: Option<f64>,
}

impl Overheads {
    /// HBM per GPU the KV cache gets of `capacity_bytes` beside `weight_bytes` of weights, bytes
    /// (negative when the weights do not fit).
    pub fn kv_room_bytes(&self, capacity_bytes: f64, weight_bytes: f64) -> f64 {
        let free = capacity_bytes - self.reserved_bytes - weight_bytes;
        if free > 0.0 {
            free * self.kv_free_fraction.unwrap_or(1.0)
        } else {
            free
        }
    }
}

impl HardwareProfile {
    /// Which kind of machine this is. A profile that passed `validate()` has exactly one section;
    /// given both, the GPU section wins.
    pub fn kind(&self) -> Option<HardwareKind<'_>> {
        match (&self.gpu, &self.wafer) {
            (Some(g), _) => Some(HardwareKind::Gpu(g)),
            (None, Some(w)) => Some(HardwareKind::Wafer(w)),
            (None, None) => None,
        }
    }

    /// The wafer section, if this is a wafer cluster.
    pub fn wafer(&self) -> Option<&WaferSystem> {
        self.wafer.as_ref()
    }

    /// The GPU section, if this is a GPU system.
    pub fn gpu(&self) -> Option<&GpuSystem> {
        self.gpu.as_ref()
    }

    /// Every physical-sense problem in the profile.
    pub fn validate(&self) -> Vec<Problem> {
        let mut c = Checker::default();
        c.non_empty("name", &self.name);
        match (&self.gpu, &self.wafer) {
            (None, None) => c.fail(
                "gpu",
                "expected a machine section, [gpu] or [wafer]; none was given",
            ),
            (Some(_), Some(_)) => c.fail(
                "wafer",
                "expected one machine section, found both [gpu] and [wafer]",
            ),
            (Some(g), None) => g.check(&mut c),
            (None, Some(w)) => w.check(&mut c),
        }
        if let Some(p) = &self.power {
            p.check(&mut c);
        }
        if let Some(p) = &self.price {
            let usd = p.usd_per_device_hour;
            c.in_range("price.usd_per_device_hour", usd, USD_PER_DEVICE_HOUR);
        }
        if let Some(f) = &self.frontend {
            f.check(&mut c);
        }
        c.problems
    }
}

impl Power {
    fn check(&self, c: &mut Checker) {
        c.in_range("power.busy_w_per_device", self.busy_w_per_device, POWER_W);
        c.in_range("power.idle_w_per_device", self.idle_w_per_device, POWER_W);
        if self.idle_w_per_device.is_finite()
            && self.busy_w_per_device.is_finite()
            && self.idle_w_per_device > self.busy_w_per_device
        {
            c.fail(
                "power.idle_w_per_device",
                format!(
                    "expected at most power.busy_w_per_device ({}), found {}",
                    self.busy_w_per_device, self.idle_w_per_device
                ),
            );
        }
    }
}

impl GpuSystem {
    fn check(&self, c: &mut Checker) {
        c.count("gpu.devices", u64::from(self.devices), MAX_DEVICES);
        c.in_range(
            "gpu.hbm_capacity_bytes",
            self.hbm_capacity_bytes,
            CAPACITY_BYTES,
        );
        let bw = self.hbm_bandwidth_bytes_per_s;
        c.in_range("gpu.hbm_bandwidth_bytes_per_s", bw, BANDWIDTH_BYTES_PER_S);
        let p = &self.peak_flops_per_s;
        c.in_range("gpu.peak_flops_per_s.bf16", p.bf16, FLOPS_PER_S);
        for (name, v) in [
            ("fp32", p.fp32),
            ("fp8", p.fp8),
            ("fp4", p.fp4),
            ("int8", p.int8),
        ] {
            if let Some(v) = v {
                c.in_range(&format!("gpu.peak_flops_per_s.{name}"), v, FLOPS_PER_S);
            }
        }
        let link = &self.interconnect;
        let bw = link.bandwidth_bytes_per_s;
        c.in_range(
            "gpu.interconnect.bandwidth_bytes_per_s",
            bw,
            BANDWIDTH_BYTES_PER_S,
        );
        c.in_range("gpu.interconnect.latency_s", link.latency_s, TIME_S);
        if let Some(bw) = self.host_bandwidth_bytes_per_s {
            c.in_range("gpu.host_bandwidth_bytes_per_s", bw, BANDWIDTH_BYTES_PER_S);
        }
        if let Some(b) = self.host_memory_bytes {
            c.in_range("gpu.host_memory_bytes", b, CAPACITY_BYTES);
        }
        if let Some(n) = self.streaming_multiprocessors {
            c.count("gpu.streaming_multiprocessors", n.into(), 100_000);
        }
        c.fraction("gpu.efficiency.compute", self.efficiency.compute);
        if let Some(b) = &self.efficiency.compute_by_precision {
            for (name, v) in [
                ("fp32", b.fp32),
                ("bf16", b.bf16),
                ("fp8", b.fp8),
                ("fp4", b.fp4),
            ] {
                if let Some(v) = v {
                    c.fraction(&format!("gpu.efficiency.compute_by_precision.{name}"), v);
                }
            }
        }
        c.fraction("gpu.efficiency.memory", self.efficiency.memory);
        c.fraction("gpu.efficiency.interconnect", self.efficiency.interconnect);
        c.unit_interval("gpu.efficiency.overlap", self.efficiency.overlap);
        if let Some(curves) = &self.gemm_curves {
            curves.check(c);
        }
        if let Some(curves) = &self.attention_curves {
            curves.check(c);
        }
        if let Some(curves) = &self.collective_curves {
            curves.check(c);
        }
        if let Some(curves) = &self.moe_curves {
            curves.check(c);
        }
        let o = &self.overheads;
        c.in_range("gpu.overheads.kernel_s", o.kernel_s, TIME_S);
        c.in_range("gpu.overheads.iteration_s", o.iteration_s, TIME_S);
        c.in_range("gpu.overheads.per_sequence_s", o.per_sequence_s, TIME_S);
        c.non_negative("gpu.overheads.reserved_bytes", o.reserved_bytes);
        if let Some(f) = o.kv_free_fraction {
            c.fraction("gpu.overheads.kv_free_fraction", f);
        }
        if o.reserved_bytes.is_finite() && o.reserved_bytes >= self.hbm_capacity_bytes {
            c.fail(
                "gpu.overheads.reserved_bytes",
                format!(
                    "expected less than gpu.hbm_capacity_bytes ({:e}), found {:e}",
                    self.hbm_capacity_bytes, o.reserved_bytes
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::profile::catalog::{hardware_from_str, profile_text};
    use crate::profile::{load_hardware, Override};

    fn h100_with(replace: &str, with: &str) -> crate::Result<super::HardwareProfile> {
        let (_, text) = profile_text("hardware", "h100-sxm").unwrap();
        assert!(text.contains(replace), "{replace} not in the profile");
        hardware_from_str("test.toml".into(), &text.replace(replace, with), &[])
    }

    #[test]
    fn the_kv_cache_takes_its_fraction_of_the_memory_left() {
        let mut o = load_hardware("h100-sxm", &[])
            .unwrap()
            .gpu
            .unwrap()
            .overheads;
        o.reserved_bytes = 4e9;
        // 80 GB less 4 GB reserved less 36 GB of weights: 40 GB, all of it or 95%.
        approx::assert_relative_eq!(o.kv_room_bytes(80e9, 36e9), 40e9);
        o.kv_free_fraction = Some(0.95);
        approx::assert_relative_eq!(o.kv_room_bytes(80e9, 36e9), 38e9);
        // Weights that do not fit leave no room, and the shortfall is not scaled.
        approx::assert_relative_eq!(o.kv_room_bytes(80e9, 86e9), -10e9);
        let e = h100_with(
            "reserved_bytes = 8.55e9",
            "reserved_bytes = 8.55e9\nkv_free_fraction = 1.5",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("gpu.overheads.kv_free_fraction"), "{e}");
    }

    #[test]
    fn every_shipped_profile_has_power_and_price() {
        for name in crate::profile::catalog::hardware_names() {
            let hw = load_hardware(name, &[]).unwrap();
            assert!(hw.power.is_some(), "{name} has no [power]");
            assert!(hw.price.is_some(), "{name} has no [price]");
        }
    }

    #[test]
    fn power_must_be_positive_with_idle_at_most_busy() {
        let e = h100_with("busy_w_per_device = 1275.0", "busy_w_per_device = -5.0")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("test.toml") && e.contains("power.busy_w_per_device"),
            "{e}"
        );
        let e = h100_with("idle_w_per_device = 318.75", "idle_w_per_device = 2000.0")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("power.idle_w_per_device") && e.contains("at most"),
            "{e}"
        );
        let e = h100_with("usd_per_device_hour = 6.155", "usd_per_device_hour = 0.0")
            .unwrap_err()
            .to_string();
        assert!(e.contains("price.usd_per_device_hour"), "{e}");
        let e = h100_with("boundary = \"system\"", "boundary = \"rack\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("rack") && e.contains("boundary"), "{e}");
    }

    #[test]
    fn power_and_price_are_optional() {
        let (_, text) = profile_text("hardware", "h100-sxm").unwrap();
        let bare = text.split("\n[power]").next().unwrap();
        let hw = hardware_from_str("bare.toml".into(), bare, &[]).unwrap();
        assert!(hw.power.is_none() && hw.price.is_none());
    }

    #[test]
    fn overrides_reach_power_and_price() {
        let sets = [
            Override::parse("hardware.price.usd_per_device_hour=3.5").unwrap(),
            Override::parse("hardware.price.basis=ownership").unwrap(),
            Override::parse("hardware.power.boundary=device").unwrap(),
            Override::parse("hardware.power.busy_w_per_device=700").unwrap(),
        ];
        let hw = load_hardware("h100-sxm", &sets).unwrap();
        let price = hw.price.unwrap();
        assert_eq!(price.usd_per_device_hour, 3.5);
        assert_eq!(price.basis, super::PriceBasis::Ownership);
        let power = hw.power.unwrap();
        assert_eq!(power.boundary, super::PowerBoundary::Device);
        assert_eq!(power.busy_w_per_device, 700.0);
    }
}
