// The devnet's control page: draws what GET /api/devnet says each second,
// and sends each button's action to the devnet (never to a node: the
// devnet holds the nodes' operator keys).
"use strict";

const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
};
const short = (hash) => (hash ? hash.slice(0, 10) : "");
// One colour per tip, the same on every card: nodes on one tip look alike.
// The tip most nodes share gets the first colour, the others the next ones
// (by hash, so a split keeps its colours while it lasts).
const PALETTE = ["#2f6fed", "#e8590c", "#ae3ec9", "#2b8a3e", "#c92a2a", "#0c8599", "#f08c00", "#d6336c"];
let tipColours = new Map();
function colourTips(nodes) {
  const count = new Map();
  for (const n of nodes) if (n.status) count.set(n.status.tip, (count.get(n.status.tip) || 0) + 1);
  const order = [...count].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  tipColours = new Map(order.map(([tip], i) => [tip, PALETTE[i % PALETTE.length]]));
}
const tipColour = (hash) => tipColours.get(hash) || "#ccc";
const rate = (h) => (h >= 1e6 ? `${(h / 1e6).toFixed(1)} MH/s` : h >= 1e3 ? `${(h / 1e3).toFixed(0)} kH/s` : `${h} H/s`);

// What the page says while an action runs (a fork takes seconds).
const WORKING = {
  fork: "making a fork: cutting the node off, a block on each side, rejoining, then the block that decides…",
  mine: "ordering blocks…",
  start: "starting the node…",
  stop: "stopping the node…",
  nodes: "adding a node…",
};

let latest = null;
const cards = new Map();

// Sends an action; shows its sentence (or its error) at the top.
async function act(path, body = {}, button = null) {
  if (button) button.disabled = true;
  showSaid(WORKING[path.split("/").slice(-1)[0]] || "asking the devnet…", false);
  try {
    const response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    const answer = await response.json().catch(() => ({ error: `${response.status}` }));
    showSaid(answer.said || answer.error, !response.ok);
  } catch (error) {
    showSaid(`the devnet did not answer (${error.message}): is it still running?`, true);
  } finally {
    if (button) button.disabled = false;
    refresh();
  }
}

function showSaid(text, error) {
  const said = $("said");
  said.hidden = false;
  said.textContent = text;
  said.classList.toggle("error", error);
}

function card(node) {
  let c = cards.get(node.port);
  if (c) return c;
  const count = el("input", { class: "mine-count", type: "number", min: "1", max: "100", value: "1", "aria-label": "blocks to mine" });
  c = {
    root: el("article", { class: "node", "data-port": node.port }),
    state: el("span", { class: "state" }),
    isolated: el("span", { class: "isolated", hidden: "" }, "cut off"),
    height: el("div", { class: "height" }),
    tip: el("code", { class: "tip" }),
    facts: el("dl"),
    stopStart: el("button", { class: "stop-start" }),
    cut: el("button", { class: "cut quiet" }),
    mine: el("button", { class: "mine" }, "Mine"),
    count,
  };
  c.stopStart.addEventListener("click", () =>
    act(`/api/nodes/${node.port}/${c.root.dataset.state === "running" ? "stop" : "start"}`, {}, c.stopStart));
  c.cut.addEventListener("click", () =>
    act(`/api/nodes/${node.port}/${c.root.dataset.isolated === "true" ? "rejoin" : "isolate"}`, {}, c.cut));
  c.mine.addEventListener("click", () =>
    act(`/api/nodes/${node.port}/mine`, { blocks: Number(count.value) || 1 }, c.mine));
  c.root.append(
    el("h2", {}, el("a", { href: `${node.url}/`, target: "_blank", rel: "noopener" }, node.name), c.state, c.isolated),
    c.height, c.tip, c.facts,
    el("div", { class: "buttons" }, c.stopStart, c.cut, c.mine, el("label", {}, count, " blocks")),
  );
  $("nodes").append(c.root);
  cards.set(node.port, c);
  return c;
}

function drawNode(node) {
  const c = card(node);
  const s = node.status;
  const state = node.run.state;
  c.root.dataset.state = state;
  c.root.dataset.isolated = s && s.isolated ? "true" : "false";
  c.root.dataset.height = s ? s.height : "";
  c.root.dataset.tip = s ? s.tip : "";
  c.root.style.setProperty("--tip", s ? tipColour(s.tip) : "#ccc");
  c.state.textContent = state === "exited" ? `exited: ${node.run.status}` : state;
  c.isolated.hidden = !(s && s.isolated);
  c.height.textContent = s ? `block ${s.height}` : "—";
  c.tip.textContent = s ? `tip ${short(s.tip)}…` : state === "running" ? "not answering" : "";
  c.tip.title = s ? s.tip : "";
  const facts = s ? [
    ["peers", `${s.peers}`],
    ["mining", s.mining ? rate(s.hashrate) : s.blocks_owed ? `${s.blocks_owed} ordered` : "no"],
    ["items waiting", `${s.pending_items}`],
    ["told of", node.told_of.map((p) => `jbc${p}`).join(", ") || "none"],
  ] : [["told of", node.told_of.map((p) => `jbc${p}`).join(", ") || "none"]];
  c.facts.replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  c.stopStart.textContent = state === "running" ? "Stop" : "Start";
  c.stopStart.disabled = state === "stopping";
  c.cut.textContent = s && s.isolated ? "Rejoin" : "Cut off";
  c.cut.disabled = !s;
  c.mine.disabled = !s;
}

