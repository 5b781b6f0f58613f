// The walkthrough at /docs/try, clicked through as a newcomer would: Start,
// the authorization URL, sign-in and consent, back at the walkthrough, the
// token request, the FHIR read, and from its last step on to the developer
// portal.
//
// Run by e2e/browser_admin_test.go against `serve --dev`, with lib.mjs's
// variables and USERNAME, PASSWORD (the demo patient).
import { env, newReport, launch, newPage, expect, submit, text, shot, failed, print, pathOf, signIn } from "./lib.mjs";

const report = newReport();
const f = report.facts;

let browser, page;
try {
  browser = await launch();
  page = await newPage(browser, report, "developer");

  report.step = "open /docs/try";
  await page.goto(`${env.ISSUER}/docs/try`);
  await expect(page, "#try-start", ["#try-unavailable"], "the walkthrough");
  await shot(page, report, "try-start");

  report.step = "start: discovery, PKCE and the authorization URL";
  await submit(page, "#try-start-submit");
  await expect(page, "#step-authorize", ["#try-problem"], "after Start");
  f.step = await page.getAttribute("#try", "data-step");
  f.discoveryStatus = await page.getAttribute("#discovery-response", "data-status");
  f.authorizeURL = await page.getAttribute("#authorize-link", "href");
  await shot(page, report, "try-authorize", "#step-authorize");

  report.step = "open the authorization URL; expect the sign-in page";
  await submit(page, "#authorize-link");
  await expect(page, "#login", ["#consent", "#try-problem"], "the authorization URL");
  await shot(page, report, "try-login");

  report.step = "sign in as the demo patient; expect the consent page";
  await signIn(page, env.USERNAME, env.PASSWORD);
  await expect(page, "#consent", ["#patient-search", "#login", "#try-problem"], "after signing in");
  await shot(page, report, "try-consent");

  report.step = "allow; expect the walkthrough's callback step";
  await submit(page, "#consent button[name=decision][value=approve]");
  await expect(page, "#step-callback", ["#try-problem"], "after allowing");
  f.callbackURL = pathOf(page.url());
  f.callbackChecks = await text(page, "#callback-checks");
  await shot(page, report, "try-callback", "#step-callback");

  report.step = "send the token request";
  await submit(page, "#try-token-submit");
  await expect(page, "#step-token", ["#try-problem"], "after the token request");
  f.tokenStatus = await page.getAttribute("#token-response", "data-status");
  f.tokenRequest = await text(page, "#token-request");
  await shot(page, report, "try-token", "#step-token");

  report.step = "read the patient with the token";
  await submit(page, "#try-fhir-submit");
  await expect(page, "#try-done", ["#try-problem"], "after the FHIR read");
  f.fhirStatus = await page.getAttribute("#fhir-response", "data-status");
  f.fhirResourceType = await page.getAttribute("#fhir-response", "data-resource-type");
  f.fhirRequest = await text(page, "#fhir-request");
  f.done = await text(page, "#try-done");
  await shot(page, report, "try-fhir", "#step-fhir");

  report.step = "follow the last step's link to the developer portal";
  await submit(page, '#try-done a[href="/developers"]');
  await expect(page, "#register", [], "the developer portal");
  f.developersURL = pathOf(page.url());
  await shot(page, report, "developers");
  report.step = "done";
  report.ok = true;
} catch (e) {
  await failed(report, page, e);
} finally {
  if (browser) await browser.close().catch(() => {});
}
print(report);
