//! Paged KV-cache accounting: a pool of fixed-size blocks (vLLM's PagedAttention). Only counts
//! are tracked; which physical block holds what does not affect timing.

/// A pool of KV-cache blocks of `block_tokens` tokens each.
#[derive(Debug, Clone)]
pub struct BlockPool {
    block_tokens: u32,
    /// `log2(block_tokens)` when it is a power of two (blocks counted by a shift).
    shift: Option<u32>,
    total: u32,
    free: u32,
    peak_used: u32,
}

impl BlockPool {
    /// A pool of `total` blocks of `block_tokens` tokens.
    pub fn new(total: u32, block_tokens: u32) -> Self {
        let block_tokens = block_tokens.max(1);
        BlockPool {
            block_tokens,
            shift: block_tokens
                .is_power_of_two()
                .then(|| block_tokens.trailing_zeros()),
            total,
            free: total,
            peak_used: 0,
        }
    }

    /// Blocks needed to hold `tokens` tokens.
    pub fn blocks_for(&self, tokens: u32) -> u32 {
        match self.shift {
            // Whole blocks, and one more for a remainder: the same as dividing.
            Some(shift) => (tokens >> shift) + u32::from(tokens & (self.block_tokens - 1) != 0),
            None => tokens.div_ceil(self.block_tokens),
        }
    }

    /// Free blocks.
    pub fn free(&self) -> u32 {
        self.free
    }

    /// Blocks in the pool.
    pub fn total(&self) -> u32 {
        self.total
    }

    /// Most blocks ever in use at once.
    pub fn peak_used(&self) -> u32 {
        self.peak_used
    }

    /// Take `n` blocks; false (and nothing taken) if fewer are free.
    pub fn allocate(&mut self, n: u32) -> bool {
        if n > self.free {
            return false;
        }
        self.free -= n;
        self.peak_used = self.peak_used.max(self.total - self.free);
        true
    }

    /// Return `n` blocks.
    pub fn release(&mut self, n: u32) {
        self.free = (self.free + n).min(self.total);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_round_up_and_are_conserved() {
        let mut p = BlockPool::new(10, 16);
        assert_eq!(p.blocks_for(0), 0);
        assert_eq!(p.blocks_for(16), 1);
        assert_eq!(p.blocks_for(17), 2);
        assert!(p.allocate(7));
        assert!(!p.allocate(4));
        assert_eq!(p.free(), 3);
        p.release(7);
        assert_eq!(p.free(), 10);
        assert_eq!(p.peak_used(), 7);
    }

    #[test]
    fn blocks_of_a_power_of_two_are_those_of_dividing() {
        for bt in [1, 2, 3, 16, 17, 256, 1 << 31] {
            let p = BlockPool::new(1, bt);
            for t in (0..2000).chain([u32::MAX - 1, u32::MAX, 1 << 31, (1 << 31) + 1]) {
                assert_eq!(
                    p.blocks_for(t),
                    t.div_ceil(bt),
                    "{t} tokens in blocks of {bt}"
                );
            }
        }
    }
}
