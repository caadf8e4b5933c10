//! Report: rendering results as aligned text tables, CSV or JSON. Numbers are formatted for
//! reading here only; values stay in SI units everywhere else. Charts live in [`plot`] (SVG) and
//! timelines in [`perfetto`] (Chrome trace-event JSON).

pub mod perfetto;
pub mod plot;

use std::fmt::Write as _;

/// Output format of every command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Aligned text for people.
    #[default]
    Table,
    /// One JSON document for programs.
    Json,
    /// Comma-separated values with a header row.
    Csv,
}

/// A table with a header row; every header carries its unit.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// Column headers.
    pub headers: Vec<String>,
    /// Rows of cells, as many as headers.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these headers.
    pub fn new<S: Into<String>>(headers: impl IntoIterator<Item = S>) -> Self {
        Table {
            headers: headers.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Append a row.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// Aligned text: text columns left-aligned, numeric columns right-aligned.
    pub fn render(&self) -> String {
        let n = self.headers.len();
        let mut width: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(n) {
                width[i] = width[i].max(c.chars().count());
            }
        }
        let numeric: Vec<bool> = (0..n)
            .map(|i| {
                self.rows.iter().all(|r| {
                    r.get(i)
                        .is_none_or(|c| c.parse::<f64>().is_ok() || c == "-" || c.is_empty())
                })
            })
            .collect();
        let mut out = String::new();
        let line = |cells: &[String], out: &mut String| {
            let mut s = String::new();
            for i in 0..n {
                let c = cells.get(i).map_or("", String::as_str);
                let pad = width[i] - c.chars().count();
                if i > 0 {
                    s.push_str("  ");
                }
                if numeric[i] {
                    s.push_str(&" ".repeat(pad));
                    s.push_str(c);
                } else {
                    s.push_str(c);
                    s.push_str(&" ".repeat(pad));
                }
            }
            out.push_str(s.trim_end());
            out.push('\n');
        };
        line(&self.headers, &mut out);
        let rule: Vec<String> = width.iter().map(|w| "-".repeat(*w)).collect();
        line(&rule, &mut out);
        for r in &self.rows {
            line(r, &mut out);
        }
        out
    }

    /// CSV (RFC 4180 quoting).
    pub fn csv(&self) -> String {
        let mut out = String::new();
        for r in std::iter::once(&self.headers).chain(&self.rows) {
            let cells: Vec<String> = r.iter().map(|c| csv_cell(c)).collect();
            let _ = writeln!(out, "{}", cells.join(","));
        }
        out
    }
}

/// One CSV cell, quoted when it holds a comma, a quote or a newline.
pub fn csv_cell(c: &str) -> String {
    if c.contains([',', '"', '\n']) {
        format!("\"{}\"", c.replace('"', "\"\""))
    } else {
        c.to_string()
    }
}

/// `x` as the shortest decimal within a relative 1e-12 of it: integers exactly, other values with
/// at most 13 significant digits, so sums of decimal inputs print as `21.91667462` rather than
/// `21.916674620000002`. No simulated quantity carries information at that depth.
pub fn tidy(x: f64) -> f64 {
    if !x.is_finite() || x == x.trunc() {
        return x;
    }
    // 13 digits are always within 5e-13.
    (1..=13)
        .map(|digits| format!("{:.*e}", digits - 1, x).parse::<f64>().unwrap_or(x))
        .find(|y| (y - x).abs() <= 1e-12 * x.abs())
        .unwrap_or(x)
}

/// Every floating-point number of a JSON document through [`tidy`].
pub fn tidy_json(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Number(n) if n.is_f64() => {
            if let Some(t) = n.as_f64().map(tidy).and_then(serde_json::Number::from_f64) {
                *n = t;
            }
        }
        Value::Array(a) => a.iter_mut().for_each(tidy_json),
        Value::Object(o) => o.values_mut().for_each(tidy_json),
        _ => {}
    }
}

/// A number with `sig` significant digits, without exponent for everyday magnitudes; `-` for NaN.
pub fn num(x: f64, sig: usize) -> String {
    if !x.is_finite() {
        return "-".into();
    }
    if x == 0.0 {
        return "0".into();
    }
    let mag = x.abs().log10().floor() as i32;
    if !(-4..=9).contains(&mag) {
        return format!("{:.*e}", sig.saturating_sub(1), x);
    }
    let decimals = (sig as i32 - 1 - mag).max(0) as usize;
    format!("{x:.decimals$}")
}

