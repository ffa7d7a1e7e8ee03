// linecheck HMI: plain JS, no build step. Polls the REST API (status 1/s, live picture ~5/s).
// Written for an operator at a touch panel: plain words, local times, large targets, nothing
// that needs hovering.
"use strict";
const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
// "2026-12-07T17:03:04.123+01:00" -> "17:03:04" (today) or "6 Dec 17:03:04", in the panel's locale
function localTime(iso) {
  if (!iso) return "–";
  const t = new Date(iso), today = new Date();
  const time = t.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  return t.toDateString() === today.toDateString() ? time : `${t.toLocaleDateString([], { day: "numeric", month: "short" })} ${time}`;
}
const REASONS = { timeout: "too late (deadline)", inference_error: "inspection error", camera_error: "camera error",
  incomplete_frame: "incomplete picture", dropped: "part dropped (line too fast)", shutdown: "station stopping", unknown: "other" };
const reasonText = (r) => REASONS[r] || r.replaceAll("_", " ");
let me = null;
let timers = [];
let liveSeq = -1;

async function api(path, options = {}) {
  const res = await fetch(path, { credentials: "same-origin", headers: { "Content-Type": "application/json" }, ...options });
  if (res.status === 401) { showLogin(); throw new Error("login required"); }
  return res;
}

function showLogin() {
  timers.forEach(clearInterval); timers = [];
  me = null;
  $("main-view").hidden = true; $("login-view").hidden = false; $("logout").hidden = true; $("who").textContent = "";
}

async function showMain(user) {
  me = user;
  const watcher = user.role === "viewer" || user.role === "qa";  // qa reviews, it does not run the line
  document.body.classList.toggle("viewer", watcher);
  $("recipe-select").disabled = watcher;  // a viewer cannot change the recipe at all
  $("who").textContent = `${user.user} (${user.role})`;
  $("logout").hidden = false; $("login-view").hidden = true; $("main-view").hidden = false;
  await Promise.allSettled([refreshStatus(), refreshRecipes(), refreshLatency(), refreshRejects()]);
  timers.push(setInterval(refreshStatus, 1000), setInterval(refreshRecipes, 1000), setInterval(refreshLive, 200),
              setInterval(refreshLatency, 2000), setInterval(refreshRejects, 3000));
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("login-error").textContent = "";
  const res = await fetch("/api/login", { method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: $("username").value, password: $("password").value }) });
  if (!res.ok) { $("login-error").textContent = "Wrong user name or password."; return; }
  $("password").value = "";
  showMain(await res.json());
});

$("logout").addEventListener("click", async () => { await fetch("/api/logout", { method: "POST" }); showLogin(); });

function text(id, value) { $(id).textContent = value === null || value === undefined ? "–" : value; }
function pct(v) { return v === null || v === undefined ? "–" : (100 * v).toFixed(2) + " %"; }

async function refreshStatus() {
  const s = await (await api("/api/status")).json();
  text("station", s.station);
  const h = $("health"); h.textContent = { starting: "starting…", ready: "running normally", degraded: "degraded", failed: "stopped" }[s.health.status] || s.health.status;
  h.className = "badge " + s.health.status;
  if (s.run_mode && s.run_mode !== "deciding") h.textContent += ` · ${s.run_mode} remotely: every part fail-safe`;
  $("health-reason").textContent = s.health.reasons.join(" · ");
  text("active-recipe", s.active_recipe);
  const c = s.counters, sh = s.shift;
  text("run-verdicts", c.verdicts); text("run-passed", c.passed); text("run-rejected", c.rejected); text("run-fail-safe", c.fail_safe);
  text("run-yield", pct(c.yield));
  text("shift-inspected", sh.inspected); text("shift-passed", sh.passed); text("shift-rejected", sh.rejected);
  text("shift-fail-safe", sh.fail_safe); text("shift-yield", pct(sh.yield)); text("shift-since", localTime(sh.since));
  const KIND = { camera: "Camera", plc: "PLC", mes: "MES" };
  $("links").replaceChildren(...s.links.map((l) => li(`${KIND[l.kind] || l.kind} ${l.name}: ${l.state}`, "state-" + (l.status || (l.ok === "true" ? "ok" : "bad")))));
  $("alarms").replaceChildren(...(s.alarms.length ? s.alarms.map(alarmItem) : [li("No active alarms", "hint")]));
  const reasons = Object.entries(sh.fail_safe_reasons || {});
  $("fail-safe-reasons").replaceChildren(...(reasons.length ? reasons.map(([r, n]) => li(`${reasonText(r)}: ${n}`)) : [li("none", "hint")]));
  drawRejectChart(s.reject_chart);
}

