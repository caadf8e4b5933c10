//! A run's timeline as Chrome trace-event JSON, which ui.perfetto.dev and chrome://tracing open:
//! iterations as slices (one track per instance), requests as async slices (waiting + prefill
//! until the first token, then decode), and per-instance counters of queue depth and KV-cache
//! use. Times in the file are microseconds of simulated time.

use serde_json::{json, Value};

use crate::engine::Outcome;

const PID_INSTANCES: u32 = 1;
const PID_REQUESTS: u32 = 2;

fn us(s: f64) -> f64 {
    // Whole nanoseconds, so the text is short and exact.
    (s * 1e9).round() / 1e3
}

/// The trace of `outcome` (which must have been run with its timeline recorded).
pub fn trace_json(outcome: &Outcome, title: &str) -> Value {
    let mut ev: Vec<Value> = Vec::with_capacity(
        outcome.timeline.len() * 3 + outcome.requests.len() * 4 + outcome.busy_s.len() + 4,
    );
    ev.push(
        json!({"ph": "M", "name": "process_name", "pid": PID_INSTANCES, "tid": 0,
        "args": {"name": format!("{title}: instances (iterations)")}}),
    );
    ev.push(
        json!({"ph": "M", "name": "process_name", "pid": PID_REQUESTS, "tid": 0,
        "args": {"name": format!("{title}: requests")}}),
    );
    for k in 0..outcome.busy_s.len() {
        ev.push(
            json!({"ph": "M", "name": "thread_name", "pid": PID_INSTANCES, "tid": k,
            "args": {"name": format!("instance {k}")}}),
        );
    }
    for st in &outcome.timeline {
        let name = if st.tokens == u64::from(st.sequences) {
            "decode"
        } else if st.sampled == 0 || st.sequences == 1 {
            "prefill"
        } else {
            "mixed"
        };
        ev.push(json!({
            "ph": "X", "name": name, "cat": "iteration", "pid": PID_INSTANCES,
            "tid": st.instance, "ts": us(st.start_s), "dur": us(st.end_s - st.start_s),
            "args": {"sequences": st.sequences, "tokens": st.tokens, "sampled": st.sampled},
        }));
        ev.push(json!({
            "ph": "C", "name": format!("queue depth, instance {} (requests)", st.instance),
            "pid": PID_INSTANCES, "ts": us(st.start_s), "args": {"waiting": st.waiting},
        }));
        ev.push(json!({
            "ph": "C", "name": format!("KV cache used, instance {} (fraction)", st.instance),
            "pid": PID_INSTANCES, "ts": us(st.start_s),
            "args": {"used": f64::from(st.kv_used_fraction)},
        }));
    }
    for (i, r) in outcome.requests.iter().enumerate() {
        let args = json!({"prompt_tokens": r.prompt_tokens, "output_tokens": r.output_tokens,
            "instance": r.instance, "preemptions": r.preemptions});
        let name = format!("request {i}");
        let common = |ph: &str, n: &str, ts: f64| {
            json!({"ph": ph, "name": n, "cat": "request", "id": i, "pid": PID_REQUESTS,
                "tid": 0, "ts": us(ts)})
        };
        let mut begin = common("b", &name, r.arrival_s);
        begin["args"] = args;
        ev.push(begin);
        ev.push(common("b", "waiting + prefill", r.arrival_s));
        ev.push(common("e", "waiting + prefill", r.first_token_s));
        if r.completion_s > r.first_token_s {
            ev.push(common("b", "decode", r.first_token_s));
            ev.push(common("e", "decode", r.completion_s));
        }
        ev.push(common("e", &name, r.completion_s));
    }
    json!({"traceEvents": ev, "displayTimeUnit": "ms",
        "otherData": {"source": "infersim", "title": title, "time": "simulated"}})
}
