// meshd status page: reads /api/*, draws tables and two small charts, refreshes every 5 s.
// Read-only (only GET requests). Every value from meshd is put into the page with
// textContent or as an attribute value, never parsed as HTML: decision fields can hold
// anything a model or an event wrote. A failed fetch keeps the last good data on screen
// and marks the page "stale" instead of blanking it.
"use strict";

const REFRESH_MS = 5000;
const MAX_TEXT = 400;                       // characters of any one value shown
let lastOk = 0;
let failures = 0;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) e.setAttribute(k, String(v));
  }
  for (const c of children) {
    if (c === undefined || c === null || c === "") continue;
    e.appendChild(typeof c === "object" && c.nodeType ? c : document.createTextNode(text(c)));
  }
  return e;
}

function text(v) {
  if (v === undefined || v === null || v === "") return "-";
  const s = typeof v === "string" ? v : JSON.stringify(v);
  return s.length > MAX_TEXT ? s.slice(0, MAX_TEXT) + "… (" + s.length + " characters)" : s;
}

function num(v) { return typeof v === "number" ? v.toLocaleString("en-US") : "-"; }
function cls(prefix, v) { return typeof v === "string" && /^[a-z_]{1,32}$/.test(v) ? prefix + v : ""; }
function iso(ms) { return typeof ms === "number" ? new Date(ms).toISOString().replace(".000Z", "Z") : "-"; }

async function getJSON(url) {
  const r = await fetch(url, { method: "GET", cache: "no-store", credentials: "same-origin" });
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  if (!r.ok) throw new Error((body && body.error) || ("HTTP " + r.status));
  return body;
}

function fill(id, rows, empty, cols) {
  const tbody = document.querySelector("#" + id + " tbody");
  const fresh = document.createElement("tbody");
  if (!rows.length) fresh.appendChild(el("tr", { class: "empty" }, el("td", { colspan: cols }, empty)));
  for (const r of rows) fresh.appendChild(r);
  tbody.replaceWith(fresh);
}

function cell(v, c) { return el("td", { class: c || null }, v === "" || v === undefined || v === null ? "-" : v); }
function numCell(v) { return el("td", { class: "num" }, num(v)); }

function drawStatus(s) {
  const d = s.daemon || {};
  document.getElementById("daemon").textContent =
    "version " + text(d.version) + " · up " + num(d.uptime_s) + " s · " + (d.ready ? "ready" : "not ready") +
    " · storage " + text(d.storage) + " · log seq " + num(d.ledger_seq);
  fill("agents", (s.agents || []).map(a => el("tr", { "data-agent": a.name },
    cell(a.name), cell(a.state, cls("s-", a.state)), numCell(a.pid), numCell(a.restarts), numCell(a.events),
    numCell(a.incidents), numCell(a.loops), numCell(a.accepted), numCell(a.tokens), numCell(a.lag))),
    "no agents", 10);
  const backends = (s.backends || []).slice();
  for (const b of s.budgets || []) {       // configured backends the health table does not know
    const name = typeof b.scope === "string" && b.scope.startsWith("backend:") ? b.scope.slice(8) : null;
    if (name && !backends.some(x => x.backend === name))
      backends.push({ backend: name, state: "unknown", detail: "no health data (no HTTP call to it yet, or a scripted backend)" });
  }
  fill("backends", backends.map(b => el("tr", { "data-backend": b.backend },
    cell(b.backend), cell(b.agent), cell(b.state, cls("s-", b.state)), numCell(b.calls), numCell(b.failures),
    numCell(b.latency_ms && b.latency_ms.p50), cell(b.detail))),
    "no backend has been called yet", 7);
  fill("budgets", (s.budgets || []).map(b => el("tr", { "data-scope": b.scope },
    cell(b.scope), numCell(b.used), numCell(b.reserved), numCell(b.limit), numCell(b.remaining),
    numCell(b.burn_per_min), cell(typeof b.window_s === "number" ? b.window_s + " s" : b.window_s))),
    "no budgets", 7);
}

function drawIncidents(s) {
  fill("incidents", (s.incidents || []).map(i => el("tr", {},
    cell(i.agent), cell(i.key), numCell(i.members), numCell(i.points), cell(iso(i.first_ms)), cell(iso(i.last_ms)))),
    "no open incidents", 6);
}

