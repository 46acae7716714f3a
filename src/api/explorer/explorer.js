// The jbc explorer: reads the node's own JSON endpoints and listens to
// /events, so it shows the chain as it grows, forks and agrees. No library,
// no CDN: it runs from the node with no internet.
"use strict";

const LATEST = 20;        // rows in the latest blocks table
const CHART_BLOCKS = 300; // blocks the charts cover
const $ = (id) => document.getElementById(id);

// ---- SHA-256, for checking block hashes in the page (crypto.subtle only
// exists on secure origins, and a node on a LAN address is not one).
const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2]);

function sha256Hex(text) {
  const bytes = new TextEncoder().encode(text);
  const length = Math.ceil((bytes.length + 9) / 64) * 64;
  const padded = new Uint8Array(length);
  padded.set(bytes);
  padded[bytes.length] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(length - 8, Math.floor(bytes.length / 0x20000000));
  view.setUint32(length - 4, (bytes.length * 8) >>> 0);
  const h = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  const w = new Uint32Array(64);
  const rotr = (x, n) => (x >>> n) | (x << (32 - n));
  for (let offset = 0; offset < length; offset += 64) {
    for (let i = 0; i < 16; i++) w[i] = view.getUint32(offset + 4 * i);
    for (let i = 16; i < 64; i++) {
      const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3);
      const s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    let [a, b, c, d, e, f, g, hh] = h;
    for (let i = 0; i < 64; i++) {
      const t1 = hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
      const t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      hh = g; g = f; f = e; e = (d + t1) >>> 0; d = c; c = b; b = a; a = (t1 + t2) >>> 0;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
  }
  return Array.from(h, (x) => x.toString(16).padStart(8, "0")).join("");
}

// Blocks' numbers as the node wrote them: timestamps of the original's later
// version have 20 digits, more than a JavaScript number holds exactly, and
// the hash covers their digits. So the raw text of each number is kept.
function parseBlocks(text) {
  const blocks = JSON.parse(text);
  const list = Array.isArray(blocks) ? blocks : [blocks];
  // A block is a flat object of strings and numbers, so after each `{`
  // its tokens alternate: key, value, key, value.
  const token = /\{|"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g;
  let block = -1, key = null, match;
  while ((match = token.exec(text)) !== null) {
    const t = match[0];
    if (t === "{") {
      block += 1;
      key = null;
    } else if (key === null) {
      key = t;
    } else {
      if (list[block] && ['"index"', '"timestamp"', '"nonce"'].includes(key)) {
        const name = key.slice(1, -1);
        // Numbers come quoted or bare, as the node that mined them wrote them.
        const raw = t[0] === '"' ? JSON.parse(t) : t;
        list[block]["raw_" + name] = raw;
        list[block][name] = Number(raw);
      }
      key = null;
    }
  }
  return list;
}

async function getJson(path) {
  const response = await fetch(path, { cache: "no-store" });
  const body = await response.text();
  if (!response.ok) throw new Error(messageOf(body, response.status));
  const isBlocks = /^\/blocks(\?|\/\d+$)|^\/block\//.test(path);
  return isBlocks ? parseBlocks(body) : JSON.parse(body);
}

function messageOf(body, status) {
  try { return JSON.parse(body).error || `HTTP ${status}`; } catch (_) { return `HTTP ${status}`; }
}

// ---- small helpers for the DOM
function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "class") node.className = value; else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child));
  return node;
}
const link = (href, text, cls) => el("a", cls ? { href, class: cls } : { href }, text);
const short = (hash) => (hash.length > 16 ? `${hash.slice(0, 10)}…${hash.slice(-6)}` : hash);
function fields(dl, rows) {
  dl.replaceChildren();
  for (const [name, value, cls] of rows) {
    dl.append(el("dt", {}, name), el("dd", cls ? { class: cls, "data-field": name } : { "data-field": name }, value));
  }
}
function ago(seconds) {
  if (seconds < 0) return "in the future";
  if (seconds < 90) return `${Math.round(seconds)} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 129600) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} days ago`;
}
function duration(seconds) {
  const h = Math.floor(seconds / 3600), m = Math.floor(seconds / 60) % 60, s = seconds % 60;
  return h ? `${h} h ${m} min` : m ? `${m} min ${s} s` : `${s} s`;
}
function rate(hashes) {
  const units = ["H/s", "kH/s", "MH/s", "GH/s", "TH/s"];
  let i = 0;
  while (hashes >= 1000 && i < units.length - 1) { hashes /= 1000; i++; }
  return `${hashes.toFixed(i ? 2 : 0)} ${units[i]}`;
}
// Epoch seconds of a block, or null for the original's yyyymmddHHMMSS… style.
const seconds = (block) => (block.timestamp < 1e12 ? block.timestamp : null);
// The block's data as items when it carries items, or as its note.
function itemsOf(data) {
  try {
    const value = JSON.parse(data);
    if (Array.isArray(value) && value.every((x) => typeof x === "string")) return value;
  } catch (_) { /* a note */ }
  return null;
}
// The text a signed item carries ({"text","key","sig"}), or the item itself.
function signedText(item) {
  if (!item.startsWith("{") || !item.includes('"sig"')) return null;
  try {
    const value = JSON.parse(item);
    return value && typeof value.text === "string" && "sig" in value ? value.text : null;
  } catch (_) { return null; }
}
const itemText = (item) => signedText(item) ?? item;
// An item's author as the node checked it: fingerprint, ✓ or ✗ (why).
function authorMark(author) {
  if (!author) return null;
  const who = author.key ? link(`#/author/${author.key}`, author.fingerprint, "mono") : "no key";
  return el("span", { class: "author", "data-verifies": String(author.verifies), title: author.reason || "the signature verifies" },
    "signed by ", who, " ", el("span", { class: author.verifies ? "ok" : "bad" },
      author.verifies ? "✓" : "✗ signature does not verify"));
}
function dataSummary(data) {
  const items = itemsOf(data);
  const text = items ? `${items.length} item${items.length === 1 ? "" : "s"}: ${items.map(itemText).join(" · ")}` : data;
  return text.length > 80 ? `${text.slice(0, 77)}…` : text;
}

