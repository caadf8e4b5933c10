//! The latency the client sees: a request's server record (arrival at the engine, first token,
//! last token, output tokens) seen through the network and API stack of the hardware profile's
//! `[frontend]` ([`crate::profile::Frontend`]).
//!
//! With `rtt` the network round trip, `P` the per-roundtrip overhead and `t` the per-token
//! overhead:
//!
//! - `P = (persistent ? 0 : connection_round_trips * rtt) + request_overhead_s`
//! - client TTFT = `rtt + P + server TTFT + t`
//! - tokens reach the client through a serial stream costing `t` each, so on the server's clock
//!   the first token leaves at `first + t` and the last at
//!   `last = max(completion + t, first + t + (n - 1) * t)`;
//! - client end-to-end = `rtt + P + (last - arrival)`;
//! - client ITL of a request = `(last - (first + t)) / (n - 1)` (none for one token).
//!
//! The request leaves the client `P + rtt/2` before it reaches the engine; every token reaches
//! the client `rtt/2` after it leaves the stack. A what-if [`FrontendScale`] multiplies `P` and
//! `t`. Deliberately ignored: the overheads do not feed back into the load (in a closed loop
//! the next request reaches the engine when the previous one completes there, as without a
//! frontend), variation of network and API times between requests, and the client's own
//! processing.

use serde::Serialize;

use super::Dist;
use crate::engine::RequestRecord;
use crate::error::{Error, Result};
use crate::profile::Frontend;
use crate::sketch::Sketch;

/// Multipliers of a what-if on the frontend: `roundtrip` scales the per-roundtrip overhead `P`,
/// `token` the per-token overhead.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FrontendScale {
    /// Factor on the per-roundtrip overhead (connection round trips and per-request API time).
    pub roundtrip: f64,
    /// Factor on the per-token overhead.
    pub token: f64,
}

impl Default for FrontendScale {
    fn default() -> Self {
        FrontendScale {
            roundtrip: 1.0,
            token: 1.0,
        }
    }
}

impl FrontendScale {
    /// Parse `roundtrip=0.2,token=0.7` (either key may be left out; factors finite and >= 0).
    pub fn parse(flag: &str, text: &str) -> Result<FrontendScale> {
        let mut s = FrontendScale::default();
        let expected = "expected KEY=FACTOR,... with keys roundtrip and token and factors >= 0, e.g. roundtrip=0.2,token=0.7";
        if text.trim().is_empty() {
            return Err(Error::arg(flag, format!("{expected}; found nothing")));
        }
        for part in text.split(',') {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| Error::arg(flag, format!("{expected}; found \"{part}\"")))?;
            let factor: f64 = value.trim().parse().map_err(|_| {
                Error::arg(
                    flag,
                    format!("{expected}; \"{}\" is not a number", value.trim()),
                )
            })?;
            if !(factor.is_finite() && factor >= 0.0) {
                return Err(Error::arg(
                    flag,
                    format!("{expected}; found {} = {factor}", key.trim()),
                ));
            }
            match key.trim() {
                "roundtrip" => s.roundtrip = factor,
                "token" => s.token = factor,
                other => {
                    return Err(Error::arg(
                        flag,
                        format!("{expected}; unknown key \"{other}\""),
                    ))
                }
            }
        }
        Ok(s)
    }
}

/// The client's view of one request's latencies, s.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClientLatency {
    /// Send to first token received.
    pub ttft_s: f64,
    /// Mean gap between tokens received; `None` for a one-token output.
    pub itl_s: Option<f64>,
    /// Send to last token received.
    pub e2e_s: f64,
}

/// The frontend's times as applied, s: the profile's with a what-if's scales.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ClientModel {
    /// Client-endpoint round trip.
    pub network_rtt_s: f64,
    /// Per-roundtrip overhead `P` (connection round trips and per-request API time), scaled.
    pub roundtrip_overhead_s: f64,
    /// Per-token overhead, scaled.
    pub token_overhead_s: f64,
    /// The scales applied.
    pub scale: FrontendScale,
}

