//! Charts as SVG (plotters, SVG backend, no system fonts): latency CDFs of a run, a sweep axis
//! against a metric, and the compare rows as throughput against per-user speed. Every series is
//! a `<polyline>` or a set of `<circle>`s labelled in the legend, so a chart can be checked by
//! reading its XML.

use plotters::prelude::*;

use crate::engine::Outcome;
use crate::error::{Error, Result};
use crate::study::compare::CompareRow;
use crate::study::sweep::{self, PointResult, Scale, Sweep};

const SIZE: (u32, u32) = (960, 600);

fn draw_err<E: std::fmt::Debug>(e: E) -> Error {
    Error::arg("plot", format!("drawing failed: {e:?}"))
}

fn color(i: usize) -> RGBColor {
    // Okabe-Ito palette: distinguishable with the common colour-vision deficiencies.
    const P: [RGBColor; 7] = [
        RGBColor(0, 114, 178),
        RGBColor(213, 94, 0),
        RGBColor(0, 158, 115),
        RGBColor(204, 121, 167),
        RGBColor(230, 159, 0),
        RGBColor(86, 180, 233),
        RGBColor(0, 0, 0),
    ];
    P[i % P.len()]
}

/// Padded range of `xs`, never empty.
fn span(xs: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let lo = xs.clone().fold(f64::INFINITY, f64::min);
    let hi = xs.fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    let pad = if hi > lo {
        0.05 * (hi - lo)
    } else {
        0.5 * lo.abs().max(1.0)
    };
    (lo - pad, hi + pad)
}

/// The legend box, upper right, over the series.
fn legend<'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, CT>,
) -> Result<()> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(draw_err)
}

/// One named series of (x, y) points.
struct Series {
    name: String,
    points: Vec<(f64, f64)>,
}

/// A line chart with markers, one colour per series and a legend.
fn line_chart(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    markers: bool,
) -> Result<()> {
    let all = || series.iter().flat_map(|s| s.points.iter());
    let (x0, x1) = span(all().map(|p| p.0));
    let (y0, y1) = span(all().map(|p| p.1));
    let y0 = if y0 > 0.0 && y0 < 0.5 * y1 { 0.0 } else { y0 };
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .draw()
        .map_err(draw_err)?;
    for (i, s) in series.iter().enumerate() {
        let c = color(i);
        let drawn = if markers && s.points.len() == 1 {
            chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 5, c.filled())))
        } else {
            chart.draw_series(LineSeries::new(s.points.iter().copied(), c.stroke_width(2)))
        }
        .map_err(draw_err)?;
        drawn
            .label(s.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        if markers && s.points.len() > 1 {
            chart
                .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, c.filled())))
                .map_err(draw_err)?;
        }
    }
    if series.len() > 1 {
        legend(&mut chart)?;
    }
    Ok(())
}

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
        let root = root.titled(title, ("sans-serif", 22)).map_err(draw_err)?;
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
            line_chart(
                panel,
                &format!("{name} CDF"),
                &format!("{name} ({unit})"),
                "fraction of requests",
                &series,
                false,
            )?;
        }
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

/// The first axis of a sweep against column `y`, one series per combination of the other axes.
pub fn sweep_chart(sweep: &Sweep, results: &[PointResult], y: &str) -> Result<String> {
    let col = sweep::METRIC_COLUMNS
        .iter()
        .position(|c| *c == y)
        .ok_or_else(|| Error::arg("--plot-y", format!("no output column \"{y}\"")))?;
    let Some(first) = sweep.axes.first() else {
        return Err(Error::arg(
            "--plot-out",
            "the sweep has no axis to plot against",
        ));
    };
    let log = sweep
        .spec
        .axes
        .first()
        .is_some_and(|a| a.scale == Scale::Log);
    let numeric = first.values.iter().all(|v| v.is_integer() || v.is_float());
    let x_of = |v: &toml::Value, i: usize| -> f64 {
        let x = match v {
            toml::Value::Integer(n) => *n as f64,
            toml::Value::Float(f) => *f,
            _ => i as f64,
        };
        if log && numeric {
            x.log10()
        } else {
            x
        }
    };
    let mut series: Vec<Series> = Vec::new();
    for r in results {
        let Ok(s) = &r.outcome else { continue };
        let name = sweep.axes[1..]
            .iter()
            .zip(&r.values[1..])
            .map(|(a, v)| format!("{}={}", a.path, sweep::value_short(v)))
            .collect::<Vec<_>>()
            .join(", ");
        let name = if name.is_empty() { y.to_string() } else { name };
        let pos = first
            .values
            .iter()
            .position(|v| *v == r.values[0])
            .unwrap_or(0);
        let point = (
            x_of(&r.values[0], pos),
            sweep::metric_values(s, r.energy.as_ref(), r.slo.as_ref(), r.max_rate_per_s)[col]
                .as_f64(),
        );
        if !point.1.is_finite() {
            continue;
        }
        match series.iter_mut().find(|s| s.name == name) {
            Some(s) => s.points.push(point),
            None => series.push(Series {
                name,
                points: vec![point],
            }),
        }
    }
    for s in &mut series {
        s.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    let x_label = match (numeric, log) {
        (true, true) => format!("log10({})", first.path),
        (true, false) => first.path.clone(),
        (false, _) => format!("{} (value index)", first.path),
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        line_chart(
            &root,
            &format!("{y} against {}", first.path),
            &x_label,
            y,
            &series,
            true,
        )?;
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

/// Compare rows as system throughput against per-user speed, one marker per row, log-log
/// (the rows span orders of magnitude on both axes).
pub fn compare_chart(rows: &[CompareRow]) -> Result<String> {
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
    let range = |f: fn(&(f64, f64)) -> f64| {
        let lo = points.iter().map(|p| f(&p.1)).fold(f64::INFINITY, f64::min);
        let hi = points
            .iter()
            .map(|p| f(&p.1))
            .fold(f64::NEG_INFINITY, f64::max);
        if lo.is_finite() {
            (lo / 2.0, hi * 2.0)
        } else {
            (1.0, 10.0)
        }
    };
    let (x0, x1) = range(|p| p.0);
    let (y0, y1) = range(|p| p.1);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "System throughput against per-user speed",
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(80)
            .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_labels(6)
            .x_desc("per-user speed, median (tokens/s, log scale)")
            .y_desc("system output throughput (tokens/s, log scale)")
            .draw()
            .map_err(draw_err)?;
        for (i, (name, p)) in points.iter().enumerate() {
            let c = color(i);
            chart
                .draw_series(std::iter::once(Circle::new(*p, 6, c.filled())))
                .map_err(draw_err)?
                .label(name.clone())
                .legend(move |(x, y)| Circle::new((x + 10, y), 5, c.filled()));
        }
        legend(&mut chart)?;
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

    #[test]
    fn span_of_one_value_is_not_empty() {
        let (a, b) = span([5.0].into_iter());
        assert!(a < 5.0 && b > 5.0);
        assert_eq!(span(std::iter::empty()), (0.0, 1.0));
    }
}
