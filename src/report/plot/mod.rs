//! Charts as SVG (plotters, SVG backend, no system fonts): latency CDFs of a run ([`latency`]),
//! a sweep axis against a metric and a sweep's Pareto frontier ([`sweep`]), and the compare rows
//! and their interactivity curves ([`compare`]). Every series is a `<polyline>` or a set of
//! `<circle>`s keyed in a legend drawn below the plot, never over the data, so a chart can be
//! checked by reading its XML. Ticks read as people write numbers: `4 T`, `250 k`, `0.25`.

mod compare;
mod latency;
mod sweep;

pub use compare::{compare_chart, interactivity_chart};
pub use latency::latency_cdfs;
pub use sweep::{pareto_chart, sweep_chart, ParetoY};

use plotters::coord::combinators::{LogCoord, WithKeyPoints};
use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{Error, Result};

/// Width and height of the plot area of a chart, pixels (the legend strip is added below).
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

/// A tick label as people write numbers: `0`, `0.25`, `4`, `1.5 k`, `4 T` (SI prefixes from a
/// thousand up, plain decimals down to a thousandth, exponent form below); three significant
/// digits at most, trailing zeros dropped.
pub fn si(x: f64) -> String {
    si_digits(x, 3)
}

/// [`si`] with `sig` significant digits at most.
fn si_digits(x: f64, sig: usize) -> String {
    if !x.is_finite() {
        return String::new();
    }
    if x == 0.0 {
        return "0".into();
    }
    let sig = sig.max(1);
    // Round to the digits first so that 999.9 becomes 1 k, not 1000.
    let x: f64 = format!("{x:.*e}", sig - 1).parse().unwrap_or(x);
    let trim = |t: String| {
        if t.contains('.') {
            t.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            t
        }
    };
    if x.abs() < 1e-3 {
        let t = format!("{x:.*e}", sig - 1);
        let (m, e) = t.split_once('e').unwrap_or((&t, "0"));
        return format!("{}e{e}", trim(m.to_string()));
    }
    const PREFIXES: [&str; 7] = ["", "k", "M", "G", "T", "P", "E"];
    let e = ((x.abs().log10() / 3.0).floor() as i32).clamp(0, 6);
    let m = x / 1000f64.powi(e);
    let digits = (sig as i32 - 1 - m.abs().log10().floor() as i32).max(0) as usize;
    let t = trim(format!("{m:.digits$}"));
    match PREFIXES[e as usize] {
        "" => t,
        p => format!("{t} {p}"),
    }
}

/// Significant digits that tell ticks about a tenth of the range apart: three at least, more
/// for a narrow range far from zero (35.85 and 35.9 rather than 35.9 twice).
fn tick_digits(xs: impl Iterator<Item = f64> + Clone) -> usize {
    let lo = xs.clone().fold(f64::INFINITY, f64::min);
    let hi = xs.fold(f64::NEG_INFINITY, f64::max);
    let step = (hi - lo) / 10.0;
    if !(step > 0.0 && step.is_finite()) {
        return 3;
    }
    let m = lo.abs().max(hi.abs());
    ((m / step).log10().ceil() as i64 + 1).clamp(3, 8) as usize
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

/// Range of positive `xs` for a log axis, a factor of 1.5 beyond each end, never empty.
fn log_span(xs: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let lo = xs
        .clone()
        .filter(|x| *x > 0.0)
        .fold(f64::INFINITY, f64::min);
    let hi = xs.filter(|x| *x > 0.0).fold(f64::NEG_INFINITY, f64::max);
    if lo.is_finite() && hi.is_finite() {
        (lo / 1.5, hi * 1.5)
    } else {
        (1.0, 10.0)
    }
}

/// A log axis from `lo` to `hi` with ticks at 1, 2 and 5 times powers of ten (powers of ten
/// alone across more than four decades) and light grid lines at the other integer multiples.
fn log_axis(lo: f64, hi: f64) -> WithKeyPoints<LogCoord<f64>> {
    let decades = || {
        let first = 10f64.powf(lo.log10().floor());
        std::iter::successors(Some(first), |p| Some(p * 10.0)).take_while(move |p| *p <= hi)
    };
    let within = |t: &f64| *t >= lo && *t <= hi;
    let wide = hi / lo > 1e4;
    let marks: &[f64] = if wide { &[1.0] } else { &[1.0, 2.0, 5.0] };
    let bold: Vec<f64> = decades()
        .flat_map(|p| marks.iter().map(move |m| m * p))
        .filter(within)
        .collect();
    let light: Vec<f64> = if wide {
        Vec::new()
    } else {
        decades()
            .flat_map(|p| (1..10).map(move |m| f64::from(m) * p))
            .filter(within)
            .collect()
    };
    (lo..hi)
        .log_scale()
        .with_key_points(bold)
        .with_light_points(light)
}

/// How a legend entry is keyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    /// A 2 px line in the series' colour.
    Line,
    /// A filled dot.
    Dot,
    /// A hollow ring.
    Ring,
}