impl ClientModel {
    /// The model of `frontend` under `scale`.
    pub fn new(frontend: &Frontend, scale: FrontendScale) -> ClientModel {
        ClientModel {
            network_rtt_s: frontend.network_rtt_s,
            roundtrip_overhead_s: frontend.roundtrip_overhead_s() * scale.roundtrip,
            token_overhead_s: frontend.token_overhead_s * scale.token,
            scale,
        }
    }

    /// The client's latencies of request `r` (module docs give the formulas).
    pub fn latency(&self, r: &RequestRecord) -> ClientLatency {
        let t = self.token_overhead_s;
        let before = self.network_rtt_s + self.roundtrip_overhead_s;
        let first = r.first_token_s + t;
        let n = r.output_tokens.max(1);
        let last = (r.completion_s + t).max(first + f64::from(n - 1) * t);
        ClientLatency {
            ttft_s: before + (first - r.arrival_s),
            itl_s: (n > 1).then(|| (last - first) / f64::from(n - 1)),
            e2e_s: before + (last - r.arrival_s),
        }
    }
}

/// Client-side latency distributions of a run, fed one record at a time as requests complete.
#[derive(Debug, Clone)]
pub struct ClientCollector {
    model: ClientModel,
    ttft_s: Sketch,
    itl_s: Sketch,
    e2e_s: Sketch,
}

impl ClientCollector {
    /// For requests seen through `model`.
    pub fn new(model: ClientModel) -> ClientCollector {
        ClientCollector {
            model,
            ttft_s: Sketch::new(),
            itl_s: Sketch::new(),
            e2e_s: Sketch::new(),
        }
    }

    /// Add one request's record.
    pub fn add(&mut self, r: &RequestRecord) {
        let c = self.model.latency(r);
        self.ttft_s.add(c.ttft_s);
        if let Some(itl) = c.itl_s {
            self.itl_s.add(itl);
        }
        self.e2e_s.add(c.e2e_s);
    }

    /// The distributions so far.
    pub fn summary(&self) -> ClientSummary {
        ClientSummary {
            model: self.model,
            ttft_s: Dist::of_sketch(&self.ttft_s),
            itl_s: Dist::of_sketch(&self.itl_s),
            e2e_s: Dist::of_sketch(&self.e2e_s),
        }
    }
}

/// Client-side latencies of a run (percentiles within the sketch's relative error).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ClientSummary {
    /// The frontend times applied.
    pub model: ClientModel,
    /// Client TTFT over requests.
    pub ttft_s: Dist,
    /// Client ITL per request (mean gap between tokens received) over requests of two or more
    /// tokens.
    pub itl_s: Dist,
    /// Client end-to-end latency over requests.
    pub e2e_s: Dist,
}

