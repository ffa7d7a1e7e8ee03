// The QA review page: one capture at a time, large, with buttons a gloved finger can hit;
// a missed defect is drawn by dragging on the picture (pointer events: mouse, pen and touch).
"use strict";
const $ = (id) => document.getElementById(id);
let me = null, current = null, drawn = null, drawing = null, active = null;

async function api(path, options = {}) {
  const reply = await fetch(path, { credentials: "same-origin", headers: { "Content-Type": "application/json" }, ...options });
  if (reply.status === 401) { showLogin(); throw new Error("login required"); }
  return reply;
}

function showLogin() { $("login-view").hidden = false; $("main-view").hidden = true; }

$("login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const reply = await fetch("/api/login", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: $("username").value, password: $("password").value }) });
  if (!reply.ok) { $("login-error").textContent = "wrong user name or password"; return; }
  start();
});

async function start() {
  const reply = await api("/api/me");
  me = await reply.json();
  $("who").textContent = `${me.user} (${me.role})`;
  $("login-view").hidden = true; $("main-view").hidden = false;
  const reviewer = me.role === "qa" || me.role === "admin";
  document.querySelectorAll(".reviewer-only").forEach((el) => { el.hidden = !reviewer; });
  $("viewer-hint").hidden = reviewer;
  await Promise.all([loadQueue(), loadSummary(), loadShadow()]);
  setInterval(() => loadShadow().catch(() => {}), 3000);  // shadow counts and estimates move on their own
}

async function loadQueue() {
  const q = await (await api("/api/review/queue?limit=50")).json();
  $("queue-count").textContent = `${q.items.length} waiting · ${q.store.reviewed} reviewed`;
  current = q.items[0] || null;
  $("queue-empty").hidden = !!current; $("capture").hidden = !current;
  if (!current) return;
  drawn = null; setMissedMode(false);
  $("capture-image").src = `/api/review/images/${encodeURIComponent(current.image)}`;
  $("boxes").setAttribute("viewBox", `0 0 ${current.width} ${current.height}`);
  $("capture-verdict").textContent = current.verdict;
  $("capture-verdict").className = `verdict ${current.verdict}`;
  $("capture-meta").textContent = `part ${current.part_id} · ${current.camera_id} · ${current.recipe_id} · ${current.reason} · ` +
    `model ${String(current.provenance.model_sha256 || "").slice(0, 12)}`;
  $("capture-detections").textContent = current.detections.length
    ? current.detections.map((d) => `${d.class} ${d.confidence.toFixed(2)}`).join(", ") : "no detections";
  $("btn-confirm").hidden = current.verdict !== "REJECT"; $("btn-false").hidden = current.verdict !== "REJECT";
  $("btn-good").hidden = current.verdict !== "PASS";
  $("missed-class").replaceChildren(...(current.provenance.classes || []).map((c) => new Option(c, c)));
  drawBoxes();
}

function drawBoxes() {
  const svg = $("boxes"); svg.replaceChildren();
  const rect = (b, cls) => {
    const r = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    r.setAttribute("x", b[0]); r.setAttribute("y", b[1]); r.setAttribute("width", b[2] - b[0]); r.setAttribute("height", b[3] - b[1]);
    r.setAttribute("class", cls); svg.appendChild(r);
  };
  for (const d of current.detections) rect(d.box, "model");
  if (drawn) rect(drawn, "drawn");
}

function framePoint(e) {
  const box = $("frame").getBoundingClientRect();
  const x = Math.min(Math.max(0, (e.clientX - box.left) / box.width), 1) * current.width;
  const y = Math.min(Math.max(0, (e.clientY - box.top) / box.height), 1) * current.height;
  return [Math.round(x * 10) / 10, Math.round(y * 10) / 10];
}

let missedMode = false;
function setMissedMode(on) {
  missedMode = on; $("missed-tools").hidden = !on;
  if (!on) { drawn = null; $("btn-missed-save").disabled = true; }
}
$("frame").addEventListener("pointerdown", (e) => {
  if (!missedMode) return;
  $("frame").setPointerCapture(e.pointerId); drawing = framePoint(e); drawn = null;
});
$("frame").addEventListener("pointermove", (e) => {
  if (!drawing) return;
  const p = framePoint(e);
  drawn = [Math.min(drawing[0], p[0]), Math.min(drawing[1], p[1]), Math.max(drawing[0], p[0]), Math.max(drawing[1], p[1])];
  drawBoxes();
});
$("frame").addEventListener("pointerup", () => {
  drawing = null;
  if (drawn && (drawn[2] - drawn[0] < 1 || drawn[3] - drawn[1] < 1)) drawn = null;
  $("btn-missed-save").disabled = !drawn; drawBoxes();
});

async function review(decision, boxes = []) {
  $("review-error").textContent = "";
  const reply = await api(`/api/review/captures/${current.id}`, { method: "POST", body: JSON.stringify({ decision, boxes }) });
  if (!reply.ok) { $("review-error").textContent = (await reply.json()).detail; return; }
  await Promise.all([loadQueue(), loadSummary(), loadShadow()]);  // the shadow's estimates use the reviews
}
$("btn-confirm").onclick = () => review("confirm");
$("btn-false").onclick = () => review("false");
$("btn-good").onclick = () => review("good");
$("btn-missed").onclick = () => setMissedMode(true);
$("btn-missed-cancel").onclick = () => { setMissedMode(false); drawBoxes(); };
$("btn-missed-save").onclick = () => review("missed", [{ class: $("missed-class").value, box: drawn }]);