function drawDecisions(s) {
  fill("decisions", (s.decisions || []).map(d => {
    const id = typeof d.id === "string" && /^[0-9a-f]{8,64}$/.test(d.id) ? d.id : null;
    const link = id ? el("a", { href: "#decision=" + id, class: "decision-link" }, id.slice(0, 12)) : "-";
    return el("tr", { class: "decision", "data-id": id },
      cell(d.time), el("td", {}, link), cell(d.agent), cell(d.series),
      el("td", { class: "verdict " + cls("v-", d.verdict) }, d.verdict + (d.fallback ? " (fallback)" : "")),
      cell(d.action), numCell(d.tokens), cell(d.outcome || "none", cls("s-", d.outcome)));
  }), "no decisions yet", 8);
}

const SVGNS = "http://www.w3.org/2000/svg";
function svg(tag, attrs) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

// A chart of the last hour: x is time (up to the newest sample, at most an hour back), y
// from 0 to the largest value; the samples as a line over a shaded area, and as dots.
function chart(id, nowId, samples, key, unit) {
  const box = document.getElementById(id);
  const pts = samples.filter(s => typeof s.t === "number")
    .map(s => [s.t, typeof s[key] === "number" && isFinite(s[key]) ? s[key] : 0]);
  const max = Math.max(1, ...pts.map(p => p[1]));
  const w = 600, h = 120, top = 18, bottom = 104;
  // the span shown: the last hour, or less while meshd has been up for less
  const end = pts.length ? pts[pts.length - 1][0] : Date.now();
  const start = Math.max(end - 3600 * 1000, pts.length > 1 ? pts[0][0] : end - 60 * 1000);
  const x = t => Math.max(0, Math.min(w, ((t - start) / (end - start)) * w));
  const y = v => bottom - (v / max) * (bottom - top);
  while (box.firstChild) box.removeChild(box.firstChild);
  box.appendChild(svg("line", { x1: 0, y1: bottom, x2: w, y2: bottom, class: "axis" }));
  const xy = pts.map(p => x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1));
  if (pts.length > 1)
    box.appendChild(svg("polygon", { class: "area", points: x(pts[0][0]).toFixed(1) + "," + bottom + " " + xy.join(" ") + " " + x(end).toFixed(1) + "," + bottom }));
  box.appendChild(svg("polyline", { points: xy.join(" "), "data-points": pts.length, "data-max": max.toFixed(2) }));
  for (const p of pts.slice(-120)) box.appendChild(svg("circle", { cx: x(p[0]).toFixed(1), cy: y(p[1]).toFixed(1), r: 2.5 }));
  const span = Math.round((end - start) / 1000);
  const ago = span >= 120 ? "-" + Math.round(span / 60) + " min" : "-" + span + " s";
  for (const [label, at, anchor] of [[ago, 2, "start"], ["now", w - 2, "end"]]) {
    const t = svg("text", { x: at, y: h - 2, "text-anchor": anchor });
    t.textContent = label;
    box.appendChild(t);
  }
  const top_ = svg("text", { x: 2, y: 11 });
  top_.textContent = pts.length ? "max " + max.toFixed(1) + " " + unit : "no samples yet (one every 10 s)";
  box.appendChild(top_);
  const last = pts.length ? pts[pts.length - 1][1] : null;
  document.getElementById(nowId).textContent = last === null ? "" : "now " + last.toFixed(1);
}

function drawSeries(s) {
  const samples = s.samples || [];
  chart("chart-events", "eps-now", samples, "events_per_s", "/s");
  chart("chart-tokens", "tpm-now", samples, "tokens_per_min", "/min");
}

// ---- the detail view: #decision=ID ----------------------------------------------------

function wantedId() {
  const m = /^#decision=([0-9a-fA-F]{8,64})$/.exec(location.hash) ||
            /[?&]decision=([0-9a-fA-F]{8,64})(&|$)/.exec(location.search);
  return m ? m[1].toLowerCase() : null;
}

function step(when, name, ...parts) {
  return el("li", { class: "event", "data-step": name }, el("span", { class: "when" }, when ? iso(when) : ""),
    el("span", { class: "step" }, name), " ", ...parts);
}

function kv(obj, keys) {
  return keys.filter(k => obj && obj[k] !== undefined && obj[k] !== null && obj[k] !== "")
    .map(k => k + " " + text(obj[k])).join(" · ");
}