// ---- what the page knows
const view = { status: null, blocks: [], chartBlocks: [] };

function notice(text, cls) {
  const box = $("notice");
  box.textContent = text;
  box.className = cls || "";
  box.hidden = !text;
}

// What the node's sync is, in words that are true: "in step" only with
// peers that answered and are not ahead.
function syncWords(s, peers) {
  if (s.isolated) return "isolated by its operator: talks to no peer (jbc rejoin ends it)";
  if (s.catching_up) {
    const c = s.catching_up;
    return `catching up from ${c.peer}: ${c.height} of ${c.target} (${c.blocks_per_second} blocks/s)`;
  }
  // The book lists the node's own address too ("itself"): not a peer.
  peers = peers.filter((p) => p.state !== "itself");
  if (!peers.length) return "no peers: on its own";
  const up = peers.filter((p) => p.state === "up");
  if (!up.length) return `0 of ${peers.length} peers reachable`;
  const ahead = up.filter((p) => p.height != null && p.height > s.height);
  if (ahead.length) return `behind: ${ahead.length} of ${up.length} reachable peers are ahead`;
  const others = up.length < peers.length ? "; the others not reachable now" : "";
  return `in step with ${up.length} of ${peers.length} peers${others}`;
}

async function refreshStatus() {
  const [s, peers] = await Promise.all([getJson("/status"), getJson("/peers")]);
  view.status = s;
  const sync = syncWords(s, peers);
  const rows = [
    ["height", s.height],
    ["tip", link(`#/block/${s.tip}`, s.tip, "hash")],
    ["network", s.kind === "adaptive"
      ? `adaptive: a block every ${s.target_block_seconds} s, retarget every ${s.retarget_window} blocks`
      : `fixed: ${s.difficulty} leading zero hex digits`],
    ["difficulty", s.effective_difficulty != null ? s.effective_difficulty.toFixed(2) : s.difficulty],
  ];
  if (s.kind === "adaptive") {
    rows.push(["target", s.target, "mono"], ["chainwork", s.chainwork, "mono"],
      ["next retarget", `at block ${s.next_retarget}`]);
  }
  rows.push(
    [`mean block time (last ${s.retarget_window || 20} blocks)`, s.mean_block_seconds != null ? `${s.mean_block_seconds.toFixed(2)} s` : "not known yet"],
    ["hash rate (this node's miner)", s.mining ? rate(s.hashrate) : "not mining"],
    ["sync", sync],
    ["peers", `${peers.filter((p) => p.state === "up").length} of ${peers.length} reachable`],
    ["pending data", s.pending_items],
    ["node id", s.node_id || "", "mono"],
    ["version", s.version || ""],
    ["uptime", s.uptime_seconds != null ? duration(s.uptime_seconds) : ""]);
  fields($("node-fields"), rows);
  return s;
}

async function refreshBlocks() {
  const s = view.status || (await refreshStatus());
  const from = Math.max(0, s.height - CHART_BLOCKS + 1);
  const blocks = await getJson(`/blocks?from=${from}&limit=${CHART_BLOCKS}`);
  const before = new Set(view.blocks.map((b) => b.hash));
  view.chartBlocks = blocks;
  view.blocks = blocks.slice(-LATEST).reverse();
  const body = $("blocks").tBodies[0];
  body.replaceChildren(...view.blocks.map((block, i) => {
    const previous = view.blocks[i + 1];
    const interval = previous && previous.index > 0 && seconds(block) != null && seconds(previous) != null
      ? `${seconds(block) - seconds(previous)} s` : "";
    const age = seconds(block) != null ? ago(Date.now() / 1000 - seconds(block)) : "";
    const row = el("tr", { "data-index": block.index },
      el("td", { class: "index" }, link(`#/block/${block.index}`, block.index)),
      el("td", { class: "hash" }, link(`#/block/${block.hash}`, short(block.hash))),
      el("td", {}, age), el("td", {}, interval), el("td", {}, dataSummary(block.data)));
    if (before.size && !before.has(block.hash)) row.classList.add("new-block");
    return row;
  }));
  drawCharts();
}

