// A patient revokes an app at /account/apps, and the app's access token
// stops working. The patient launches the test app (fhirclient in
// launch.html: sign-in, consent, a Patient read), then opens "your apps"
// in the same browser (still signed in) and clicks "Revoke access for
// APP_NAME". The script then sends the app's access token to the FHIR API
// until it is refused, and reports how long that took.
//
// Run by e2e/browser_admin_test.go, which starts smartgate and the app and
// passes, besides lib.mjs's variables:
//   APP_URL, APP_NAME    the app's origin and its registered name
//   USERNAME, PASSWORD   the demo patient
//   PATIENT              the patient's id (their own record)
//   REVOKE_WAIT_MS       how long the token may keep working after the revoke
import { env, newReport, launch, newPage, expect, firstOf, submit, text, shot, failed, print, pathOf, signIn } from "./lib.mjs";

const report = newReport();
const f = report.facts;
const revokeWait = Number(env.REVOKE_WAIT_MS || 2000);

// read sends the app's token to the FHIR API, as the app would, from Node
// (the browser's answer would be the same; Node sees the headers).
async function read(token) {
  const r = await fetch(`${env.ISSUER}/fhir/Patient/${env.PATIENT}`, {
    headers: { Authorization: `Bearer ${token}`, Accept: "application/fhir+json" },
  });
  await r.arrayBuffer();
  return { status: r.status, wwwAuthenticate: r.headers.get("www-authenticate") || "" };
}

let browser, page;
try {
  browser = await launch();
  page = await newPage(browser, report, "patient");

  report.step = "open launch.html; expect smartgate's sign-in page";
  await page.goto(`${env.APP_URL}/launch.html`);
  await expect(page, "#login", ["#error:not(:empty)", "#consent", "#patient-search"], "the launch");
  f.loginText = await text(page, "main");
  await shot(page, report, "login");

  report.step = "sign in as the demo patient; expect the consent page";
  await signIn(page, env.USERNAME, env.PASSWORD);
  await expect(page, "#consent", ["#patient-search", "#login", "#result:not(:empty)", "#error:not(:empty)"], "after signing in");
  f.consentText = await text(page, "main");
  await shot(page, report, "consent");

  report.step = "allow; wait for the app to read the patient";
  await submit(page, "#consent button[name=decision][value=approve]");
  const at = await firstOf(page, ["#result:not(:empty)", "#error:not(:empty)"]);
  f.appResult = await page.textContent("#result");
  if (at !== "#result:not(:empty)") throw new Error(`the app reported an error: ${await page.textContent("#error")}`);
  const token = await page.evaluate(() => window.smartClient.state.tokenResponse.access_token);
  f.accessToken = token;

  report.step = "the app's token reads the patient";
  f.before = await read(token);
  if (f.before.status !== 200) throw new Error(`before revoking, the app's token got HTTP ${f.before.status} (${f.before.wwwAuthenticate})`);

  report.step = "open /account/apps; find the app";
  await page.goto(`${env.ISSUER}/account/apps`);
  const revoke = page.getByRole("button", { name: `Revoke access for ${env.APP_NAME}`, exact: true });
  await revoke.waitFor();
  f.accountAppsURL = pathOf(page.url());
  f.listed = await text(page, "main");
  await shot(page, report, "account-apps");

  report.step = "revoke the app";
  await Promise.all([page.waitForNavigation(), revoke.click()]);
  const revokedAt = Date.now();
  f.notice = await text(page, "main .notice");
  f.stillListed = await page.getByRole("button", { name: `Revoke access for ${env.APP_NAME}`, exact: true }).count();

  report.step = `the app's token is refused within ${revokeWait} ms`;
  // Poll before the screenshot, so that the time measured is the server's.
  const tries = [];
  for (;;) {
    const r = await read(token);
    const ms = Date.now() - revokedAt;
    tries.push(`${ms} ms: HTTP ${r.status}`);
    if (r.status !== 200) {
      f.after = { ...r, ms };
      break;
    }
    if (ms > revokeWait) {
      f.after = { ...r, ms };
      break;
    }
    await new Promise((res) => setTimeout(res, 100));
  }
  f.tries = tries;
  await shot(page, report, "account-apps-revoked");
  report.step = "done";
  report.ok = true;
} catch (e) {
  await failed(report, page, e);
} finally {
  if (browser) await browser.close().catch(() => {});
}
print(report);
