//! Wafer-cluster profiles (the `[wafer]` section of `hardware/*.toml`): a cluster of wafer-scale
//! engines holding weights in on-chip SRAM, described per core (SRAM port, arithmetic, clock,
//! fabric hop) so that the cost model ([`crate::cost::wafer`]) can work from physical terms, plus
//! dated software generations carrying the parameters a serving-software release changed.
//!
//! Deliberately ignored: fabric congestion, defects and spare cores, the program's own SRAM
//! beyond `overheads.reserved_bytes`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::hardware::Interconnect;
use super::validate::range::{
    BANDWIDTH_BYTES_PER_S, CAPACITY_BYTES, CLOCK_HZ, CORES, CYCLES, FABRIC_PHASES, FLOPS_PER_S,
    TIME_S,
};
use super::validate::Checker;
use crate::limits::MAX_DEVICES;

/// A cluster of wafer-scale engines (e.g. Cerebras CS-3 systems) joined by Ethernet links.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaferSystem {
    /// Wafers (systems) in the cluster.
    pub wafers: u32,
    /// Compute cores per wafer.
    pub cores: u64,
    /// On-chip SRAM per wafer, bytes.
    pub sram_capacity_bytes: f64,
    /// Aggregate SRAM bandwidth per wafer (reads and writes), bytes/s.
    pub sram_bandwidth_bytes_per_s: f64,
    /// Share of `sram_bandwidth_bytes_per_s` a core can spend reading (its read ports over all
    /// its ports), in (0, 1].
    pub sram_read_share: f64,
    /// Peak 16-bit FLOP/s per wafer as published (may count sparsity; the cost model uses
    /// `dense_flops_per_core_per_cycle` instead).
    pub peak_flops_per_s: f64,
    /// Dense 16-bit FLOPs one core completes per clock cycle (2 per multiply-add lane).
    pub dense_flops_per_core_per_cycle: f64,
    /// Core clock, Hz.
    pub clock_hz: f64,
    /// Aggregate on-wafer fabric bandwidth, bytes/s.
    pub fabric_bandwidth_bytes_per_s: f64,
    /// Clock cycles one core-to-core hop of the fabric takes.
    pub fabric_hop_cycles: f64,
    /// Wafer-to-wafer link of one wafer.
    pub link: Interconnect,
    /// Off-wafer memory (MemoryX-style) for weights or KV cache that do not fit in SRAM.
    pub external_memory: ExternalMemory,
    /// Costs outside the model of the pipeline.
    pub overheads: WaferOverheads,
    /// Serving-software generations by release date (`YYYY-MM`), each with the parameters that
    /// release set.
    pub software: BTreeMap<String, WaferSoftware>,
    /// The generation to price (a key of `software`); absent: the newest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_generation: Option<String>,
}

/// Parameters of one serving-software generation. A generation states only what its release
/// changed; a parameter it leaves out is the next newer generation's (the newest states all).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaferSoftware {
    /// Synchronisation and reduction time of one layer's region per pass (barriers, the
    /// reduce/broadcast kernels' fixed cost, task switching), s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_sync_s: Option<f64>,
    /// Fraction of a core's SRAM read rate the matrix kernels achieve, in (0, 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sram_read_fraction: Option<f64>,
}

/// A generation's parameters with the ones it leaves out taken from newer generations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Generation<'a> {
    /// Its name, the release date `YYYY-MM`.
    pub name: &'a str,
    /// See [`WaferSoftware::layer_sync_s`].
    pub layer_sync_s: f64,
    /// See [`WaferSoftware::sram_read_fraction`].
    pub sram_read_fraction: f64,
}

/// Off-chip memory reached through the system I/O.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalMemory {
    /// Capacity of the whole cluster, bytes.
    pub capacity_bytes: f64,
    /// Bandwidth into one wafer, bytes/s.
    pub bandwidth_bytes_per_s: f64,
}

