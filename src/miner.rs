//! Proof-of-work mining on OS threads, off the async runtime.
//!
//! A block's hashed string is `prefix + decimal(nonce)`, and the prefix does
//! not change while nonces are searched. So the full 64-byte SHA-256 chunks
//! of the prefix are compressed once per job (the *midstate*); for each nonce
//! only the last one or two chunks are compressed, with the nonce's digits
//! counted up in place and the target checked on the raw state words.
//! [`NonceHasher`] does that; [`Miner`] runs it on threads that take nonce
//! ranges from the current [`Job`] and drop it within a few thousand hashes
//! when a new job arrives or the node stops. On a CPU with the SHA
//! extensions each thread hashes two nonces at a time, from the two halves
//! of its range, with their compressions interleaved ([`crate::sha256x2`]);
//! a solution found that way is checked on the plain path before it is
//! reported.
//!
//! The miner knows nothing of chains or files: it reports a found block to a
//! callback and waits for the next job.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sha2::compress256;
use sha2::digest::consts::U64;
use sha2::digest::generic_array::GenericArray;

use crate::block::{Block, BlockHash, header_prefix};
use crate::chain::Template;
use crate::pow::{Target, U256};
use crate::priority::set_thread_nice;
use crate::setting::{Setting, Text, Unset, Words};
use crate::sha256x2::{Kernel, KernelUser, Lanes, Prepared, TwoWay, chunk_words};

/// SHA-256's initial state.
const SHA256_IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// Nonces a thread tries between looks at the stop and job flags: about a
/// tenth of a millisecond of work.
const BATCH: u64 = 4096;
/// Nonces a thread claims from a job at once.
const CHUNK: u64 = BATCH * 256;

type Chunk = GenericArray<u8, U64>;

/// Hashes `prefix + decimal(nonce)` for consecutive nonces, re-using the
/// prefix's midstate.
pub struct NonceHasher {
    /// State after compressing the prefix's full chunks.
    midstate: [u32; 8],
    /// The prefix bytes after its full chunks.
    tail: Vec<u8>,
    /// Length of the whole prefix, for the padding's length field.
    prefix_len: usize,
    /// The final chunk(s): tail, nonce digits, padding.
    chunks: [Chunk; 2],
    /// The same as big-endian words, as the two-way path reads them, kept
    /// in step with `chunks`.
    words: [[u32; 16]; 2],
    /// `midstate` in the two-way path's order.
    mid_lanes: Lanes,
    /// How many of `chunks` this nonce's message uses.
    used_chunks: usize,
    digits: usize,
    /// Where the nonce's last digit is in `chunks`.
    last_digit: usize,
    nonce: u64,
}

impl NonceHasher {
    /// Prepares hashing `prefix` followed by `nonce`.
    pub fn new(prefix: &[u8], nonce: u64) -> NonceHasher {
        let full = prefix.len() / 64 * 64;
        let mut midstate = SHA256_IV;
        let chunks: Vec<Chunk> = prefix[..full]
            .chunks_exact(64)
            .map(|c| *Chunk::from_slice(c))
            .collect();
        compress256(&mut midstate, &chunks);
        let mut hasher = NonceHasher {
            midstate,
            tail: prefix[full..].to_vec(),
            prefix_len: prefix.len(),
            chunks: Default::default(),
            words: [[0; 16]; 2],
            mid_lanes: Lanes::from_state(&midstate),
            used_chunks: 1,
            digits: 0,
            last_digit: 0,
            nonce,
        };
        hasher.lay_out();
        hasher
    }

    /// The nonce the next [`NonceHasher::state`] is for.
    pub fn nonce(&self) -> u64 {
        self.nonce
    }

    /// The SHA-256 state words (the digest, big-endian) for the current nonce.
    #[inline]
    pub fn state(&self) -> [u32; 8] {
        let mut state = self.midstate;
        compress256(&mut state, &self.chunks[..self.used_chunks]);
        state
    }

