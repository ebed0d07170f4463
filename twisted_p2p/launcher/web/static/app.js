// The dashboard: one snapshot from /events, then deltas; redrawn at most once a frame.
"use strict";

// Each peer's colour comes with the snapshot (Okabe-Ito, as in swarm-report.html).
const MISSING = "#e4e4e4";
let OWN = "#8C8C8C";
const LOG_LINES = 60;

let swarm = null;          // the snapshot, with deltas applied
let dirty = new Set();     // peers whose card must be redrawn
let lastLine = 0;          // the sequence number of the newest log line shown
let drawAll = false;

const $ = (id) => document.getElementById(id);
const colourOfSlot = {};
const colourOfPeer = {};

function megabytes(bytes) { return (bytes / 1e6).toFixed(1); }

function status(text, kind) {
  const el = $("status");
  el.textContent = text;
  el.className = "status " + (kind || "");
}

function onSnapshot(data) {
  swarm = data;
  OWN = swarm.seed_colour;
  swarm.peers.forEach((peer) => { colourOfSlot[peer.slot] = peer.colour; colourOfPeer[peer.id] = peer.colour; });
  for (const id in swarm.state) {
    const cells = swarm.state[id].map;
    swarm.state[id].cells = cells.split("");
  }
  lastLine = 0;
  $("log").textContent = "";
  addLines(swarm.lines);
  build();
  drawAll = true;
  schedule();
}

function onDelta(data) {
  if (!swarm) return;
  swarm.time = data.time;
  swarm.finished = data.finished;
  for (const id in data.state) {
    const change = data.state[id], peer = swarm.state[id];
    for (const key in change) {
      if (key === "pieces") {
        const flat = change.pieces;
        for (let i = 0; i < flat.length; i += 2) peer.cells[flat[i]] = flat[i + 1];
      } else if (key === "timeline") {
        const last = peer.timeline.length ? peer.timeline[peer.timeline.length - 1][0] : -1;
        for (const point of change.timeline) if (point[0] >= last) peer.timeline.push(point);
      } else {
        peer[key] = change[key];
      }
    }
    dirty.add(id);
  }
  addLines(data.lines);
  schedule();
}

function addLines(lines) {
  const fresh = lines.filter((line) => line[0] > lastLine);
  if (!fresh.length) return;
  lastLine = fresh[fresh.length - 1][0];
  const log = $("log");
  const text = log.textContent + fresh.map((line) => line[3]).join("\n") + "\n";
  const kept = text.split("\n").slice(-LOG_LINES - 1).join("\n");
  log.textContent = kept;
  log.scrollTop = log.scrollHeight;
}