function drawCharts() {
  // The genesis block's time is when the network was made, long before
  // block 1: that gap says nothing of mining, so it is left out.
  const blocks = view.chartBlocks.filter((b) => seconds(b) != null && b.index > 0);
  const intervals = [];
  for (let i = 1; i < blocks.length; i++) intervals.push(Math.max(0, seconds(blocks[i]) - seconds(blocks[i - 1])));
  $("chart-span").textContent = intervals.length ? `(last ${intervals.length} blocks)` : "";
  // Hashes a block takes on average, at the tip's target: 16^difficulty.
  const s = view.status;
  const perBlock = s ? Math.pow(16, s.effective_difficulty != null ? s.effective_difficulty : s.difficulty) : 0;
  const window = 10;
  const hashrates = intervals.map((_, i) => {
    const span = intervals.slice(Math.max(0, i - window + 1), i + 1);
    const total = span.reduce((a, b) => a + b, 0);
    return total > 0 ? (perBlock * span.length) / total : null;
  });
  const target = s && s.target_block_seconds ? s.target_block_seconds : null;
  // The x axis: the blocks each interval ends at.
  const axis = blocks.length > 1 ? [blocks[1].index, blocks[blocks.length - 1].index] : null;
  chart($("interval-chart"), intervals, "seconds between blocks", (v) => `${v} s`, "bars", target, axis);
  chart($("hashrate-chart"), hashrates, `estimated network hash rate (mean of ${window} blocks)`, rate, "line", null, axis);
}

// The top of a chart's scale: the largest value, unless a few are far above
// the rest (a node down for a while, a clock jump): then four times the
// 90th percentile, and those few are drawn clipped and marked.
function scaleTop(finite, reference) {
  const sorted = [...finite].sort((a, b) => a - b);
  const largest = sorted[sorted.length - 1];
  const typical = sorted[Math.floor(0.9 * (sorted.length - 1))];
  const top = typical > 0 && largest > 4 * typical ? 4 * typical : largest;
  return Math.max(top, reference || 0) || 1;
}

function chart(canvas, values, title, format, style, reference, axis) {
  const ctx = canvas.getContext("2d");
  const { width, height } = canvas;
  const pad = { left: 64, right: 8, top: 18, bottom: 26 };
  ctx.clearRect(0, 0, width, height);
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#6b7385";
  ctx.fillText(title, pad.left, 12);
  const finite = values.filter((v) => v != null);
  if (!finite.length) { ctx.fillText("no blocks yet", pad.left, height / 2); return; }
  const max = scaleTop(finite, reference);
  const clipped = finite.filter((v) => v > max).length;
  const x = (i) => pad.left + ((width - pad.left - pad.right) * (i + 0.5)) / values.length;
  const y = (v) => height - pad.bottom - ((height - pad.top - pad.bottom) * Math.min(v, max)) / max;
  // The y axis: zero, the middle and the top of the scale.
  ctx.strokeStyle = "#e3e6ec";
  for (const v of [0, max / 2, max]) {
    ctx.fillText(format(Number(v.toPrecision(3))), 2, y(v) + 4);
    ctx.beginPath(); ctx.moveTo(pad.left, y(v)); ctx.lineTo(width - pad.right, y(v)); ctx.stroke();
  }
  if (axis) {
    ctx.fillText(`block ${axis[0]}`, pad.left, height - 8);
    const last = `block ${axis[1]}`;
    ctx.fillText(last, width - pad.right - ctx.measureText(last).width, height - 8);
  }
  if (clipped) {
    const note = `${clipped} above the scale, cut and marked ▲`;
    ctx.fillStyle = "#c0392b";
    ctx.fillText(note, width - pad.right - ctx.measureText(note).width, 12);
  }
  if (style === "bars") {
    const barWidth = Math.max(1, (width - pad.left - pad.right) / values.length - 1);
    values.forEach((v, i) => {
      ctx.fillStyle = v > max ? "#c0392b" : "#2f6fed";
      ctx.fillRect(x(i) - barWidth / 2, y(v), barWidth, y(0) - y(v));
      if (v > max) ctx.fillText("▲", x(i) - 4, pad.top + 2);
    });
  } else {
    ctx.strokeStyle = "#1f9d55";
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    let started = false;
    values.forEach((v, i) => {
      if (v == null) return;
      if (started) ctx.lineTo(x(i), y(v)); else { ctx.moveTo(x(i), y(v)); started = true; }
    });
    ctx.stroke();
  }
  if (reference) {
    ctx.strokeStyle = "#c77c02";
    ctx.setLineDash([4, 3]);
    ctx.beginPath(); ctx.moveTo(pad.left, y(reference)); ctx.lineTo(width - pad.right, y(reference)); ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = "#c77c02";
    ctx.fillText(`target ${format(reference)}`, width - pad.right - 80, y(reference) - 3);
  }
}

async function refreshPeers() {
  const peers = await getJson("/peers");
  const now = Date.now() / 1000;
  $("peers").tBodies[0].replaceChildren(...peers.map((p) => el("tr", {},
    el("td", { class: "hash" }, p.url),
    el("td", { class: `state-${p.state.split(" ")[0]}` }, p.state + ((p.ban_reason || p.discouraged_reason) ? ` (${p.ban_reason || p.discouraged_reason})` : "")),
    el("td", {}, p.height != null ? p.height : ""),
    el("td", {}, p.last_success ? ago(now - p.last_success) : "never"))));
  if (!peers.length) $("peers").tBodies[0].append(el("tr", {}, el("td", { colspan: 4, class: "muted" }, "no peers")));
}

async function refreshPending() {
  const pending = await getJson("/data");
  $("pending").tBodies[0].replaceChildren(...pending.map((item) => el("tr", { "data-id": item.id },
    el("td", { class: "hash" }, link(`#/data/${item.id}`, short(item.id))),
    el("td", {}, item.size), el("td", {}, `${item.age} s`))));
  if (!pending.length) $("pending").tBodies[0].append(el("tr", {}, el("td", { colspan: 3, class: "muted" }, "none")));
}