    /// What every nonce's last chunk(s) start with, for
    /// [`NonceHasher::state_pair`]: the rounds over the prefix's bytes in
    /// the chunk the nonce's digits begin in, done once.
    pub fn prepare(&self, two_way: TwoWay) -> Prepared {
        two_way.prepare(self.mid_lanes, &self.words[0], self.tail.len() / 4)
    }

    /// The state words of `a`'s and `b`'s current nonces (of one prefix,
    /// `prepared` by [`NonceHasher::prepare`]), their compressions
    /// interleaved: the chunks both messages have go through the two-way
    /// path together, a second chunk only one of them has (around a change
    /// in the nonce's digit count) through the plain one.
    #[inline(always)]
    pub fn state_pair(
        two_way: TwoWay,
        kernel: impl Kernel,
        a: &NonceHasher,
        b: &NonceHasher,
    ) -> (Lanes, Lanes) {
        let (mut lanes_a, mut lanes_b) = kernel.pair(&a.words[0], &b.words[0]);
        let common = a.used_chunks.min(b.used_chunks);
        if common == 2 {
            two_way.compress2(&mut lanes_a, &a.words[1], &mut lanes_b, &b.words[1]);
        }
        let finish = |lanes: Lanes, hasher: &NonceHasher| {
            if hasher.used_chunks == common {
                return lanes;
            }
            let mut state = lanes.to_state();
            compress256(&mut state, &hasher.chunks[common..hasher.used_chunks]);
            Lanes::from_state(&state)
        };
        (finish(lanes_a, a), finish(lanes_b, b))
    }

    /// Moves to the next nonce. Returns false when the nonce space is used up.
    #[inline(always)]
    pub fn advance(&mut self) -> bool {
        // Nine nonces in ten change only their last digit.
        let pos = self.last_digit;
        let byte = &mut self.chunks[pos / 64][pos % 64];
        if *byte != b'9' && self.nonce != u64::MAX {
            *byte += 1;
            self.words[pos / 64][pos % 64 / 4] += 1 << (8 * (3 - pos % 4));
            self.nonce += 1;
            return true;
        }
        self.advance_carrying()
    }

    /// [`NonceHasher::advance`] when a digit carries (or the nonce space
    /// ends).
    #[inline(never)]
    fn advance_carrying(&mut self) -> bool {
        let Some(next) = self.nonce.checked_add(1) else {
            return false;
        };
        self.nonce = next;
        let first_digit = self.tail.len();
        let mut pos = first_digit + self.digits;
        loop {
            pos -= 1;
            let byte = &mut self.chunks[pos / 64][pos % 64];
            // The byte's place in its big-endian word.
            let word = &mut self.words[pos / 64][pos % 64 / 4];
            let unit = 1u32 << (8 * (3 - pos % 4));
            if *byte != b'9' {
                *byte += 1;
                *word += unit;
                return true;
            }
            *byte = b'0';
            *word -= 9 * unit;
            if pos == first_digit {
                // 99…9 → 100…0: one more digit moves the padding.
                self.lay_out();
                return true;
            }
        }
    }

    /// Writes tail, digits and padding for the current nonce.
    fn lay_out(&mut self) {
        let digits = self.nonce.to_string();
        self.digits = digits.len();
        self.last_digit = self.tail.len() + digits.len() - 1;
        let message_len = self.tail.len() + digits.len();
        self.used_chunks = if message_len + 9 <= 64 { 1 } else { 2 };
        let mut bytes = [0u8; 128];
        bytes[..self.tail.len()].copy_from_slice(&self.tail);
        bytes[self.tail.len()..message_len].copy_from_slice(digits.as_bytes());
        bytes[message_len] = 0x80;
        let bit_len = ((self.prefix_len + digits.len()) as u64) * 8;
        let end = self.used_chunks * 64;
        bytes[end - 8..end].copy_from_slice(&bit_len.to_be_bytes());
        self.chunks[0].copy_from_slice(&bytes[..64]);
        self.chunks[1].copy_from_slice(&bytes[64..]);
        for (words, chunk) in self.words.iter_mut().zip(bytes.chunks_exact(64)) {
            *words = chunk_words(chunk.try_into().expect("64 bytes"));
        }
    }
}

