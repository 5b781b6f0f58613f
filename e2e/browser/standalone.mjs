// A SMART standalone patient launch in a real browser: Debian's Chromium,
// driven by playwright-core, opens the test app's launch.html (fhirclient),
// signs in on smartgate's login page, approves on its consent page and waits
// for the app's index.html to show the patient it read with its token.
//
// Run by e2e/browser_test.go, which starts smartgate and the app and passes,
// besides lib.mjs's variables:
//   APP_URL             the app's origin, e.g. http://127.0.0.1:PORT
//   USERNAME, PASSWORD  the demo patient user
//
// It prints one JSON report on stdout and exits 0 whatever happened, so that
// the Go test can judge the report and show the page and console on failure.
import { env, newReport, launch, newPage, firstOf, submit, signIn, failed, print, pathOf, appResult } from "./lib.mjs";

const report = {
  ...newReport(),
  authorize: null, // the query of the authorization request
  login: null,
  consent: null,
  app: null,
};

let browser, page;
try {
  browser = await launch();
  page = await newPage(browser, report, "", (u) => {
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
  await signIn(page, env.USERNAME, env.PASSWORD);
  at = await firstOf(page, ["#consent", "#patient-search", "#login", "#result:not(:empty)", "#error:not(:empty)"]);
  if (at === "#patient-search") throw new Error("the patient user was shown the patient picker; a patient user launches with their own record");
  if (at !== "#consent") throw new Error(`expected the consent page (#consent) after signing in, found ${at}`);

  report.step = "read the consent page";
  report.consent = {
    url: pathOf(page.url()),
    scopes: await page.$$eval("#consent input[type=checkbox][name=scope]", (els) => els.map((e) => ({ value: e.value, checked: e.checked }))),
    text: await page.evaluate(() => (document.body ? document.body.innerText : "")),
  };

  report.step = "approve on the consent page";
  await submit(page, "#consent button[name=decision][value=approve]");

  report.step = "wait for the app to read the patient";
  const shown = await appResult(page);
  report.app = shown.app;
  if (shown.failed) throw new Error(`the app reported an error: ${report.app.error}`);
  report.step = "done";
  report.ok = true;
} catch (e) {
  await failed(report, page, e);
} finally {
  if (browser) await browser.close().catch(() => {});
}
print(report);
