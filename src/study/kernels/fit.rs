//! Fitting a [`GemmCurve`] to measured GEMMs: least squares on log error
//! (`sum ln(predicted / measured)^2`) by Levenberg-Marquardt with a forward-difference Jacobian,
//! from eight fixed starting points (the best kept). Coefficients are searched in transformed
//! coordinates that keep them physical: logarithms of the floor and the half-saturation sizes,
//! logits of the efficiencies (so they stay in (0, 1)). Deterministic: no random restarts.

use crate::profile::GemmCurve;

/// One measured GEMM as the fit sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GemmPoint {
    /// `2 m n k`.
    pub flops: f64,
    /// Bytes moved, as the cost model counts them.
    pub bytes: f64,
    /// Rows (tokens).
    pub m: f64,
    /// Output features.
    pub n: f64,
    /// Inner dimension.
    pub k: f64,
    /// Measured latency, s.
    pub latency_s: f64,
}

pub(crate) fn logistic(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

pub(crate) fn logit(p: f64) -> f64 {
    (p / (1.0 - p)).ln()
}

fn curve_of(x: &[f64; 7]) -> GemmCurve {
    GemmCurve {
        floor_s: x[0].exp(),
        compute_efficiency: logistic(x[1]),
        half_rows: x[2].exp(),
        half_columns: x[3].exp(),
        memory_efficiency: logistic(x[4]),
        half_depth: x[5].exp(),
        depth_latency_s: x[6].exp(),
    }
}

fn residuals(x: &[f64; 7], pts: &[GemmPoint], peak: f64, hbm: f64) -> Vec<f64> {
    let c = curve_of(x);
    pts.iter()
        .map(|p| (c.time_s(p.flops, p.bytes, [p.m, p.n, p.k], peak, hbm) / p.latency_s).ln())
        .collect()
}

fn sum_sq(r: &[f64]) -> f64 {
    r.iter().map(|e| e * e).sum()
}

/// Solve the `N x N` system `a x = b` by Gaussian elimination with partial pivoting.
fn solve<const N: usize>(mut a: [[f64; N]; N], mut b: [f64; N]) -> Option<[f64; N]> {
    for col in 0..N {
        let pivot = (col..N).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-300 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        let (pivot_row, pivot_b) = (a[col], b[col]);
        for (row, rb) in a.iter_mut().zip(b.iter_mut()).skip(col + 1) {
            let f = row[col] / pivot_row[col];
            for (x, p) in row.iter_mut().zip(pivot_row).skip(col) {
                *x -= f * p;
            }
            *rb -= f * pivot_b;
        }
    }
    let mut x = [0.0; N];
    for row in (0..N).rev() {
        let s: f64 = (row + 1..N).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

/// Levenberg-Marquardt from `start` on the residuals `res` (in the search coordinates): the
/// coordinates reached and their sum of squared residuals.
pub(crate) fn levenberg_marquardt<const N: usize>(
    start: [f64; N],
    res: impl Fn(&[f64; N]) -> Vec<f64>,
) -> ([f64; N], f64) {
    let mut x = start;
    let mut r = res(&x);
    let mut loss = sum_sq(&r);
    let mut lambda = 1e-3;
    for _ in 0..300 {
        // Jacobian by forward differences, one column per coordinate.
        let mut jac = [[0.0; N]; N]; // J^T J
        let mut grad = [0.0; N]; // J^T r
        let cols: Vec<Vec<f64>> = (0..N)
            .map(|j| {
                let mut xh = x;
                xh[j] += 1e-6;
                res(&xh)
                    .iter()
                    .zip(&r)
                    .map(|(a, b)| (a - b) / 1e-6)
                    .collect()
            })
            .collect();
        for i in 0..N {
            grad[i] = cols[i].iter().zip(&r).map(|(a, b)| a * b).sum();
            for k in 0..N {
                jac[i][k] = cols[i].iter().zip(&cols[k]).map(|(a, b)| a * b).sum();
            }
        }
        let mut improved = false;
        while lambda < 1e12 {
            let mut a = jac;
            for (i, row) in a.iter_mut().enumerate() {
                row[i] += lambda * (jac[i][i] + 1e-12);
            }
            if let Some(step) = solve(a, grad.map(|g| -g)) {
                let mut trial = x;
                for i in 0..N {
                    trial[i] += step[i];
                }
                let tr = res(&trial);
                let tl = sum_sq(&tr);
                if tl.is_finite() && tl < loss {
                    let gain = loss - tl;
                    x = trial;
                    r = tr;
                    loss = tl;
                    lambda = (lambda / 3.0).max(1e-12);
                    improved = gain > 1e-12 * loss.max(1e-300);
                    break;
                }
            }
            lambda *= 4.0;
        }
        if !improved {
            break;
        }
    }
    (x, loss)
}

/// The curve minimising the squared log error over `points` on a GPU class of peak
/// `peak_flops_per_s` and HBM bandwidth `hbm_bytes_per_s`, with its mean squared log error.
/// `None` without points.
pub fn fit_gemm(
    points: &[GemmPoint],
    peak_flops_per_s: f64,
    hbm_bytes_per_s: f64,
) -> Option<(GemmCurve, f64)> {
    if points.is_empty() {
        return None;
    }
    // Floor, compute efficiency, half rows, half columns, memory efficiency, half depth,
    // depth latency: a grid over the floor, the half columns and the half depth.
    let starts = [2e-6_f64, 1e-5].into_iter().flat_map(|floor| {
        [(64.0, 1.0), (64.0, 256.0), (1024.0, 1.0), (1024.0, 256.0)]
            .map(|(cols, depth)| [floor, 0.7, 64.0, cols, 0.8, depth, 1e-9])
    });
    let best = starts
        .map(|s| {
            let x = [
                s[0].ln(),
                logit(s[1]),
                s[2].ln(),
                s[3].ln(),
                logit(s[4]),
                s[5].ln(),
                s[6].ln(),
            ];
            levenberg_marquardt(x, |x| {
                residuals(x, points, peak_flops_per_s, hbm_bytes_per_s)
            })
        })
        .min_by(|a, b| a.1.total_cmp(&b.1))?;
    Some((curve_of(&best.0), best.1 / points.len() as f64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    #[test]
    fn a_fit_recovers_the_curve_a_synthetic_table_was_made_with() {
        let truth = GemmCurve {
            floor_s: 4e-6,
            compute_efficiency: 0.75,
            half_rows: 90.0,
            half_columns: 700.0,
            memory_efficiency: 0.85,
            half_depth: 300.0,
            depth_latency_s: 2e-9,
        };
        let (peak, hbm) = (1e15, 3e12);
        let mut pts = Vec::new();
        for m in [1u32, 4, 16, 64, 256, 1024, 4096, 16384] {
            for n in [128u32, 1024, 4096, 16384] {
                for k in [64u32, 256, 4096, 16384] {
                    let (m, n, k) = (f64::from(m), f64::from(n), f64::from(k));
                    let (flops, bytes) = (2.0 * m * n * k, 2.0 * (n * k + m * k + m * n));
                    pts.push(GemmPoint {
                        flops,
                        bytes,
                        m,
                        n,
                        k,
                        latency_s: truth.time_s(flops, bytes, [m, n, k], peak, hbm),
                    });
                }
            }
        }
        let (fit, mse) = fit_gemm(&pts, peak, hbm).unwrap();
        assert!(mse < 1e-10, "{mse}");
        assert_relative_eq!(fit.floor_s, truth.floor_s, max_relative = 1e-3);
        assert_relative_eq!(
            fit.compute_efficiency,
            truth.compute_efficiency,
            max_relative = 1e-3
        );
        assert_relative_eq!(fit.half_rows, truth.half_rows, max_relative = 1e-3);
        assert_relative_eq!(fit.half_columns, truth.half_columns, max_relative = 1e-3);
        assert_relative_eq!(
            fit.memory_efficiency,
            truth.memory_efficiency,
            max_relative = 1e-3
        );
        assert_relative_eq!(fit.half_depth, truth.half_depth, max_relative = 1e-3);
        assert_relative_eq!(
            fit.depth_latency_s,
            truth.depth_latency_s,
            max_relative = 1e-3
        );
        assert!(fit_gemm(&[], peak, hbm).is_none());
    }
}