/// Whether state words, read as a big-endian digest, begin with `difficulty`
/// zero hex digits.
#[inline]
pub fn state_meets_difficulty(state: &[u32; 8], difficulty: u32) -> bool {
    let full_words = (difficulty / 8) as usize;
    if state[..full_words.min(8)].iter().any(|&w| w != 0) {
        return false;
    }
    let rest = difficulty % 8;
    rest == 0 || state[full_words] >> (32 - 4 * rest) == 0
}

/// Whether state words, read as a big-endian digest, are at most the
/// target's words: the first word that differs decides, which is almost
/// always the first, so this costs what the difficulty check costs.
#[inline]
pub fn state_meets_target(state: &[u32; 8], target: &[u32; 8]) -> bool {
    for (word, limit) in state.iter().zip(target) {
        if word != limit {
            return word < limit;
        }
    }
    true
}

/// The digest bytes of state words.
pub fn state_to_hash(state: &[u32; 8]) -> BlockHash {
    let mut bytes = [0u8; 32];
    for (out, word) in bytes.chunks_exact_mut(4).zip(state) {
        out.copy_from_slice(&word.to_be_bytes());
    }
    BlockHash(bytes)
}

/// A template being mined, shared by the threads.
struct Job {
    template: Template,
    prefix: Vec<u8>,
    /// The template's target as state words.
    target: [u32; 8],
    /// Next unclaimed nonce range.
    next_chunk: AtomicU64,
    /// Set once a block is found, so the other threads stop on it.
    solved: AtomicBool,
}

/// State shared by the miner threads and their handle.
struct Shared {
    job: Mutex<Option<Arc<Job>>>,
    job_changed: Condvar,
    /// Bumped on every new job; threads compare it between batches.
    generation: AtomicU64,
    stopping: AtomicBool,
    /// Hashes tried since start, for the hash rate.
    hashes: AtomicU64,
    /// Takes a found block; false means it could not be used and the job
    /// goes on (the node could not save it), true that the job is done.
    found: Box<dyn Fn(Block) -> bool + Send + Sync>,
    /// The two-way hash path, on a CPU that has it.
    two_way: Option<TwoWay>,
}

/// A pool of mining threads.
pub struct Miner {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Miner {
    /// Starts `threads` idle threads; each block found is passed to `found`
    /// (on the thread that found it), which says whether the job is done.
    /// With `nice`, the threads run at that nice level (see
    /// [`MINER_NICE`]'s default); without, at the caller's.
    pub fn start(
        threads: usize,
        nice: Option<u8>,
        found: impl Fn(Block) -> bool + Send + Sync + 'static,
    ) -> Miner {
        Miner::start_on(HashPath::Fastest, threads, nice, found)
    }

    /// [`Miner::start`] on a chosen hash path.
    pub fn start_on(
        path: HashPath,
        threads: usize,
        nice: Option<u8>,
        found: impl Fn(Block) -> bool + Send + Sync + 'static,
    ) -> Miner {
        let two_way = match path {
            HashPath::Fastest => TwoWay::detect(),
            HashPath::Plain => None,
        };
        let shared = Arc::new(Shared {
            two_way,
            job: Mutex::new(None),
            job_changed: Condvar::new(),
            generation: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            hashes: AtomicU64::new(0),
            found: Box::new(found),
        });
        let threads = (0..threads.max(1))
            .map(|n| {
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("miner-{n}"))
                    .spawn(move || {
                        if let Some(nice) = nice
                            && let Err(error) = set_thread_nice(nice)
                            && n == 0
                        {
                            tracing::warn!(
                                %error,
                                "could not run the miner threads at nice {nice}; they run at the node's own priority"
                            );
                        }
                        mine(&shared)
                    })
                    .expect("the OS starts a thread")
            })
            .collect();
        Miner {
            shared,
            threads: Mutex::new(threads),
        }
    }

