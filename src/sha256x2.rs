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
        let (start_a, start_b) = (a.0, b.0);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a `TwoWay` exists only when `detect` found SHA, SSE4.1
        // and SSSE3 on this CPU, which are all the features
        // `x86::compress2_from` is compiled for; it reads and writes only
        // the arrays passed here. With no groups done beforehand
        // (`V = 0`), it reads no schedule registers: the chunks' own words
        // are given for both.
        unsafe {
            x86::compress2_from::<0, false>(
                [&start_a, &start_b],
                words_a,
                [&start_a, &start_b],
                words_a,
                words_b,
                &mut a.0,
                &mut b.0,
            )
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("no TwoWay exists off x86_64: {start_a:?} {start_b:?} {words_b:?}")
    }

    /// Runs `work` compiled for the SHA extensions, so that the two-way
    /// compressions it calls can be inlined into its loop rather than
    /// called across a feature boundary.
    #[inline]
    pub fn run<R>(self, work: impl FnOnce() -> R) -> R {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a `TwoWay` proves this CPU has the features
        // `x86::with_features` is compiled for; it only calls `work`.
        unsafe {
            x86::with_features(work)
        }
        #[cfg(not(target_arch = "x86_64"))]
        work()
    }

    /// Runs `user` with the compression for `prepared`'s shape, compiled
    /// for the SHA extensions (so the compression is inlined into its loop).
    pub fn with_kernel<U: KernelUser>(self, prepared: &Prepared, user: U) -> U::Output {
        macro_rules! kernel {
            ($v:literal, $half:literal) => {
                self.run(|| user.run(PreparedKernel::<$v, $half> { prepared }))
            };
        }
        match (prepared.groups, prepared.half) {
            (0, false) => kernel!(0, false),
            (0, true) => kernel!(0, true),
            (1, false) => kernel!(1, false),
            (1, true) => kernel!(1, true),
            (2, false) => kernel!(2, false),
            (2, true) => kernel!(2, true),
            (_, false) => kernel!(3, false),
            (_, true) => kernel!(3, true),
        }
    }

    /// Does the first groups of rounds of compressing a chunk into `state`
    /// that depend only on its first `constant_words` words, once for all
    /// the chunks that share them (a block's last chunk before the nonce's
    /// digits): [`TwoWay::compress2_prepared`] starts after them.
    pub fn prepare(self, state: Lanes, words: &[u32; 16], constant_words: usize) -> Prepared {
        let groups = (constant_words / 4).min(3);
        // The next group's first two rounds too, when their words are.
        let half = constant_words >= 4 * groups + 2;
        let mut prepared = Prepared {
            groups,
            half,
            start: [0; 8],
            w: [0; 16],
            feed: state.0,
        };
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `compress2`, a `TwoWay` proves the features
        // `x86::prefix` needs; it reads and writes only the arrays passed.
        unsafe {
            let (start, w) = (&mut prepared.start, &mut prepared.w);
            match (groups, half) {
                (0, false) => x86::prefix::<0, false>(&state.0, words, start, w),
                (0, true) => x86::prefix::<0, true>(&state.0, words, start, w),
                (1, false) => x86::prefix::<1, false>(&state.0, words, start, w),
                (1, true) => x86::prefix::<1, true>(&state.0, words, start, w),
                (2, false) => x86::prefix::<2, false>(&state.0, words, start, w),
                (2, true) => x86::prefix::<2, true>(&state.0, words, start, w),
                (_, false) => x86::prefix::<3, false>(&state.0, words, start, w),
                (_, true) => x86::prefix::<3, true>(&state.0, words, start, w),
            }
        }
        prepared
    }

    /// Compresses two chunks that share the words `prepared` was made
    /// from (up to its constant ones) into the state it was made on,
    /// choosing the compression for its shape at each call.
    #[cfg(test)]
    pub fn compress2_prepared(
        self,
        prepared: &Prepared,
        words_a: &[u32; 16],
        words_b: &[u32; 16],
    ) -> (Lanes, Lanes) {
        let (mut a, mut b) = (Lanes([0; 8]), Lanes([0; 8]));
        let Prepared {
            groups,
            half,
            start,
            w,
            feed,
        } = prepared;
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `compress2`, a `TwoWay` proves the features
        // `x86::compress2_from` needs; it reads and writes only the arrays
        // passed, and reads the schedule registers of the first `groups`
        // groups, which `prepare` wrote for this same count.
        unsafe {
            let (out_a, out_b) = (&mut a.0, &mut b.0);
            let (start, feed) = ([start, start], [feed, feed]);
            macro_rules! from {
                ($v:literal, $half:literal) => {
                    x86::compress2_from::<$v, $half>(start, w, feed, words_a, words_b, out_a, out_b)
                };
            }
            match (groups, half) {
                (0, false) => from!(0, false),
                (0, true) => from!(0, true),
                (1, false) => from!(1, false),
                (1, true) => from!(1, true),
                (2, false) => from!(2, false),
                (2, true) => from!(2, true),
                (_, false) => from!(3, false),
                (_, true) => from!(3, true),
            }
        }
        (a, b)
    }
}

