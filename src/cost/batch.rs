//! The shape of one iteration's batch, reduced to the sums the cost model needs, so that its cost
//! is independent of how many sequences formed it.

use serde::Serialize;

/// Sufficient statistics of one iteration: how many tokens are computed, how many sequences
/// sample, and how much attention work and KV-cache reading they imply.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Batch {
    /// New tokens computed this iteration (prefill chunk tokens plus one per decoding sequence).
    pub tokens: u64,
    /// Sequences in the batch.
    pub sequences: u32,
    /// Sequences that sample an output token this iteration (decodes and final prefill chunks).
    pub sampled: u32,
    /// Causal (query, key) pairs under full attention.
    pub pairs_full: f64,
    /// KV-cache tokens read under full attention.
    pub kv_read_full: f64,
    /// Causal (query, key) pairs under the sliding window.
    pub pairs_window: f64,
    /// KV-cache tokens read under the sliding window.
    pub kv_read_window: f64,
    /// Sliding window of the model, tokens, if any.
    #[serde(skip)]
    pub window: Option<u64>,
    /// Speculative decoding: draft tokens proposed per decoding sequence (0 = off).
    pub gamma: u32,
    /// Speculative decoding: one draft step over the decoding sequences (run `gamma` times).
    pub draft_decode: Sums,
    /// Speculative decoding: the draft model's prefill of the same prompt chunks.
    pub draft_prefill: Sums,
    /// The longest prefill chunk: where a sequence lives on one GPU (attention data
    /// parallelism), its work cannot be spread; decoding sequences spread evenly.
    #[serde(skip)]
    pub largest: Share,
    /// All prefill chunks together.
    #[serde(skip)]
    pub chunks: Share,
}

/// One sequence's (or one GPU's, or some sequences') share of a [`Batch`]'s sums.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Share {
    /// New tokens computed.
    pub tokens: f64,
    /// Causal (query, key) pairs under full attention.
    pub pairs_full: f64,
    /// KV-cache tokens read under full attention.
    pub kv_read_full: f64,
    /// Causal (query, key) pairs under the sliding window.
    pub pairs_window: f64,
    /// KV-cache tokens read under the sliding window.
    pub kv_read_window: f64,
    /// Prefill chunks' queries whose keys the sliding window caps (those past the window's
    /// length; counted for chunks only: no decode curve prices them).
    pub window_queries: f64,
    /// Sequences.
    pub sequences: f64,
}

impl Share {
    fn add(&mut self, o: &Share) {
        self.sequences += o.sequences;
        self.tokens += o.tokens;
        self.pairs_full += o.pairs_full;
        self.kv_read_full += o.kv_read_full;
        self.pairs_window += o.pairs_window;
        self.kv_read_window += o.kv_read_window;
        self.window_queries += o.window_queries;
    }
}

/// Plain sums describing a batch for a model without a sliding window (the draft).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Sums {
    /// New tokens computed.
    pub tokens: u64,
    /// Sequences.
    pub sequences: u32,
    /// Causal (query, key) pairs.
    pub pairs: f64,
    /// KV-cache tokens read.
    pub kv_read: f64,
}

impl Sums {
    fn push(&mut self, n: u64, p: u64) {
        self.tokens += n;
        self.sequences += 1;
        self.pairs += (n * p) as f64 + (n * (n + 1)) as f64 / 2.0;
        self.kv_read += (p + n) as f64;
    }

    /// A batch for the draft model (sliding windows ignored: drafts are small and short-lived).
    pub fn as_batch(&self) -> Batch {
        Batch {
            tokens: self.tokens,
            sequences: self.sequences,
            sampled: self.sequences,
            pairs_full: self.pairs,
            kv_read_full: self.kv_read,
            pairs_window: self.pairs,
            kv_read_window: self.kv_read,
            ..Batch::default()
        }
    }
}

/// Expected tokens one verification step yields when a draft proposes `gamma` tokens, each
/// accepted with probability `alpha` independently: `(1 - alpha^(gamma+1)) / (1 - alpha)`
/// (Leviathan et al., "Fast Inference from Transformers via Speculative Decoding", ICML 2023).
pub fn expected_tokens_per_step(gamma: u32, alpha: f64) -> f64 {
    if alpha >= 1.0 {
        f64::from(gamma) + 1.0
    } else {
        (1.0 - alpha.powi(gamma as i32 + 1)) / (1.0 - alpha)
    }
}

