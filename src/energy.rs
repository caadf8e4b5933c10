//! Energy and cost per output token: what a run drew from the wall and what its devices cost,
//! from the hardware profile's `[power]` and `[price]` tables, the placement and the run's
//! summary.
//!
//! Model (two power levels, weighted by utilisation):
//!
//! - devices counted `n` = replicas x devices per replica (devices the placement leaves unused
//!   are not counted);
//! - mean power `P = n (u P_busy + (1 - u) P_idle)`, with `u` the run's utilisation: the
//!   fraction of the run an instance (a replica, or one pipeline lane of it) spent running
//!   iterations, averaged over instances. A lane's iteration passes through every stage of its
//!   replica, so that average is also the average busy fraction of the devices;
//! - energy `E = P T` over the run's simulated duration `T`; per output token `E / N_out`;
//! - cost `n x price per device-hour x T / 3600 s`; per million output tokens
//!   `cost / N_out x 1e6`.
//!
//! Deliberately ignored: power that varies with what an iteration does (a memory-bound decode
//! draws less than a compute-bound prefill, and both less than a rating: every device of an
//! instance counts as busy for its whole iteration, an upper bound for pipeline stages that wait
//! on each other); facility overhead (PUE: cooling and power distribution outside the system),
//! since no source for it was taken; and every cost but the hourly price (networking outside
//! the system, storage, staff). The figures depend on the profile's boundary and price basis,
//! which travel with the results so that reports can say what they include.

use serde::Serialize;

use crate::metrics::Summary;
use crate::profile::{HardwareProfile, PowerBoundary, PriceBasis};
use crate::system::System;

/// Seconds in an hour.
const S_PER_HOUR: f64 = 3600.0;

/// What a run used: the inputs of the energy and cost estimates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Usage {
    /// Devices counted: replicas x devices per replica.
    pub devices: u32,
    /// Fraction of the run the devices spent running iterations, in [0, 1].
    pub utilisation: f64,
    /// Simulated duration of the run, s.
    pub duration_s: f64,
    /// Output tokens generated over the run.
    pub output_tokens: u64,
}

impl Usage {
    /// The usage of a run of `system` summarised by `summary`.
    pub fn of(system: &System, summary: &Summary) -> Usage {
        let p = &system.placement;
        Usage {
            devices: p.replicas * p.devices_per_replica,
            utilisation: summary.utilisation,
            duration_s: summary.duration_s,
            output_tokens: summary.output_tokens,
        }
    }
}

/// Energy of a run, from the profile's `[power]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EnergyUse {
    /// What the power figures include.
    pub boundary: PowerBoundary,
    /// Power of one busy device, W.
    pub busy_w_per_device: f64,
    /// Power of one idle device, W.
    pub idle_w_per_device: f64,
    /// Mean power of the devices counted over the run, W.
    pub mean_power_w: f64,
    /// Energy over the run, J.
    pub energy_j: f64,
    /// Energy per output token, J (NaN without output tokens).
    pub energy_j_per_output_token: f64,
}

/// Cost of a run, from the profile's `[price]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CostUse {
    /// What the price pays for.
    pub basis: PriceBasis,
    /// Price of one device for one hour, US dollars.
    pub usd_per_device_hour: f64,
    /// Cost of the devices counted over the run, US dollars.
    pub cost_usd: f64,
    /// Cost per million output tokens, US dollars (NaN without output tokens).
    pub cost_usd_per_million_output_tokens: f64,
}

/// Energy and cost of a run; each is `None` when the profile lacks its table.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EnergyCost {
    /// What the run used.
    pub usage: Usage,
    /// What a device is: `gpu` or `wafer`.
    pub device: &'static str,
    /// Energy, if the profile has `[power]`.
    pub energy: Option<EnergyUse>,
    /// Cost, if the profile has `[price]`.
    pub cost: Option<CostUse>,
}

impl EnergyCost {
    /// Energy and cost of a run of `system` summarised by `summary`.
    pub fn of(system: &System, summary: &Summary) -> EnergyCost {
        estimate(
            &system.hardware,
            system.placement.device,
            Usage::of(system, summary),
        )
    }