function pct(v) { return v === null || v === undefined ? "–" : `${(v * 100).toFixed(1)} %`; }
function kv(el, pairs) {
  el.replaceChildren(...pairs.flatMap(([k, v]) => { const dt = document.createElement("dt"); dt.textContent = k;
    const dd = document.createElement("dd"); dd.textContent = v; return [dt, dd]; }));
}

async function loadSummary() {
  const s = await (await api("/api/review/summary")).json();
  kv($("summary"), [["reviewed", s.reviewed], ["false-reject rate", `${pct(s.false_reject_rate)} (${s.false_rejects} of ${s.reviewed_rejects} rejects)`],
    ["escapes", `${pct(s.escape_rate)} (${s.escaped_parts} of ${s.reviewed_passes} passes)`],
    ["escapes by class", Object.entries(s.escapes_by_class).map(([k, v]) => `${k}: ${v}`).join(", ") || "none"]]);
  const tables = Object.entries(s.threshold_curves).map(([name, points]) => {
    const t = document.createElement("table");
    t.innerHTML = `<caption>${name}</caption><thead><tr><th>threshold</th><th>true kept</th><th>false kept</th><th>missed</th></tr></thead>`;
    const body = document.createElement("tbody");
    for (const p of points.filter((p) => Math.round(p.threshold * 100) % 10 === 0)) {
      const tr = document.createElement("tr");
      for (const v of [p.threshold.toFixed(1), p.true_kept, p.false_kept, p.missed]) { const td = document.createElement("td"); td.textContent = v; tr.appendChild(td); }
      body.appendChild(tr);
    }
    t.appendChild(body); return t;
  });
  $("curves").replaceChildren(...tables);
}

async function loadShadow() {
  const s = await (await api("/api/shadow")).json();
  active = s.active;
  $("shadow-recipe").textContent = active ? `recipe ${active}` : "";
  $("export-link").href = `/api/review/export?recipe_id=${encodeURIComponent(active || "")}`;
  $("btn-rollback").disabled = !(s.can_promote && s.rollback[active]);
  const running = s.shadows.includes(active);
  $("shadow-none").hidden = running; $("shadow").hidden = !running;
  $("btn-promote").disabled = !(s.can_promote && running);
  if (!running) return;
  const r = await (await api(`/api/shadow/${encodeURIComponent(active)}`)).json();
  const none = { false_reject_rate: null, escape_rate: null };
  const est = r.estimated_vs_reviewed || { production: none, candidate: none };  // null: still computing
  kv($("shadow-report"), [["candidate", `${r.candidate_sha256.slice(0, 12)} (${r.candidate_model.split("/").pop()})`],
    ["parts seen / judged / skipped", `${r.parts_seen} / ${r.parts_judged} / ${r.parts_skipped}`],
    ["agreement", pct(r.agreement)], ["disagreements", JSON.stringify(r.disagreements_by_kind)],
    ["by class", JSON.stringify(r.disagreements_by_class)],
    ["estimates over the reviewed set", r.estimate_current ? "current" : "computing…"],
    ["false rejects prod → cand", `${pct(est.production.false_reject_rate)} → ${pct(est.candidate.false_reject_rate)}`],
    ["escapes prod → cand", `${pct(est.production.escape_rate)} → ${pct(est.candidate.escape_rate)}`],
    ...(r.estimated_vs_golden ? [["golden set escapes prod → cand",
      `${pct(r.estimated_vs_golden.production.escape_rate)} → ${pct(r.estimated_vs_golden.candidate.escape_rate)} (${r.estimated_vs_golden.images} images)`],
      ["golden set false rejects prod → cand",
      `${pct(r.estimated_vs_golden.production.false_reject_rate)} → ${pct(r.estimated_vs_golden.candidate.false_reject_rate)}`]] : []),
    ["latency p99 / budget", `${r.latency_ms.p99 ?? "–"} ms / ${r.budget_ms} ms`]]);
  $("disagreements").replaceChildren(...r.disagreement_images.filter((d) => d.image).slice(0, 12).map((d) => {
    const f = document.createElement("figure");
    f.innerHTML = `<img alt="disagreement" src="/api/review/images/${encodeURIComponent(d.image)}"><figcaption>part ${d.part_id}: ${d.production} → ${d.candidate}</figcaption>`;
    return f;
  }));
}

async function promotion(path) {
  const reply = await api(path, { method: "POST", body: JSON.stringify({ recipe_id: active }) });
  const body = await reply.json();
  $("shadow-message").textContent = reply.ok ? `${path.endsWith("promote") ? "promoted" : "rolled back"}: ${body.message}` : (body.detail || body.message);
  await loadShadow();
}
$("btn-promote").onclick = () => { if (confirm("Let the candidate decide for this recipe?")) promotion("/api/shadow/promote"); };
$("btn-rollback").onclick = () => promotion("/api/shadow/rollback");

start().catch(() => showLogin());