    /// Replaces the current job; threads move to it within one batch.
    pub fn set_job(&self, template: Template) {
        let prefix = header_prefix(
            template.index,
            &template.prev_hash,
            &template.data,
            template.timestamp,
        )
        .into_bytes();
        let job = Arc::new(Job {
            target: template.target.words(),
            template,
            prefix,
            next_chunk: AtomicU64::new(0),
            solved: AtomicBool::new(false),
        });
        *self.shared.job.lock().expect("miner lock") = Some(job);
        self.shared.generation.fetch_add(1, Ordering::Release);
        self.shared.job_changed.notify_all();
    }

    /// Drops the current job: the threads finish their batch and wait for
    /// the next [`Miner::set_job`].
    pub fn idle(&self) {
        *self.shared.job.lock().expect("miner lock") = None;
        self.shared.generation.fetch_add(1, Ordering::Release);
    }

    /// Hashes tried so far, by all threads.
    pub fn hashes(&self) -> u64 {
        self.shared.hashes.load(Ordering::Relaxed)
    }

    /// Stops every thread and waits for them.
    pub fn stop(&self) {
        self.shared.stopping.store(true, Ordering::Release);
        self.shared.generation.fetch_add(1, Ordering::Release);
        {
            // Taking the lock orders the flag before any thread's next wait.
            let _job = self.shared.job.lock().expect("miner lock");
            self.shared.job_changed.notify_all();
        }
        let threads = std::mem::take(&mut *self.threads.lock().expect("miner threads lock"));
        for thread in threads {
            let _ = thread.join();
        }
    }
}

impl Drop for Miner {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One miner thread's loop.
fn mine(shared: &Shared) {
    loop {
        let (job, generation) = {
            let mut guard = shared.job.lock().expect("miner lock");
            loop {
                if shared.stopping.load(Ordering::Acquire) {
                    return;
                }
                match &*guard {
                    Some(job) if !job.solved.load(Ordering::Acquire) => break,
                    _ => guard = shared.job_changed.wait(guard).expect("miner lock"),
                }
            }
            let generation = shared.generation.load(Ordering::Acquire);
            (
                Arc::clone(guard.as_ref().expect("checked above")),
                generation,
            )
        };
        let still_current = || shared.generation.load(Ordering::Acquire) == generation;
        while still_current() && !job.solved.load(Ordering::Relaxed) {
            let chunk = job.next_chunk.fetch_add(1, Ordering::Relaxed);
            let Some(start) = chunk.checked_mul(CHUNK) else {
                // Every nonce tried: wait for the next job.
                job.solved.store(true, Ordering::Release);
                break;
            };
            let range = Range {
                prefix: &job.prefix,
                start,
                count: CHUNK,
                target: &job.target,
            };
            let found = match shared.two_way {
                Some(two_way) => search_two_way(two_way, &range, &shared.hashes, &still_current),
                None => search(&range, &shared.hashes, &still_current),
            };
            match found {
                Search::Found(nonce) => {
                    if !job.solved.swap(true, Ordering::AcqRel)
                        && !(shared.found)(job.template.block(nonce))
                    {
                        // Not used: let every thread go on with this job.
                        job.solved.store(false, Ordering::Release);
                        let _job = shared.job.lock().expect("miner lock");
                        shared.job_changed.notify_all();
                        continue;
                    }
                    break;
                }
                Search::Exhausted => {}
                Search::Interrupted => break,
            }
        }
    }
}

/// Which SHA-256 path the miner hashes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashPath {
    /// Two nonces at a time with SHA-NI where the CPU has it, else plain.
    Fastest,
    /// One nonce at a time through the `sha2` crate (SHA-NI, one stream,
    /// where the CPU has it).
    Plain,
}

enum Search {
    Found(u64),
    Exhausted,
    Interrupted,
}

/// The nonces a thread searches at once.
struct Range<'a> {
    prefix: &'a [u8],
    start: u64,
    count: u64,
    target: &'a [u32; 8],
}