function alarmItem(a) {
  const e = document.createElement("li"); e.className = "alarm"; e.dataset.kind = a.kind;
  const title = document.createElement("b"); title.textContent = a.title;
  const msg = document.createElement("span"); msg.textContent = a.message;
  const when = document.createElement("small");
  when.textContent = `since ${localTime(a.first_seen)}` + (a.count > 1 ? ` · ${a.count} times, last ${localTime(a.last_seen)}` : "");
  e.append(title, msg, when); return e;
}

// reject and fail-safe rate per time bucket of the shift, as an inline SVG bar chart
function drawRejectChart(c) {
  const box = $("reject-chart");
  if (!c) { box.replaceChildren(); return; }
  const W = 300, H = 110, left = 46, bottom = 18, n = Math.max(c.buckets.length, 1);
  const rates = c.buckets.map((b) => (b.parts ? (b.rejected + b.fail_safe) / b.parts : 0));
  const top = Math.max(0.05, ...rates) * 1.15, bw = (W - left - 4) / n;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const add = (tag, attrs, txt) => { const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); if (txt !== undefined) e.textContent = txt; svg.append(e); return e; };
  const y = (r) => H - bottom - (H - bottom - 8) * r / top;
  for (const f of [0, 0.5, 1]) { add("line", { x1: left, x2: W, y1: y(top * f / 1.15), y2: y(top * f / 1.15), class: "grid" });
    add("text", { x: left - 4, y: y(top * f / 1.15) + 4, "text-anchor": "end" }, `${(100 * top * f / 1.15).toFixed(1)}%`); }
  c.buckets.forEach((b, i) => {
    const rej = b.parts ? b.rejected / b.parts : 0, fs = b.parts ? b.fail_safe / b.parts : 0;
    add("rect", { x: left + i * bw + 1, y: y(rej), width: Math.max(bw - 2, 1), height: y(0) - y(rej), class: "bar-reject" })
      .append(Object.assign(document.createElementNS(SVG, "title"), { textContent: `${localTime(b.start)}: ${b.rejected} rejected of ${b.parts}` }));
    add("rect", { x: left + i * bw + 1, y: y(rej + fs), width: Math.max(bw - 2, 1), height: y(rej) - y(rej + fs), class: "bar-failsafe" });
  });
  if (c.buckets.length) {
    add("text", { x: left, y: H - 6 }, localTime(c.buckets[0].start));
    add("text", { x: W - 2, y: H - 6, "text-anchor": "end" }, localTime(c.buckets[c.buckets.length - 1].start));
  } else add("text", { x: left + 8, y: H / 2 }, "no parts this shift yet");
  const legend = document.createElement("p"); legend.className = "hint";
  legend.innerHTML = `<span class="key bar-reject"></span> rejected <span class="key bar-failsafe"></span> fail-safe · one bar per ${c.bucket_s / 60} min`;
  box.replaceChildren(svg, legend);
}

function li(content, cls) { const e = document.createElement("li"); e.textContent = content; if (cls) e.className = cls; return e; }

async function liveMeta() {
  const cams = Object.values((await (await api("/api/live")).json()).cameras);
  return cams.length ? cams.reduce((a, b) => (a.seq > b.seq ? a : b)) : null;
}

