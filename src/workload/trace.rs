//! Request traces: CSV with header `arrived_at,num_prefill_tokens,num_decode_tokens` (seconds
//! and token counts), as the Splitwise / Azure LLM inference traces are processed by public
//! simulators; every row checked.

use std::path::Path;

use super::{RequestSpec, TraceRow};
use crate::error::{Error, Result};

/// Read a trace CSV (`arrived_at,num_prefill_tokens,num_decode_tokens`), checking every row.
pub fn read_trace(path: &Path) -> Result<Vec<TraceRow>> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: file.clone(),
        source,
    })?;
    parse_trace(&file, &text)
}

/// Parse trace text; `file` names it in errors.
pub fn parse_trace(file: &str, text: &str) -> Result<Vec<TraceRow>> {
    let err = |line: usize, message: String| Error::Trace {
        file: file.to_string(),
        line,
        message,
    };
    let mut lines = text.lines().enumerate();
    let expected = ["arrived_at", "num_prefill_tokens", "num_decode_tokens"];
    let (_, header) = lines
        .next()
        .ok_or_else(|| err(1, "empty file; expected a header line".into()))?;
    let cols: Vec<&str> = header.split(',').map(str::trim).collect();
    let idx: Vec<usize> = expected
        .iter()
        .map(|name| {
            cols.iter().position(|c| c == name).ok_or_else(|| {
                err(
                    1,
                    format!(
                        "missing column \"{name}\"; expected a header with {}",
                        expected.join(",")
                    ),
                )
            })
        })
        .collect::<Result<_>>()?;
    let mut rows = Vec::new();
    let mut last = f64::NEG_INFINITY;
    for (i, line) in lines {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != cols.len() {
            return Err(err(
                n,
                format!("expected {} fields, found {}", cols.len(), fields.len()),
            ));
        }
        let arrival: f64 = fields[idx[0]].parse().map_err(|_| {
            err(
                n,
                format!("arrived_at: expected seconds, found \"{}\"", fields[idx[0]]),
            )
        })?;
        if !(arrival.is_finite() && arrival >= 0.0) {
            return Err(err(
                n,
                format!("arrived_at: expected a time >= 0, found {arrival}"),
            ));
        }
        if arrival < last {
            return Err(err(
                n,
                format!("arrived_at: rows must be in time order, found {arrival} after {last}"),
            ));
        }
        last = arrival;
        let tokens = |k: usize, name: &str, min: u32| -> Result<u32> {
            let v: u32 = fields[idx[k]].parse().map_err(|_| {
                err(
                    n,
                    format!(
                        "{name}: expected a whole number of tokens, found \"{}\"",
                        fields[idx[k]]
                    ),
                )
            })?;
            if v < min {
                return Err(err(
                    n,
                    format!("{name}: expected at least {min}, found {v}"),
                ));
            }
            Ok(v)
        };
        rows.push(RequestSpec {
            arrival_s: arrival,
            prompt_tokens: tokens(1, "num_prefill_tokens", 1)?,
            output_tokens: tokens(2, "num_decode_tokens", 1)?,
            prefix: None,
            session: None,
        });
    }
    if rows.is_empty() {
        return Err(err(1, "no data rows after the header".into()));
    }
    Ok(rows)
}
