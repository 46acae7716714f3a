//! Two SHA-256 compressions at once, interleaved, with the x86 SHA
//! extensions (SHA-NI): the miner's fast path.
//!
//! One stream of SHA-NI rounds waits on each `sha256rnds2`'s latency: every
//! pair of rounds needs the state the previous pair produced. Two
//! independent messages have no such chain between them, so their rounds
//! fill each other's waits, as Bitcoin Core's `sha256_x86_shani.cpp` does in
//! its `Transform_2way`. The rounds are the Intel reference sequence
//! (`sha256rnds2` on the ABEF/CDGH halves, `sha256msg1`/`sha256msg2` for the
//! schedule), written once for a pair of streams.
//!
//! [`TwoWay::detect`] gives a value only on a CPU that has the extensions;
//! holding one is the proof the `unsafe` calls below need. Everything else
//! (other CPUs, other architectures) uses the `sha2` crate's
//! `compress256`, which this is tested against. This is the only module of
//! the crate with `unsafe` code.

/// Proof that this CPU runs SHA-NI, SSSE3 and SSE4.1 instructions.
#[derive(Debug, Clone, Copy)]
pub struct TwoWay(());

/// SHA-256 state words in the order the SHA-NI rounds keep them, `F E B A
/// H G D C`: a state kept so between compressions (a midstate, the first
/// of two chunks) needs no reordering, and the first digest word is at
/// hand for a target check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lanes(pub [u32; 8]);

impl Lanes {
    /// From state words `A B C D E F G H`.
    pub fn from_state(state: &[u32; 8]) -> Lanes {
        let [a, b, c, d, e, f, g, h] = *state;
        Lanes([f, e, b, a, h, g, d, c])
    }

    /// To state words `A B C D E F G H` (the digest, big-endian).
    pub fn to_state(self) -> [u32; 8] {
        let [f, e, b, a, h, g, d, c] = self.0;
        [a, b, c, d, e, f, g, h]
    }

    /// The first digest word.
    #[inline]
    pub fn first_word(self) -> u32 {
        self.0[3]
    }
}

/// A 64-byte chunk as the rounds read it: sixteen big-endian words.
pub fn chunk_words(chunk: &[u8; 64]) -> [u32; 16] {
    std::array::from_fn(|i| {
        u32::from_be_bytes(chunk[4 * i..4 * i + 4].try_into().expect("4 bytes"))
    })
}

