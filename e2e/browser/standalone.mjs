// A SMART standalone patient launch in a real browser: Debian's Chromium,
// driven by playwright-core, opens the test app's launch.html (fhirclient),
// signs in on smartgate's login page, approves on its consent page and waits
// for the app's index.html to show the patient it read with its token.
//
// Run by e2e/browser_test.go, which starts smartgate and the app and passes:
//   CHROMIUM       the browser binary (never a downloaded one)
//   USER_DATA_DIR  a fresh, empty profile directory
//   ARTIFACT_DIR   where a failure screenshot goes
//   APP_URL        the app's origin, e.g. http://127.0.0.1:PORT
//   ISSUER         smartgate's issuer, e.g. http://127.0.0.1:PORT
//   USERNAME, PASSWORD  the demo patient user
//   STEP_TIMEOUT_MS     the bound of each wait
//
// It prints one JSON report on stdout and exits 0 whatever happened, so that
// the Go test can judge the report and show the page and console on failure.
import { chromium } from "playwright-core";
import { join } from "node:path";

const env = process.env;
const stepTimeout = Number(env.STEP_TIMEOUT_MS || 15000);

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
];

const report = {
  ok: false,
  step: "launch the browser",
  navigations: [], // every top-level document request: method, origin+path, query parameter names
  authorize: null, // the query of the authorization request
  login: null,
  consent: null,
  app: null,
  console: [],
  error: "",
  url: "",
  pageText: "",
  screenshot: "",
};

// pathOf drops the query (codes, sealed requests) and keeps what a reader needs.
function pathOf(u) {
  const url = new URL(u);
  return url.origin + url.pathname;
}

// firstOf waits until one of the selectors is on the page and returns it.
async function firstOf(page, selectors) {
  const found = await page.waitForSelector(selectors.join(", "), { state: "attached", timeout: stepTimeout });
  for (const s of selectors) {
    if (await found.evaluate((el, sel) => el.matches(sel), s)) return s;
  }
  return "";
}

async function text(page) {
  return page.evaluate(() => (document.body ? document.body.innerText : "")).catch((e) => `(no page text: ${e})`);
}

let context, page;
try {
  context = await chromium.launchPersistentContext(env.USER_DATA_DIR, {
    executablePath: env.CHROMIUM,
    headless: true,
    args: flags,
    timeout: 30000,
  });
  page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(stepTimeout);
  page.on("console", (m) => report.console.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => report.console.push(`pageerror: ${e.message}`));
  page.on("requestfailed", (r) => report.console.push(`requestfailed: ${r.method()} ${pathOf(r.url())}: ${r.failure()?.errorText}`));
  page.on("response", (r) => {
    if (r.status() >= 400) report.console.push(`response: HTTP ${r.status()} to ${r.request().method()} ${pathOf(r.url())}`);
  });
  page.on("request", (r) => {
    if (!r.isNavigationRequest() || r.frame() !== page.mainFrame()) return;
    const u = new URL(r.url());
    report.navigations.push(`${r.method()} ${u.origin}${u.pathname}${u.search ? " ?" + [...u.searchParams.keys()].join("&") : ""}`);
    if (u.origin === env.ISSUER && u.pathname === "/oauth2/authorize" && !report.authorize) {
      report.authorize = Object.fromEntries(u.searchParams);
    }
  });

  report.step = "open launch.html; expect smartgate's login page";
  await page.goto(`${env.APP_URL}/launch.html`);
  let at = await firstOf(page, ["#login", "#error:not(:empty)", "#consent", "#patient-search"]);
  if (at !== "#login") throw new Error(`expected the login page (#login), found ${at}`);
  report.login = { url: pathOf(page.url()) };

  report.step = "sign in as the demo patient";
  await page.fill("#login input[name=username]", env.USERNAME);
  await page.fill("#login input[name=password]", env.PASSWORD);
  await Promise.all([
    page.waitForNavigation({ timeout: stepTimeout }),
    page.click('#login button[name=action][value=login]'),
  ]);
  at = await firstOf(page, ["#consent", "#patient-search", "#login", "#result:not(:empty)", "#error:not(:empty)"]);
  if (at === "#patient-search") throw new Error("the patient user was shown the patient picker; a patient user launches with their own record");
  if (at !== "#consent") throw new Error(`expected the consent page (#consent) after signing in, found ${at}`);

  report.step = "read the consent page";
  report.consent = {
    url: pathOf(page.url()),
    scopes: await page.$$eval("#consent input[type=checkbox][name=scope]", (els) => els.map((e) => ({ value: e.value, checked: e.checked }))),
    text: await text(page),
  };

  report.step = "approve on the consent page";
  await Promise.all([
    page.waitForNavigation({ timeout: stepTimeout }),
    page.click('#consent button[name=decision][value=approve]'),
  ]);

  report.step = "wait for the app to read the patient";
  at = await firstOf(page, ["#result:not(:empty)", "#error:not(:empty)"]);
  report.app = {
    url: pathOf(page.url()),
    result: await page.textContent("#result"),
    error: await page.textContent("#error"),
    details: JSON.parse((await page.textContent("#details")) || "null"),
  };
  if (at !== "#result:not(:empty)") throw new Error(`the app reported an error: ${report.app.error}`);
  report.step = "done";
  report.ok = true;
} catch (e) {
  report.error = String((e && e.stack) || e);
  if (page) {
    report.url = page.url();
    report.pageText = await text(page);
    const file = join(env.ARTIFACT_DIR, "failure.png");
    await page
      .screenshot({ path: file, fullPage: true, timeout: 5000 })
      .then(() => (report.screenshot = file))
      .catch((err) => (report.screenshot = `(no screenshot: ${err})`));
  }
} finally {
  if (context) await context.close().catch(() => {});
}
process.stdout.write(JSON.stringify(report, null, 2) + "\n");
