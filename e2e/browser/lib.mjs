// What the page scripts (standalone.mjs, admin.mjs, revoke.mjs,
// walkthrough.mjs) share:
// Debian's Chromium started by playwright-core, a report printed as JSON,
// waits bounded by STEP_TIMEOUT_MS, and screenshots of each page.
//
// Each script reads from its environment, besides its own variables:
//   CHROMIUM        the browser binary (never a downloaded one)
//   ARTIFACT_DIR    where a failure screenshot goes
//   ISSUER          smartgate's issuer, e.g. http://127.0.0.1:PORT
//   STEP_TIMEOUT_MS the bound of each wait
//   SCREENSHOT_DIR  if set, where shot() writes NAME.png (docs/img when the
//                   Go test runs with SMARTGATE_SCREENSHOTS=1); unset in CI
//
// A script prints one JSON report on stdout and exits 0 whatever happened,
// so that the Go test judges the report and shows the page, the
// navigations and the browser console on failure.
import { chromium } from "playwright-core";
import { join } from "node:path";

export const env = process.env;
export const stepTimeout = Number(env.STEP_TIMEOUT_MS || 15000);

// The flags that work on this kind of machine (as root: no sandbox; the
// closed network refuses Chromium's background connections).
const flags = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--hide-scrollbars",
];

// The viewport of every page, and so the size of every screenshot: small
// enough for the docs, wide enough for the console's tables.
const viewport = { width: 1024, height: 768 };

// newReport is the report every script prints; facts holds what the
// script found out for the Go test to judge.
export function newReport() {
  return {
    ok: false,
    step: "launch the browser",
    navigations: [], // every top-level document request: who, method, origin+path, query parameter names
    console: [],
    screenshots: [], // the names written to SCREENSHOT_DIR
    facts: {},
    error: "",
    url: "",
    pageText: "",
    screenshot: "", // the failure screenshot
  };
}

// pathOf drops the query (codes, sealed requests) and keeps what a reader needs.
export function pathOf(u) {
  const url = new URL(u);
  return url.origin + url.pathname;
}

export async function launch() {
  return chromium.launch({ executablePath: env.CHROMIUM, headless: true, args: flags, timeout: 30000 });
}

// newPage opens a page in a fresh context (its own cookies: one per person)
// and records its navigations and console in the report, prefixed by who
// (no prefix when who is empty). onNavigation, if given, sees the URL of
// every top-level navigation.
export async function newPage(browser, report, who, onNavigation) {
  const tag = who ? `${who}: ` : "";
  const context = await browser.newContext({ viewport, deviceScaleFactor: 1 });
  const page = await context.newPage();
  page.setDefaultTimeout(stepTimeout);
  page.on("console", (m) => report.console.push(`${tag}${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => report.console.push(`${tag}pageerror: ${e.message}`));
  page.on("requestfailed", (r) => report.console.push(`${tag}requestfailed: ${r.method()} ${pathOf(r.url())}: ${r.failure()?.errorText}`));
  page.on("response", (r) => {
    if (r.status() >= 400) report.console.push(`${tag}response: HTTP ${r.status()} to ${r.request().method()} ${pathOf(r.url())}`);
  });
  page.on("request", (r) => {
    if (!r.isNavigationRequest() || r.frame() !== page.mainFrame()) return;
    const u = new URL(r.url());
    report.navigations.push(`${tag}${r.method()} ${u.origin}${u.pathname}${u.search ? " ?" + [...u.searchParams.keys()].join("&") : ""}`);
    if (onNavigation) onNavigation(u);
  });
  return page;
}

// firstOf waits until one of the selectors is on the page and returns it.
export async function firstOf(page, selectors) {
  const found = await page.waitForSelector(selectors.join(", "), { state: "attached", timeout: stepTimeout });
  for (const s of selectors) {
    if (await found.evaluate((el, sel) => el.matches(sel), s)) return s;
  }
  return "";
}

// expect waits for one of the selectors and throws unless it is want.
export async function expect(page, want, others, where) {
  const at = await firstOf(page, [want, ...others]);
  if (at !== want) throw new Error(`${where}: expected ${want}, found ${at} at ${pathOf(page.url())}`);
}

// submit clicks a button that posts a form or follows a link, and waits
// for the page it leads to.
export async function submit(page, selector) {
  await Promise.all([page.waitForNavigation({ timeout: stepTimeout }), page.click(selector)]);
}

// appResult waits for the test app (e2e/browser/app) to show what it read
// or its error, and returns what it shows; error is set when the app
// reported one.
export async function appResult(page) {
  const at = await firstOf(page, ["#result:not(:empty)", "#error:not(:empty)"]);
  const app = {
    url: pathOf(page.url()),
    result: await page.textContent("#result"),
    error: await page.textContent("#error"),
    details: JSON.parse((await page.textContent("#details")) || "null"),
  };
  return { app, failed: at !== "#result:not(:empty)" };
}

// signIn fills smartgate's sign-in form and submits it.
export async function signIn(page, username, password) {
  await page.fill("#username", username);
  await page.fill("#password", password);
  await submit(page, "#login button[name=action][value=login]");
}

export async function text(page, selector = "body") {
  return page
    .evaluate((sel) => {
      const el = document.querySelector(sel);
      return el ? el.innerText : "";
    }, selector)
    .catch((e) => `(no text: ${e})`);
}

// shot writes the viewport to SCREENSHOT_DIR/NAME.png, with the element
// `focus` (if given) scrolled to the top, so that a long page shows the
// part the docs describe. Without SCREENSHOT_DIR it does nothing.
export async function shot(page, report, name, focus) {
  if (!env.SCREENSHOT_DIR) return;
  if (focus) {
    await page.locator(focus).first().evaluate((el) => el.scrollIntoView({ block: "start" }));
  }
  await page.evaluate(() => document.activeElement && document.activeElement.blur()); // no focus ring or caret
  await page.screenshot({ path: join(env.SCREENSHOT_DIR, `${name}.png`), type: "png", animations: "disabled" });
  report.screenshots.push(name);
}

// failed fills in the report when a step threw: the error, where the page
// was, its text and a full-page screenshot in ARTIFACT_DIR.
export async function failed(report, page, e) {
  report.error = String((e && e.stack) || e);
  if (!page) return;
  report.url = page.url();
  report.pageText = await text(page);
  const file = join(env.ARTIFACT_DIR, "failure.png");
  await page
    .screenshot({ path: file, fullPage: true, timeout: 5000 })
    .then(() => (report.screenshot = file))
    .catch((err) => (report.screenshot = `(no screenshot: ${err})`));
}

export function print(report) {
  process.stdout.write(JSON.stringify(report, null, 2) + "\n");
}