// The item submitted through the form, followed until a block carries it.
let submitted = null;
function showSubmitted(item) {
  const result = $("data-result");
  // Every status it was shown in, in order (pending, then confirmed).
  const seen = result.dataset.seen ? result.dataset.seen.split(",") : [];
  if (seen[seen.length - 1] !== item.status) seen.push(item.status);
  result.dataset.seen = seen.join(",");
  result.dataset.status = item.status;
  result.replaceChildren(link(`#/data/${submitted}`, short(submitted)), ` ${item.status}`);
  if (item.status === "confirmed") {
    result.append(" in block ", link(`#/block/${item.block}`, item.block),
      ` (${item.confirmations} confirmation${item.confirmations === 1 ? "" : "s"})`);
  }
}

async function followSubmitted() {
  if (submitted) showSubmitted(await getJson(`/data/${submitted}`));
}

$("data-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = $("data-input").value;
  if (!text) return;
  const response = await fetch("/data", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ data: text }),
  });
  const body = await response.text();
  if (!response.ok) { $("data-result").textContent = messageOf(body, response.status); return; }
  const answer = JSON.parse(body);
  submitted = answer.id;
  $("data-result").dataset.seen = "";
  showSubmitted(answer);
  $("data-input").value = "";
  await Promise.all([followSubmitted(), refreshPending()]);
});

// ---- pages: #/ (home), #/block/INDEX or HASH, #/data/ID, #/author/KEY
async function showBlock(key) {
  const path = /^\d+$/.test(key) ? `/blocks/${key}` : `/block/${key}`;
  const [block] = await getJson(path);
  const s = view.status || (await refreshStatus());
  const here = await getJson(`/blocks/${block.index}/seen`).catch(() => null);
  const known = here ? here.blocks.find((b) => b.hash === block.hash) : null;
  const best = known ? known.best : true;
  const header = `${block.raw_index}${block.prev_hash}${block.data}${block.raw_timestamp}${block.raw_nonce}`;
  const computed = sha256Hex(header);
  const checks = computed === block.hash;
  // The proof endpoint measures the best chain's block at this height.
  const proof = best ? await getJson(`/blocks/${block.index}/proof`).catch(() => null) : null;
  const meets = proof ? BigInt(`0x${block.hash}`) <= BigInt(`0x${proof.target}`) : null;
  $("block-title").textContent = `Block ${block.index}`;
  const rows = [
    ["index", block.raw_index],
    ["hash", block.hash, "mono"],
    ["hash checks", checks ? "yes: SHA-256 of the fields gives this hash" : `no: the fields hash to ${computed}`, checks ? "ok" : "bad"],
    ["previous hash", block.index > 0 ? link(`#/block/${block.prev_hash}`, block.prev_hash, "hash") : "(none: the genesis block)"],
    ["timestamp", seconds(block) != null ? `${block.raw_timestamp} (${new Date(seconds(block) * 1000).toISOString()})` : block.raw_timestamp],
    ["nonce", block.raw_nonce],
  ];
  if (proof) {
    rows.push(["target", proof.target, "mono"],
      ["proof of work", block.index === 0 ? "the genesis block is exempt" : meets ? "meets the target" : "above the target",
        block.index === 0 || meets ? "ok" : "bad"],
      ["chainwork", proof.chainwork, "mono"]);
  }
  rows.push(["branch", best ? "the best chain" : `a side branch: ${offWords(known.off)}`, best ? "ok" : "bad"]);
  if (known && known.seen) rows.push(["first seen here", seenWords(known.seen)]);
  rows.push(["confirmations", best ? s.height - block.index + 1 : "none: not on the best chain"]);
  fields($("block-fields"), rows);
  $("block-prev").hidden = block.index === 0;
  $("block-prev").href = `#/block/${block.index - 1}`;
  $("block-next").hidden = block.index >= s.height;
  $("block-next").href = `#/block/${block.index + 1}`;
  const items = itemsOf(block.data);
  const authors = items && items.some(signedText)
    ? await getJson(`/block/${block.hash}/authors`).catch(() => []) : [];
  $("block-data").replaceChildren(items
    ? el("ol", { class: "items" }, ...items.map((item, i) => el("li", {}, itemText(item), " ",
      link(`#/data/${sha256Hex(item)}`, "(id)", "muted"), " ", authorMark(authors[i]) ?? "")))
    : el("p", { id: "block-note" }, block.data));
}

function offWords(off) {
  return off === "left_the_chain" ? "orphaned (it left this node's chain for a branch with more work)"
    : "lost (it arrived on a branch with less work)";
}

// "12:03:04.123 from http://…": when and whence this node first had a block.
// `miner`: who "mined" means, as the reader sees it ("this node" on this
// node's own pages, "it" for another node's sighting in the Network view).
function seenWords(seen, miner = "this node") {
  const whence = seen.via === "mined" ? `mined by ${miner}`
    : seen.via === "peer" ? `from ${seen.peer}`
    : seen.via === "unnamed" ? "from a node that gave no address"
    : "read from this node's files";
  if (seen.first_seen_ms == null) return `${whence} (before this start)`;
  return `${clockTime(seen.first_seen_ms)}, ${whence}`;
}
const clockTime = (ms) => {
  const d = new Date(ms);
  return `${d.toLocaleTimeString([], { hour12: false })}.${String(d.getMilliseconds()).padStart(3, "0")}`;
};

