//! Generated activity, so a devnet is never idle: items posted to random
//! running nodes at a rate the page (or `--activity`) sets, two in three
//! signed by one of the devnet's authors. The gaps between them are random
//! (exponential, as arrivals from many independent users are), their mean
//! one over the rate.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Devnet;

/// The most items a second the activity posts.
pub const MAX_RATE: f64 = 50.0;

/// Things the generated items say, so blocks read like something.
const THINGS: [&str; 8] = [
    "pays 3 coins to",
    "says hello to",
    "thanks",
    "sends a poem to",
    "owes lunch to",
    "waves at",
    "signs the guestbook of",
    "challenges",
];

/// Posts generated items while the rate is above zero, until shutdown.
pub async fn run(devnet: Arc<Devnet>, shutdown: CancellationToken) {
    let mut rate = devnet.activity().subscribe();
    let mut posted: u64 = 0;
    loop {
        let now = *rate.borrow_and_update();
        let wait = if now > 0.0 {
            // Exponential gaps: -ln(U) / rate, U in (0, 1].
            let uniform = (random_below(1 << 30) + 1) as f64 / (1u64 << 30) as f64;
            Duration::from_secs_f64((-uniform.ln() / now).min(60.0))
        } else {
            Duration::MAX
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = rate.changed() => {
                if changed.is_err() { return }
                continue;
            }
            () = tokio::time::sleep(wait.min(Duration::from_secs(3600))) => {}
        }
        if now <= 0.0 {
            continue;
        }
        let running = devnet.running();
        if running.is_empty() {
            continue;
        }
        let node = &running[random_below(running.len() as u64) as usize];
        let authors = devnet.authors();
        let pick = |n: usize| random_below(n as u64) as usize;
        let from = pick(authors.len());
        // Someone else (with one author, themselves).
        let to = (from + 1 + pick(authors.len().max(2) - 1)) % authors.len();
        let (from, to) = (authors[from].name, authors[to].name);
        posted += 1;
        let text = format!("#{posted}: {from} {} {to}", THINGS[pick(THINGS.len())]);
        // Two in three signed by the author they name.
        let signer = (pick(3) > 0).then_some(from);
        if let Err(error) = devnet.post_item(node.port, &text, signer).await {
            tracing::debug!("generated item not taken: {error}");
        }
    }
}

/// A random number below `n` (n ≥ 1).
fn random_below(n: u64) -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the OS has a source of randomness");
    u64::from_le_bytes(bytes) % n.max(1)
}
