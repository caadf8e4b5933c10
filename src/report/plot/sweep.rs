//! Sweep charts: the first axis against a metric, and the Pareto frontier of the points.

use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{
    canvas, color, draw_err, frame, line_chart, log_axis, log_span, mesh, series_entries, si, span,
    Entry, Key, Labels, Series,
};
use crate::error::{Error, Result};
use crate::report::tidy;
use crate::study::sweep::{self, PointResult, Scale, Sweep};

/// What ran: the base scenario's hardware, model and workload fields.
fn run_text(sweep: &Sweep) -> String {
    let b = &sweep.spec.base;
    let fields = |t: &toml::Table| {
        t.iter()
            .map(|(k, v)| format!("{k}={}", sweep::value_text(v)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut s = format!("{} on {}", b.model, b.hardware);
    if !b.workload.is_empty() {
        s.push_str(&format!("; workload {}", fields(&b.workload)));
    }
    if !b.serve.is_empty() {
        s.push_str(&format!("; serve {}", fields(&b.serve)));
    }
    s
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
    let numeric = first.values.iter().all(|v| v.is_integer() || v.is_float());
    let log = numeric
        && sweep
            .spec
            .axes
            .first()
            .is_some_and(|a| a.scale == Scale::Log);
    let x_of = |v: &toml::Value, i: usize| -> f64 {
        match v {
            toml::Value::Integer(n) => *n as f64,
            toml::Value::Float(f) => *f,
            _ => i as f64,
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
        if !point.1.is_finite() || (log && point.0 <= 0.0) {
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
        (true, true) => format!("{} (log scale)", first.path),
        (true, false) => first.path.clone(),
        (false, _) => format!("{} (value index)", first.path),
    };
    let all = || series.iter().flat_map(|s| s.points.iter());
    let (y0, y1) = span(all().map(|p| p.1));
    let y0 = if y0 > 0.0 && y0 < 0.5 * y1 { 0.0 } else { y0 };
    let entries = series_entries(&series, true);
    let title = format!("{y} against {}", first.path);
    let labels = Labels {
        title: &title,
        x: &x_label,
        y,
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, canvas(entries.len(), &run_text(sweep)))
            .into_drawing_area();
        let area = frame(&root, &run_text(sweep), &entries)?;
        if log {
            let (x0, x1) = log_span(all().map(|p| p.0));
            line_chart(&area, &labels, &series, true, (log_axis(x0, x1), y0..y1))?;
        } else {
            let (x0, x1) = span(all().map(|p| p.0));
            line_chart(&area, &labels, &series, true, (x0..x1, y0..y1))?;
        }
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

/// The Pareto chart's vertical axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ParetoY {
    /// Output tokens/s per device (GPU or wafer) in use.
    #[default]
    PerDevice,
    /// Output tokens per dollar, from the profile's price per device-hour.
    PerDollar,
}

/// One point of a Pareto chart: its label and (per-user speed, throughput measure).
struct Dot {
    label: String,
    at: (f64, f64),
}

/// The points no other point beats on both axes (higher per-user speed and higher throughput),
/// in order of per-user speed.
fn frontier(dots: &[Dot]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..dots.len()).collect();
    // Fastest per user first; among equals, the higher throughput first.
    order.sort_by(|&a, &b| {
        dots[b]
            .at
            .0
            .total_cmp(&dots[a].at.0)
            .then(dots[b].at.1.total_cmp(&dots[a].at.1))
    });
    let mut best = f64::NEG_INFINITY;
    let mut on: Vec<usize> = Vec::new();
    for i in order {
        if dots[i].at.1 > best {
            best = dots[i].at.1;
            on.push(i);
        }
    }
    on.reverse();
    on
}

/// Every successful point of a sweep as throughput (per device or per dollar) against median
/// per-user speed, the Pareto frontier joined and numbered; the legend names the frontier's
/// points by their axis values.
pub fn pareto_chart(sweep: &Sweep, results: &[PointResult], y: ParetoY) -> Result<String> {
    let device = results
        .iter()
        .find_map(|r| r.energy.as_ref().map(|e| e.device))
        .map_or("device", |d| if d == "wafer" { "wafer" } else { "GPU" });
    let dots: Vec<Dot> = results
        .iter()
        .filter_map(|r| {
            let s = r.outcome.as_ref().ok()?;
            let (tp, pp, replicas) = r.placement?;
            let devices = f64::from(tp) * f64::from(pp) * f64::from(replicas);
            let v = match y {
                ParetoY::PerDevice => s.throughput_output_tokens_per_s / devices,
                ParetoY::PerDollar => 1e6 / r.energy.as_ref()?.usd_per_million_output_tokens()?,
            };
            let label = sweep
                .axes
                .iter()
                .zip(&r.values)
                .map(|(a, v)| format!("{}={}", a.path, sweep::value_short(v)))
                .collect::<Vec<_>>()
                .join(", ");
            // As the rows print them, so that values equal in the output tie here too.
            let at = (tidy(s.tokens_per_s_per_user.p50), tidy(v));
            (at.0 > 0.0 && at.1 > 0.0 && at.0.is_finite() && at.1.is_finite())
                .then_some(Dot { label, at })
        })
        .collect();
    if dots.is_empty() {
        return Err(Error::arg(
            "--pareto-out",
            match y {
                ParetoY::PerDevice => "no point ran to draw",
                ParetoY::PerDollar => "no point has a price to draw (the profile has no [price])",
            },
        ));
    }
    let front = frontier(&dots);
    let y_label = match y {
        ParetoY::PerDevice => format!("output tokens/s per {device}"),
        ParetoY::PerDollar => "output tokens per dollar".to_string(),
    };
    let mut entries = vec![
        Entry {
            name: format!("frontier: no other point is faster per user and higher in {y_label}"),
            color: color(0),
            key: Key::Line,
        },
        Entry {
            name: "other points".into(),
            color: RGBColor(140, 140, 140),
            key: Key::Ring,
        },
    ];
    entries.extend(front.iter().enumerate().map(|(k, &i)| Entry {
        name: format!(
            "{}: {} ({} tok/s per user, {} {})",
            k + 1,
            dots[i].label,
            si(dots[i].at.0),
            si(dots[i].at.1),
            y_label
        ),
        color: color(0),
        key: Key::Dot,
    }));
    let wide = |f: fn(&Dot) -> f64| {
        let (lo, hi) = log_span(dots.iter().map(f));
        hi / lo > 30.0
    };
    let title = format!("Pareto frontier: {y_label} against per-user speed");
    let labels = Labels {
        title: &title,
        x: "per-user speed, median (tokens/s)",
        y: &y_label,
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, canvas(entries.len(), &run_text(sweep)))
            .into_drawing_area();
        let area = frame(&root, &run_text(sweep), &entries)?;
        let xs = || dots.iter().map(|d| d.at.0);
        let ys = || dots.iter().map(|d| d.at.1);
        let d = (&dots[..], &front[..]);
        if wide(|d| d.at.0) || wide(|d| d.at.1) {
            let (a, b) = log_span(xs());
            let (c, e) = log_span(ys());
            dots_chart(&area, &labels, d, (log_axis(a, b), log_axis(c, e)))?;
        } else {
            // Linear axes start at zero when the data sit well above it.
            let lin = |(lo, hi): (f64, f64)| {
                if lo > 0.0 && lo < 0.5 * hi {
                    0.0..hi
                } else {
                    lo..hi
                }
            };
            dots_chart(&area, &labels, d, (lin(span(xs())), lin(span(ys()))))?;
        }
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

/// Rings for every dot, the frontier as a numbered line of filled dots.
fn dots_chart<X, Y>(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    labels: &Labels,
    (dots, front): (&[Dot], &[usize]),
    axes: (X, Y),
) -> Result<()>
where
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let points: Vec<(f64, f64)> = dots.iter().map(|d| d.at).collect();
    let mut chart = mesh(area, labels, axes, &points)?;
    let grey = RGBColor(140, 140, 140);
    chart
        .draw_series(
            (0..dots.len())
                .filter(|i| !front.contains(i))
                .map(|i| Circle::new(dots[i].at, 4, grey.stroke_width(1))),
        )
        .map_err(draw_err)?;
    let c = color(0);
    chart
        .draw_series(LineSeries::new(
            front.iter().map(|&i| dots[i].at),
            c.stroke_width(2),
        ))
        .map_err(draw_err)?;
    chart
        .draw_series(
            front
                .iter()
                .map(|&i| Circle::new(dots[i].at, 5, c.filled())),
        )
        .map_err(draw_err)?;
    chart
        .draw_series(front.iter().enumerate().map(|(k, &i)| {
            EmptyElement::at(dots[i].at)
                + Text::new(format!("{}", k + 1), (6, -18), ("sans-serif", 14))
        }))
        .map_err(draw_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frontier_keeps_only_unbeaten_points() {
        let dot = |x, y| Dot {
            label: String::new(),
            at: (x, y),
        };
        // (10, 100) and (50, 60) and (90, 10) trade off; (40, 50) is beaten by (50, 60);
        // (90, 5) by (90, 10).
        let dots = [
            dot(40.0, 50.0),
            dot(10.0, 100.0),
            dot(90.0, 10.0),
            dot(50.0, 60.0),
            dot(90.0, 5.0),
        ];
        assert_eq!(frontier(&dots), vec![1, 3, 2]);
    }
}