function build() {
  const f = swarm.file;
  $("file").textContent = f.name;
  $("facts").textContent = `${(f.size / 1e6).toFixed(1)} MB in ${f.pieces} pieces of ${f.piece_size} bytes · ` +
    `k=${f.k}, p=${f.p} s, m=${f.m} s · ${swarm.peers.length} peers`;
  const legend = $("legend");
  legend.innerHTML = "";
  for (const peer of swarm.peers) {
    const item = document.createElement("span");
    item.innerHTML = `<i style="background:${colourOfPeer[peer.id]}"></i>from ${peer.id}`;
    legend.appendChild(item);
  }
  const own = document.createElement("span");
  own.innerHTML = `<i style="background:${OWN}"></i>seed's own <i style="background:${MISSING}"></i>missing`;
  legend.appendChild(own);
  const peers = $("peers");
  peers.innerHTML = "";
  for (const peer of swarm.peers) {
    const card = document.createElement("div");
    card.className = "peer";
    card.id = "peer-" + peer.id;
    card.innerHTML = `<div class="top"><span class="swatch" style="background:${colourOfPeer[peer.id]}"></span>` +
      `<span class="id">${peer.id}</span><span class="host">${escapeHtml(peer.host)}</span>` +
      `<span class="state"></span></div><div class="numbers"></div><canvas></canvas>`;
    peers.appendChild(card);
  }
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function stateOf(peer, info) {
  if (info.state.startsWith("exit 0")) return ["exit 0", "done"];
  if (info.state.startsWith("exit") || info.state.startsWith("killed")) return [info.state, "failed"];
  if (peer.seed) return [info.state === "running" ? "seeding" : info.state, ""];
  if (info.completed !== null) return ["done " + info.completed.toFixed(1) + " s", "done"];
  return [info.state, ""];
}

function drawCard(peer) {
  const info = swarm.state[peer.id], card = $("peer-" + peer.id);
  if (!info || !card) return;
  const [text, kind] = stateOf(peer, info);
  card.className = "peer " + kind;
  card.querySelector(".state").textContent = text;
  card.querySelector(".numbers").textContent =
    `${info.held}/${swarm.file.pieces} pieces · ${megabytes(info.rate)} MB/s · unchoked by ${info.unchoked_by.length}/${info.neighbours}`;
  drawMap(card.querySelector("canvas"), info.cells);
}

function drawMap(canvas, cells) {
  // One cell per piece, in rows; the canvas is scaled by CSS, so keep it small.
  const n = cells.length, columns = Math.max(1, Math.ceil(Math.sqrt(n * 6))), rows = Math.ceil(n / columns);
  if (canvas.width !== columns || canvas.height !== rows) { canvas.width = columns; canvas.height = rows; }
  const context = canvas.getContext("2d");
  const image = context.createImageData(columns, rows);
  image.data.fill(255);  // the cells after the last piece stay white
  for (let i = 0; i < n; i++) {
    const cell = cells[i];
    const hex = cell === "." ? MISSING : cell === "*" ? OWN : (colourOfSlot[cell] || OWN);
    const o = i * 4;
    image.data[o] = parseInt(hex.slice(1, 3), 16);
    image.data[o + 1] = parseInt(hex.slice(3, 5), 16);
    image.data[o + 2] = parseInt(hex.slice(5, 7), 16);
    image.data[o + 3] = 255;
  }
  context.putImageData(image, 0, 0);
}

function drawGraph() {
  const svg = $("graph"), peers = swarm.peers, radius = 95;
  // nodes shrink with their number, so that 32 still sit apart on the circle
  const node = Math.min(15, (Math.PI * radius) / peers.length * 0.85), label = Math.max(7, Math.min(13, node * 0.9));
  const place = {};
  peers.forEach((peer, i) => {
    const angle = (2 * Math.PI * i) / peers.length - Math.PI / 2;
    place[peer.id] = [radius * Math.cos(angle), radius * Math.sin(angle)];
  });
  let parts = [`<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="5" markerHeight="5" orient="auto">` +
    `<path d="M0,0 L10,5 L0,10 z" fill="#333"/></marker></defs>`];
  for (const peer of peers) {
    const info = swarm.state[peer.id];
    const edges = info.preferred.map((to) => [to, false]);
    if (info.optimistic !== null && !info.preferred.includes(info.optimistic)) edges.push([info.optimistic, true]);
    for (const [to, optimistic] of edges) {
      if (!place[to]) continue;
      const [x1, y1] = place[peer.id], [x2, y2] = place[to];
      const length = Math.hypot(x2 - x1, y2 - y1) || 1, shrink = (node + 1) / length;
      // a little to the right of the line between the two, so that A->B and B->A both show
      const dx = (-(y2 - y1) / length) * 3.5, dy = ((x2 - x1) / length) * 3.5;
      parts.push(`<line x1="${x1 + (x2 - x1) * shrink + dx}" y1="${y1 + (y2 - y1) * shrink + dy}" ` +
        `x2="${x2 - (x2 - x1) * shrink + dx}" y2="${y2 - (y2 - y1) * shrink + dy}" stroke="${colourOfPeer[peer.id]}" stroke-width="3" ` +
        `${optimistic ? 'stroke-dasharray="6 4"' : ""} marker-end="url(#arrow)"/>`);
    }
  }
  for (const peer of peers) {
    const [x, y] = place[peer.id];
    parts.push(`<circle cx="${x}" cy="${y}" r="${node}" fill="#fff" stroke="${colourOfPeer[peer.id]}" stroke-width="${node > 10 ? 4 : 2.5}"/>` +
      `<text x="${x}" y="${y + label / 3}" text-anchor="middle" style="font-size:${label}px">${peer.id % 1000}</text>`);
  }
  svg.innerHTML = parts.join("");
}

function drawTimeline() {
  const svg = $("timeline"), width = 400, height = 220, left = 40, bottom = 24;
  const end = Math.max(1, swarm.time);
  const x = (t) => left + ((width - left - 8) * t) / end;
  const y = (held) => height - bottom - ((height - bottom - 8) * held) / swarm.file.pieces;
  let parts = [`<line x1="${left}" y1="${height - bottom}" x2="${width}" y2="${height - bottom}" stroke="#888"/>`,
    `<line x1="${left}" y1="0" x2="${left}" y2="${height - bottom}" stroke="#888"/>`,
    `<text x="${left - 4}" y="12" text-anchor="end">${swarm.file.pieces}</text>`,
    `<text x="${left - 4}" y="${height - bottom}" text-anchor="end">0</text>`,
    `<text x="${width - 4}" y="${height - 6}" text-anchor="end">${end.toFixed(1)} s</text>`];
  for (const peer of swarm.peers) {
    const points = swarm.state[peer.id].timeline.slice();
    const info = swarm.state[peer.id];
    if (!points.length) continue;
    points.push([info.completed !== null ? Math.max(points[points.length - 1][0], info.completed) : swarm.time, info.held]);
    const path = points.map((p, i) => `${i ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
    parts.push(`<path d="${path}" fill="none" stroke="${colourOfPeer[peer.id]}" stroke-width="3"/>`);
  }
  svg.innerHTML = parts.join("");
}

function outcomeText(outcome) {
  if (outcome === "checking") return "peers done · checking files";
  return outcome === "finished" ? "swarm finished in " + swarm.time.toFixed(1) + " s" : "swarm stopped: " + outcome;
}

function outcomeKind(outcome) { return outcome === "finished" || outcome === "checking" ? "done" : "failed"; }

let scheduled = false;
function schedule() {
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(() => {
    scheduled = false;
    for (const peer of swarm.peers) if (drawAll || dirty.has(String(peer.id))) drawCard(peer);
    dirty.clear();
    drawAll = false;
    drawGraph();
    drawTimeline();
    if (swarm.finished) status(outcomeText(swarm.finished), outcomeKind(swarm.finished));
    else status("live · " + swarm.time.toFixed(1) + " s", "live");
  });
}

function connect() {
  const source = new EventSource("events");
  source.addEventListener("snapshot", (event) => onSnapshot(JSON.parse(event.data)));
  source.addEventListener("delta", (event) => onDelta(JSON.parse(event.data)));
  source.onerror = () => {
    if (swarm && swarm.finished) { status(outcomeText(swarm.finished) + " · launcher gone", outcomeKind(swarm.finished)); source.close(); }
    else status("connection lost, retrying…", "lost");
  };
}

connect();
