//! Latency CDFs of one run.

use plotters::prelude::*;

use super::{draw_err, line_chart, span, Labels, Series};
use crate::engine::Outcome;
use crate::error::Result;

/// Empirical CDF points of `xs` scaled by `scale`.
fn cdf(mut xs: Vec<f64>, scale: f64) -> Vec<(f64, f64)> {
    xs.retain(|x| x.is_finite());
    xs.sort_by(f64::total_cmp);
    let n = xs.len() as f64;
    xs.iter()
        .enumerate()
        .map(|(i, x)| (x * scale, (i + 1) as f64 / n))
        .collect()
}

/// Latency CDFs of one run, one panel each: TTFT (ms), TPOT (ms), end-to-end (s).
pub fn latency_cdfs(outcome: &Outcome, title: &str) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1200, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let root = root.titled(title, ("sans-serif", 20)).map_err(draw_err)?;
        let panels = root.split_evenly((1, 3));
        let r = &outcome.requests;
        let ttft: Vec<f64> = r.iter().map(|q| q.first_token_s - q.arrival_s).collect();
        let tpot: Vec<f64> = r
            .iter()
            .filter(|q| q.output_tokens > 1)
            .map(|q| (q.completion_s - q.first_token_s) / f64::from(q.output_tokens - 1))
            .collect();
        let e2e: Vec<f64> = r.iter().map(|q| q.completion_s - q.arrival_s).collect();
        for (panel, (name, unit, xs, scale)) in panels.iter().zip([
            ("TTFT", "ms", ttft, 1e3),
            ("TPOT", "ms", tpot, 1e3),
            ("end-to-end latency", "s", e2e, 1.0),
        ]) {
            let series = [Series {
                name: format!("{name} CDF"),
                points: cdf(xs, scale),
            }];
            let (x0, x1) = span(series[0].points.iter().map(|p| p.0));
            line_chart(
                panel,
                &Labels {
                    title: &format!("{name} CDF"),
                    x: &format!("{name} ({unit})"),
                    y: "fraction of requests",
                },
                &series,
                false,
                (x0..x1, 0.0..1.05),
            )?;
        }
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdf_reaches_one_in_order() {
        let c = cdf(vec![3.0, 1.0, 2.0, f64::NAN], 1e3);
        assert_eq!(c, vec![(1e3, 1.0 / 3.0), (2e3, 2.0 / 3.0), (3e3, 1.0)]);
    }
}
