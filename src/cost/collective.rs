//! Collective communication over a scale-up network (NVLink).
//!
//! All-reduce: bandwidth term of a ring, `2 (t-1)/t * bytes / bw` (each GPU sends and receives
//! that much; Patarasuk & Yuan 2009, as in NCCL's bus-bandwidth definition), plus a latency term of
//! `2 ceil(log2 t)` steps, the depth of the tree / recursive-doubling algorithms NCCL uses for the
//! small messages of decode. Ignored: in-switch reduction (NVLS), overlap with compute.

/// Time of an all-reduce of `bytes` per GPU over `t` GPUs, s.
pub fn all_reduce_s(t: u32, bytes: f64, bandwidth_bytes_per_s: f64, step_latency_s: f64) -> f64 {
    if t <= 1 {
        return 0.0;
    }
    let t_f = t as f64;
    let steps = 2.0 * (t_f.log2().ceil());
    2.0 * (t_f - 1.0) / t_f * bytes / bandwidth_bytes_per_s + steps * step_latency_s
}

/// Time of an all-to-all in which each of `t` GPUs sends `bytes` in all to the others at once over
/// its own link (a direct exchange through the NVLink switch: one step of latency), s.
pub fn all_to_all_s(t: u32, bytes: f64, bandwidth_bytes_per_s: f64, step_latency_s: f64) -> f64 {
    if t <= 1 {
        return 0.0;
    }
    bytes / bandwidth_bytes_per_s + step_latency_s
}

/// Time to send `bytes` point to point, s.
pub fn send_s(bytes: f64, bandwidth_bytes_per_s: f64, latency_s: f64) -> f64 {
    bytes / bandwidth_bytes_per_s + latency_s
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    #[test]
    fn all_reduce_hand_computed() {
        // 8 GPUs, 1 MB, 100 GB/s, 1 us steps: 2*7/8*1e6/1e11 + 6*1e-6 = 17.5 us + 6 us.
        assert_relative_eq!(
            all_reduce_s(8, 1e6, 1e11, 1e-6),
            23.5e-6,
            max_relative = 1e-12
        );
        assert_eq!(all_reduce_s(1, 1e6, 1e11, 1e-6), 0.0);
    }

    #[test]
    fn all_to_all_hand_computed() {
        // 1 MB out of each GPU at 100 GB/s, 1 us: 10 us + 1 us; nothing to exchange alone.
        assert_relative_eq!(
            all_to_all_s(8, 1e6, 1e11, 1e-6),
            11e-6,
            max_relative = 1e-12
        );
        assert_eq!(all_to_all_s(1, 1e6, 1e11, 1e-6), 0.0);
    }
}