/// Fixed costs of serving on wafers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaferOverheads {
    /// Host time per iteration, s.
    pub iteration_s: f64,
    /// Host time per sequence per iteration (sampling, detokenisation), s.
    pub per_sequence_s: f64,
    /// SRAM per wafer kept from weights and KV cache (program, activations, buffers), bytes.
    pub reserved_bytes: f64,
    /// Matrix phases of a dense layer (each a broadcast along the rows and a reduction along the
    /// columns of the cores holding the matrix).
    pub fabric_phases_per_layer: f64,
}

impl WaferSystem {
    /// The generation priced (`software_generation`, or the newest), its missing parameters
    /// taken from newer generations; `None` if it is unknown or the newest lacks a parameter.
    pub fn generation(&self) -> Option<Generation<'_>> {
        let name = match &self.software_generation {
            Some(g) => self.software.get_key_value(g.as_str())?.0,
            None => self.software.keys().next_back()?,
        };
        let mut newer = self.software.range(name.clone()..).map(|(_, s)| s);
        let (mut sync, mut read) = (None, None);
        for s in &mut newer {
            sync = sync.or(s.layer_sync_s);
            read = read.or(s.sram_read_fraction);
        }
        Some(Generation {
            name,
            layer_sync_s: sync?,
            sram_read_fraction: read?,
        })
    }

    /// Bytes per second one core's read ports deliver (before the software's achieved fraction).
    pub fn core_read_bytes_per_s(&self) -> f64 {
        self.sram_bandwidth_bytes_per_s * self.sram_read_share / self.cores as f64
    }

    /// Dense 16-bit FLOP/s of one core.
    pub fn core_flops_per_s(&self) -> f64 {
        self.dense_flops_per_core_per_cycle * self.clock_hz
    }

    /// Time of one fabric hop, s.
    pub fn hop_s(&self) -> f64 {
        self.fabric_hop_cycles / self.clock_hz
    }

    pub(super) fn check(&self, c: &mut Checker) {
        c.count("wafer.wafers", u64::from(self.wafers), MAX_DEVICES);
        c.count("wafer.cores", self.cores, CORES);
        c.in_range(
            "wafer.sram_capacity_bytes",
            self.sram_capacity_bytes,
            CAPACITY_BYTES,
        );
        for (path, bw) in [
            (
                "sram_bandwidth_bytes_per_s",
                self.sram_bandwidth_bytes_per_s,
            ),
            (
                "fabric_bandwidth_bytes_per_s",
                self.fabric_bandwidth_bytes_per_s,
            ),
            (
                "link.bandwidth_bytes_per_s",
                self.link.bandwidth_bytes_per_s,
            ),
            (
                "external_memory.bandwidth_bytes_per_s",
                self.external_memory.bandwidth_bytes_per_s,
            ),
        ] {
            c.in_range(&format!("wafer.{path}"), bw, BANDWIDTH_BYTES_PER_S);
        }
        c.fraction("wafer.sram_read_share", self.sram_read_share);
        c.in_range("wafer.peak_flops_per_s", self.peak_flops_per_s, FLOPS_PER_S);
        c.in_range(
            "wafer.dense_flops_per_core_per_cycle",
            self.dense_flops_per_core_per_cycle,
            (1e-3, CYCLES.1),
        );
        c.in_range("wafer.clock_hz", self.clock_hz, CLOCK_HZ);
        c.in_range("wafer.fabric_hop_cycles", self.fabric_hop_cycles, CYCLES);
        c.in_range("wafer.link.latency_s", self.link.latency_s, TIME_S);
        let external = self.external_memory.capacity_bytes;
        if external != 0.0 {
            c.in_range(
                "wafer.external_memory.capacity_bytes",
                external,
                CAPACITY_BYTES,
            );
        }
        let o = &self.overheads;
        c.in_range("wafer.overheads.iteration_s", o.iteration_s, TIME_S);
        c.in_range("wafer.overheads.per_sequence_s", o.per_sequence_s, TIME_S);
        c.non_negative("wafer.overheads.reserved_bytes", o.reserved_bytes);
        let phases = o.fabric_phases_per_layer;
        c.in_range(
            "wafer.overheads.fabric_phases_per_layer",
            phases,
            FABRIC_PHASES,
        );
        if o.reserved_bytes.is_finite() && o.reserved_bytes >= self.sram_capacity_bytes {
            c.fail(
                "wafer.overheads.reserved_bytes",
                format!(
                    "expected less than wafer.sram_capacity_bytes ({:e}), found {:e}",
                    self.sram_capacity_bytes, o.reserved_bytes
                ),
            );
        }
        if self.software.is_empty() {
            c.fail(
                "wafer.software",
                "expected at least one software generation, e.g. [wafer.software.2024-10]",
            );
        }
        for (name, s) in &self.software {
            if !is_year_month(name) {
                c.fail(
                    &format!("wafer.software.{name}"),
                    "expected a generation named by its release date, YYYY-MM",
                );
            }
            if let Some(t) = s.layer_sync_s {
                c.in_range(&format!("wafer.software.{name}.layer_sync_s"), t, TIME_S);
            }
            if let Some(f) = s.sram_read_fraction {
                c.fraction(&format!("wafer.software.{name}.sram_read_fraction"), f);
            }
        }
        if let Some((name, newest)) = self.software.iter().next_back() {
            for (field, given) in [
                ("layer_sync_s", newest.layer_sync_s.is_some()),
                ("sram_read_fraction", newest.sram_read_fraction.is_some()),
            ] {
                if !given {
                    c.fail(
                        &format!("wafer.software.{name}.{field}"),
                        "expected a value: the newest generation states every parameter",
                    );
                }
            }
        }
        if let Some(g) = &self.software_generation {
            if !self.software.contains_key(g) {
                let known: Vec<&str> = self.software.keys().map(String::as_str).collect();
                c.fail(
                    "wafer.software_generation",
                    format!(
                        "unknown generation \"{g}\"; available: {}",
                        known.join(", ")
                    ),
                );
            }
        }
    }
}

