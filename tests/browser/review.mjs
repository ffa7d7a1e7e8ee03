// Walks the QA review page (/review) in Debian's chromium (playwright-core) on a touch viewport.
// Env: HMI_URL, OUT_DIR, QA_PASSWORD, VIEWER_PASSWORD, OPERATOR_PASSWORD, RECIPE.
// As qa: reviews captures with the buttons (reject right / wrong, pass right), draws a missed
// defect by dragging on the picture, reads the measured rates, promotes the shadowed candidate
// and rolls it back. As viewer and operator: no review or promotion controls, and the API
// refuses both. Prints one JSON line with what it saw; exits non-zero on a failed expectation.
import { chromium } from "playwright-core";

const env = (name) => { const v = process.env[name]; if (!v) throw new Error(`${name} is not set`); return v; };
const url = env("HMI_URL"), out = env("OUT_DIR"), recipe = env("RECIPE");
const result = { steps: [], reviewed: [] };
const step = (s) => { result.steps.push(s); console.error(`[review.mjs] ${s}`); };

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"],
});

async function login(user, password) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, hasTouch: true });
  const page = await context.newPage();
  page.on("pageerror", (e) => step(`page error: ${e}`));
  page.setDefaultTimeout(60000);  // a loaded CI machine: what the page shows is judged, not how fast
  await page.goto(`${url}/review`);
  await page.locator("#login-view").waitFor({ state: "visible" });
  await page.fill("#username", user);
  await page.fill("#password", password);
  await page.click("#login-button");
  await page.locator("#main-view").waitFor({ state: "visible" });
  await page.waitForFunction((u) => document.getElementById("who").textContent.startsWith(u), user);
  return page;
}

try {
  const qa = await login("qa", env("QA_PASSWORD"));
  step("logged in as qa");
  await qa.locator("#capture").waitFor({ state: "visible" });
  let missedDone = false;
  for (let i = 0; i < 6; i++) {
    await qa.locator("#capture-image").evaluate((img) => img.complete && img.naturalWidth > 0 || new Promise((r) => img.onload = r));
    const verdict = await qa.textContent("#capture-verdict");
    const part = await qa.textContent("#capture-meta");
    let decision;
    if (verdict === "PASS" && !missedDone) {
      await qa.tap("#btn-missed");
      const box = await qa.locator("#frame").boundingBox();
      await qa.mouse.move(box.x + box.width * 0.2, box.y + box.height * 0.2);
      await qa.mouse.down();
      await qa.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.6, { steps: 5 });
      await qa.mouse.up();
      await qa.selectOption("#missed-class", "dent");
      await qa.screenshot({ path: `${out}/review-missed.png` });
      await qa.tap("#btn-missed-save");
      decision = "missed"; missedDone = true;
    } else if (verdict === "PASS") {
      await qa.tap("#btn-good"); decision = "good";
    } else {
      decision = i % 3 === 2 ? "false" : "confirm";
      await qa.tap(decision === "false" ? "#btn-false" : "#btn-confirm");
    }
    await qa.waitForFunction((p) => document.getElementById("capture-meta").textContent !== p
      || !document.getElementById("queue-empty").hidden, part);
    result.reviewed.push(decision);
  }
  step(`reviewed ${result.reviewed.join(",")}`);
  await qa.waitForFunction(() => document.getElementById("summary").textContent.includes("false-reject rate"));
  result.summary = await qa.textContent("#summary");
  await qa.locator("#shadow").waitFor({ state: "visible" });
  await qa.waitForFunction(() => document.querySelectorAll("#disagreements img").length > 0 || true);
  result.shadow = await qa.textContent("#shadow-report");
  await qa.screenshot({ path: `${out}/review-qa.png`, fullPage: true });
  qa.once("dialog", (d) => d.accept());
  await qa.tap("#btn-promote");
  await qa.waitForFunction(() => document.getElementById("shadow-message").textContent.startsWith("promoted"));
  step("promoted");
  await qa.waitForFunction(() => !document.getElementById("btn-rollback").disabled);
  await qa.tap("#btn-rollback");
  await qa.waitForFunction(() => document.getElementById("shadow-message").textContent.startsWith("rolled back"));
  step("rolled back");

  for (const [user, pw] of [["viewer", env("VIEWER_PASSWORD")], ["operator", env("OPERATOR_PASSWORD")]]) {
    const page = await login(user, pw);
    await page.locator("#capture").waitFor({ state: "visible" });
    const controls = await page.locator(".reviewer-only").evaluateAll((els) => els.map((e) => e.hidden || e.offsetParent === null));
    const api = await page.evaluate(async (r) => {
      const post = (path, body) => fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      const queue = await (await fetch("/api/review/queue")).json();
      const id = queue.items.length ? queue.items[0].id : 1;
      return { review: (await post(`/api/review/captures/${id}`, { decision: "confirm" })).status,
               promote: (await post("/api/shadow/promote", { recipe_id: r })).status,
               rollback: (await post("/api/shadow/rollback", { recipe_id: r })).status };
    }, recipe);
    result[user] = { controls_hidden: controls.every(Boolean), hint: await page.isVisible("#viewer-hint"), ...api };
    step(`${user}: ${JSON.stringify(result[user])}`);
  }
} catch (e) {
  result.error = String(e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(result.error ? 1 : 0);
