//! Bounds on every size a user can type, checked before anything is allocated for it, so a huge
//! count is a clear error (exit code 2) rather than an allocation abort or an integer overflow.
//!
//! Each bound sits far above the largest real use and far below what would exhaust memory or
//! overflow the integer arithmetic downstream. Raising one is safe as long as that stays true.

use crate::error::{Error, Result};

/// Most requests one run may simulate: 10^8. A run keeps a few hundred bytes per request (its
/// spec, its state, its record), so 10^8 needs tens of GB; the largest published serving
/// benchmarks use 10^4 to 10^5 requests.
pub const MAX_REQUESTS: u64 = 100_000_000;

/// Most closed-loop users (`--concurrency`): 10^8, as many as requests (more could never all
/// have a request in flight).
pub const MAX_USERS: u64 = MAX_REQUESTS;

/// Most devices in one machine (`gpu.devices`, `wafer.wafers`) and most replicas: 10^6. The
/// largest clusters built hold about 10^5 GPUs; the engine keeps state per replica.
pub const MAX_DEVICES: u64 = 1_000_000;

/// Most draft tokens per verification step (`--gamma`): 1,024. Published speculative decoding
/// uses 2 to 16; the verification step's token count is computed in 32-bit integers.
pub const MAX_GAMMA: u64 = 1024;

/// Most sweep threads (`--jobs`): 1,024. Each thread is an operating-system thread with its own
/// stack; machines with more cores than this are rare.
pub const MAX_JOBS: u64 = 1024;

/// Most sequences per iteration (`--max-batch`): 10^6, far above the few thousand a replica's
/// KV cache holds on any shipped machine.
pub const MAX_BATCH: u64 = 1_000_000;

/// Most tokens per iteration (`--max-batched-tokens`) and tokens per KV-cache block
/// (`--block-tokens`): 10^8, above any context window (the longest shipped is 10^7).
pub const MAX_TOKENS: u64 = 100_000_000;

/// `n` must lie in `1..=max`: an error naming `what` (the flag and field) otherwise.
pub fn check_count(what: &str, n: u64, max: u64) -> Result<()> {
    if n == 0 {
        return Err(Error::arg(what, "expected at least 1, found 0"));
    }
    if n > max {
        return Err(Error::arg(
            what,
            format!("expected at most {max}, found {n} (a bound on what one run can hold)"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_outside_one_to_max_are_named_errors() {
        assert!(check_count("--jobs", 1, MAX_JOBS).is_ok());
        assert!(check_count("--jobs", MAX_JOBS, MAX_JOBS).is_ok());
        let e = check_count("--jobs", MAX_JOBS + 1, MAX_JOBS).unwrap_err();
        assert!(e.to_string().contains("--jobs: expected at most 1024"));
        assert!(check_count("--jobs", 0, MAX_JOBS).is_err());
    }

    // The promised sizes stay possible, and gamma + 1 tokens per sequence times a batch fits
    // 32 bits.
    const _: () = assert!(MAX_REQUESTS >= 100_000_000 && MAX_DEVICES >= 100_000);
    const _: () = assert!((MAX_GAMMA + 1) * MAX_BATCH < u32::MAX as u64);
}