/// One legend entry.
struct Entry {
    name: String,
    color: RGBColor,
    key: Key,
}

/// Height of the legend strip for `n` entries, pixels.
fn legend_height(n: usize) -> u32 {
    if n == 0 {
        0
    } else {
        20 * n as u32 + 16
    }
}

/// A canvas of the plot size plus the lines of `subtitle` and a legend strip of `entries`
/// entries.
fn canvas(entries: usize, subtitle: &str) -> (u32, u32) {
    (
        SIZE.0,
        SIZE.1 + subtitle_height(subtitle) + legend_height(entries),
    )
}

/// Characters per subtitle line (14 px sans-serif across the canvas).
const SUBTITLE_CHARS: usize = 125;

/// `text` broken at spaces into lines of at most [`SUBTITLE_CHARS`] characters (a longer word
/// keeps its own line).
fn wrap(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split(' ') {
        match lines.last_mut() {
            Some(l) if l.chars().count() + 1 + word.chars().count() <= SUBTITLE_CHARS => {
                l.push(' ');
                l.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
}

/// Height of the subtitle's lines, pixels.
fn subtitle_height(subtitle: &str) -> u32 {
    8 + 18 * wrap(subtitle).len() as u32
}

/// The canvas with `subtitle` (what ran: hardware, model, workload) above the chart and the
/// legend strip at its foot; returns the plot area between them.
fn frame<'a>(
    root: &DrawingArea<SVGBackend<'a>, Shift>,
    subtitle: &str,
    entries: &[Entry],
) -> Result<DrawingArea<SVGBackend<'a>, Shift>> {
    root.fill(&WHITE).map_err(draw_err)?;
    let (top, rest) = root.split_vertically(subtitle_height(subtitle));
    for (i, line) in wrap(subtitle).into_iter().enumerate() {
        top.draw(&Text::new(
            line,
            (12, 8 + 18 * i as i32),
            ("sans-serif", 14),
        ))
        .map_err(draw_err)?;
    }
    split_legend(&rest, entries)
}

/// The plot area and the legend strip below it, drawn: one line per entry.
fn split_legend<'a>(
    root: &DrawingArea<SVGBackend<'a>, Shift>,
    entries: &[Entry],
) -> Result<DrawingArea<SVGBackend<'a>, Shift>> {
    let height = root.dim_in_pixel().1;
    let (plot, strip) = root.split_vertically(height.saturating_sub(legend_height(entries.len())));
    for (i, e) in entries.iter().enumerate() {
        let y = 14 + 20 * i as i32;
        let c = e.color;
        match e.key {
            Key::Line => strip.draw(&PathElement::new(vec![(24, y), (48, y)], c.stroke_width(2))),
            Key::Dot => strip.draw(&Circle::new((36, y), 5, c.filled())),
            Key::Ring => strip.draw(&Circle::new((36, y), 4, c.stroke_width(1))),
        }
        .map_err(draw_err)?;
        strip
            .draw(&Text::new(e.name.clone(), (58, y - 7), ("sans-serif", 14)))
            .map_err(draw_err)?;
    }
    Ok(plot)
}