// ---- the block tree: #/tree (the latest heights) or #/tree/H (from H)
const TREE_HEIGHTS = 30;
const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  for (const child of children) node.append(child instanceof Node ? child : String(child));
  return node;
}
// `follow`: the latest view keeps the tip in sight (scrolled to the right
// end) until the reader scrolls away from it.
const treeView = { from: null, shown: new Map(), follow: true };
$("tree-box").addEventListener("scroll", () => {
  const box = $("tree-box");
  treeView.follow = box.scrollLeft + box.clientWidth >= box.scrollWidth - 40;
});

async function showTree(from) {
  if (from == null && treeView.from != null) treeView.follow = true;
  treeView.from = from;
  const query = from == null ? `limit=${TREE_HEIGHTS}` : `from=${from}&limit=${TREE_HEIGHTS}`;
  const tree = await getJson(`/tree?${query}`);
  drawTree(tree);
}

// Lanes: the best chain on lane 0; a side block on its parent's lane when
// it continues that branch, else on a new lane below.
function treeLanes(blocks) {
  const lane = new Map(), end = new Map();
  let lanes = 1;
  for (const b of blocks) {
    if (b.best) { lane.set(b.hash, 0); continue; }
    const parentLane = lane.get(b.parent);
    if (parentLane > 0 && end.get(parentLane) === b.parent) {
      lane.set(b.hash, parentLane);
    } else {
      lane.set(b.hash, lanes++);
    }
    end.set(lane.get(b.hash), b.hash);
  }
  return { lane, lanes };
}

function drawTree(tree) {
  const graph = $("tree-graph");
  const { lane, lanes } = treeLanes(tree.blocks);
  const [W, H, gapX, gapY, left, top] = [76, 36, 100, 58, 16, 20];
  const x = (index) => left + (index - tree.from) * gapX;
  const y = (l) => top + l * gapY;
  const last = Math.max(tree.from, ...tree.blocks.map((b) => b.index));
  graph.setAttribute("width", x(last) + W + 20);
  graph.setAttribute("height", y(lanes - 1) + H + 24);
  const where = new Map(tree.blocks.map((b) => [b.hash, [x(b.index), y(lane.get(b.hash))]]));
  // Edges first, so blocks sit on top; each keyed by its child's hash so
  // that a reorg moves it rather than redrawing it.
  let edges = graph.querySelector("g.edges");
  if (!edges) { edges = svg("g", { class: "edges" }); graph.prepend(edges); }
  let nodes = graph.querySelector("g.nodes");
  if (!nodes) { nodes = svg("g", { class: "nodes" }); graph.append(nodes); }
  const seenEdges = new Set(), seenBlocks = new Set();
  for (const b of tree.blocks) {
    const [cx, cy] = where.get(b.hash);
    // An edge from the parent; a stub when the parent is off the view (or
    // not known here); none for the genesis block.
    if (b.index > 0) {
      const [px, py] = where.get(b.parent) || [cx - (gapX - W), cy];
      const [fromX, fromY, toY] = [where.has(b.parent) ? px + W : px, py + H / 2, cy + H / 2];
      const d = `path("M ${fromX} ${fromY} C ${fromX + 14} ${fromY}, ${cx - 14} ${toY}, ${cx} ${toY}")`;
      let edge = edges.querySelector(`path[data-child="${b.hash}"]`);
      if (!edge) { edge = svg("path", { "data-child": b.hash }); edges.append(edge); }
      edge.setAttribute("class", `edge${b.best ? "" : " side"}`);
      edge.style.d = d;
      seenEdges.add(b.hash);
    }
    let g = treeView.shown.get(b.hash);
    if (!g || !g.isConnected) {
      g = svg("g", { "data-hash": b.hash, "data-index": b.index },
        svg("title"), svg("rect", { width: W, height: H, rx: 5 }),
        svg("text", { x: 7, y: 15 }), svg("text", { x: 7, y: 29, class: "muted-text" }));
      g.addEventListener("click", () => { location.hash = `#/block/${g.dataset.hash}`; });
      // New blocks appear where they belong, without sliding in.
      g.style.transition = "none";
      g.style.transform = `translate(${cx}px, ${cy}px)`;
      nodes.append(g);
      g.getBoundingClientRect();
      g.style.transition = "";
      treeView.shown.set(b.hash, g);
    }
    g.style.transform = `translate(${cx}px, ${cy}px)`;
    const tip = b.best && b.hash === tree.tip;
    g.setAttribute("class", `block ${b.best ? "best" : `side ${b.off}`}${tip ? " tip" : ""}`);
    g.dataset.best = b.best;
    g.dataset.off = b.off || "";
    const [title, , label, sub] = g.children;
    // The index, and the hash's first digits after its zeros (what tells
    // two blocks at one height apart at a glance).
    label.textContent = `#${b.index} ${b.hash.replace(/^0+/, "").slice(0, 4)}`;
    sub.textContent = b.best ? (tip ? "tip" : "") : (b.off === "left_the_chain" ? "orphaned" : "lost");
    title.textContent = `block ${b.index}\n${b.hash}\n${b.best ? "on the best chain" : offWords(b.off)}${b.seen ? `\nfirst seen: ${seenWords(b.seen)}` : ""}${b.work ? `\nwork ${b.work}` : ""}`;
    seenBlocks.add(b.hash);
  }
  for (const edge of [...edges.children]) if (!seenEdges.has(edge.dataset.child)) edge.remove();
  for (const [hash, g] of treeView.shown) {
    if (!seenBlocks.has(hash)) { g.remove(); treeView.shown.delete(hash); }
  }
  const side = tree.blocks.filter((b) => !b.best);
  $("tree-span").textContent = `(heights ${tree.from} to ${Math.min(tree.to, Math.max(tree.height, last))}; the tip is block ${tree.height})`;
  $("tree-summary").textContent = `${side.length} side block${side.length === 1 ? "" : "s"} at these heights `
    + `(${side.filter((b) => b.off === "left_the_chain").length} orphaned, ${side.filter((b) => b.off === "lost").length} lost); `
    + `this node remembers ${tree.side_blocks_kept} side block${tree.side_blocks_kept === 1 ? "" : "s"} in all, at most ${tree.side_blocks_capacity}.`;
  $("tree-older").href = `#/tree/${Math.max(0, tree.from - TREE_HEIGHTS)}`;
  $("tree-older").hidden = tree.from === 0;
  // The tip is where forks happen: the latest view opens on it.
  if (treeView.from == null && treeView.follow) $("tree-box").scrollLeft = $("tree-box").scrollWidth;
}