/// `YYYY-MM` with a month from 01 to 12.
fn is_year_month(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 7
        && b[4] == b'-'
        && b[..4].iter().chain(&b[5..]).all(u8::is_ascii_digit)
        && matches!(s[5..].parse::<u8>(), Ok(1..=12))
}

#[cfg(test)]
mod tests {
    use crate::profile::{load_hardware, Override};

    fn wse3(sets: &[&str]) -> crate::Result<crate::profile::HardwareProfile> {
        let o: Vec<Override> = sets.iter().map(|s| Override::parse(s).unwrap()).collect();
        load_hardware("wse-3", &o)
    }

    #[test]
    fn the_newest_generation_is_the_default_and_others_are_chosen_by_name() {
        let w = wse3(&[]).unwrap().wafer.unwrap();
        let newest = w.software.keys().next_back().unwrap().clone();
        assert_eq!(w.generation().unwrap().name, newest);
        let oldest = w.software.keys().next().unwrap().clone();
        let set = format!("hardware.wafer.software_generation={oldest}");
        let w = wse3(&[&set]).unwrap().wafer.unwrap();
        let (old, new) = (w.generation().unwrap(), &w.software[&newest]);
        assert_eq!(old.name, oldest);
        // What the older generation leaves out comes from the newer one.
        assert!(w.software[&oldest].layer_sync_s.is_none());
        assert_eq!(Some(old.layer_sync_s), new.layer_sync_s);
    }

    #[test]
    fn an_unknown_or_badly_named_generation_is_refused() {
        let e = wse3(&["hardware.wafer.software_generation=2031-01"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("software_generation") && e.contains("available"),
            "{e}"
        );
        let e = wse3(&["hardware.wafer.software.latest.layer_sync_s=1e-6"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("YYYY-MM"), "{e}");
        assert!(super::is_year_month("2024-10") && !super::is_year_month("2024-13"));
    }
}