impl TwoWay {
    /// The two-way path, when this CPU has what it needs.
    pub fn detect() -> Option<TwoWay> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("sha")
            && std::arch::is_x86_feature_detected!("sse4.1")
            && std::arch::is_x86_feature_detected!("ssse3")
        {
            return Some(TwoWay(()));
        }
        None
    }

    /// Compresses the chunk `words_a` into `a` and `words_b` into `b`, as
    /// `sha2::compress256` does for each (states and chunks in the rounds'
    /// order: see [`Lanes`] and [`chunk_words`]).
    #[inline]
    pub fn compress2(self, a: &mut Lanes, words_a: &[u32; 16], b: &mut Lanes, words_b: &[u32; 16]) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a `TwoWay` exists only when `detect` found SHA, SSE4.1
        // and SSSE3 on this CPU, which are all the features
        // `x86::compress2` is compiled for; it reads and writes only the
        // four arrays passed here, with unaligned loads and stores.
        unsafe {
            x86::compress2(&mut a.0, words_a, &mut b.0, words_b)
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("no TwoWay exists off x86_64: {a:?} {words_a:?} {b:?} {words_b:?}")
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::{
        __m128i, _mm_add_epi32, _mm_alignr_epi8, _mm_loadu_si128, _mm_sha256msg1_epu32,
        _mm_sha256msg2_epu32, _mm_sha256rnds2_epu32, _mm_shuffle_epi32, _mm_storeu_si128,
    };

    /// SHA-256's round constants.
    static K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];

    /// One stream's registers: the state as ABEF and CDGH halves, and the
    /// four message words being scheduled.
    struct Stream {
        abef: __m128i,
        cdgh: __m128i,
        w: [__m128i; 4],
    }

    /// Loads a state (in the rounds' order) and a chunk's words into
    /// registers.
    #[inline(always)]
    unsafe fn load(state: &[u32; 8], words: &[u32; 16]) -> Stream {
        // SAFETY (whole function): the caller runs with SSE2; each load
        // reads 16 bytes inside `state` (32 bytes) or `words` (64 bytes),
        // and `loadu` takes any alignment.
        unsafe {
            let word = |i: usize| _mm_loadu_si128(words.as_ptr().add(4 * i).cast());
            Stream {
                abef: _mm_loadu_si128(state.as_ptr().cast()),
                cdgh: _mm_loadu_si128(state.as_ptr().add(4).cast()),
                w: [word(0), word(1), word(2), word(3)],
            }
        }
    }

    /// Rounds `4 * i` to `4 * i + 3` of one stream, and the schedule's
    /// step that belongs with them.
    #[inline(always)]
    unsafe fn rounds(s: &mut Stream, i: usize) {
        // SAFETY (whole function): the caller runs with SHA and SSSE3; the
        // one load reads K[4i..4i+4], inside the table for i < 16.
        unsafe {
            let k = _mm_loadu_si128(K.as_ptr().add(4 * i).cast());
            let msg = _mm_add_epi32(s.w[i % 4], k);
            s.cdgh = _mm_sha256rnds2_epu32(s.cdgh, s.abef, msg);
            if (3..15).contains(&i) {
                let carried = _mm_alignr_epi8(s.w[i % 4], s.w[(i + 3) % 4], 4);
                let next = _mm_add_epi32(s.w[(i + 1) % 4], carried);
                s.w[(i + 1) % 4] = _mm_sha256msg2_epu32(next, s.w[i % 4]);
            }
            s.abef = _mm_sha256rnds2_epu32(s.abef, s.cdgh, _mm_shuffle_epi32(msg, 0x0E));
            if (1..13).contains(&i) {
                s.w[(i + 3) % 4] = _mm_sha256msg1_epu32(s.w[(i + 3) % 4], s.w[i % 4]);
            }
        }
    }

    /// Adds the rounds' result to the state it started from, in place.
    #[inline(always)]
    unsafe fn store(s: &Stream, state: &mut [u32; 8]) {
        // SAFETY (whole function): the caller runs with SSE2; the loads and
        // stores touch 16 bytes each inside `state` (32 bytes).
        unsafe {
            let abef = _mm_loadu_si128(state.as_ptr().cast());
            let cdgh = _mm_loadu_si128(state.as_ptr().add(4).cast());
            _mm_storeu_si128(state.as_mut_ptr().cast(), _mm_add_epi32(s.abef, abef));
            _mm_storeu_si128(
                state.as_mut_ptr().add(4).cast(),
                _mm_add_epi32(s.cdgh, cdgh),
            );
        }
    }

    /// Two compressions with their rounds interleaved: the two streams
    /// share no data, so each one's round waits overlap the other's.
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub unsafe fn compress2(
        state_a: &mut [u32; 8],
        words_a: &[u32; 16],
        state_b: &mut [u32; 8],
        words_b: &[u32; 16],
    ) {
        // SAFETY: this function's features are the helpers' requirements,
        // and every pointer they follow comes from the references above.
        unsafe {
            let mut a = load(state_a, words_a);
            let mut b = load(state_b, words_b);
            // Written out, not looped: with each group's index a constant,
            // the message words stay in registers (a loop is not unrolled
            // at this size, and indexed words went to the stack: measured
            // slower than two plain compressions).
            macro_rules! groups {
                ($($i:literal)*) => { $( rounds(&mut a, $i); rounds(&mut b, $i); )* };
            }
            groups!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
            store(&a, state_a);
            store(&b, state_b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sha2::compress256;
    use sha2::digest::generic_array::GenericArray;

    fn plain(state: &[u32; 8], block: &[u8; 64]) -> [u32; 8] {
        let mut state = *state;
        compress256(&mut state, &[*GenericArray::from_slice(block)]);
        state
    }

    proptest! {
        #[test]
        fn two_way_compressions_equal_two_plain_ones(
            state_a in any::<[u32; 8]>(),
            state_b in any::<[u32; 8]>(),
            block_a in proptest::collection::vec(any::<u8>(), 64),
            block_b in proptest::collection::vec(any::<u8>(), 64),
        ) {
            let Some(two_way) = TwoWay::detect() else {
                return Ok(());
            };
            let block_a: [u8; 64] = block_a.try_into().unwrap();
            let block_b: [u8; 64] = block_b.try_into().unwrap();
            let (mut a, mut b) = (Lanes::from_state(&state_a), Lanes::from_state(&state_b));
            two_way.compress2(&mut a, &chunk_words(&block_a), &mut b, &chunk_words(&block_b));
            prop_assert_eq!(a.to_state(), plain(&state_a, &block_a));
            prop_assert_eq!(b.to_state(), plain(&state_b, &block_b));
            prop_assert_eq!(a.first_word(), plain(&state_a, &block_a)[0]);
        }
    }
}
