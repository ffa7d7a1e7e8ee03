// Opens the HMI's /docs in Debian's chromium (playwright-core from tests/browser) with every
// request that leaves the station refused, as on a plant network, and waits until Swagger UI
// has rendered the API. Env: DOCS_URL, PLAYWRIGHT_FROM (a file in the folder whose node_modules
// holds playwright-core), CHROMIUM. Prints one JSON line with what it saw.
import { createRequire } from "node:module";

const { chromium } = createRequire(process.env.PLAYWRIGHT_FROM)("playwright-core");
const url = new URL(process.env.DOCS_URL);
const result = { offsite: [], failed: [], errors: [] };

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"],
});
try {
  const context = await browser.newContext();
  await context.route("**/*", (route) => {
    const target = new URL(route.request().url());
    if (target.host === url.host) return route.continue();
    result.offsite.push(target.href);
    return route.abort("internetdisconnected");
  });
  const page = await context.newPage();
  page.on("pageerror", (e) => result.errors.push(String(e)));
  page.on("response", (r) => { if (r.status() >= 400) result.failed.push(`${r.status()} ${r.url()}`); });
  page.setDefaultTimeout(60000);
  await page.goto(url.href);
  await page.locator(".swagger-ui .info .title").waitFor({ state: "visible" });
  await page.locator(".swagger-ui .opblock").first().waitFor({ state: "visible" });
  result.title = (await page.locator(".swagger-ui .info .title").textContent()).trim();
  result.operations = await page.locator(".swagger-ui .opblock").count();
  result.render_errors = await page.locator(".swagger-ui .errors-wrapper").count();
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