/// A count with its noun in the right number: `1 point`, `7 points`, `1 replica`.
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Seconds shown in milliseconds with 4 significant digits.
pub fn ms(s: f64) -> String {
    num(s * 1e3, 4)
}

/// Key-value lines aligned on the colon.
pub fn key_values(pairs: &[(&str, String)]) -> String {
    let w = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    pairs
        .iter()
        .map(|(k, v)| format!("{k:<w$} : {v}\n"))
        .collect()
}

/// Header of the per-request CSV.
pub const REQUESTS_CSV_HEADER: &str = "request,instance,arrival_s,first_token_s,completion_s,prompt_tokens,output_tokens,ttft_s,tpot_s,e2e_s,preemptions\n";

/// Columns the per-request CSV gains when the hardware profile has a `[frontend]`: the client's
/// TTFT, ITL (mean gap between tokens received) and end-to-end latency, s.
pub const CLIENT_CSV_COLUMNS: &str = "client_ttft_s,client_itl_s,client_e2e_s";

/// Header of the per-request CSV, with the client columns when `client`.
pub fn requests_csv_header(client: bool) -> String {
    if client {
        format!("{},{CLIENT_CSV_COLUMNS}\n", REQUESTS_CSV_HEADER.trim_end())
    } else {
        REQUESTS_CSV_HEADER.to_string()
    }
}

/// One row of the per-request CSV: request `i`'s record (times in seconds), and its client-side
/// latencies under `client`.
pub fn requests_csv_row(
    i: u32,
    r: &crate::engine::RequestRecord,
    client: Option<&crate::metrics::ClientModel>,
) -> String {
    let tpot = if r.output_tokens > 1 {
        ((r.completion_s - r.first_token_s) / f64::from(r.output_tokens - 1)).to_string()
    } else {
        String::new()
    };
    let client = client.map_or(String::new(), |m| {
        let c = m.latency(r);
        let itl = c.itl_s.map_or(String::new(), |x| x.to_string());
        format!(",{},{itl},{}", c.ttft_s, c.e2e_s)
    });
    format!(
        "{i},{},{},{},{},{},{},{},{tpot},{},{}{client}\n",
        r.instance,
        r.arrival_s,
        r.first_token_s,
        r.completion_s,
        r.prompt_tokens,
        r.output_tokens,
        r.first_token_s - r.arrival_s,
        r.completion_s - r.arrival_s,
        r.preemptions
    )
}

/// Kept per-request records as CSV, one row per request in arrival order, with client columns
/// under `client`.
pub fn requests_csv(
    outcome: &crate::engine::Outcome,
    client: Option<&crate::metrics::ClientModel>,
) -> String {
    let mut s = requests_csv_header(client.is_some());
    for (i, r) in outcome.requests.iter().enumerate() {
        s.push_str(&requests_csv_row(i as u32, r, client));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_significant_digits() {
        assert_eq!(num(1234.5678, 4), "1235");
        assert_eq!(num(0.012345, 3), "0.0123");
        assert_eq!(num(f64::NAN, 3), "-");
        assert_eq!(num(1.5e12, 3), "1.50e12");
    }

    #[test]
    fn tidy_drops_summation_noise_only() {
        assert_eq!(tidy(21.916674620000002).to_string(), "21.91667462");
        assert_eq!(tidy(0.1 + 0.2).to_string(), "0.3");
        assert_eq!(tidy(110002.39999999985).to_string(), "110002.4");
        // Integers stay exact however many digits they have.
        assert_eq!(tidy(10896480718848.0), 10896480718848.0);
        // A value with more digits keeps as many as a relative 1e-12 needs (at most 13).
        for x in [0.0031604088861130033, 2574.0471593354428, 1e-7 - 1e-23] {
            let t = tidy(x);
            assert!((t - x).abs() <= 1e-12 * x, "{x} -> {t}");
            assert!(
                t.to_string().trim_start_matches(['0', '.']).len() <= 14,
                "{x} -> {t}"
            );
        }
        assert_eq!(tidy(2574.0471593354428).to_string(), "2574.047159335");
        assert!(tidy(f64::NAN).is_nan());
        let mut v = serde_json::json!({"a": [0.30000000000000004, 7], "b": {"c": 2.0}});
        tidy_json(&mut v);
        assert_eq!(v.to_string(), r#"{"a":[0.3,7],"b":{"c":2.0}}"#);
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let mut t = Table::new(["a", "b"]);
        t.row(["x,y", "say \"hi\""]);
        assert_eq!(t.csv(), "a,b\n\"x,y\",\"say \"\"hi\"\"\"\n");
    }
}