function drawDetail(res) {
  const d = res.decision || {}, o = res.outcome, approvals = res.approvals || [];
  document.getElementById("detail-id").textContent = text(d.id);
  const dl = document.getElementById("detail-summary");
  while (dl.firstChild) dl.removeChild(dl.firstChild);
  const action = d.action && typeof d.action === "object" ? d.action.name : null;
  const rows = [["id", d.id], ["seq", d.seq], ["time", iso(d.ts)], ["agent", d.agent], ["mode", d.mode],
                ["verdict", d.verdict], ["reason", d.reason], ["action", action], ["tokens", d.tokens],
                ["outcome", o ? o.status : "none recorded"]];
  for (const [k, v] of rows) {
    dl.appendChild(el("dt", {}, k));
    dl.appendChild(el("dd", { "data-field": k, class: k === "verdict" ? cls("v-", v) : null },
                      v === undefined || v === null || v === "" ? "-" : v));
  }
  const ol = document.createElement("ol");
  ol.id = "timeline";
  const inc = d.incident || {}, trig = d.trigger || {};
  const ev = d.ctx && d.ctx.event;
  ol.appendChild(step(inc.ts_ms || null, "event", kv(trig, ["topic", "partition", "offset"]), ev ? " " + text(ev) : ""));
  ol.appendChild(step(inc.ts_ms || null, "incident", kv(inc, ["series", "detector", "value", "score", "mean", "stddev", "z"])));
  const attempts = Array.isArray(d.attempts) ? d.attempts.slice(0, 20) : [];
  attempts.forEach((a, i) => {
    const li = step(null, "model call " + (i + 1),
      kv(a, ["backend", "model", "tier", "charged", "prompt_tokens", "completion_tokens", "latency_ms", "finish_reason", "error"]));
    if (a.proposal) li.appendChild(el("div", { class: "proposal" }, "proposal: " + text(a.proposal)));
    else if (typeof a.output === "string") li.appendChild(el("pre", {}, text(a.output)));
    const gates = el("ul", { class: "gates" });
    for (const v of Array.isArray(a.verdicts) ? a.verdicts.slice(0, 50) : [])
      gates.appendChild(el("li", { class: "gate " + cls("v-", v.verdict === "accept" ? "accepted" : "rejected") },
        "rule " + text(v.rule) + ": " + text(v.verdict) + (v.reason ? ": " + text(v.reason) : "")));
    if (gates.childNodes.length) li.appendChild(gates);
    li.appendChild(el("div", {}, a.accepted ? "accepted" : "not accepted"));
    ol.appendChild(li);
  });
  ol.appendChild(step(d.ts, "verdict", el("span", { class: cls("v-", d.verdict) }, d.verdict),
    d.fallback ? " (fallback)" : "", d.reason ? ": " + text(d.reason) : ""));
  ol.appendChild(step(d.ts, "action", d.action ? kv(d.action, ["name", "kind", "topic", "params"]) : "none"));
  for (const a of approvals.slice(0, 16))
    ol.appendChild(step(a.ts, "approval", kv(a, ["state", "action", "reason"])));
  ol.appendChild(o ? step(o.ts, "outcome", el("span", { class: cls("s-", o.status) }, o.status), " ", kv(o, ["detail", "recovered"]))
                   : step(null, "outcome", "none recorded"));
  document.getElementById("timeline").replaceWith(ol);
}

async function refreshDetail(id) {
  const err = document.getElementById("detail-error");
  try {
    drawDetail(await getJSON("/api/decision?id=" + encodeURIComponent(id)));
    err.hidden = true;
    return true;
  } catch (e) {
    err.textContent = "cannot show decision " + id + ": " + e.message;
    err.hidden = false;
    return false;
  }
}

// ---- the loop -------------------------------------------------------------------------

function route() {
  const id = wantedId();
  document.getElementById("overview").hidden = !!id;
  document.getElementById("detail").hidden = !id;
  return id;
}

async function refresh() {
  const id = route();
  let ok = true;
  if (id) {
    ok = await refreshDetail(id);
    try { drawStatus(await getJSON("/api/status")); } catch (e) { ok = false; }
  } else {
    const parts = [["/api/status", drawStatus], ["/api/incidents", drawIncidents],
                   ["/api/decisions?limit=20", drawDecisions], ["/api/series", drawSeries]];
    const results = await Promise.allSettled(parts.map(p => getJSON(p[0])));
    results.forEach((r, i) => {
      if (r.status === "fulfilled") parts[i][1](r.value);
      else ok = false;
    });
  }
  if (ok) { lastOk = Date.now(); failures = 0; } else failures++;
  const badge = document.getElementById("freshness");
  badge.className = "badge " + (ok ? "live" : "stale");
  badge.textContent = ok ? "live · " + new Date(lastOk).toLocaleTimeString("en-GB")
                         : "stale" + (lastOk ? " since " + new Date(lastOk).toLocaleTimeString("en-GB") : "") + " (meshd not answering)";
}

let timer = null;
function schedule() {
  clearTimeout(timer);
  timer = setTimeout(async () => { await refresh(); schedule(); }, REFRESH_MS);
}

window.addEventListener("hashchange", () => { refresh(); schedule(); });
document.getElementById("back").addEventListener("click", ev => { ev.preventDefault(); location.hash = ""; });
refresh().then(schedule);