// The node selects keep their choice across redraws.
function fillSelect(select, nodes, keep = true) {
  const chosen = select.value;
  const wanted = nodes.map((n) => `${n.port}`).join(",");
  if (select.dataset.ports !== wanted) {
    select.replaceChildren(...nodes.map((n) => el("option", { value: n.port }, n.name)));
    select.dataset.ports = wanted;
    if (keep && nodes.some((n) => `${n.port}` === chosen)) select.value = chosen;
  }
}

function drawAgreement(nodes) {
  const answering = nodes.filter((n) => n.status);
  const tips = new Map();
  for (const n of answering) {
    const key = n.status.tip;
    if (!tips.has(key)) tips.set(key, { height: n.status.height, names: [] });
    tips.get(key).names.push(n.name);
  }
  const agreement = $("agreement");
  agreement.classList.toggle("one", tips.size === 1);
  agreement.classList.toggle("split", tips.size > 1);
  agreement.dataset.tips = tips.size;
  if (tips.size === 0) agreement.textContent = "no node answering";
  else if (tips.size === 1) {
    const [[hash, tip]] = tips;
    agreement.textContent = `all ${answering.length} running nodes on one tip: block ${tip.height} (${short(hash)}…)`;
  } else {
    agreement.textContent = `${tips.size} tips: ` + [...tips].map(([hash, t]) =>
      `${t.names.join(", ")} on block ${t.height} (${short(hash)}…)`).join("; ");
  }
}

// Whose view: the choice is kept in the address (#/view/PORT), so a
// reload or a shared link shows the same.
function drawViews(nodes) {
  const select = $("view-node");
  fillSelect(select, nodes);
  const asked = /^#\/view\/(\d+)$/.exec(location.hash);
  if (asked && select.dataset.asked !== asked[1] && nodes.some((n) => `${n.port}` === asked[1])) {
    select.dataset.asked = asked[1];
    select.value = asked[1];
  }
  const node = nodes.find((n) => `${n.port}` === select.value) || nodes[0];
  if (!node) return;
  const tree = $("tree-frame");
  // Only when the choice changes: a new src reloads the frame.
  if (tree.dataset.port !== `${node.port}`) {
    tree.dataset.port = node.port;
    tree.src = `${node.url}/#/tree`;
    $("network-frame").src = `${node.url}/#/network`;
    $("view-link").href = `${node.url}/`;
  }
}

function drawHappened(happened) {
  $("happened").replaceChildren(...happened.slice().reverse().map((h) =>
    el("li", {}, el("span", { class: "at" }, `${h.at.toFixed(0)} s`), h.text)));
}

async function refresh() {
  try {
    const response = await fetch("/api/devnet");
    latest = await response.json();
  } catch (error) {
    $("agreement").textContent = "the devnet is not answering (stopped?)";
    return;
  }
  const nodes = latest.nodes;
  colourTips(nodes);
  nodes.forEach(drawNode);
  drawAgreement(nodes);
  $("layout").textContent = `${nodes.length} nodes, told of each other as a ${latest.layout}`;
  fillSelect($("fork-node"), nodes);
  fillSelect($("data-node"), nodes);
  drawViews(nodes);
  const authors = $("data-author");
  if (authors.options.length === 1) {
    for (const a of latest.authors) authors.append(el("option", { value: a.name }, `${a.name} (${a.fingerprint})`));
  }
  if (document.activeElement !== $("activity-rate") && document.activeElement !== $("activity-on")) {
    $("activity-on").checked = latest.activity > 0;
    if (latest.activity > 0) $("activity-rate").value = latest.activity;
  }
  drawHappened(latest.happened);
}

$("fork-form").addEventListener("submit", (event) => {
  event.preventDefault();
  act(`/api/nodes/${$("fork-node").value}/fork`, {}, event.submitter);
});
$("data-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const body = { text: $("data-text").value };
  if ($("data-author").value) body.author = $("data-author").value;
  act(`/api/nodes/${$("data-node").value}/data`, body, event.submitter);
});
$("activity-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const rate = $("activity-on").checked ? Number($("activity-rate").value) || 1 : 0;
  act("/api/activity", { rate }, event.submitter);
});
$("activity-on").addEventListener("change", () => $("activity-form").requestSubmit());
$("add-node").addEventListener("click", (event) => act("/api/nodes", {}, event.target));
$("view-node").addEventListener("change", () => {
  history.replaceState(null, "", `#/view/${$("view-node").value}`);
  $("view-node").dataset.asked = $("view-node").value;
  if (latest) drawViews(latest.nodes);
});

// Each second, one request at a time.
let busy = false;
setInterval(async () => {
  if (busy) return;
  busy = true;
  try { await refresh(); } finally { busy = false; }
}, 1000);
refresh();