    /// Energy per output token, J, if known.
    pub fn j_per_output_token(&self) -> Option<f64> {
        self.energy.map(|e| e.energy_j_per_output_token)
    }

    /// Cost per million output tokens, US dollars, if known.
    pub fn usd_per_million_output_tokens(&self) -> Option<f64> {
        self.cost.map(|c| c.cost_usd_per_million_output_tokens)
    }

    /// Mean power over the run, W, if known.
    pub fn mean_power_w(&self) -> Option<f64> {
        self.energy.map(|e| e.mean_power_w)
    }
}

/// Energy and cost of `usage` on `hardware` (whose devices are `device`s), by the module's
/// formulas.
///
/// ```
/// use infersim::energy::{estimate, Usage};
/// use infersim::profile::load_hardware;
///
/// // Eight H100s (system boundary: 1,275 W busy, 318.75 W idle each; $6.155 per GPU-hour),
/// // busy half of a 100-second run that produced 40,000 output tokens.
/// let hw = load_hardware("h100-sxm", &[])?;
/// let usage = Usage { devices: 8, utilisation: 0.5, duration_s: 100.0, output_tokens: 40_000 };
/// let e = estimate(&hw, "gpu", usage);
/// let energy = e.energy.unwrap();
/// assert!((energy.mean_power_w - 8.0 * (0.5 * 1275.0 + 0.5 * 318.75)).abs() < 1e-9);
/// assert!((energy.energy_j_per_output_token - 6375.0 * 100.0 / 40_000.0).abs() < 1e-9);
/// # Ok::<(), infersim::Error>(())
/// ```
pub fn estimate(hardware: &HardwareProfile, device: &'static str, usage: Usage) -> EnergyCost {
    let n = f64::from(usage.devices);
    let tokens = usage.output_tokens as f64;
    let per_token = |x: f64| if tokens > 0.0 { x / tokens } else { f64::NAN };
    let energy = hardware.power.as_ref().map(|p| {
        let u = usage.utilisation.clamp(0.0, 1.0);
        let mean_power_w = n * (u * p.busy_w_per_device + (1.0 - u) * p.idle_w_per_device);
        let energy_j = mean_power_w * usage.duration_s;
        EnergyUse {
            boundary: p.boundary,
            busy_w_per_device: p.busy_w_per_device,
            idle_w_per_device: p.idle_w_per_device,
            mean_power_w,
            energy_j,
            energy_j_per_output_token: per_token(energy_j),
        }
    });
    let cost = hardware.price.as_ref().map(|p| {
        let cost_usd = n * p.usd_per_device_hour * usage.duration_s / S_PER_HOUR;
        CostUse {
            basis: p.basis,
            usd_per_device_hour: p.usd_per_device_hour,
            cost_usd,
            cost_usd_per_million_output_tokens: per_token(cost_usd) * 1e6,
        }
    });
    EnergyCost {
        usage,
        device,
        energy,
        cost,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Loop;
    use crate::placement::ParallelRequest;
    use crate::profile::{load_hardware, load_model, Override};
    use crate::system::ServeSettings;
    use crate::workload::{Arrivals, LengthDist, Workload};
    use approx::assert_relative_eq;

    fn h100(sets: &[&str]) -> HardwareProfile {
        let o: Vec<Override> = sets.iter().map(|s| Override::parse(s).unwrap()).collect();
        load_hardware("h100-sxm", &o).unwrap()
    }

    /// By hand: 8 devices, 1,000 W busy, 200 W idle, busy 75% of 100 s, 50,000 tokens, $4 per
    /// device-hour. Mean power 8 x (0.75 x 1000 + 0.25 x 200) = 6,400 W; energy 640,000 J =
    /// 12.8 J/token; cost 8 x 4 x 100 / 3600 = $0.8889 = $17.78 per million tokens.
    #[test]
    fn formula_matches_a_hand_calculation() {
        let hw = h100(&[
            "hardware.power.busy_w_per_device=1000.0",
            "hardware.power.idle_w_per_device=200.0",
            "hardware.price.usd_per_device_hour=4.0",
        ]);
        let usage = Usage {
            devices: 8,
            utilisation: 0.75,
            duration_s: 100.0,
            output_tokens: 50_000,
        };
        let e = estimate(&hw, "gpu", usage);
        let energy = e.energy.unwrap();
        assert_relative_eq!(energy.mean_power_w, 6400.0, max_relative = 1e-12);
        assert_relative_eq!(energy.energy_j, 640_000.0, max_relative = 1e-12);
        assert_relative_eq!(energy.energy_j_per_output_token, 12.8, max_relative = 1e-12);
        let cost = e.cost.unwrap();
        assert_relative_eq!(
            cost.cost_usd,
            8.0 * 4.0 * 100.0 / 3600.0,
            max_relative = 1e-12
        );
        assert_relative_eq!(
            cost.cost_usd_per_million_output_tokens,
            17.777_777_777_777_78,
            max_relative = 1e-12
        );
        assert_eq!(cost.basis, PriceBasis::Rental);
        assert_eq!(energy.boundary, PowerBoundary::System);
    }

    #[test]
    fn no_tokens_gives_no_per_token_figure() {
        let e = estimate(
            &h100(&[]),
            "gpu",
            Usage {
                devices: 1,
                utilisation: 0.0,
                duration_s: 10.0,
                output_tokens: 0,
            },
        );
        let energy = e.energy.unwrap();
        assert_relative_eq!(energy.energy_j, 3187.5, max_relative = 1e-12);
        assert!(energy.energy_j_per_output_token.is_nan());
        assert!(e.cost.unwrap().cost_usd_per_million_output_tokens.is_nan());
    }

    #[test]
    fn missing_tables_give_no_estimate() {
        let mut hw = h100(&[]);
        hw.power = None;
        hw.price = None;
        let e = estimate(
            &hw,
            "gpu",
            Usage {
                devices: 8,
                utilisation: 0.5,
                duration_s: 1.0,
                output_tokens: 10,
            },
        );
        assert!(e.energy.is_none() && e.cost.is_none());
        assert!(e.j_per_output_token().is_none() && e.usd_per_million_output_tokens().is_none());
    }

    fn closed_loop_j_per_token(users: u32) -> (EnergyCost, f64) {
        let hw = h100(&[]);
        let model = load_model("llama-3.2-1b", &[]).unwrap();
        let sys = System::new(hw, model, ParallelRequest::default()).unwrap();
        let w = Workload {
            requests: 64,
            arrivals: Arrivals::AllAtOnce,
            prompt: LengthDist::Fixed(256),
            output: LengthDist::Fixed(64),
            prefixes: None,
            sessions: None,
        };
        let (reqs, _) = w.generate(0, 131_072).unwrap();
        let (_, s) = sys
            .simulate(
                &reqs,
                &ServeSettings::default(),
                Loop::Closed { concurrency: users },
            )
            .unwrap();
        let e = EnergyCost::of(&sys, &s);
        assert_eq!(e.usage.devices, sys.placement.replicas);
        assert_eq!(e.usage.output_tokens, 64 * 64);
        (e, s.throughput_output_tokens_per_s)
    }

    /// Batching spreads the weight reads and the busy power of an iteration over more tokens:
    /// more users on the same machine lower the energy and the cost per token.
    #[test]
    fn more_concurrent_users_lower_energy_and_cost_per_token() {
        let (one, _) = closed_loop_j_per_token(1);
        let (many, _) = closed_loop_j_per_token(32);
        let (j1, j32) = (
            one.j_per_output_token().unwrap(),
            many.j_per_output_token().unwrap(),
        );
        assert!(j32 < j1 / 4.0, "J/token: 1 user {j1}, 32 users {j32}");
        let (c1, c32) = (
            one.usd_per_million_output_tokens().unwrap(),
            many.usd_per_million_output_tokens().unwrap(),
        );
        assert!(c32 < c1 / 4.0, "$/M tokens: 1 user {c1}, 32 users {c32}");
    }

    /// J/token equals mean power over throughput, whatever the run: a check of the bookkeeping
    /// between the summary and the estimate.
    #[test]
    fn energy_per_token_is_mean_power_over_throughput() {
        let (e, throughput) = closed_loop_j_per_token(8);
        assert_relative_eq!(
            e.j_per_output_token().unwrap(),
            e.mean_power_w().unwrap() / throughput,
            max_relative = 1e-9
        );
    }
}