/// Tries the range's nonces two at a time, one from each half, checking
/// `keep_going` between batches. A solution is reported only once the
/// plain path agrees.
fn search_two_way(
    two_way: TwoWay,
    range: &Range,
    hashes: &AtomicU64,
    keep_going: &dyn Fn() -> bool,
) -> Search {
    let half = range.count / 2;
    // The two halves must fit in the nonce space; the last range of it
    // (never reached in practice) goes the plain way.
    if !range.count.is_multiple_of(2) || range.start.checked_add(range.count).is_none() {
        return search(range, hashes, keep_going);
    }
    let a = NonceHasher::new(range.prefix, range.start);
    let b = NonceHasher::new(range.prefix, range.start + half);
    let prepared = a.prepare(two_way);
    let pairs = Pairs {
        two_way,
        range,
        a,
        b,
        half,
        hashes,
        keep_going,
    };
    two_way.with_kernel(&prepared, pairs)
}

/// The loop of [`search_two_way`]: `half` pairs of nonces, `a`'s and `b`'s.
struct Pairs<'a> {
    two_way: TwoWay,
    range: &'a Range<'a>,
    a: NonceHasher,
    b: NonceHasher,
    half: u64,
    hashes: &'a AtomicU64,
    keep_going: &'a dyn Fn() -> bool,
}

impl KernelUser for Pairs<'_> {
    type Output = Search;

    fn run<K: Kernel>(self, kernel: K) -> Search {
        let Pairs {
            two_way,
            range,
            mut a,
            mut b,
            half,
            hashes,
            keep_going,
        } = self;
        let mut left = half;
        while left > 0 {
            let batch = left.min(BATCH / 2);
            for tried in 1..=batch {
                let (lanes_a, lanes_b) = NonceHasher::state_pair(two_way, kernel, &a, &b);
                for (lanes, hasher) in [(lanes_a, &a), (lanes_b, &b)] {
                    // The first word decides almost always; the rest only
                    // when it is at the target's.
                    if lanes.first_word() > range.target[0] {
                        continue;
                    }
                    let state = lanes.to_state();
                    if state_meets_target(&state, range.target) {
                        let plain = NonceHasher::new(range.prefix, hasher.nonce()).state();
                        if plain == state {
                            hashes.fetch_add(2 * tried, Ordering::Relaxed);
                            return Search::Found(hasher.nonce());
                        }
                        tracing::error!(
                            nonce = hasher.nonce(),
                            "the two-way hash path disagreed with the plain one; the nonce is passed over"
                        );
                    }
                }
                // Within a range that fits the nonce space, neither runs out.
                a.advance();
                b.advance();
            }
            left -= batch;
            hashes.fetch_add(2 * batch, Ordering::Relaxed);
            // As in `search`: let a woken server thread onto the core.
            std::thread::yield_now();
            if !keep_going() {
                return Search::Interrupted;
            }
        }
        Search::Exhausted
    }
}

/// Tries the range's nonces one at a time, checking `keep_going` between
/// batches.
fn search(range: &Range, hashes: &AtomicU64, keep_going: &dyn Fn() -> bool) -> Search {
    let Range {
        prefix,
        start,
        count,
        target,
    } = *range;
    let mut hasher = NonceHasher::new(prefix, start);
    let mut left = count;
    while left > 0 {
        let batch = left.min(BATCH);
        for tried in 1..=batch {
            if state_meets_target(&hasher.state(), target) {
                hashes.fetch_add(tried, Ordering::Relaxed);
                return Search::Found(hasher.nonce());
            }
            if !hasher.advance() {
                hashes.fetch_add(tried, Ordering::Relaxed);
                return Search::Exhausted;
            }
        }
        left -= batch;
        hashes.fetch_add(batch, Ordering::Relaxed);
        // Measured: on this VM a server thread woken onto a core busy with
        // a low-priority miner can wait a whole tick (~3.5 ms) to run;
        // yielding every batch (~0.16 ms, one cheap syscall) lets it in at
        // once. p99 of /blockchain.json with every core mining fell from
        // 3.6 ms to under 0.3 ms; the hash rate did not move.
        std::thread::yield_now();
        if !keep_going() {
            return Search::Interrupted;
        }
    }
    Search::Exhausted
}