/// What runs a loop of two-way compressions of one [`Prepared`] chunk:
/// [`TwoWay::with_kernel`] calls it with the compression for that chunk's
/// shape, so the loop is compiled once per shape with the compression
/// inlined into it.
pub trait KernelUser {
    type Output;
    fn run<K: Kernel>(self, kernel: K) -> Self::Output;
}

/// Two-way compressions of chunks that share a [`Prepared`] start.
pub trait Kernel: Copy {
    /// The states after compressing the chunks `words_a` and `words_b`.
    fn pair(&self, words_a: &[u32; 16], words_b: &[u32; 16]) -> (Lanes, Lanes);
}

/// The compression for any [`Prepared`] shape, chosen at each call: for
/// tests (loops use [`TwoWay::with_kernel`]).
#[cfg(test)]
#[derive(Clone, Copy)]
pub struct AnyShape<'a> {
    pub two_way: TwoWay,
    pub prepared: &'a Prepared,
}

#[cfg(test)]
impl Kernel for AnyShape<'_> {
    fn pair(&self, words_a: &[u32; 16], words_b: &[u32; 16]) -> (Lanes, Lanes) {
        self.two_way
            .compress2_prepared(self.prepared, words_a, words_b)
    }
}

/// The compression of [`Prepared`] chunks with `V` groups and, with
/// `HALF`, two more rounds done beforehand.
#[derive(Clone, Copy)]
struct PreparedKernel<'a, const V: usize, const HALF: bool> {
    prepared: &'a Prepared,
}

impl<const V: usize, const HALF: bool> Kernel for PreparedKernel<'_, V, HALF> {
    #[inline(always)]
    fn pair(&self, words_a: &[u32; 16], words_b: &[u32; 16]) -> (Lanes, Lanes) {
        let (mut a, mut b) = (Lanes([0; 8]), Lanes([0; 8]));
        let Prepared { start, w, feed, .. } = self.prepared;
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a `PreparedKernel` is made only by `TwoWay::with_kernel`,
        // so a `TwoWay` proved the features `x86::compress2_from` needs,
        // for a `Prepared` of this very shape (`V`, `HALF`), whose schedule
        // registers it reads; it reads and writes only the arrays passed.
        unsafe {
            x86::compress2_from::<V, HALF>(
                [start, start],
                w,
                [feed, feed],
                words_a,
                words_b,
                &mut a.0,
                &mut b.0,
            )
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!(
            "no TwoWay exists off x86_64: {start:?} {w:?} {feed:?} {words_a:?} {words_b:?}"
        );
        (a, b)
    }
}