/// One named series of (x, y) points.
struct Series {
    name: String,
    points: Vec<(f64, f64)>,
}

/// A chart drawn on an SVG area, over axes `X` and `Y`.
type Chart<'a, 'b, X, Y> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<X, Y>>;

/// A chart's title and axis labels.
struct Labels<'s> {
    title: &'s str,
    x: &'s str,
    y: &'s str,
}

/// A chart over axes built from `x` and `y` (linear or log ranges) with its mesh drawn: ticks in
/// SI form with the digits `points` need to tell them apart.
fn mesh<'a, 'b, X, Y>(
    area: &'a DrawingArea<SVGBackend<'b>, Shift>,
    labels: &Labels,
    (x, y): (X, Y),
    points: &[(f64, f64)],
) -> Result<Chart<'a, 'b, X::CoordDescType, Y::CoordDescType>>
where
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let dx = tick_digits(points.iter().map(|p| p.0));
    let dy = tick_digits(points.iter().map(|p| p.1));
    let mut chart = ChartBuilder::on(area)
        .caption(labels.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(x, y)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc(labels.x)
        .y_desc(labels.y)
        .x_label_formatter(&|v| si_digits(*v, dx))
        .y_label_formatter(&|v| si_digits(*v, dy))
        .draw()
        .map_err(draw_err)?;
    Ok(chart)
}

/// A line chart with markers, one colour per series, over axes built from `x` and `y`;
/// [`series_entries`] keys it in the legend strip.
fn line_chart<X, Y>(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    labels: &Labels,
    series: &[Series],
    markers: bool,
    axes: (X, Y),
) -> Result<()>
where
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let points: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .collect();
    let mut chart = mesh(area, labels, axes, &points)?;
    for (i, s) in series.iter().enumerate() {
        let c = color(i);
        if markers && s.points.len() == 1 {
            chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 5, c.filled())))
        } else {
            chart.draw_series(LineSeries::new(s.points.iter().copied(), c.stroke_width(2)))
        }
        .map_err(draw_err)?;
        if markers && s.points.len() > 1 {
            chart
                .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, c.filled())))
                .map_err(draw_err)?;
        }
    }
    Ok(())
}

/// Legend entries of line series (a dot for a series of one point).
fn series_entries(series: &[Series], markers: bool) -> Vec<Entry> {
    if series.len() < 2 {
        return Vec::new();
    }
    series
        .iter()
        .enumerate()
        .map(|(i, s)| Entry {
            name: s.name.clone(),
            color: color(i),
            key: if markers && s.points.len() == 1 {
                Key::Dot
            } else {
                Key::Line
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_of_one_value_is_not_empty() {
        let (a, b) = span([5.0].into_iter());
        assert!(a < 5.0 && b > 5.0);
        assert_eq!(span(std::iter::empty()), (0.0, 1.0));
        assert_eq!(log_span([-1.0].into_iter()), (1.0, 10.0));
    }

    #[test]
    fn ticks_read_as_people_write_them() {
        for (x, t) in [
            (4e12, "4 T"),
            (0.0, "0"),
            (1500.0, "1.5 k"),
            (999.95, "1 k"),
            (250.0, "250"),
            (0.25, "0.25"),
            (0.001, "0.001"),
            (12.5, "12.5"),
            (-3e6, "-3 M"),
            (2e-6, "2e-6"),
            (2.5e-4, "2.5e-4"),
        ] {
            assert_eq!(si(x), t, "{x}");
        }
        assert_eq!(si_digits(35.85, 4), "35.85");
        assert_eq!(tick_digits([35.8, 36.1].into_iter()), 5); // trailing zeros are dropped
        assert_eq!(tick_digits([10.0, 2000.0].into_iter()), 3);
    }

    #[test]
    fn subtitles_wrap_at_spaces() {
        let text = "word ".repeat(60);
        let lines = wrap(text.trim());
        assert_eq!(lines.len(), 3);
        assert!(lines.iter().all(|l| l.chars().count() <= SUBTITLE_CHARS));
        assert_eq!(lines.join(" "), text.trim());
    }
}