impl ClientSummary {
    /// The client view of kept records.
    pub fn of(model: ClientModel, records: &[RequestRecord]) -> ClientSummary {
        let mut c = ClientCollector::new(model);
        for r in records {
            c.add(r);
        }
        c.summary()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    fn record(arrival: f64, first: f64, completion: f64, n: u32) -> RequestRecord {
        RequestRecord {
            arrival_s: arrival,
            first_token_s: first,
            completion_s: completion,
            prompt_tokens: 100,
            output_tokens: n,
            preemptions: 0,
            instance: 0,
            cached_prompt_tokens: 0,
        }
    }

    fn frontend(persistent: bool, token_s: f64) -> Frontend {
        Frontend {
            network_rtt_s: 0.040,
            connection_round_trips: 2,
            persistent_connection: persistent,
            request_overhead_s: 0.030,
            token_overhead_s: token_s,
        }
    }

    #[test]
    fn server_bound_stream() {
        // Server: arrival 10 s, first token 10.1 s, 101 tokens, last at 11.1 s (10 ms gaps).
        // Token overhead 1 ms < 10 ms: the stream keeps up with the server.
        let m = ClientModel::new(&frontend(false, 0.001), FrontendScale::default());
        // P = 2 x 0.040 + 0.030 = 0.110.
        assert_relative_eq!(m.roundtrip_overhead_s, 0.110, max_relative = 1e-12);
        let c = m.latency(&record(10.0, 10.1, 11.1, 101));
        // TTFT = 0.040 + 0.110 + 0.100 + 0.001 = 0.251.
        assert_relative_eq!(c.ttft_s, 0.251, max_relative = 1e-12);
        // Last = max(11.1 + 0.001, 10.101 + 100 x 0.001 = 10.201) = 11.101;
        // E2E = 0.150 + (11.101 - 10) = 1.251; ITL = (11.101 - 10.101) / 100 = 0.010.
        assert_relative_eq!(c.e2e_s, 1.251, max_relative = 1e-12);
        assert_relative_eq!(c.itl_s.unwrap(), 0.010, max_relative = 1e-9);
    }

    #[test]
    fn stream_bound_when_token_overhead_exceeds_the_server_gap() {
        // Server gaps 1 ms (101 tokens over 0.1 s); token overhead 3 ms: the stream is slower.
        let m = ClientModel::new(&frontend(true, 0.003), FrontendScale::default());
        // Persistent: P = 0.030.
        assert_relative_eq!(m.roundtrip_overhead_s, 0.030, max_relative = 1e-12);
        let c = m.latency(&record(0.0, 0.05, 0.15, 101));
        // TTFT = 0.040 + 0.030 + 0.050 + 0.003 = 0.123.
        assert_relative_eq!(c.ttft_s, 0.123, max_relative = 1e-12);
        // Last = max(0.15 + 0.003 = 0.153, 0.053 + 100 x 0.003 = 0.353) = 0.353.
        // E2E = 0.070 + 0.353 = 0.423; ITL = (0.353 - 0.053) / 100 = 0.003.
        assert_relative_eq!(c.e2e_s, 0.423, max_relative = 1e-12);
        assert_relative_eq!(c.itl_s.unwrap(), 0.003, max_relative = 1e-9);
    }

    #[test]
    fn one_token_has_no_itl_and_scales_apply() {
        let scale = FrontendScale {
            roundtrip: 0.2,
            token: 0.5,
        };
        let m = ClientModel::new(&frontend(false, 0.002), scale);
        // P = 0.110 x 0.2 = 0.022; t = 0.001.
        let c = m.latency(&record(1.0, 1.5, 1.5, 1));
        assert_eq!(c.itl_s, None);
        // TTFT = 0.040 + 0.022 + 0.5 + 0.001 = 0.563 = E2E.
        assert_relative_eq!(c.ttft_s, 0.563, max_relative = 1e-12);
        assert_relative_eq!(c.e2e_s, 0.563, max_relative = 1e-12);
    }

    #[test]
    fn collector_summarises_every_record() {
        let m = ClientModel::new(&frontend(false, 0.001), FrontendScale::default());
        let s = ClientSummary::of(m, &[record(0.0, 0.1, 1.1, 101), record(0.0, 0.3, 1.3, 101)]);
        // TTFTs 0.251 and 0.451.
        assert_relative_eq!(s.ttft_s.mean, 0.351, max_relative = 1e-12);
    }

    #[test]
    fn scale_text_is_checked() {
        let s = FrontendScale::parse("--frontend-scale", "roundtrip=0.2,token=0.7").unwrap();
        assert_eq!((s.roundtrip, s.token), (0.2, 0.7));
        let s = FrontendScale::parse("--frontend-scale", "token=0").unwrap();
        assert_eq!((s.roundtrip, s.token), (1.0, 0.0));
        for bad in [
            "",
            "roundtrip",
            "roundtrip=x",
            "roundtrip=-1",
            "speed=2",
            "token=inf",
        ] {
            let e = FrontendScale::parse("--frontend-scale", bad)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("--frontend-scale") && e.contains("roundtrip"),
                "{bad}: {e}"
            );
        }
    }
}
