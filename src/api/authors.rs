//! The routes of signed items: whose an item is (`GET /data/{id}` adds its
//! author), an author's items (`GET /authors/{key}`), and who signed each
//! item of a block (`GET /block/{hash}/authors`, for the explorer).
//!
//! Every signature is checked here, as it is read, off the async runtime
//! (a block's in one batch): a verdict is never stored, so it can never be
//! stale, and what the chain holds stays plain data.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use serde::Deserialize;

use super::{ApiError, AppState};
use crate::block::{BlockHash, HashParseError};
use crate::item::items_in;
use crate::protocol::{AuthorItems, AuthorView, ItemAnswer, MAX_AUTHOR_ITEMS};
use crate::signed::{self, AuthorKey, AuthorKeyError};

/// The items `GET /authors/{key}` gives when no `limit` is asked.
const DEFAULT_AUTHOR_ITEMS: usize = 50;

/// At most this many batches of signatures are checked at once (a block's
/// can take a core for 0.1 s): a flood of requests queues here instead of
/// taking every core from the miner and the chain.
static BATCHES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// `answer` with its item's text and, when it is signed, its author as
/// checked now.
pub async fn with_author(app: &AppState, answer: ItemAnswer) -> Result<ItemAnswer, ApiError> {
    let state = app.state.clone();
    let id = answer.id;
    let (text, author) = tokio::task::spawn_blocking(move || {
        let text = state.item_text(&id);
        let genesis = state.network().genesis.hash;
        let author =
            (text.as_deref()).and_then(|text| AuthorView::of(&signed::check(text, &genesis)));
        (text, author)
    })
    .await?;
    Ok(ItemAnswer {
        text,
        author,
        ..answer
    })
}

#[derive(Debug, Deserialize)]
pub struct AuthorQuery {
    limit: Option<usize>,
}

/// `GET /authors/{key}?limit=N`: the items signed with `key` (its 64 hex
/// digits) that this node holds, waiting ones first, then those in blocks,
/// the newest first; at most `limit` (default 50, at most 200). Items that
/// name the key but do not verify are listed too, marked so: the page of an
/// author shows what is said in their name.
pub async fn author_items(
    State(app): State<AppState>,
    Path(key): Path<String>,
    query: Result<Query<AuthorQuery>, QueryRejection>,
) -> Result<Json<AuthorItems>, ApiError> {
    let key: AuthorKey = key
        .parse()
        .map_err(|e: AuthorKeyError| ApiError::BadRequest(e.to_string()))?;
    let Query(AuthorQuery { limit }) = query.map_err(|_| {
        ApiError::BadRequest(format!(
            "GET /authors/{{key}} takes `limit`, a whole number of items (default \
             {DEFAULT_AUTHOR_ITEMS}, at most {MAX_AUTHOR_ITEMS})"
        ))
    })?;
    let limit = limit.unwrap_or(DEFAULT_AUTHOR_ITEMS).min(MAX_AUTHOR_ITEMS);
    let _turn = BATCHES.acquire().await.expect("never closed");
    let state = app.state.clone();
    let answer = tokio::task::spawn_blocking(move || {
        let (found, more) = state.authored_by(&key, limit);
        let texts: Vec<&str> = found.iter().map(|(_, text, _)| text.as_str()).collect();
        let verdicts = signed::check_all(&texts, &state.network().genesis.hash);
        let items = (found.iter().zip(verdicts))
            .map(|((id, text, status), verdict)| ItemAnswer {
                text: Some(text.clone()),
                author: AuthorView::of(&verdict),
                ..ItemAnswer::at(*id, status.clone())
            })
            .collect();
        AuthorItems {
            key: key.to_string(),
            fingerprint: key.fingerprint(),
            items,
            more,
        }
    })
    .await?;
    Ok(Json(answer))
}

/// `GET /block/{hash}/authors`: for each item of the block, in order, its
/// author as checked now (`null` for a plain text); `[]` for a block whose
/// data is a note. The block's signatures are verified in one batch.
pub async fn block_authors(
    State(app): State<AppState>,
    Path(hash): Path<String>,
) -> Result<Json<Vec<Option<AuthorView>>>, ApiError> {
    let hash: BlockHash = hash
        .parse()
        .map_err(|e: HashParseError| ApiError::BadRequest(e.to_string()))?;
    let _turn = BATCHES.acquire().await.expect("never closed");
    let state = app.state.clone();
    tokio::task::spawn_blocking(move || {
        let block = (state.block_by_hash(&hash)).or_else(|| state.side_block(&hash))?;
        let items = items_in(&block.data).unwrap_or_default();
        let verdicts = signed::check_all(&items, &state.network().genesis.hash);
        Some(verdicts.iter().map(AuthorView::of).collect())
    })
    .await?
    .map(Json)
    .ok_or_else(|| {
        ApiError::NotFound(format!(
            "no block of this chain, nor of a side branch this node remembers, has hash {hash}"
        ))
    })
}
