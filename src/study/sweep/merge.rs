//! Shard outputs and merging them. A shard's output starts with a shard line naming the sweep
//! (a hash of its spec text and `--set`s), the shard `K/N` and the number of points in the whole
//! sweep, so that `merge` can refuse shards of different sweeps, duplicates, gaps and truncated
//! files instead of writing a plausible but wrong file:
//!
//! ```text
//! # infersim shard=3/16 points=120 spec=5f1c0e1d2a3b4c5d          (CSV)
//! {"infersim_shard":"3/16","points":120,"spec":"5f1c0e1d2a3b4c5d"} (JSON Lines)
//! ```
//!
//! CSV is parsed as CSV: a quoted cell may hold commas, doubled quotes and line breaks.

use std::collections::BTreeMap;

use serde_json::json;

use super::output::{RowFormat, Shard};
use super::spec::Sweep;
use crate::error::{Error, Result};

/// 64-bit FNV-1a: a hash that is the same on every machine and build.
pub(super) fn fnv1a(bytes: &[u8], seed: u64) -> u64 {
    bytes.iter().fold(seed, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// FNV-1a's initial value.
pub(super) const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

impl Sweep {
    /// What identifies the sweep across shards: its spec text and every `--set`, hashed.
    pub fn fingerprint(&self) -> String {
        let h = self
            .spec
            .base
            .sets
            .iter()
            .fold(self.spec_hash, |h, s| fnv1a(format!("{s}\n").as_bytes(), h));
        format!("{h:016x}")
    }

    /// The first line of a shard's output.
    pub fn shard_line(&self, shard: Shard, format: RowFormat) -> String {
        let (k, n, points, spec) = (
            shard.index,
            shard.count,
            self.points.len(),
            self.fingerprint(),
        );
        match format {
            RowFormat::Csv => format!("# infersim shard={k}/{n} points={points} spec={spec}\n"),
            RowFormat::JsonLines => {
                json!({"infersim_shard": format!("{k}/{n}"), "points": points, "spec": spec})
                    .to_string()
                    + "\n"
            }
        }
    }
}

/// What a shard line says.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ShardInfo {
    format: RowFormat,
    shard: (usize, usize),
    points: usize,
    spec: String,
}

fn malformed(file: &str, line: usize, message: impl Into<String>) -> Error {
    Error::Trace {
        file: file.to_string(),
        line,
        message: message.into(),
    }
}

/// Parse a shard line (CSV or JSON Lines form).
fn shard_info(file: &str, line: &str) -> Result<ShardInfo> {
    let bad = || {
        malformed(
            file,
            1,
            "expected the shard line `sweep --shard K/N --out FILE` writes first (not a shard output, or one from an older infersim)",
        )
    };
    let (format, shard, points, spec) = if let Some(rest) = line.strip_prefix("# infersim ") {
        let mut fields = BTreeMap::new();
        for kv in rest.split_whitespace() {
            let (k, v) = kv.split_once('=').ok_or_else(bad)?;
            fields.insert(k, v.to_string());
        }
        let get = |k: &str| fields.get(k).cloned().ok_or_else(bad);
        (RowFormat::Csv, get("shard")?, get("points")?, get("spec")?)
    } else {
        let v: serde_json::Value = serde_json::from_str(line).map_err(|_| bad())?;
        let text = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
        let points = v.get("points").and_then(serde_json::Value::as_u64);
        (
            RowFormat::JsonLines,
            text("infersim_shard").ok_or_else(bad)?,
            points.ok_or_else(bad)?.to_string(),
            text("spec").ok_or_else(bad)?,
        )
    };
    let s = Shard::parse(&shard).map_err(|_| bad())?;
    Ok(ShardInfo {
        format,
        shard: (s.index, s.count),
        points: points.parse().map_err(|_| bad())?,
        spec,
    })
}

/// One CSV record: its first line (1-based), its text as written (without the final line
/// break) and its cells.
struct Record {
    line: usize,
    text: String,
    cells: Vec<String>,
}

/// Split CSV text into records, honouring quotes; the last record must end with a line break
/// (a file cut off mid-row is an error at that row's line).
fn csv_records(file: &str, text: &str, first_line: usize) -> Result<Vec<Record>> {
    let mut out = Vec::new();
    let mut line = first_line;
    let (mut start_line, mut raw, mut cell) = (line, String::new(), String::new());
    let mut cells = Vec::new();
    let (mut quoted, mut after_quote) = (false, false);
    for c in text.chars() {
        if quoted {
            if c == '"' {
                quoted = false;
                after_quote = true;
            } else {
                cell.push(c);
            }
            if c == '\n' {
                line += 1;
            }
            raw.push(c);
            continue;
        }
        match c {
            '"' if after_quote => {
                // A doubled quote inside a quoted cell.
                cell.push('"');
                quoted = true;
                after_quote = false;
            }
            '"' if cell.is_empty() => quoted = true,
            '"' => return Err(malformed(file, line, "a quote inside an unquoted cell")),
            ',' => {
                cells.push(std::mem::take(&mut cell));
                after_quote = false;
            }
            '\n' => {
                cells.push(std::mem::take(&mut cell));
                out.push(Record {
                    line: start_line,
                    text: std::mem::take(&mut raw),
                    cells: std::mem::take(&mut cells),
                });
                line += 1;
                start_line = line;
                after_quote = false;
                continue;
            }
            _ if after_quote => {
                return Err(malformed(
                    file,
                    line,
                    "text after a quoted cell's closing quote",
                ))
            }
            _ => cell.push(c),
        }
        raw.push(c);
    }
    if quoted || !raw.is_empty() {
        return Err(malformed(
            file,
            start_line,
            "the last row is cut off (no line break at its end): a truncated file",
        ));
    }
    Ok(out)
}

/// One row of a shard: its point, its line in the file, its text.
type Row = (usize, usize, String);

/// The rows of one shard output in file order, and the CSV header.
fn shard_rows(file: &str, info: &ShardInfo, body: &str) -> Result<(Option<String>, Vec<Row>)> {
    match info.format {
        RowFormat::Csv => {
            let mut records = csv_records(file, body, 2)?.into_iter();
            let header = records
                .next()
                .ok_or_else(|| malformed(file, 2, "expected the header line"))?;
            let width = header.cells.len();
            let rows = records
                .map(|r| {
                    if r.cells.len() != width {
                        return Err(malformed(
                            file,
                            r.line,
                            format!(
                                "expected {width} cells as in the header, found {}",
                                r.cells.len()
                            ),
                        ));
                    }
                    let point = r.cells[0].parse().map_err(|_| {
                        malformed(
                            file,
                            r.line,
                            "expected a sweep row starting with its point index",
                        )
                    })?;
                    Ok((point, r.line, r.text))
                })
                .collect::<Result<Vec<_>>>()?;
            Ok((Some(header.text), rows))
        }
        RowFormat::JsonLines => {
            if !body.is_empty() && !body.ends_with('\n') {
                let n = body.lines().count() + 1;
                return Err(malformed(
                    file,
                    n,
                    "the last row is cut off (no line break at its end): a truncated file",
                ));
            }
            let rows = body
                .lines()
                .enumerate()
                .map(|(i, l)| {
                    let point = serde_json::from_str::<serde_json::Value>(l)
                        .ok()
                        .and_then(|v| v.get("point").and_then(serde_json::Value::as_u64));
                    let point = point.ok_or_else(|| {
                        malformed(file, i + 2, "expected a JSON object with its point index")
                    })?;
                    Ok((point as usize, i + 2, l.to_string()))
                })
                .collect::<Result<Vec<_>>>()?;
            Ok((None, rows))
        }
    }
}

/// Merge shard outputs into one, rows in point order: the bytes an unsharded run writes. Every
/// shard of one sweep must be given once, each complete.
pub fn merge(inputs: &[(String, String)]) -> Result<String> {
    let mut first: Option<(String, ShardInfo, Option<String>)> = None;
    let mut seen: BTreeMap<usize, String> = BTreeMap::new();
    let mut rows: Vec<(usize, String)> = Vec::new();
    for (name, text) in inputs {
        let (head, body) = text.split_once('\n').unwrap_or((text, ""));
        let info = shard_info(name, head)?;
        let (header, shard_rows) = shard_rows(name, &info, body)?;
        if let Some((fname, f, fheader)) = &first {
            let differs = |what: &str| {
                Error::arg(
                    format!("merge {name}"),
                    format!("its {what} differs from {fname}'s: not shards of one sweep"),
                )
            };
            if f.format != info.format {
                return Err(differs("format (CSV or JSON Lines)"));
            }
            if f.spec != info.spec {
                return Err(differs("spec (the sweep file and its --set)"));
            }
            if (f.shard.1, f.points) != (info.shard.1, info.points) {
                return Err(differs("shard count or number of points"));
            }
            if *fheader != header {
                return Err(differs("header"));
            }
        }
        let (k, n) = info.shard;
        if let Some(other) = seen.insert(k, name.clone()) {
            return Err(Error::arg(
                format!("merge {name}"),
                format!("shard {k}/{n} is also {other}: overlapping shards"),
            ));
        }
        let mut expected = (k..info.points).step_by(n);
        for (point, line, text) in shard_rows {
            match expected.next() {
                Some(p) if p == point => rows.push((point, text)),
                Some(p) => {
                    return Err(malformed(
                        name,
                        line,
                        format!("expected point {p} of shard {k}/{n}, found {point}"),
                    ))
                }
                None => {
                    return Err(malformed(
                        name,
                        line,
                        format!("point {point} is beyond shard {k}/{n}'s points"),
                    ))
                }
            }
        }
        if let Some(p) = expected.next() {
            return Err(Error::arg(
                format!("merge {name}"),
                format!("rows stop before point {p}: a truncated or unfinished shard"),
            ));
        }
        first.get_or_insert((name.clone(), info, header));
    }
    let Some((_, info, header)) = first else {
        return Ok(String::new());
    };
    let n = info.shard.1;
    if let Some(k) = (0..n).find(|k| !seen.contains_key(k)) {
        return Err(Error::arg(
            "merge",
            format!("shard {k}/{n} is missing ({} of {n} given)", seen.len()),
        ));
    }
    rows.sort_by_key(|r| r.0);
    let mut out = header.map(|h| h + "\n").unwrap_or_default();
    for (_, text) in rows {
        out.push_str(&text);
        out.push('\n');
    }
    Ok(out)
}
