// linecheck HMI: plain JS, no build step. Polls the REST API (status 1/s, live picture ~5/s).
"use strict";
const $ = (id) => document.getElementById(id);
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
  document.body.classList.toggle("viewer", user.role === "viewer");
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
  const h = $("health"); h.textContent = s.health.status; h.className = "badge " + s.health.status; h.title = s.health.reasons.join("\n");
  text("active-recipe", s.active_recipe);
  const c = s.counters, sh = s.shift;
  text("run-verdicts", c.verdicts); text("run-passed", c.passed); text("run-rejected", c.rejected); text("run-fail-safe", c.fail_safe);
  text("run-yield", pct(c.yield));
  text("shift-inspected", sh.inspected); text("shift-passed", sh.passed); text("shift-rejected", sh.rejected);
  text("shift-fail-safe", sh.fail_safe); text("shift-yield", pct(sh.yield)); text("shift-since", sh.since);
  $("links").replaceChildren(...s.links.map((l) => li(`${l.kind} ${l.name}: ${l.state}`, l.ok === "true" ? "state-ok" : "state-bad")));
  $("alarms").replaceChildren(...(s.alarms.length ? s.alarms.map((a) => li(a)) : [li("none", "hint")]));
}

function li(content, cls) { const e = document.createElement("li"); e.textContent = content; if (cls) e.className = cls; return e; }

async function refreshLive() {
  const res = await api("/api/live");
  const live = await res.json();
  const cams = Object.values(live.cameras);
  if (!cams.length) return;
  const m = cams.reduce((a, b) => (a.seq > b.seq ? a : b));
  if (m.seq === liveSeq) return;
  liveSeq = m.seq;
  // load the next picture off-screen and swap it in whole: no half-loaded frame, and the
  // verdict line changes together with its picture
  const next = new Image();
  next.id = "live-image"; next.alt = "live camera image with detections";
  next.src = `/api/live.jpg?camera=${encodeURIComponent(m.camera_id)}&seq=${m.seq}`;
  try { await next.decode(); } catch (e) { return; }
  $("live-image").replaceWith(next);
  const v = $("live-verdict");
  v.textContent = `${m.verdict}${m.reason ? " (" + m.reason + ")" : ""} — part ${m.part_id} — recipe ${m.recipe_id}` +
    (m.defects.length ? " — " + m.defects.join(", ") : "");
  v.className = "verdict " + m.verdict;
  v.dataset.recipe = m.recipe_id;
  text("live-meta", `${m.camera_id}, hot-path cost p50 ${live.stats.hot_path_us.p50 ?? "–"} µs`);
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
      o.textContent = `${x.id} (code ${x.code})${x.warm ? " · warm" : ""}`; return o; }));
    sel.dataset.ids = ids;
    sel.value = chosen || r.active;
  }
  const p = $("prepare-progress");
  if (r.preparing && r.switching) { p.hidden = false; p.value = r.preparing.step;
    text("switch-status", `preparing ${r.preparing.recipe_id}: ${r.preparing.stage} (${r.preparing.elapsed_s} s)`); } else { p.hidden = true; }
  $("invalid-recipes").replaceChildren(...r.invalid.map((x) => { const d = document.createElement("p"); d.className = "error";
    d.textContent = `invalid ${x.file}: ${x.problems.join("; ")}`; return d; }));
  $("switch-history").replaceChildren(...r.recent_switches.map((a) => li(
    `${a.time.slice(11, 19)} ${a.from} → ${a.to} by ${a.source}${a.user ? "/" + a.user : ""}: ${a.ok ? "ok" : a.message}` +
    ` (${(a.switch_s * 1000).toFixed(0)} ms${a.warm ? ", warm" : ""})`, a.ok ? "" : "error")));
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
  if (res.ok) text("switch-status", `switched to ${body.recipe_id} in ${(body.switch_s * 1000).toFixed(0)} ms${body.warm ? " (warm)" : ""}`);
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
  g.font = "10px sans-serif"; g.fillStyle = "#333";
  h.counts.forEach((c, i) => {
    const bh = (base - 10) * c / max;
    g.fillStyle = h.edges_ms[i + 1] > h.budget_ms ? "#c62828" : "#3b6fb6";
    g.fillRect(30 + i * bw + 1, base - bh, bw - 2, bh);
    g.fillStyle = "#333"; g.fillText(String(h.edges_ms[i]), 30 + i * bw, base + 12);
  });
  g.fillText("ms (t_ready → verdict); red: over the budget of " + h.budget_ms + " ms", 30, base + 26);
  const p = h.percentiles_ms;
  text("latency-pct", p.n ? `p50 ${p.p50} ms · p99 ${p.p99} ms · max ${p.max} ms` : "");
}

async function refreshRejects() {
  const items = await (await api("/api/rejects?limit=12")).json();
  $("gallery").replaceChildren(...items.map((r) => {
    const f = document.createElement("figure"), img = document.createElement("img"), cap = document.createElement("figcaption");
    img.src = r.image; img.loading = "lazy"; img.alt = `reject part ${r.part_id}`;
    img.title = JSON.parse(r.defects).map((d) => `${d.class} ${d.confidence}`).join(", ");
    cap.textContent = `part ${r.part_id} · ${r.recipe_id} · ${r.time.slice(11, 19)}`;
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    img.addEventListener("load", () => {  // the archive keeps the raw frame: draw its boxes over it
      svg.setAttribute("viewBox", `0 0 ${img.naturalWidth} ${img.naturalHeight}`);
      svg.style.height = img.clientHeight + "px";
      for (const d of JSON.parse(r.defects)) {
        const rect = document.createElementNS("http://www.w3.org/2000/svg", "rect");
        const [x1, y1, x2, y2] = d.box;
        rect.setAttribute("x", x1); rect.setAttribute("y", y1); rect.setAttribute("width", x2 - x1); rect.setAttribute("height", y2 - y1);
        svg.append(rect);
      }
    });
    f.append(img, svg, cap); return f;
  }));
}

(async () => {
  const res = await fetch("/api/me", { credentials: "same-origin" });
  if (res.ok) showMain(await res.json()); else showLogin();
})();
