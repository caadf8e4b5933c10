//! Request-length datasets: the (prompt, output) token counts of a benchmark's requests, shipped
//! (see reference/lengths/README.md for their sources) or read from a CSV with the header
//! `prompt_tokens,output_tokens`. A workload draws pairs from one uniformly at random, as MLPerf's
//! LoadGen draws queries from its dataset.

use crate::error::{Error, Result};
use crate::workload::LengthDist;

/// Shipped datasets: name and CSV text.
const SHIPPED: &[(&str, &str)] = &[
    (
        "mlperf-llama2-70b",
        include_str!("../reference/lengths/mlperf-llama2-70b.csv"),
    ),
    (
        "mlperf-llama3.1-405b",
        include_str!("../reference/lengths/mlperf-llama3.1-405b.csv"),
    ),
    (
        "mlperf-deepseek-r1",
        include_str!("../reference/lengths/mlperf-deepseek-r1.csv"),
    ),
];

/// Names of the shipped datasets.
pub fn shipped_names() -> Vec<&'static str> {
    SHIPPED.iter().map(|(n, _)| *n).collect()
}

/// The requests' lengths of one dataset, row by row.
#[derive(Debug, Clone, PartialEq)]
pub struct LengthSet {
    /// Prompt lengths, tokens (each at least 1).
    pub prompt: Vec<u32>,
    /// Output lengths, tokens (each at least 1).
    pub output: Vec<u32>,
}

impl LengthSet {
    /// A shipped dataset by name, or a CSV file by path.
    pub fn load(name_or_path: &str) -> Result<LengthSet> {
        if let Some((name, text)) = SHIPPED.iter().find(|(n, _)| *n == name_or_path) {
            return LengthSet::parse(name, text);
        }
        let text = std::fs::read_to_string(name_or_path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                Error::arg(
                    "lengths",
                    format!(
                        "\"{name_or_path}\" is neither a shipped length dataset ({}) nor a file",
                        shipped_names().join(", ")
                    ),
                )
            } else {
                Error::Io {
                    path: name_or_path.to_string(),
                    source,
                }
            }
        })?;
        LengthSet::parse(name_or_path, &text)
    }

    /// Parse CSV text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<LengthSet> {
        let err = |line: usize, message: String| Error::Trace {
            file: file.to_string(),
            line,
            message,
        };
        let mut lines = text.lines().enumerate();
        let header = lines.next().map(|(_, h)| h.trim()).unwrap_or_default();
        if header != "prompt_tokens,output_tokens" {
            return Err(err(
                1,
                format!("expected the header prompt_tokens,output_tokens, found \"{header}\""),
            ));
        }
        let mut set = LengthSet {
            prompt: Vec::new(),
            output: Vec::new(),
        };
        for (i, line) in lines {
            if line.trim().is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            let [p, o] = fields.as_slice() else {
                return Err(err(
                    i + 1,
                    format!("expected 2 fields, found {}", fields.len()),
                ));
            };
            let tokens = |name: &str, s: &str, min: u32| -> Result<u32> {
                match s.parse::<u32>() {
                    Ok(v) if v >= min => Ok(v),
                    _ => Err(err(
                        i + 1,
                        format!("{name}: expected a whole number >= {min}, found \"{s}\""),
                    )),
                }
            };
            set.prompt.push(tokens("prompt_tokens", p, 1)?);
            set.output.push(tokens("output_tokens", o, 1)?);
        }
        if set.prompt.is_empty() {
            return Err(err(1, "no data rows after the header".into()));
        }
        Ok(set)
    }

    /// Number of requests.
    pub fn len(&self) -> usize {
        self.prompt.len()
    }

    /// True when there are no requests (never for a parsed set).
    pub fn is_empty(&self) -> bool {
        self.prompt.is_empty()
    }

    /// Mean prompt length, tokens.
    pub fn mean_prompt(&self) -> f64 {
        mean(&self.prompt)
    }

    /// Mean output length, tokens.
    pub fn mean_output(&self) -> f64 {
        mean(&self.output)
    }

    /// Prompt and output distributions that draw this set's pairs; output lengths scaled so
    /// that their mean is `output_mean` (rounded, at least 1), or as they are for `None`.
    pub fn dists(&self, output_mean: Option<f64>) -> (LengthDist, LengthDist) {
        let scale = output_mean.map_or(1.0, |m| m / self.mean_output());
        let output = self
            .output
            .iter()
            .map(|&o| ((f64::from(o) * scale).round() as u32).max(1))
            .collect();
        (
            LengthDist::Sampled(self.prompt.clone()),
            LengthDist::Sampled(output),
        )
    }
}

fn mean(v: &[u32]) -> f64 {
    v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_sets_match_their_published_means() {
        // reference/lengths/README.md: MLCommons' tokens_per_sample for 405B (684.68) and the
        // DeepSeek-R1 dataset's mean-output-tok-len (4043.45).
        let l405 = LengthSet::load("mlperf-llama3.1-405b").unwrap();
        assert_eq!(l405.len(), 8313);
        approx::assert_relative_eq!(l405.mean_output(), 684.68, max_relative = 1e-4);
        let ds = LengthSet::load("mlperf-deepseek-r1").unwrap();
        assert_eq!(ds.len(), 4388);
        approx::assert_relative_eq!(ds.mean_output(), 4043.45, max_relative = 1e-4);
        assert_eq!(LengthSet::load("mlperf-llama2-70b").unwrap().len(), 24576);
    }

    #[test]
    fn scaling_keeps_the_shape_and_hits_the_mean() {
        let s = LengthSet::parse("t", "prompt_tokens,output_tokens\n10,100\n20,300\n").unwrap();
        let (p, o) = s.dists(Some(400.0));
        assert_eq!(p, LengthDist::Sampled(vec![10, 20]));
        assert_eq!(o, LengthDist::Sampled(vec![200, 600]));
    }

    #[test]
    fn bad_files_name_the_line_and_field() {
        let e = LengthSet::parse("f.csv", "prompt_tokens,output_tokens\n10,0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("f.csv") && e.contains("output_tokens"), "{e}");
        assert!(LengthSet::parse("f.csv", "a,b\n1,2\n").is_err());
        assert!(LengthSet::parse("f.csv", "prompt_tokens,output_tokens\n").is_err());
        assert!(LengthSet::parse("f.csv", "prompt_tokens,output_tokens\n1,2,3\n").is_err());
        let e = LengthSet::load("no-such-set").unwrap_err().to_string();
        assert!(e.contains("mlperf-llama2-70b"), "{e}");
    }
}