/// The nice level of a node's miner threads unless its config says
/// otherwise: the lowest normal priority, so the server's threads get the
/// cores whenever they have work. (The idle class, SCHED_IDLE, measured no
/// better for HTTP latency here and starves mining outright under any other
/// load.) On a machine busy with other work, 19 leaves the miner a few per
/// cent of a core; `miner_nice` trades HTTP latency for hash rate there.
pub const MINER_NICE: Setting<u8> = Setting {
    key: "miner_nice",
    help: "nice level of the mining threads (below the node's own level needs privilege)",
    default: 19,
    range: Some(0..=19),
    unit: "a nice level",
};
pub const MINE: Setting<Words, bool> = Setting {
    key: "mine",
    help: "mine in the background (--no-mine or --mine=false turns off a config file's mine = true)",
    default: false,
    range: None,
    unit: "",
};
pub const THREADS: Setting<usize, Unset> = Setting {
    key: "threads",
    help: "mining threads",
    default: Unset("the number of cores"),
    range: Some(1..=1024),
    unit: "a whole number of threads",
};
pub const DATA: Text = Setting {
    key: "data",
    help: "text of the blocks this node mines",
    default: Unset("Mined by node on port PORT"),
    range: None,
    unit: "",
};
/// How long `jbc bench` runs (a flag of that command, not a setting).
pub const BENCH_SECONDS: Setting<f64> = Setting {
    key: "seconds",
    help: "how long to mine",
    default: 5.0,
    range: Some(0.1..=3600.0),
    unit: "a number of seconds",
};

/// What `jbc bench` measured.
#[derive(Debug, Clone)]
pub struct BenchReport {
    pub threads: usize,
    /// How long each path was measured.
    pub seconds: f64,
    /// SHA-256 compressions per second of one stream on one thread, through
    /// the `sha2` crate (what `openssl speed -evp sha256` measures).
    pub compressions_per_second: f64,
    /// Miner hashes per second over all threads, one nonce at a time.
    pub plain_hashrate: f64,
    /// The same, two nonces at a time, on a CPU with the SHA extensions.
    pub two_way_hashrate: Option<f64>,
}

impl BenchReport {
    /// The hash rate the node mines at: the faster path it uses.
    pub fn hashrate(&self) -> f64 {
        self.two_way_hashrate.unwrap_or(self.plain_hashrate)
    }

    /// A hash rate per thread as a share of one stream's compression rate.
    pub fn per_thread_ratio(&self, hashrate: f64) -> f64 {
        hashrate / self.threads as f64 / self.compressions_per_second
    }
}

/// Measures the compression rate, then mines a synthetic header at an
/// unreachable difficulty on `threads` threads at nice level `nice` for
/// `duration` on each hash path; `progress` hears what it is doing.
pub fn bench(threads: usize, nice: u8, duration: Duration, progress: impl Fn(&str)) -> BenchReport {
    let calibration = duration.min(Duration::from_secs(2));
    progress(&format!(
        "measuring the SHA-256 compression rate on one thread for {:.1} s",
        calibration.as_secs_f64()
    ));
    let compressions_per_second = compression_rate(calibration);
    let measure = |path: HashPath, name: &str| {
        progress(&format!(
            "mining a synthetic block at an unreachable difficulty on {threads} thread(s), {name}, for {:.1} s",
            duration.as_secs_f64()
        ));
        let miner = Miner::start_on(path, threads, Some(nice), |_| true);
        miner.set_job(Template {
            index: 1,
            prev_hash: BlockHash([0; 32]).into(),
            data: "jbc bench: a synthetic header".into(),
            timestamp: 1_700_000_000,
            target: Target(U256::ZERO),
        });
        let start = Instant::now();
        let before = miner.hashes();
        std::thread::sleep(duration);
        let hashes = miner.hashes() - before;
        let seconds = start.elapsed().as_secs_f64();
        miner.stop();
        hashes as f64 / seconds
    };
    let plain_hashrate = measure(HashPath::Plain, "one nonce at a time");
    let two_way_hashrate = TwoWay::detect().map(|_| {
        measure(
            HashPath::Fastest,
            "two nonces at a time (SHA-NI, interleaved)",
        )
    });
    BenchReport {
        threads,
        seconds: duration.as_secs_f64(),
        compressions_per_second,
        plain_hashrate,
        two_way_hashrate,
    }
}