async function refreshLive() {
  let m = await liveMeta();
  if (!m || m.seq === liveSeq) return;
  // the picture is fetched after its description: a newer one may have replaced it meanwhile.
  // The picture's own number (X-Live-Seq) picks the description that belongs to it, so the
  // verdict line never describes another part than the one shown.
  const res = await api(`/api/live.jpg?camera=${encodeURIComponent(m.camera_id)}`);
  if (res.status !== 200) return;
  const seq = Number(res.headers.get("X-Live-Seq"));
  const blob = await res.blob();
  if (seq !== m.seq) { m = await liveMeta(); if (!m || m.seq !== seq) return; }
  liveSeq = m.seq;
  // decode the picture off-screen and swap it in whole: no half-loaded frame, and the
  // verdict line changes together with its picture
  const next = new Image();
  next.id = "live-image"; next.alt = "live camera image with detections";
  next.src = URL.createObjectURL(blob);
  try { await next.decode(); } catch (e) { URL.revokeObjectURL(next.src); return; }
  const old = $("live-image");
  old.replaceWith(next);
  if (old.src.startsWith("blob:")) URL.revokeObjectURL(old.src);
  const v = $("live-verdict");
  v.textContent = `${m.verdict}${m.reason ? " (" + m.reason + ")" : ""} — part ${m.part_id} — recipe ${m.recipe_id}` +
    (m.defects.length ? " — " + m.defects.join(", ") : "");
  v.className = "verdict " + m.verdict;
  v.dataset.recipe = m.recipe_id;
  text("live-meta", `${m.camera_id} · ${localTime(new Date(m.t * 1000).toISOString())}`);
}

let recipeState = null;
async function refreshRecipes() {
  const r = await (await api("/api/recipes")).json();
  recipeState = r;
  const sel = $("recipe-select");
  const chosen = sel.value;
  const ids = r.recipes.map((x) => x.id).join(",");
  if (sel.dataset.ids !== ids) {
    sel.replaceChildren(...r.recipes.map((x) => { const o = document.createElement("option"); o.value = x.id;
      o.textContent = x.description ? `${x.id} – ${x.description}` : x.id; return o; }));
    sel.dataset.ids = ids;
    sel.value = chosen || r.active;
  }
  if (me && (me.role === "viewer" || me.role === "qa")) sel.value = r.active;  // the viewer's selector only shows the active recipe
  const p = $("prepare-progress");
  if (r.preparing && r.switching) { p.hidden = false; p.value = r.preparing.step;
    text("switch-status", `preparing ${r.preparing.recipe_id}: ${r.preparing.stage}…`); } else { p.hidden = true; }
  $("invalid-recipes").replaceChildren(...r.invalid.map((x) => { const d = document.createElement("p"); d.className = "error";
    d.textContent = `invalid ${x.file}: ${x.problems.join("; ")}`; return d; }));
  $("switch-history").replaceChildren(...r.recent_switches.map((a) => li(
    `${localTime(a.time)} ${a.from || "–"} → ${a.to} by ${a.user || a.source}${a.ok ? "" : ": refused, " + a.message}`, a.ok ? "" : "error")));
}

$("switch-button").addEventListener("click", () => {
  const target = $("recipe-select").value;
  if (!target) return;
  $("confirm-text").textContent = `Switch the line from ${recipeState ? recipeState.active : "?"} to ${target}?`;
  $("confirm-dialog").dataset.target = target;
  $("confirm-dialog").showModal();
});

$("confirm-dialog").addEventListener("close", async () => {
  const dlg = $("confirm-dialog");
  if (dlg.returnValue !== "ok") { text("switch-status", "switch cancelled"); return; }
  const target = dlg.dataset.target;
  text("switch-status", `switching to ${target}…`);
  const res = await api("/api/recipes/switch", { method: "POST", body: JSON.stringify({ recipe_id: target }) });
  const body = await res.json();
  if (res.ok) text("switch-status", `switched to ${body.recipe_id}`);
  else text("switch-status", `refused: ${body.message || body.detail}`);
  refreshRecipes(); refreshStatus();
});