/// A chunk's first groups of rounds, done once ([`TwoWay::prepare`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prepared {
    /// Groups of four rounds done (0 to 3).
    groups: usize,
    /// And the first two rounds of the next group.
    half: bool,
    /// The state after them, in the rounds' order.
    start: [u32; 8],
    /// The four schedule registers after them.
    w: [u32; 16],
    /// The state before the chunk, added at the end.
    feed: [u32; 8],
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
    /// step that belongs with them; with `done_half`, the first two rounds
    /// were done beforehand (their words are constant).
    #[inline(always)]
    unsafe fn rounds(s: &mut Stream, i: usize, done_half: bool) {
        // SAFETY (whole function): the caller runs with SHA and SSSE3; the
        // one load reads K[4i..4i+4], inside the table for i < 16.
        unsafe {
            let k = _mm_loadu_si128(K.as_ptr().add(4 * i).cast());
            let msg = _mm_add_epi32(s.w[i % 4], k);
            if !done_half {
                s.cdgh = _mm_sha256rnds2_epu32(s.cdgh, s.abef, msg);
            }
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

    /// Calls `work` in code compiled for the SHA extensions.
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub unsafe fn with_features<R>(work: impl FnOnce() -> R) -> R {
        work()
    }

    /// Stores 16 bytes at `out[at..at + 4]`.
    #[inline(always)]
    unsafe fn put(out: &mut [u32], at: usize, value: __m128i) {
        assert!(at + 4 <= out.len());
        // SAFETY: the caller runs with SSE2; the bounds are checked above.
        unsafe { _mm_storeu_si128(out.as_mut_ptr().add(at).cast(), value) }
    }

    /// Loads `values[at..at + 4]`.
    #[inline(always)]
    unsafe fn get(values: &[u32], at: usize) -> __m128i {
        assert!(at + 4 <= values.len());
        // SAFETY: the caller runs with SSE2; the bounds are checked above.
        unsafe { _mm_loadu_si128(values.as_ptr().add(at).cast()) }
    }

    /// The first `V` groups of rounds of one compression (no feed-forward),
    /// and with `HALF` the first two rounds of the next: the state after
    /// them and the four schedule registers as they are then, written to
    /// `state_out` and `w_out`.
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub unsafe fn prefix<const V: usize, const HALF: bool>(
        state: &[u32; 8],
        words: &[u32; 16],
        state_out: &mut [u32; 8],
        w_out: &mut [u32; 16],
    ) {
        // SAFETY: this function's features are the helpers' requirements,
        // and every pointer they follow comes from the references above.
        unsafe {
            let mut s = load(state, words);
            macro_rules! groups {
                ($($i:literal)*) => { $( if $i < V { rounds(&mut s, $i, false); } )* };
            }
            groups!(0 1 2);
            if HALF {
                let k = _mm_loadu_si128(K.as_ptr().add(4 * V).cast());
                let msg = _mm_add_epi32(s.w[V % 4], k);
                s.cdgh = _mm_sha256rnds2_epu32(s.cdgh, s.abef, msg);
            }
            put(state_out, 0, s.abef);
            put(state_out, 4, s.cdgh);
            for (j, w) in s.w.iter().enumerate() {
                put(w_out, 4 * j, *w);
            }
        }
    }

    /// Two compressions with their rounds interleaved (the two streams
    /// share no data, so each one's round waits overlap the other's), each
    /// starting at group `V` from its `start` state and the schedule
    /// registers `w_start` that [`prefix`] left, with the chunk's groups
    /// from `V` on taken from `words_a` and `words_b`; `feed` is each
    /// state before the compression, added at the end. The results go to
    /// `out_a` and `out_b`.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub unsafe fn compress2_from<const V: usize, const HALF: bool>(
        start: [&[u32; 8]; 2],
        w_start: &[u32; 16],
        feed: [&[u32; 8]; 2],
        words_a: &[u32; 16],
        words_b: &[u32; 16],
        out_a: &mut [u32; 8],
        out_b: &mut [u32; 8],
    ) {
        // SAFETY: this function's features are the helpers' requirements,
        // and every pointer they follow comes from the references above.
        unsafe {
            let w = |words: &[u32; 16], j: usize| {
                if j < V {
                    get(w_start, 4 * j)
                } else {
                    get(words, 4 * j)
                }
            };
            let stream = |start: &[u32; 8], words: &[u32; 16]| Stream {
                abef: get(start, 0),
                cdgh: get(start, 4),
                w: [w(words, 0), w(words, 1), w(words, 2), w(words, 3)],
            };
            let (mut a, mut b) = (stream(start[0], words_a), stream(start[1], words_b));
            // Written out, not looped: with each group's index a constant,
            // the message words stay in registers (a loop is not unrolled
            // at this size, and indexed words went to the stack: measured
            // slower than two plain compressions).
            macro_rules! groups {
                ($($i:literal)*) => { $( if $i >= V {
                    let done_half = HALF && $i == V;
                    rounds(&mut a, $i, done_half);
                    rounds(&mut b, $i, done_half);
                } )* };
            }
            groups!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
            put(out_a, 0, _mm_add_epi32(a.abef, get(feed[0], 0)));
            put(out_a, 4, _mm_add_epi32(a.cdgh, get(feed[0], 4)));
            put(out_b, 0, _mm_add_epi32(b.abef, get(feed[1], 0)));
            put(out_b, 4, _mm_add_epi32(b.cdgh, get(feed[1], 4)));
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

        #[test]
        fn prepared_compressions_equal_plain_ones(
            state in any::<[u32; 8]>(),
            block_a in proptest::collection::vec(any::<u8>(), 64),
            tail in proptest::collection::vec(any::<u8>(), 64),
            constant in 0usize..=16,
        ) {
            let Some(two_way) = TwoWay::detect() else {
                return Ok(());
            };
            // The two chunks share their first `constant` words.
            let block_a: [u8; 64] = block_a.try_into().unwrap();
            let mut block_b = block_a;
            block_b[4 * constant..].copy_from_slice(&tail[4 * constant..]);
            let (words_a, words_b) = (chunk_words(&block_a), chunk_words(&block_b));
            let prepared = two_way.prepare(Lanes::from_state(&state), &words_a, constant);
            let (a, b) = two_way.compress2_prepared(&prepared, &words_a, &words_b);
            prop_assert_eq!(a.to_state(), plain(&state, &block_a));
            prop_assert_eq!(b.to_state(), plain(&state, &block_b));
        }
    }
}