// ---- the network: #/network
// A dot of a tip's colour (set through the style object: the page's policy
// refuses inline style attributes).
function swatch(colour) {
  const dot = el("span", { class: "tip-swatch" });
  dot.style.background = colour;
  return dot;
}
const PALETTE = ["#2f6fed", "#1f9d55", "#d64545", "#c77c02", "#8e44ad", "#16a2b8", "#e67e22", "#7f8c8d"];

async function showNetwork() {
  const map = await getJson("/network");
  drawNetwork(map);
}

function drawNetwork(map) {
  const graph = $("network-graph");
  const n = map.nodes.length;
  const size = Math.max(420, Math.min(900, 160 + n * 40));
  const [cx, cy, r] = [size / 2, size / 2 - 10, size / 2 - 110];
  graph.setAttribute("width", size);
  graph.setAttribute("height", size - 20);
  // Tips coloured by height, the highest first: nodes that agree share one.
  const tips = [...new Map(map.nodes.map((node) => [node.tip, node.height])).entries()]
    .sort((a, b) => b[1] - a[1]).map(([tip]) => tip);
  const colour = (tip) => PALETTE[tips.indexOf(tip) % PALETTE.length];
  const at = new Map(map.nodes.map((node, i) => {
    const angle = -Math.PI / 2 + (2 * Math.PI * i) / Math.max(1, n);
    return [node.url, [cx + r * Math.cos(angle) * (n > 1 ? 1 : 0), cy + r * Math.sin(angle) * (n > 1 ? 1 : 0)]];
  }));
  const seenTimes = map.nodes.map((node) => node.seen_followed && node.seen_followed.first_seen_ms).filter((t) => t != null);
  const first = seenTimes.length ? Math.min(...seenTimes) : null;
  const links = new Map();
  for (const node of map.nodes) {
    for (const peer of node.peers) {
      if (peer.state !== "up" || !at.has(peer.url) || peer.url === node.url) continue;
      const key = [node.url, peer.url].sort().join(" ");
      links.set(key, [node.url, peer.url]);
    }
  }
  const children = [];
  for (const [key, [a, b]] of links) {
    const [x1, y1] = at.get(a), [x2, y2] = at.get(b);
    children.push(svg("line", { class: "link", x1, y1, x2, y2, "data-link": key }));
  }
  for (const node of map.nodes) {
    const [x, y] = at.get(node.url);
    const seen = node.seen_followed;
    const travel = seen && seen.first_seen_ms != null && first != null ? `+${seen.first_seen_ms - first} ms` : "";
    // Labels below a node in the lower half, above it in the upper half.
    const lines = [node.url.replace(/^https?:\/\//, "") + (node.this_node ? " (this node)" : ""),
      `height ${node.height}${node.behind ? `, ${node.behind} behind` : ""}`, travel];
    const lineY = (i) => (y >= cy ? y + 32 + 14 * i : y - 24 - 14 * (lines.length - 1 - i));
    children.push(svg("g", { class: "node", "data-url": node.url, "data-tip": node.tip },
      svg("title", {}, `${node.url}\nheight ${node.height}, tip ${node.tip}${node.aliases.length ? `\nalso at ${node.aliases.join(", ")}` : ""}`),
      svg("circle", { cx: x, cy: y, r: 16, fill: colour(node.tip), class: node.this_node ? "this-node" : "" }),
      ...lines.map((text, i) => svg("text", { x, y: lineY(i), "text-anchor": "middle",
        class: ["", "muted-text", "travel"][i] }, text))));
  }
  graph.replaceChildren(...children);
  const agree = tips.length === 1;
  $("network-span").textContent = `(${n} node${n === 1 ? "" : "s"} reached in ${map.took_ms} ms${map.incomplete ? ", more not reached in time" : ""}; ${agree ? "all on one tip" : `${tips.length} different tips`})`;
  const f = map.followed;
  $("network-seen-head").textContent = `saw block ${f.index}`;
  const firstNode = map.nodes.find((node) => node.seen_followed && node.seen_followed.first_seen_ms === first);
  const last = seenTimes.length ? Math.max(...seenTimes) : null;
  $("network-travel").replaceChildren(first == null
    ? `No node reached says when it saw block ${f.index} yet.`
    : el("span", {}, "Block ", link(`#/block/${f.hash}`, `${f.index} (${short(f.hash)})`), ` was first seen by ${firstNode.url} at ${clockTime(first)} `
      + `(${seenWords(firstNode.seen_followed, "it").split(", ").slice(1).join(", ")}), and reached ${seenTimes.length} of ${n} nodes within ${last - first} ms.`));
  $("network-nodes").tBodies[0].replaceChildren(...map.nodes.map((node) => {
    const seen = node.seen_followed;
    const up = node.peers.filter((p) => p.state === "up").length;
    return el("tr", { "data-url": node.url, "data-height": node.height, "data-tip": node.tip,
      "data-seen-ms": seen && seen.first_seen_ms != null ? seen.first_seen_ms : "" },
    el("td", { class: "hash" }, node.url + (node.this_node ? " (this node)" : "")),
    el("td", {}, node.height),
    el("td", { class: "hash" }, swatch(colour(node.tip)), short(node.tip)),
    el("td", {}, node.behind ? `${node.behind} blocks` : "—"),
    el("td", {}, `${up} of ${node.peers.length}`),
    el("td", { class: "travel-cell" }, seen ? `${seen.first_seen_ms != null && first != null ? `+${seen.first_seen_ms - first} ms · ` : ""}${seenWords(seen)}` : "not yet"));
  }));
  $("network-unreached").textContent = map.unreached.length
    ? `Not reached: ${map.unreached.map((u) => u.url).join(", ")}` : "";
}

async function showItem(id) {
  const item = await getJson(`/data/${id}`);
  const rows = [["id", item.id, "mono"], ["status", item.status]];
  if (item.status === "confirmed") {
    rows.push(["block", link(`#/block/${item.block}`, item.block)], ["confirmations", item.confirmations]);
  }
  if (item.text != null) rows.push(["text", itemText(item.text)]);
  if (item.author) {
    rows.push(["author", authorMark(item.author)]);
    if (!item.author.verifies) rows.push(["why", item.author.reason, "bad"]);
  }
  fields($("item-fields"), rows);
}

// ---- an author's page: #/author/KEY (GET /authors/KEY)
async function showAuthor(key) {
  const author = await getJson(`/authors/${key}`);
  $("author-title").textContent = `Author ${author.fingerprint}`;
  fields($("author-fields"), [["public key", author.key, "mono"], ["items shown", `${author.items.length}${author.more ? " (the newest; there are more)" : ""}`]]);
  $("author-items").tBodies[0].replaceChildren(...author.items.map((item) => el("tr", { "data-id": item.id },
    el("td", { class: "hash" }, link(`#/data/${item.id}`, short(item.id))),
    el("td", {}, item.status === "confirmed" ? link(`#/block/${item.block}`, `block ${item.block}`) : item.status),
    el("td", {}, itemText(item.text || "")),
    el("td", {}, authorMark(item.author) ?? ""))));
}

// ---- the messages on this node's links (GET /peers/links), newest
// first, bounded; asked for again every second while shown.
const MESSAGES_SHOWN = 500;
const messagesView = { block: null, last: null, rows: [], generation: 0 };

function kib(bytes) {
  return bytes < 10240 ? `${bytes} B` : `${(bytes / 1024).toFixed(1)} KiB`;
}

async function showMessages(block) {
  if ((block || null) !== messagesView.block) {
    messagesView.block = block || null;
    messagesView.last = null;
    messagesView.rows = [];
    messagesView.generation += 1;
    $("messages-block").value = block || "";
  }
  const query = [];
  if (messagesView.last !== null) query.push(`after=${messagesView.last}`);
  if (messagesView.block) query.push(`block=${messagesView.block}`);
  const asked = messagesView.generation;
  const answer = await getJson(`/peers/links${query.length ? "?" + query.join("&") : ""}`);
  // An answer to a question asked before the filter changed is dropped,
  // as is one that overlaps a later answer already shown.
  if (asked !== messagesView.generation) return;
  if (messagesView.last !== null && answer.messages.length && answer.messages[0].seq <= messagesView.last) return;
  messagesView.last = answer.last;
  messagesView.rows = answer.messages.reverse().concat(messagesView.rows).slice(0, MESSAGES_SHOWN);
  $("messages-span").textContent = messagesView.block
    ? `(about block ${short(messagesView.block)})`
    : `(${answer.links.length} live link${answer.links.length === 1 ? "" : "s"})`;
  $("links").querySelector("tbody").replaceChildren(...answer.links.map((l) => el("tr", {},
    el("td", { class: "mono" }, l.peer),
    el("td", {}, l.opened === "outbound" ? "this node" : "the peer"),
    el("td", {}, duration(l.seconds)),
    el("td", {}, `${l.sent} (${kib(l.sent_bytes)})`),
    el("td", {}, `${l.received} (${kib(l.received_bytes)})`))));
  $("messages").querySelector("tbody").replaceChildren(...messagesView.rows.map((m) => {
    const about = [];
    if (m.index !== undefined) about.push(link(`#/block/${m.index}`, `block ${m.index}`), " ");
    if (m.block) about.push(link(`#/messages/${m.block}`, short(m.block), "mono"));
    if (m.count !== undefined) about.push(` (${m.count})`);
    return el("tr", { class: `msg ${m.direction}`, "data-type": m.type, "data-block": m.block || "" },
      el("td", {}, new Date(m.at_ms).toLocaleTimeString([], { hour12: false }) + `.${String(m.at_ms % 1000).padStart(3, "0")}`),
      el("td", {}, m.direction === "in" ? "←" : "→"),
      el("td", { class: "mono" }, m.peer),
      el("td", {}, m.type),
      el("td", {}, ...about),
      el("td", {}, kib(m.bytes)));
  }));
}

$("messages-filter").addEventListener("submit", (event) => {
  event.preventDefault();
  const block = $("messages-block").value.trim().toLowerCase();
  location.hash = block ? `#/messages/${block}` : "#/messages";
});

async function route() {
  const [, page, key] = location.hash.split("/");
  $("home").hidden = !!page;
  $("block-page").hidden = page !== "block";
  $("item-page").hidden = page !== "data";
  $("author-page").hidden = page !== "author";
  $("tree-page").hidden = page !== "tree";
  $("network-page").hidden = page !== "network";
  $("messages-page").hidden = page !== "messages";
  for (const a of document.querySelectorAll("#views a")) {
    a.classList.toggle("current", (a.dataset.view === "home" && !page) || a.dataset.view === page);
  }
  try {
    if (page === "block") await showBlock(decodeURIComponent(key));
    else if (page === "data") await showItem(decodeURIComponent(key));
    else if (page === "author") await showAuthor(decodeURIComponent(key));
    else if (page === "tree") await showTree(key ? Number(key) : null);
    else if (page === "network") await showNetwork();
    else if (page === "messages") await showMessages(key ? decodeURIComponent(key) : null);
    else await refreshAll();
    if (!$("notice").classList.contains("reorg")) notice("");
  } catch (error) {
    console.error(error);
    notice(`${error.message}`);
  }
}

$("search").addEventListener("submit", async (event) => {
  event.preventDefault();
  const q = $("search-input").value.trim().toLowerCase();
  if (/^\d+$/.test(q)) { location.hash = `#/block/${q}`; return; }
  if (!/^[0-9a-f]{64}$/.test(q)) { notice("search takes a block index, a block hash or a data id (64 hex digits)"); return; }
  // 64 hex digits: a block hash, or else a data id.
  const isBlock = await fetch(`/block/${q}`).then((r) => r.ok).catch(() => false);
  location.hash = isBlock ? `#/block/${q}` : `#/data/${q}`;
});

async function refreshAll() {
  await refreshStatus();
  await Promise.all([refreshBlocks(), refreshPeers(), refreshPending(), followSubmitted()]);
}

// ---- live: /events drives the updates; a slow poll covers what events do
// not tell (hash rate, ages) and a stream that dropped.
let pending = null;
function soon(work) {
  // Many events in a burst (a catch-up) make one refresh.
  if (pending) return;
  pending = setTimeout(async () => { pending = null; try { await work(); } catch (error) { console.error(error); } }, 150);
}

// A reorg stays on screen for a minute, fading over its last ten seconds.
let reorgShown = null;

function listen() {
  const source = new EventSource("/events");
  source.onopen = () => { $("live").textContent = "live"; $("live").className = "live on"; };
  source.onerror = () => { $("live").textContent = "reconnecting"; $("live").className = "live off"; };
  const onHome = () => !location.hash || location.hash === "#/";
  const onTree = () => location.hash.startsWith("#/tree");
  const onNetwork = () => location.hash.startsWith("#/network");
  // What a new tip or a reorg changes on the page shown.
  const refreshShown = () => (onHome() ? refreshAll()
    : onTree() ? showTree(treeView.from)
    : onNetwork() ? showNetwork() : refreshStatus());
  source.addEventListener("tip", () => soon(refreshShown));
  source.addEventListener("reorg", (message) => {
    const e = JSON.parse(message.data);
    clearTimeout(reorgShown);
    $("notice").classList.remove("fading");
    reorgShown = setTimeout(() => {
      $("notice").classList.add("fading");
      reorgShown = setTimeout(() => notice(""), 10000);
    }, 50000);
    notice(`${new Date().toLocaleTimeString()} reorg: ${e.depth} block${e.depth === 1 ? "" : "s"} after block ${e.fork} left the chain; tip ${short(e.old_tip.hash)} (block ${e.old_tip.index}) → ${short(e.new_tip.hash)} (block ${e.new_tip.index}), from ${e.source}`, "reorg");
    soon(refreshShown);
  });
  source.addEventListener("side_block", () => { if (onTree()) soon(refreshShown); });
  source.addEventListener("peer", () => { if (onHome()) soon(refreshAll); });
  source.addEventListener("data_accepted", () => { if (onHome()) soon(refreshAll); });
  source.addEventListener("data_confirmed", () => { if (onHome()) soon(refreshAll); });
  source.addEventListener("lagged", () => soon(refreshAll));
}

window.addEventListener("hashchange", route);
setInterval(() => { if (!location.hash || location.hash === "#/") soon(refreshAll); }, 5000);
// The network changes without this node's events (other nodes' tips, links).
setInterval(() => { if (location.hash.startsWith("#/network")) soon(showNetwork); }, 2500);
// Messages come without events of their own.
setInterval(() => {
  if (location.hash.startsWith("#/messages")) showMessages(messagesView.block).catch(console.error);
}, 1000);
listen();
route();