/// Single-thread SHA-256 compressions per second over `duration`.
fn compression_rate(duration: Duration) -> f64 {
    let mut state = SHA256_IV;
    let chunk = [Chunk::default()];
    let start = Instant::now();
    let mut count: u64 = 0;
    while start.elapsed() < duration {
        for _ in 0..BATCH {
            compress256(&mut state, &chunk);
        }
        count += BATCH;
    }
    std::hint::black_box(state);
    count as f64 / start.elapsed().as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::header_hash;
    use crate::sha256x2::AnyShape;
    use proptest::prelude::*;

    fn fast_hash(prefix: &str, nonce: u64) -> BlockHash {
        state_to_hash(&NonceHasher::new(prefix.as_bytes(), nonce).state())
    }

    #[test]
    fn matches_the_plain_hash_across_padding_boundaries() {
        for len in 0..=140 {
            let prefix = "p".repeat(len);
            for nonce in [0, 7, 9, 10, 99, 12345, u64::MAX] {
                assert_eq!(
                    fast_hash(&prefix, nonce),
                    header_hash(&prefix, nonce),
                    "len {len} nonce {nonce}"
                );
            }
        }
    }

    #[test]
    fn advancing_carries_digits_in_place() {
        for len in [0, 40, 46, 47, 54, 55, 56, 63, 64, 100] {
            let prefix = "x".repeat(len);
            for start in [0u64, 8, 95, 995, 99_990, 999_999_999_999_999_990] {
                let mut hasher = NonceHasher::new(prefix.as_bytes(), start);
                for nonce in start..start + 20 {
                    assert_eq!(hasher.nonce(), nonce);
                    assert_eq!(
                        state_to_hash(&hasher.state()),
                        header_hash(&prefix, nonce),
                        "len {len} nonce {nonce}"
                    );
                    assert!(hasher.advance());
                }
            }
        }
        let mut last = NonceHasher::new(b"x", u64::MAX);
        assert!(!last.advance());
    }

    /// A nonce to start from: anywhere, or just below a change in the
    /// number of its digits (`near` picks which, and which power of ten).
    fn start_nonce(any: u64, near: Option<u32>) -> u64 {
        match near {
            Some(power) => 10u64.pow(power % 19 + 1) - 3,
            None => any.min(u64::MAX - 1_000),
        }
    }

    proptest! {
        #[test]
        fn the_two_way_path_hashes_what_the_plain_path_does(
            prefix_len in 0usize..200,
            any in any::<u64>(),
            near in proptest::option::of(any::<u32>()),
            gap in 0u64..500,
        ) {
            let Some(two_way) = TwoWay::detect() else {
                return Ok(());
            };
            let prefix = "q".repeat(prefix_len);
            let start = start_nonce(any, near);
            let mut a = NonceHasher::new(prefix.as_bytes(), start);
            let mut b = NonceHasher::new(prefix.as_bytes(), start + gap);
            let prepared = a.prepare(two_way);
            for _ in 0..8 {
                let kernel = AnyShape { two_way, prepared: &prepared };
                let (lanes_a, lanes_b) = NonceHasher::state_pair(two_way, kernel, &a, &b);
                prop_assert_eq!(state_to_hash(&lanes_a.to_state()), header_hash(&prefix, a.nonce()));
                prop_assert_eq!(state_to_hash(&lanes_b.to_state()), header_hash(&prefix, b.nonce()));
                a.advance();
                b.advance();
            }
        }

        #[test]
        fn a_two_way_solution_meets_the_target_on_the_plain_path(
            prefix_len in 0usize..140,
            near in proptest::option::of(any::<u32>()),
        ) {
            let Some(two_way) = TwoWay::detect() else {
                return Ok(());
            };
            let prefix = "s".repeat(prefix_len);
            let target = Target::limit(2).words();
            let range = Range {
                prefix: prefix.as_bytes(),
                start: start_nonce(0, near),
                count: 1 << 14,
                target: &target,
            };
            let hashes = AtomicU64::new(0);
            let Search::Found(nonce) = search_two_way(two_way, &range, &hashes, &|| true) else {
                return Err(TestCaseError::fail("no solution in 16 384 nonces at difficulty 2"));
            };
            prop_assert!(header_hash(&prefix, nonce).meets_difficulty(2));
            prop_assert!(hashes.load(Ordering::Relaxed) > 0);
        }
    }

    #[test]
    fn the_difficulty_check_on_words_agrees_with_hex() {
        for state in [
            [0u32; 8],
            [0x0000_0fff, 1, 2, 3, 4, 5, 6, 7],
            [0, 0x00ff_0000, 0, 0, 0, 0, 0, 0],
            [u32::MAX; 8],
        ] {
            let hash = state_to_hash(&state);
            for difficulty in 0..=64 {
                assert_eq!(
                    state_meets_difficulty(&state, difficulty),
                    hash.meets_difficulty(difficulty),
                    "{hash} {difficulty}"
                );
            }
        }
    }

    #[test]
    fn the_target_check_on_words_agrees_with_the_numbers() {
        let states = [
            [0u32; 8],
            [0x0000_0fff, 1, 2, 3, 4, 5, 6, 7],
            [0x0000_0fff, 1, 2, 3, 4, 5, 6, 8],
            [0, 0x00ff_0000, 0, 0, 0, 0, 0, 0],
            [u32::MAX; 8],
        ];
        for state in states {
            let hash = state_to_hash(&state);
            for target in states
                .iter()
                .map(|t| Target(U256::from_be_bytes(state_to_hash(t).0)))
            {
                assert_eq!(
                    state_meets_target(&state, &target.words()),
                    target.is_met_by(&hash)
                );
            }
        }
    }

    proptest! {
        #[test]
        fn fast_path_equals_plain_path(
            data in "\\PC{0,90}",
            index in any::<u64>(),
            timestamp in any::<u128>(),
            nonce in prop_oneof![any::<u64>(), 0u64..1000, Just(9u64), Just(99), Just(999_999), Just(u64::MAX - 3)],
            steps in 0usize..30,
        ) {
            let prefix = header_prefix(index, &"ab".into(), &data, timestamp);
            let mut hasher = NonceHasher::new(prefix.as_bytes(), nonce);
            for step in 0..steps {
                let expected = nonce.checked_add(step as u64);
                let Some(expected) = expected else { break };
                prop_assert_eq!(hasher.nonce(), expected);
                prop_assert_eq!(state_to_hash(&hasher.state()), header_hash(&prefix, expected));
                if !hasher.advance() { break; }
            }
        }
    }

    #[test]
    fn the_miner_finds_a_valid_block_and_stops() {
        let (sender, receiver) = std::sync::mpsc::channel();
        let miner = Miner::start(2, None, move |block| sender.send(block).is_ok());
        let template = Template {
            index: 5,
            prev_hash: BlockHash([0xab; 32]).into(),
            data: "Mined by a test".into(),
            timestamp: 1_700_000_000,
            target: Target::limit(3),
        };
        miner.set_job(template.clone());
        let block = receiver
            .recv_timeout(Duration::from_secs(30))
            .expect("a block within 30 s");
        block.check_hash().unwrap();
        assert!(block.hash.meets_difficulty(3));
        assert_eq!(
            (block.index, &block.prev_hash, &block.data),
            (5, &template.prev_hash, &template.data)
        );
        assert!(miner.hashes() > 0);
        miner.stop();
        assert!(receiver.try_recv().is_err(), "one block per job");
    }
}