$("reset-counters").addEventListener("click", async () => {
  if (!confirm("Reset the counters?")) return;
  await api("/api/counters/reset", { method: "POST" });
  refreshStatus();
});

async function refreshLatency() {
  const h = await (await api("/api/latency")).json();
  const cv = $("latency-chart"), g = cv.getContext("2d");
  g.clearRect(0, 0, cv.width, cv.height);
  const n = h.counts.length, max = Math.max(1, ...h.counts), bw = (cv.width - 40) / n, base = cv.height - 30;
  g.font = "11px sans-serif"; g.fillStyle = "#333";
  h.counts.forEach((c, i) => {
    const bh = (base - 10) * c / max;
    g.fillStyle = h.edges_ms[i + 1] > h.budget_ms ? "#c62828" : "#3b6fb6";
    g.fillRect(30 + i * bw + 1, base - bh, bw - 2, bh);
    g.fillStyle = "#333"; if (i % 2 === 0) g.fillText(String(h.edges_ms[i]), 30 + i * bw, base + 12);  // every other edge: legible
  });
  g.fillText("ms from picture to verdict; red: too slow", 30, base + 26);
  const p = h.percentiles_ms;
  text("latency-pct", p.n ? `usually ${Math.round(p.p50)} ms, slowest ${Math.round(p.max)} ms, allowed ${h.budget_ms} ms` : "");
}

// the archive keeps the raw frame: its boxes are drawn over it
function drawBoxes(svg, img, defects) {
  svg.setAttribute("viewBox", `0 0 ${img.naturalWidth} ${img.naturalHeight}`);
  svg.replaceChildren(...defects.map((d) => { const rect = document.createElementNS(SVG, "rect"); const [x1, y1, x2, y2] = d.box;
    rect.setAttribute("x", x1); rect.setAttribute("y", y1); rect.setAttribute("width", x2 - x1); rect.setAttribute("height", y2 - y1); return rect; }));
}

const defectNames = (defects) => [...new Set(defects.map((d) => d.class))].join(", ") || "reject";
let galleryIds = "";
async function refreshRejects() {
  const items = await (await api("/api/rejects?limit=12")).json();
  const ids = items.map((r) => r.result_id).join(",");
  if (ids === galleryIds) return;  // unchanged: keep the pictures (no flicker on a touch panel)
  galleryIds = ids;
  $("gallery").replaceChildren(...items.map((r) => {
    const defects = JSON.parse(r.defects);
    const f = document.createElement("button"), img = document.createElement("img"), cap = document.createElement("span");
    f.type = "button"; f.className = "thumb"; f.dataset.resultId = r.result_id;
    img.src = r.image; img.loading = "lazy"; img.alt = `rejected part ${r.part_id}`;
    cap.className = "caption";
    const cls = document.createElement("b"); cls.className = "defects"; cls.textContent = defectNames(defects);
    cap.append(cls, ` part ${r.part_id} · ${localTime(r.time)}`);
    const svg = document.createElementNS(SVG, "svg");
    img.addEventListener("load", () => drawBoxes(svg, img, defects));
    f.addEventListener("click", () => openReject(r, defects));
    const frame = document.createElement("span"); frame.className = "frame"; frame.append(img, svg);
    f.append(frame, cap); return f;
  }));
}

function openReject(r, defects) {
  const img = $("reject-large");
  img.onload = () => drawBoxes($("reject-boxes"), img, defects);
  img.src = r.image;
  $("reject-caption").textContent = `${defects.map((d) => `${d.class} (${Math.round(100 * d.confidence)} %)`).join(", ")} · part ${r.part_id}` +
    ` · recipe ${r.recipe_id} · camera ${r.camera_id} · ${localTime(r.time)}`;
  $("reject-dialog").showModal();
}

(async () => {
  const res = await fetch("/api/me", { credentials: "same-origin" });
  if (res.ok) showMain(await res.json()); else showLogin();
})();
