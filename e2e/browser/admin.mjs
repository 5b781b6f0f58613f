// An administrator approves a pending app in the admin console, then that
// app (fhirclient in launch.html) completes a standalone launch for a
// practitioner: sign-in, patient picker, consent, and a read of the
// picked Patient. The admin and the practitioner each have their own
// browser context (their own cookies), as two people at two browsers.
//
// Run by e2e/browser_admin_test.go, which registers the app (pending) and
// passes, besides lib.mjs's variables:
//   ADMIN_USERNAME, ADMIN_PASSWORD  the demo admin
//   CLIENT_ID, APP_NAME             the pending app
//   APP_URL                         the app's origin
//   USERNAME, PASSWORD              the practitioner
//   PATIENT_SEARCH, PATIENT         the name searched in the picker, the id picked
import { env, newReport, launch, newPage, expect, firstOf, submit, text, shot, failed, print, pathOf, appResult, signIn } from "./lib.mjs";

const report = newReport();
const f = report.facts;
// Client ids are opaque: match ids by attribute, never as CSS identifiers.
const byID = (id) => `[id="${id}"]`;

let browser, page;
try {
  browser = await launch();

  report.step = "admin: open /admin/apps; expect the sign-in page";
  page = await newPage(browser, report, "admin");
  await page.goto(`${env.ISSUER}/admin/apps`);
  await expect(page, "#login", ["#admin-nav"], "before signing in");
  f.adminLoginURL = pathOf(page.url());
  f.adminLoginNext = new URL(page.url()).searchParams.get("next");
  await shot(page, report, "admin-login");

  report.step = "admin: sign in";
  await signIn(page, env.ADMIN_USERNAME, env.ADMIN_PASSWORD);
  await expect(page, "#admin-nav", ["#login", "#totp"], "after the admin signed in");
  f.adminAppsURL = pathOf(page.url());

  report.step = "admin: find the app among those waiting for approval";
  const row = byID(`pending-${env.CLIENT_ID}`);
  await expect(page, `#pending-apps ${row}`, ["#no-pending"], "the apps page");
  f.pendingRow = await text(page, row);
  await shot(page, report, "admin-apps");

  report.step = "admin: approve the app";
  await submit(page, `${byID(`approve-${env.CLIENT_ID}`)} button[name=action][value=approve]`);
  await expect(page, "#admin-notice", ["#admin-error"], "after approving");
  f.approvedURL = pathOf(page.url());
  f.notice = await text(page, "#admin-notice");
  f.status = await text(page, "#app-status-value");
  await shot(page, report, "admin-app");

  report.step = "practitioner: open the app's launch.html; expect smartgate's sign-in page";
  page = await newPage(browser, report, "practitioner");
  await page.goto(`${env.APP_URL}/launch.html`);
  await expect(page, "#login", ["#error:not(:empty)", "#consent", "#patient-search"], "the launch");
  f.loginText = await text(page, "main");
  await shot(page, report, "clinician-login");

  report.step = "practitioner: sign in; expect the patient picker";
  await signIn(page, env.USERNAME, env.PASSWORD);
  await expect(page, "#patient-search", ["#consent", "#login", "#result:not(:empty)", "#error:not(:empty)"], "after the practitioner signed in");
  f.pickerURL = pathOf(page.url());
  await shot(page, report, "select-patient");

  report.step = `practitioner: search the picker for ${env.PATIENT_SEARCH} and open ${env.PATIENT}`;
  await page.fill("#patient-search #name", env.PATIENT_SEARCH);
  await submit(page, "#patient-search button[type=submit]");
  const pick = `form.pick button[name=patient][value="${env.PATIENT}"]`;
  await firstOf(page, [pick]);
  f.offered = await page.$$eval("form.pick button[name=patient]", (els) => els.map((e) => e.value));
  await submit(page, pick);
  await expect(page, "#consent", ["#patient-search", "#result:not(:empty)", "#error:not(:empty)"], "after picking a patient");

  report.step = "practitioner: read and approve the consent page";
  f.consentURL = pathOf(page.url());
  f.consentText = await text(page, "main");
  f.consentScopes = await page.$$eval("#consent input[type=checkbox][name=scope]", (els) => els.map((e) => ({ value: e.value, checked: e.checked })));
  await shot(page, report, "clinician-consent");
  await submit(page, "#consent button[name=decision][value=approve]");

  report.step = "practitioner: wait for the app to read the patient";
  const shown = await appResult(page);
  f.app = shown.app;
  if (shown.failed) throw new Error(`the app reported an error: ${f.app.error}`);
  report.step = "done";
  report.ok = true;
} catch (e) {
  await failed(report, page, e);
} finally {
  if (browser) await browser.close().catch(() => {});
}
print(report);
