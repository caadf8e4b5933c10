//! `infersim step`: time one iteration (prefill or decode) of a model on a machine. Prints the
//! placement, the step time and what bounds it, per-user and total speed, whether the batch's
//! KV cache fits, and the per-operator breakdown (table, the breakdown as CSV, or JSON).

use clap::{Args, ValueEnum};
use serde_json::json;

use super::args::{Common, SystemArgs};
use super::text::{placement_text, pretty};
use crate::cost::{Batch, OpKind, StepCost};
use crate::error::{Error, Result};
use crate::limits::{check_count, MAX_BATCH};
use crate::report::{key_values, ms, num, Format, Table};
use crate::system::{Speculation, System};
use crate::warning::Warnings;

#[derive(Debug, Args)]
pub(super) struct StepArgs {
    #[command(flatten)]
    system: SystemArgs,
    /// Phase of the iteration.
    #[arg(long, value_enum, default_value_t = Phase::Decode)]
    phase: Phase,
    /// Sequences in the batch.
    #[arg(long, default_value_t = 1)]
    batch: u32,
    /// Decode: tokens already in each sequence's KV cache.
    #[arg(long, default_value_t = 1024)]
    context: u64,
    /// Prefill: prompt tokens per sequence.
    #[arg(long, default_value_t = 1024)]
    prompt: u64,
    /// Wafers: let the batch's KV cache spill from SRAM into external memory (paying for its
    /// reads), as `simulate --kv-spill`; without it a batch whose KV cache does not fit is refused.
    #[arg(long)]
    kv_spill: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Phase {
    /// Each sequence computes one new token after --context cached tokens.
    Decode,
    /// Each sequence computes its whole --prompt in one iteration.
    Prefill,
}

/// One timed iteration, as every output format reads it.
struct Timed {
    cost: StepCost,
    step_s: f64,
    per_user: f64,
    total: f64,
    /// Tokens in each sequence after the iteration.
    seq_len: u64,
    /// KV-cache tokens the batch needs.
    kv_needed: u64,
    /// KV-cache tokens a replica holds in fast memory.
    kv_room: u64,
    /// What was adjusted: the context limit lowered, KV cache spilled.
    warnings: Warnings,
}

pub(super) fn run(a: &StepArgs) -> Result<String> {
    let overrides = a.common.overrides()?;
    let sys = a.system.build(&overrides)?;
    check_count("--batch", a.batch.into(), MAX_BATCH)?;
    let mut batch = sys.batch();
    let (per_seq_tokens, seq_len) = fill_batch(a, &sys, &mut batch)?;
    let kv_needed = u64::from(a.batch) * seq_len;
    let kv_room = sys.placement.kv_capacity_tokens_per_replica;
    let mut warnings = sys.warnings();
    check_kv_fits(a, &sys, kv_needed, &mut warnings)?;
    let cost = sys.step(&batch);
    let step_s = cost.total_s();
    let per_user = per_seq_tokens / step_s;
    let total = per_user * f64::from(a.batch);
    let t = Timed {
        cost,
        step_s,
        per_user,
        total,
        seq_len,
        kv_needed,
        kv_room,
        warnings,
    };
    match a.common.format {
        Format::Json => Ok(pretty(&json_output(a, &sys, &t))),
        Format::Csv => Ok(breakdown_table(&sys, &t.cost).csv()),
        Format::Table => Ok(table_output(a, &sys, &t)),
    }
}

/// The fit rules of `simulate`: the batch's KV cache must fit a replica's fast memory or, with
/// --kv-spill, its fast and external memory together (the spill counted as a warning).
fn check_kv_fits(
    a: &StepArgs,
    sys: &System,
    kv_needed: u64,
    warnings: &mut Warnings,
) -> Result<()> {
    let p = &sys.placement;
    let room = p.kv_capacity_tokens_per_replica;
    if kv_needed <= room {
        return Ok(());
    }
    let spill_room = if a.kv_spill {
        p.kv_spill_tokens_per_replica
    } else {
        0
    };
    if kv_needed <= room.saturating_add(spill_room) {
        warnings.add(
            "kv_spilled",
            kv_needed - room,
            format!(
                "the batch's KV cache needs {kv_needed} tokens and fast memory holds {room}: the tokens beyond are read from external memory every step"
            ),
        );
        return Ok(());
    }
    let way_out = if p.kv_spill_tokens_per_replica > 0 && !a.kv_spill {
        format!(
            "; --kv-spill lets {} more tokens spill to external memory",
            p.kv_spill_tokens_per_replica
        )
    } else {
        String::new()
    };
    Err(Error::arg(
        "--batch",
        format!(
            "{} sequences of {} tokens need {kv_needed} tokens of KV cache but one replica of {} holds {}; lower --batch or the sequence length, or add devices{way_out}",
            a.batch,
            kv_needed / u64::from(a.batch),
            sys.model.name,
            room.saturating_add(spill_room),
        ),
    ))
}

/// Put --batch sequences of --phase in the batch; returns the tokens one step yields per
/// sequence and each sequence's length, checked against the context limit.
fn fill_batch(a: &StepArgs, sys: &System, batch: &mut Batch) -> Result<(f64, u64)> {
    let (window, what) = sys.context_limit();
    let (per_seq_tokens, seq_len) = match a.phase {
        Phase::Decode => {
            for _ in 0..a.batch {
                batch.push_sequence(1, a.context, true, true);
            }
            // Under speculative decoding one step yields the expected accepted tokens.
            let yielded = sys
                .speculation
                .as_ref()
                .map_or(1.0, Speculation::expected_tokens);
            // Verification writes the KV cache of gamma + 1 tokens (the engine's rule too).
            let gamma = sys.speculation.as_ref().map_or(0, |s| u64::from(s.gamma));
            (yielded, a.context.saturating_add(1 + gamma))
        }
        Phase::Prefill => {
            if a.prompt == 0 {
                return Err(Error::arg("--prompt", "expected at least 1 token"));
            }
            for _ in 0..a.batch {
                batch.push_sequence(a.prompt, 0, true, false);
            }
            (a.prompt as f64, a.prompt)
        }
    };
    if seq_len > window {
        return Err(Error::arg(
            if a.phase == Phase::Decode {
                "--context"
            } else {
                "--prompt"
            },
            format!("{seq_len} tokens exceed {what} of {window}"),
        ));
    }
    Ok((per_seq_tokens, seq_len))
}

fn json_output(a: &StepArgs, sys: &System, t: &Timed) -> serde_json::Value {
    let cost = &t.cost;
    let phase = match a.phase {
        Phase::Decode => "decode",
        Phase::Prefill => "prefill",
    };
    let breakdown: Vec<_> = OpKind::ALL
        .iter()
        .map(|k| {
            let o = cost.op(*k);
            json!({
                "op": k.name(), "time_s": o.time_s(), "bound": o.bound(),
                "compute_s": o.compute_s, "memory_s": o.memory_s,
                "exposed_s": o.exposed_s, "interconnect_s": o.interconnect_s, "overhead_s": o.overhead_s,
                "flops": o.flops, "bytes": o.bytes, "priced_by": sys.priced_by(*k),
            })
        })
        .collect();
    json!({
        "hardware": sys.hardware.name, "model": sys.model.name, "phase": phase,
        "batch": a.batch, "context_tokens": if a.phase == Phase::Decode { a.context } else { 0 },
        "prompt_tokens": if a.phase == Phase::Prefill { a.prompt } else { 0 },
        "step_s": t.step_s, "tokens_per_s_per_user": t.per_user, "tokens_per_s_total": t.total,
        "bound": cost.bound(), "kv_fits": t.kv_needed <= t.kv_room,
        "kv_spilled_tokens": t.kv_needed.saturating_sub(t.kv_room),
        "max_context_tokens": sys.context_limit().0,
        "placement": sys.placement, "breakdown": breakdown, "warnings": t.warnings,
    })
}

fn table_output(a: &StepArgs, sys: &System, t: &Timed) -> String {
    let (seq_len, kv_needed, kv_room) = (t.seq_len, t.kv_needed, t.kv_room);
    let (limit, what) = sys.context_limit();
    let fits_note = if kv_needed > kv_room {
        format!(
            "spilled: the batch needs {kv_needed} tokens of KV cache, fast memory holds {kv_room}, {} are read from external memory",
            kv_needed - kv_room
        )
    } else {
        "yes".into()
    };
    let head = key_values(&[
        ("hardware", sys.hardware.name.clone()),
        ("model", sys.model.name.clone()),
        ("placement", placement_text(&sys.placement)),
        (
            "iteration",
            match a.phase {
                Phase::Decode => format!(
                    "decode, batch {} x 1 token after {} cached tokens",
                    a.batch, a.context
                ),
                Phase::Prefill => {
                    format!("prefill, batch {} x {} prompt tokens", a.batch, a.prompt)
                }
            },
        ),
        ("KV cache fits", fits_note),
        (
            "KV room holds",
            format!(
                "{} sequences of {seq_len} tokens, or {} of {limit} tokens ({what})",
                kv_room / seq_len.max(1),
                kv_room / limit.max(1)
            ),
        ),
        (
            "step time",
            format!("{} ms ({}-bound)", ms(t.step_s), t.cost.bound().name()),
        ),
        ("per user", format!("{} tokens/s", num(t.per_user, 4))),
        ("total", format!("{} tokens/s", num(t.total, 4))),
    ]);
    format!(
        "{head}{}\n{}",
        t.warnings.lines(),
        breakdown_table(sys, &t.cost).render()
    )
}

fn breakdown_table(sys: &System, c: &StepCost) -> Table {
    let mut t = Table::new([
        "operator",
        "time_ms",
        "share_%",
        "bound",
        "compute_ms",
        "memory_ms",
        "exposed_ms",
        "interconnect_ms",
        "overhead_ms",
        "gflop",
        "gbytes",
        "priced_by",
    ]);
    let total = c.total_s();
    for k in OpKind::ALL {
        let o = c.op(k);
        if o.time_s() == 0.0 && o.bytes == 0.0 {
            continue;
        }
        t.row([
            k.name().to_string(),
            ms(o.time_s()),
            num(100.0 * o.time_s() / total, 3),
            o.bound().name().to_string(),
            ms(o.compute_s),
            ms(o.memory_s),
            ms(o.exposed_s),
            ms(o.interconnect_s),
            ms(o.overhead_s),
            num(o.flops / 1e9, 4),
            num(o.bytes / 1e9, 4),
            sys.priced_by(k).to_string(),
        ]);
    }
    t.row([
        "total".to_string(),
        ms(total),
        "100".into(),
        c.bound().name().to_string(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        num(c.ops.iter().map(|o| o.flops).sum::<f64>() / 1e9, 4),
        num(c.ops.iter().map(|o| o.bytes).sum::<f64>() / 1e9, 4),
        String::new(),
    ]);
    t
}