/// `x / ways`, without dividing by one (one way, as under tensor parallelism: `x / 1.0` is `x`).
fn div(x: f64, ways: f64) -> f64 {
    if ways == 1.0 {
        x
    } else {
        x / ways
    }
}

/// Sum of `min(p + i, w)` for i in 1..=n: keys seen by each of n new queries after p cached tokens.
fn windowed_pairs(n: u64, p: u64, w: u64) -> f64 {
    let (n, p, w) = (n as f64, p as f64, w as f64);
    if p + n <= w {
        n * p + n * (n + 1.0) / 2.0
    } else if p >= w {
        n * w
    } else {
        // The first (w - p) queries see p+1 ..= w keys; the rest see w.
        let ramp = w - p;
        ramp * (p + 1.0 + w) / 2.0 + (n - ramp) * w
    }
}

impl Batch {
    /// An empty batch for a model with the given sliding window.
    pub fn new(window: Option<u64>) -> Self {
        Batch {
            window,
            ..Batch::default()
        }
    }

    /// Add one sequence computing `new_tokens` after `cached` tokens already in its KV cache;
    /// `samples` when this iteration yields an output token for it.
    #[inline]
    pub fn push(&mut self, new_tokens: u64, cached: u64, samples: bool) {
        self.push_work(new_tokens, cached, samples, new_tokens > 1);
    }

    /// [`Batch::push`], saying whether the sequence computes a prefill chunk.
    #[inline]
    fn push_work(&mut self, new_tokens: u64, cached: u64, samples: bool, chunk: bool) {
        let (n, p) = (new_tokens, cached);
        if n == 1 && !chunk {
            // One decoding token (most sequences of most iterations): the sums below with
            // n = 1, each an integer below 2^53 and so the same in f64 however it is formed.
            let keys = (p + 1) as f64;
            self.tokens += 1;
            self.sequences += 1;
            self.sampled += u32::from(samples);
            self.pairs_full += keys;
            self.kv_read_full += keys;
            if let Some(w) = self.window {
                self.pairs_window += windowed_pairs(1, p, w);
                self.kv_read_window += (p + 1).min(w) as f64;
            }
            return;
        }
        self.push_many(n, p, samples, chunk);
    }

    /// [`Batch::push_work`] of other than one decoding token.
    fn push_many(&mut self, n: u64, p: u64, samples: bool, chunk: bool) {
        let mut one = Share {
            tokens: n as f64,
            pairs_full: (n * p) as f64 + (n * (n + 1)) as f64 / 2.0,
            kv_read_full: (p + n) as f64,
            sequences: 1.0,
            ..Share::default()
        };
        if let Some(w) = self.window {
            one.pairs_window = windowed_pairs(n, p, w);
            one.kv_read_window = (p + n).min(w) as f64;
            one.window_queries = (p + n).saturating_sub(p.max(w)) as f64;
        }
        self.tokens += n;
        self.sequences += 1;
        self.sampled += u32::from(samples);
        self.pairs_full += one.pairs_full;
        self.kv_read_full += one.kv_read_full;
        self.pairs_window += one.pairs_window;
        self.kv_read_window += one.kv_read_window;
        if chunk {
            self.chunks.add(&one);
            if one.tokens > self.largest.tokens {
                self.largest = one;
            }
        }
    }

    /// The share of the most loaded of `ways` GPUs that each keep their own sequences:
    /// decoding sequences spread evenly, and prefill chunks, which cannot be split, are dealt
    /// out as evenly as the longest allows (it alone, or an even share of them all).
    pub fn busiest_share(&self, ways: f64) -> Share {
        let (big, chunks) = (&self.largest, &self.chunks);
        let part =
            |all: f64, chunks: f64, big: f64| div(all - chunks, ways) + big.max(div(chunks, ways));
        Share {
            tokens: part(self.tokens as f64, chunks.tokens, big.tokens),
            pairs_full: part(self.pairs_full, chunks.pairs_full, big.pairs_full),
            kv_read_full: part(self.kv_read_full, chunks.kv_read_full, big.kv_read_full),
            pairs_window: part(self.pairs_window, chunks.pairs_window, big.pairs_window),
            kv_read_window: part(
                self.kv_read_window,
                chunks.kv_read_window,
                big.kv_read_window,
            ),
            window_queries: big.window_queries.max(div(chunks.window_queries, ways)),
            sequences: part(f64::from(self.sequences), chunks.sequences, big.sequences),
        }
    }

