//! What the control page's buttons do: each an ordinary request to a node
//! (its operator routes with the key from its `operator.cookie`, as
//! `jbc isolate` sends), answered with one sentence that says what came of
//! it. "Make a fork" is a script of them.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde::de::DeserializeOwned;

use super::supervisor::RunState;
use super::{Devnet, Member};
use crate::operator::{COOKIE_FILE, read_cookie};
use crate::protocol::{ItemAnswer, MineRequest, Status, route};

/// How long a scripted step waits for a block to be mined and to spread.
const STEP_PATIENCE: Duration = Duration::from_secs(120);

/// Why an action did nothing.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("the devnet has no node on port {0}")]
    NoNode(u16),
    #[error("{0} is not running: start it first")]
    NotRunning(String),
    #[error("{0}")]
    Refused(String),
    #[error("{name}: {reason}")]
    Node { name: String, reason: String },
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    Failed(String),
}

impl Devnet {
    /// The node on `port`, running.
    pub fn running_member(&self, port: u16) -> Result<Member, ActionError> {
        let member = self.member(port).ok_or(ActionError::NoNode(port))?;
        match self.run_state(&member) {
            RunState::Running { .. } => Ok(member),
            _ => Err(ActionError::NotRunning(member.name)),
        }
    }

    /// Asks `member` (as its operator when `operator`); its JSON answer.
    async fn ask<T: DeserializeOwned>(
        &self,
        member: &Member,
        method: Method,
        path: &str,
        body: Option<String>,
        operator: bool,
    ) -> Result<T, ActionError> {
        let failed = |reason: String| ActionError::Node {
            name: member.name.clone(),
            reason,
        };
        let mut request = self.http().request(method, format!("{}{path}", member.url));
        if operator {
            let cookie = member.dir.join(COOKIE_FILE);
            let key = read_cookie(&cookie)
                .map_err(|e| failed(format!("cannot read {}: {e}", cookie.display())))?;
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let answer = request
            .send()
            .await
            .map_err(|e| failed(format!("did not answer ({e})")))?;
        let status = answer.status();
        let bytes = answer
            .bytes()
            .await
            .map_err(|e| failed(format!("answer cut short ({e})")))?;
        if !status.is_success() {
            let said = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
            return Err(ActionError::Refused(format!(
                "{} refused ({status}): {said}",
                member.name
            )));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| failed(format!("an answer not understood ({e})")))
    }

    /// `GET /status` of a running node.
    pub async fn status(&self, member: &Member) -> Result<Status, ActionError> {
        self.ask(member, Method::GET, route::STATUS, None, false)
            .await
    }

    /// Cuts a node off (`on`) or lets it rejoin.
    pub async fn isolate(&self, port: u16, on: bool) -> Result<String, ActionError> {
        let member = self.running_member(port)?;
        let method = if on { Method::POST } else { Method::DELETE };
        let _: serde_json::Value = self
            .ask(&member, method, route::ISOLATION, None, true)
            .await?;
        let said = if on {
            format!(
                "{} is cut off: it hears no peer and mines alone (a fork grows if both sides mine)",
                member.name
            )
        } else {
            format!(
                "{} rejoined: the nodes compare chains and keep the one with the most work",
                member.name
            )
        };
        self.note(said.clone());
        Ok(said)
    }

    /// Orders `blocks` blocks mined now on a node.
    pub async fn mine(&self, port: u16, blocks: u64) -> Result<String, ActionError> {
        let member = self.running_member(port)?;
        let body = serde_json::to_string(&MineRequest { blocks }).expect("serialises");
        let _: serde_json::Value = self
            .ask(&member, Method::POST, route::MINE, Some(body), true)
            .await?;
        let said = format!(
            "{} mines {blocks} block{} now",
            member.name,
            if blocks == 1 { "" } else { "s" }
        );
        self.note(said.clone());
        Ok(said)
    }

    /// Posts an item at a node, signed as one of the devnet's authors when
    /// `author` names one.
    pub async fn post_item(
        &self,
        port: u16,
        text: &str,
        author: Option<&str>,
    ) -> Result<String, ActionError> {
        let member = self.running_member(port)?;
        let (item, by) = match author {
            None | Some("") => (text.to_string(), String::new()),
            Some(name) => {
                let author = self
                    .authors()
                    .iter()
                    .find(|a| a.name == name)
                    .ok_or_else(|| {
                        ActionError::Refused(format!("no devnet author is called {name}"))
                    })?;
                let genesis = self.status(&member).await?.genesis;
                let signed = crate::signed::Signed::sign(&author.key, &genesis, text);
                (signed.to_item(), format!(", signed by {name}"))
            }
        };
        let answer: ItemAnswer = self
            .ask(
                &member,
                Method::POST,
                route::DATA,
                Some(crate::client::data_request(&item)),
                false,
            )
            .await?;
        Ok(format!(
            "item {} posted at {}{by}: it waits for a block",
            answer.id, member.name
        ))
    }

    /// Waits until the node's height passes `above`; its status then.
    async fn until_height(&self, member: &Member, above: u64) -> Result<Status, ActionError> {
        let deadline = Instant::now() + STEP_PATIENCE;
        loop {
            if let Ok(status) = self.status(member).await
                && status.height > above
            {
                return Ok(status);
            }
            if Instant::now() > deadline {
                return Err(ActionError::Timeout(format!(
                    "{} mined no block within {} s",
                    member.name,
                    STEP_PATIENCE.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until every running node has one tip; that tip's height.
    async fn until_one_tip(&self) -> Result<u64, ActionError> {
        let deadline = Instant::now() + STEP_PATIENCE;
        loop {
            let mut tips = Vec::new();
            for member in self.running() {
                if let Ok(status) = self.status(&member).await {
                    tips.push((status.tip, status.height));
                }
            }
            tips.dedup();
            if let [(_, height)] = tips[..] {
                return Ok(height);
            }
            if Instant::now() > deadline {
                return Err(ActionError::Timeout(format!(
                    "the nodes did not agree on one tip within {} s",
                    STEP_PATIENCE.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Makes a fork and lets it heal: cuts `port` off, has it mine a block
    /// alone and another node mine one, rejoins it (a tie: each keeps its
    /// own), and has the other node mine the block that decides. Its
    /// block is then orphaned on the node cut off.
    pub async fn fork(&self, port: u16) -> Result<String, ActionError> {
        let _one_at_a_time = self.scripted.lock().await;
        let side = self.running_member(port)?;
        let main = self
            .running()
            .into_iter()
            .find(|m| m.port != port)
            .ok_or_else(|| ActionError::Failed("a fork takes two running nodes".into()))?;
        self.note(format!(
            "making a fork: {} against {}",
            side.name, main.name
        ));
        let result = self.fork_steps(&side, &main).await;
        if result.is_err() {
            // Never leave a node cut off by a script that failed.
            let _ = self.isolate(side.port, false).await;
        }
        let said = result?;
        self.note(said.clone());
        Ok(said)
    }

    async fn fork_steps(&self, side: &Member, main: &Member) -> Result<String, ActionError> {
        self.isolate(side.port, true).await?;
        let before = self.status(side).await?.height;
        self.mine(side.port, 1).await?;
        let alone = self.until_height(side, before).await?;
        let before = self.status(main).await?.height;
        self.mine(main.port, 1).await?;
        let other = self.until_height(main, before).await?;
        self.isolate(side.port, false).await?;
        self.mine(main.port, 1).await?;
        let height = self.until_one_tip().await?;
        let kept = self.hash_at(main, alone.height).await?;
        let loser = if kept == alone.tip.to_string() {
            main
        } else {
            side
        };
        Ok(format!(
            "fork healed at height {height}: {} mined block {} ({}) alone while {} mined block {} ({}); \
             after the rejoin the chain with the most work won, and {}'s block is orphaned",
            side.name,
            alone.height,
            short(&alone.tip.to_string()),
            main.name,
            other.height,
            short(&other.tip.to_string()),
            loser.name
        ))
    }

    /// The hash of block `index` on a node's chain.
    async fn hash_at(&self, member: &Member, index: u64) -> Result<String, ActionError> {
        let block: serde_json::Value = self
            .ask(
                member,
                Method::GET,
                &format!("{}/{index}", route::BLOCKS),
                None,
                false,
            )
            .await?;
        Ok(block["hash"].as_str().unwrap_or_default().to_string())
    }
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}
