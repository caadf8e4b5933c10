//! Aggregates of a run fed one request record at a time, as requests complete, in memory that
//! does not grow with the run: latency distributions in quantile sketches ([`Sketch`]), means and
//! totals as exact sums, the quarters of the run compared for saturation as sums, and the backlog
//! at the instants [`super::overload`] reads as counts per span.

use super::OVERLOAD_SPANS;
use crate::engine::RequestRecord;
use crate::sketch::Sketch;

/// Streaming aggregates of one run's requests (see the module docs).
#[derive(Debug, Clone)]
pub struct Collector {
    /// Requests in the run (known before it: the workload's count).
    total: usize,
    pub(super) completed: usize,
    pub(super) output_tokens: u64,
    pub(super) prompt_tokens: u64,
    pub(super) cached_prompt_tokens: u64,
    pub(super) preemptions: u64,
    pub(super) ttft_s: Sketch,
    pub(super) tpot_s: Sketch,
    pub(super) e2e_s: Sketch,
    pub(super) tokens_per_s_per_user: Sketch,
    /// TTFT summed over the first quarter of requests (by index) and over the last.
    ttft_first_quarter_s: f64,
    ttft_last_quarter_s: f64,
    /// Open loop: the instants the backlog is read at, and per span up to each instant the
    /// arrivals and first tokens it saw (`None` for a closed loop or a run arriving at once).
    backlog: Option<BacklogCounts>,
}

/// Arrivals and first tokens counted per span between the instants the backlog is read at.
#[derive(Debug, Clone)]
struct BacklogCounts {
    /// Instant `j` of [`OVERLOAD_SPANS`] + 1, s.
    at_s: Vec<f64>,
    /// Arrivals after instant `j - 1` and at or before instant `j` (the last slot: after all).
    arrivals: Vec<usize>,
    /// The same for first tokens.
    firsts: Vec<usize>,
}

impl BacklogCounts {
    /// The slot of time `t`: the first instant at or after it.
    fn slot(&self, t: f64) -> usize {
        self.at_s.partition_point(|&x| x < t)
    }
}

impl Collector {
    /// For a run of `total` requests; `arrivals_s` is the first and last arrival of an open loop
    /// (as the engine's clock holds them), to read its backlog at evenly spaced instants between.
    pub fn new(total: usize, arrivals_s: Option<(f64, f64)>) -> Collector {
        let backlog = arrivals_s
            .filter(|(first, last)| last.partial_cmp(first) == Some(std::cmp::Ordering::Greater))
            .map(|(first, last)| BacklogCounts {
                at_s: (0..=OVERLOAD_SPANS)
                    .map(|j| first + (last - first) * j as f64 / OVERLOAD_SPANS as f64)
                    .collect(),
                arrivals: vec![0; OVERLOAD_SPANS + 2],
                firsts: vec![0; OVERLOAD_SPANS + 2],
            });
        Collector {
            total,
            completed: 0,
            output_tokens: 0,
            prompt_tokens: 0,
            cached_prompt_tokens: 0,
            preemptions: 0,
            ttft_s: Sketch::new(),
            tpot_s: Sketch::new(),
            e2e_s: Sketch::new(),
            tokens_per_s_per_user: Sketch::new(),
            ttft_first_quarter_s: 0.0,
            ttft_last_quarter_s: 0.0,
            backlog,
        }
    }

    /// Add request `index`'s record.
    pub fn add(&mut self, index: u32, r: &RequestRecord) {
        self.completed += 1;
        self.output_tokens += u64::from(r.output_tokens);
        self.prompt_tokens += u64::from(r.prompt_tokens);
        self.cached_prompt_tokens += u64::from(r.cached_prompt_tokens);
        self.preemptions += u64::from(r.preemptions);
        let ttft = r.first_token_s - r.arrival_s;
        self.ttft_s.add(ttft);
        self.e2e_s.add(r.completion_s - r.arrival_s);
        if r.output_tokens > 1 {
            let tpot = (r.completion_s - r.first_token_s) / f64::from(r.output_tokens - 1);
            self.tpot_s.add(tpot);
            if tpot > 0.0 {
                self.tokens_per_s_per_user.add(1.0 / tpot);
            }
        }
        let q = self.total / 4;
        let i = index as usize;
        if i < q {
            self.ttft_first_quarter_s += ttft;
        }
        if i >= self.total - q {
            self.ttft_last_quarter_s += ttft;
        }
        if let Some(b) = &mut self.backlog {
            let (a, f) = (b.slot(r.arrival_s), b.slot(r.first_token_s));
            b.arrivals[a] += 1;
            b.firsts[f] += 1;
        }
    }

    /// Mean TTFT of the last quarter of requests over that of the first (1 for fewer than 4).
    pub fn ttft_growth(&self) -> f64 {
        let q = (self.total / 4) as f64;
        if q > 0.0 {
            (self.ttft_last_quarter_s / q) / (self.ttft_first_quarter_s / q)
        } else {
            1.0
        }
    }

    /// The backlog (arrived, no first token yet) at each instant, with the instant; empty for a
    /// closed loop or a run whose requests all arrive at once.
    pub fn backlog(&self) -> Vec<(f64, usize)> {
        let Some(b) = &self.backlog else {
            return Vec::new();
        };
        let (mut arrived, mut served) = (0, 0);
        b.at_s
            .iter()
            .enumerate()
            .map(|(j, &t)| {
                arrived += b.arrivals[j];
                served += b.firsts[j];
                (t, arrived.saturating_sub(served))
            })
            .collect()
    }
}