    /// The busiest GPU's share ([`Batch::busiest_share`]) in two parts: its prefill chunks and
    /// its other sequences (decodes, speculative verifications), which attention runs as
    /// separate kernels. Each field of the chunks' part is the larger of the longest chunk's and
    /// an even share of all chunks, as in the busiest share.
    pub fn busiest_parts(&self, ways: f64) -> (Share, Share) {
        let (big, ch) = (&self.largest, &self.chunks);
        let f = |all: f64, c: f64, b: f64| (b.max(div(c, ways)), div(all - c, ways));
        let fields = [
            f(self.tokens as f64, ch.tokens, big.tokens),
            f(self.pairs_full, ch.pairs_full, big.pairs_full),
            f(self.kv_read_full, ch.kv_read_full, big.kv_read_full),
            f(self.pairs_window, ch.pairs_window, big.pairs_window),
            f(self.kv_read_window, ch.kv_read_window, big.kv_read_window),
            f(f64::from(self.sequences), ch.sequences, big.sequences),
        ];
        let share = |pick: fn((f64, f64)) -> f64| Share {
            tokens: pick(fields[0]),
            pairs_full: pick(fields[1]),
            kv_read_full: pick(fields[2]),
            pairs_window: pick(fields[3]),
            kv_read_window: pick(fields[4]),
            sequences: pick(fields[5]),
            window_queries: 0.0,
        };
        let prefill = Share {
            window_queries: big.window_queries.max(div(ch.window_queries, ways)),
            ..share(|x| x.0)
        };
        (prefill, share(|x| x.1))
    }

    /// Speculative decoding: start a batch whose decoding sequences verify `gamma` draft tokens.
    pub fn speculative(window: Option<u64>, gamma: u32) -> Self {
        Batch {
            window,
            gamma,
            ..Batch::default()
        }
    }

    /// Add one sequence: a decoding sequence (`new_tokens == 1` after its prompt) under
    /// speculative decoding verifies `gamma + 1` tokens and its draft runs `gamma` steps; a
    /// prefill chunk is computed by the target and the draft alike.
    #[inline(always)]
    pub fn push_sequence(&mut self, new_tokens: u64, cached: u64, samples: bool, decoding: bool) {
        if self.gamma == 0 {
            self.push(new_tokens, cached, samples);
        } else if decoding {
            self.push_work(u64::from(self.gamma) + 1, cached, true, false);
            self.draft_decode.push(1, cached);
        } else {
            self.push(new_tokens, cached, samples);
            self.draft_prefill.push(new_tokens, cached);
        }
    }

    /// `batch` sequences each decoding one token after `context` cached tokens.
    pub fn decode(batch: u32, context: u64, window: Option<u64>) -> Self {
        let mut b = Batch::new(window);
        for _ in 0..batch {
            b.push(1, context, true);
        }
        b
    }

