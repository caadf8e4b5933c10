//! Compare charts: the rows as throughput against per-user speed, and each row's interactivity
//! curve as concurrency grows.

use plotters::prelude::*;

use super::{
    canvas, color, draw_err, frame, line_chart, log_axis, log_span, Entry, Key, Labels, Series,
};
use crate::error::Result;
use crate::study::compare::{CompareRow, Curve};

/// Compare rows as system throughput against per-user speed, one marker per row, log-log
/// (the rows span orders of magnitude on both axes); `run` says what ran.
pub fn compare_chart(rows: &[CompareRow], run: &str) -> Result<String> {
    let points: Vec<(String, (f64, f64))> = rows
        .iter()
        .filter_map(|r| {
            let p = (r.tokens_per_s_per_user?, r.throughput_output_tokens_per_s?);
            (p.0 > 0.0 && p.1 > 0.0).then(|| {
                (
                    format!("{} on {} ({})", r.model, r.hardware, r.placement),
                    p,
                )
            })
        })
        .collect();
    let entries: Vec<Entry> = points
        .iter()
        .enumerate()
        .map(|(i, (name, _))| Entry {
            name: name.clone(),
            color: color(i),
            key: Key::Dot,
        })
        .collect();
    let series: Vec<Series> = points
        .into_iter()
        .map(|(name, p)| Series {
            name,
            points: vec![p],
        })
        .collect();
    let labels = Labels {
        title: "System throughput against per-user speed",
        x: "per-user speed, median (tokens/s, log scale)",
        y: "system output throughput (tokens/s, log scale)",
    };
    log_log(&series, &entries, run, &labels)
}

/// `series` on log-log axes with markers, `run` above and `entries` below.
fn log_log(series: &[Series], entries: &[Entry], run: &str, labels: &Labels) -> Result<String> {
    let all = || series.iter().flat_map(|s| s.points.iter());
    let (x0, x1) = log_span(all().map(|p| p.0));
    let (y0, y1) = log_span(all().map(|p| p.1));
    let mut svg = String::new();
    {
        let root =
            SVGBackend::with_string(&mut svg, canvas(entries.len(), run)).into_drawing_area();
        let area = frame(&root, run, entries)?;
        line_chart(
            &area,
            labels,
            series,
            true,
            (log_axis(x0, x1), log_axis(y0, y1)),
        )?;
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

/// Each row's interactivity curve, GPU and wafer side by side: output tokens/s per device
/// against median per-user speed, one marker per concurrency level, log-log.
pub fn interactivity_chart(curves: &[Curve], run: &str) -> Result<String> {
    let series: Vec<Series> = curves
        .iter()
        .map(|c| Series {
            name: format!(
                "{} on {} ({}), per {}",
                c.model,
                c.hardware,
                c.placement,
                if c.device == "wafer" { "wafer" } else { "GPU" }
            ),
            points: c
                .points
                .iter()
                .map(|p| (p.tokens_per_s_per_user, p.tokens_per_s_per_device))
                .filter(|p| p.0 > 0.0 && p.1 > 0.0)
                .collect(),
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    let entries: Vec<Entry> = series
        .iter()
        .enumerate()
        .map(|(i, s)| Entry {
            name: s.name.clone(),
            color: color(i),
            key: Key::Line,
        })
        .collect();
    let labels = Labels {
        title: "Throughput per device against per-user speed as concurrency grows",
        x: "per-user speed, median (tokens/s, log scale)",
        y: "output tokens/s per device (log scale)",
    };
    log_log(&series, &entries, run, &labels)
}