    /// `batch` sequences each prefilling a `prompt`-token prompt from scratch in one iteration.
    pub fn prefill(batch: u32, prompt: u64, window: Option<u64>) -> Self {
        let mut b = Batch::new(window);
        for _ in 0..batch {
            b.push(prompt, 0, true);
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causal_pairs_of_a_prompt() {
        // 4 tokens from scratch: 1 + 2 + 3 + 4 pairs.
        let b = Batch::prefill(1, 4, None);
        assert_eq!(b.pairs_full, 10.0);
        assert_eq!(b.kv_read_full, 4.0);
    }

    #[test]
    fn chunk_queries_past_the_window_are_counted_for_the_prefill_part() {
        // A 100-token window: a 300-token chunk after 50 cached tokens has its queries at
        // positions 51..=350, 250 of them past the window; a second GPU's 80-token chunk from
        // scratch has none; a decoding sequence past the window is not counted.
        let mut b = Batch::new(Some(100));
        b.push(300, 50, true);
        b.push(80, 0, true);
        b.push(1, 500, true);
        assert_eq!(b.chunks.window_queries, 250.0);
        let (prefill, decode) = b.busiest_parts(2.0);
        // The longest chunk's 250, against an even share of 125.
        assert_eq!(prefill.window_queries, 250.0);
        assert_eq!(decode.window_queries, 0.0);
    }

    #[test]
    fn expected_tokens_per_step_by_hand() {
        // alpha 0.5, gamma 2: 1 + 0.5 + 0.25.
        assert_eq!(expected_tokens_per_step(2, 0.5), 1.75);
        assert_eq!(expected_tokens_per_step(4, 0.0), 1.0);
        assert_eq!(expected_tokens_per_step(4, 1.0), 5.0);
        // The closed form equals the sum over accepted prefixes.
        let alpha: f64 = 0.8;
        let sum: f64 = (0..=5).map(|i| alpha.powi(i)).sum();
        approx::assert_relative_eq!(
            expected_tokens_per_step(5, alpha),
            sum,
            max_relative = 1e-12
        );
    }

    #[test]
    fn speculative_decode_verifies_gamma_plus_one_tokens_and_drafts_one() {
        let mut b = Batch::speculative(None, 3);
        b.push_sequence(1, 100, true, true);
        b.push_sequence(50, 0, true, false);
        assert_eq!(b.tokens, 4 + 50);
        assert_eq!(b.draft_decode.tokens, 1);
        assert_eq!(b.draft_prefill.tokens, 50);
    }

    #[test]
    fn a_sequence_is_not_split_across_data_parallel_gpus() {
        // 64 decodes and one 800-token prefill chunk over 8 GPUs: the busiest holds the chunk
        // and an eighth of the decodes.
        let mut b = Batch::decode(64, 1000, None);
        b.push(800, 0, true);
        assert_eq!(b.busiest_share(8.0).tokens, 800.0 + 64.0 / 8.0);
        let pairs = 800.0 * 801.0 / 2.0 + 64.0 * 1001.0 / 8.0;
        approx::assert_relative_eq!(b.busiest_share(8.0).pairs_full, pairs);
        // Decodes alone spread evenly, speculative ones too.
        let d = Batch::decode(64, 1000, None);
        assert_eq!(d.busiest_share(8.0).tokens, 8.0);
        assert_eq!(d.busiest_share(8.0).kv_read_full, d.kv_read_full / 8.0);
        let mut s = Batch::speculative(None, 3);
        for _ in 0..64 {
            s.push_sequence(1, 1000, true, true);
        }
        assert_eq!(s.busiest_share(8.0).tokens, 4.0 * 64.0 / 8.0);
        // Eight equal chunks go one to each GPU; sixteen, two each.
        assert_eq!(
            Batch::prefill(8, 800, None).busiest_share(8.0).tokens,
            800.0
        );
        assert_eq!(
            Batch::prefill(16, 800, None).busiest_share(8.0).tokens,
            1600.0
        );
        // Its parts: the chunk, and an eighth of the decodes.
        let (chunk, rest) = b.busiest_parts(8.0);
        assert_eq!((chunk.tokens, chunk.sequences), (800.0, 1.0));
        assert_eq!((rest.tokens, rest.sequences), (8.0, 8.0));
        approx::assert_relative_eq!(chunk.pairs_full + rest.pairs_full, pairs);
        // Under tensor parallelism (one way) the share is the whole batch.
        assert_eq!(b.busiest_share(1.0).tokens, b.tokens as f64);
        approx::assert_relative_eq!(b.busiest_share(1.0).pairs_full, b.pairs_full);
    }

    #[test]
    fn a_decoding_token_sums_as_the_general_push_does() {
        for window in [None, Some(128), Some(4096)] {
            let (mut fast, mut general) = (Batch::new(window), Batch::new(window));
            for (i, p) in [0u64, 1, 15, 127, 128, 129, 4_000, 1 << 40]
                .into_iter()
                .enumerate()
            {
                fast.push(1, p, i % 3 != 0);
                general.push_many(1, p, i % 3 != 0, false);
                assert_eq!(fast, general, "window {window:?}, context {p}");
            }
        }
    }

    #[test]
    fn windowed_pairs_match_brute_force() {
        for (n, p, w) in [
            (5, 0, 3),
            (5, 2, 3),
            (1, 100, 128),
            (300, 50, 128),
            (10, 0, 100),
        ] {
            let brute: u64 = (1..=n).map(|i| (p + i).min(w)).sum();
            assert_eq!(windowed_pairs(n, p, w), brute as f64, "n={n} p={p} w={w}");
        }
    }
}
