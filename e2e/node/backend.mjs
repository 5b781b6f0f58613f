// SMART Backend Services against smartgate with third-party relying-party
// code: openid-client (an OpenID Certified RP library) discovers the server
// from its RFC 8414 metadata and authenticates with private_key_jwt; jose
// signs an assertion by hand that is posted with fetch.
//
// Environment:
//   ISSUER      the server's issuer, e.g. http://127.0.0.1:8080
//   CLIENT_ID   a client registered with private_key_jwt and both keys below
//   RS384_KEY   the RS384 private key: PKCS#8 PEM or a JWK (JSON)
//   RS384_KID   its kid
//   ES384_KEY   the ES384 private key: PKCS#8 PEM or a JWK (JSON)
//   ES384_KID   its kid
//   SCOPE       the scope to request, e.g. "system/Patient.rs"
//
// It prints one JSON object: {"metadata": {...}, "results": [...]} where
// each result is {name, ok, status, scope, access_token, expires_in,
// token_type, error, error_description}. It exits 0 whenever it could run
// every case (the Go test judges the results), 1 on a setup failure.

import * as client from 'openid-client';
import { SignJWT, importJWK, importPKCS8 } from 'jose';
import { randomUUID } from 'node:crypto';

function env(name) {
  const v = process.env[name];
  if (!v) {
    throw new Error(`environment variable ${name} is required`);
  }
  return v;
}

async function importKey(text, alg) {
  const t = text.trim();
  if (t.startsWith('{')) {
    return importJWK(JSON.parse(t), alg);
  }
  return importPKCS8(t, alg);
}

// outcome runs one token request and describes how it ended.
async function outcome(name, fn) {
  try {
    const r = await fn();
    return {
      name,
      ok: true,
      status: r.status ?? 200,
      scope: r.scope,
      access_token: r.access_token,
      expires_in: r.expires_in,
      token_type: r.token_type,
    };
  } catch (err) {
    const out = {
      name,
      ok: false,
      status: err.status ?? err.response?.status ?? 0,
      error: err.error ?? err.code ?? err.name,
      error_description: err.error_description ?? err.message,
    };
    // A 401 with WWW-Authenticate becomes a WWWAuthenticateChallengeError
    // whose response body is still unread: take the RFC 6749 error from it.
    if (err.response && !err.response.bodyUsed && typeof err.response.json === 'function') {
      try {
        const body = await err.response.json();
        out.library_error = out.error;
        out.error = body.error ?? out.error;
        out.error_description = body.error_description ?? out.error_description;
      } catch {
        // not JSON: keep the library's description
      }
    }
    return out;
  }
}

async function main() {
  const issuer = new URL(env('ISSUER'));
  const clientId = env('CLIENT_ID');
  const scope = env('SCOPE');
  const keys = [
    { alg: 'RS384', kid: env('RS384_KID'), key: await importKey(env('RS384_KEY'), 'RS384') },
    { alg: 'ES384', kid: env('ES384_KID'), key: await importKey(env('ES384_KEY'), 'ES384') },
  ];

  // RFC 8414 discovery (algorithm "oauth2": /.well-known/oauth-authorization-server).
  // The dev server is http on loopback, hence allowInsecureRequests.
  const discover = (auth) =>
    client.discovery(issuer, clientId, undefined, auth, {
      algorithm: 'oauth2',
      execute: [client.allowInsecureRequests],
      timeout: 10,
    });
  const probe = await discover(client.None());
  const metadata = probe.serverMetadata();
  const tokenEndpoint = metadata.token_endpoint;

  const results = [];
  for (const { alg, kid, key } of keys) {
    // SMART Backend Services: aud is the token endpoint URL. openid-client
    // (oauth4webapi) defaults aud to the issuer, so set it.
    const config = await discover(
      client.PrivateKeyJwt({ key, kid }, {
        [client.modifyAssertion]: (header, payload) => {
          payload.aud = tokenEndpoint;
          header.typ = 'JWT';
        },
      }),
    );
    results.push(await outcome(`openid-client ${alg}`, () => client.clientCredentialsGrant(config, { scope })));
  }

  // openid-client's default assertion (aud = the issuer identifier, as
  // draft-ietf-oauth-rfc7523bis recommends), to record how smartgate answers.
  {
    const { kid, key } = keys[1];
    const config = await discover(client.PrivateKeyJwt({ key, kid }));
    results.push(await outcome('openid-client default aud', () => client.clientCredentialsGrant(config, { scope })));
  }

  // An assertion signed by hand with jose, posted with fetch.
  for (const { alg, kid, key } of keys) {
    results.push(
      await outcome(`jose SignJWT ${alg}`, async () => {
        const assertion = await new SignJWT({})
          .setProtectedHeader({ alg, kid, typ: 'JWT' })
          .setIssuer(clientId)
          .setSubject(clientId)
          .setAudience(tokenEndpoint)
          .setIssuedAt()
          .setExpirationTime('4m')
          .setJti(randomUUID())
          .sign(key);
        const res = await fetch(tokenEndpoint, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
          body: new URLSearchParams({
            grant_type: 'client_credentials',
            scope,
            client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
            client_assertion: assertion,
          }),
          signal: AbortSignal.timeout(10_000),
        });
        const body = await res.json();
        if (!res.ok) {
          const err = new Error(body.error_description ?? `HTTP ${res.status}`);
          Object.assign(err, { status: res.status, error: body.error, error_description: body.error_description });
          throw err;
        }
        return { ...body, status: res.status };
      }),
    );
  }

  process.stdout.write(JSON.stringify({ metadata, results }) + '\n');
}

main().catch((err) => {
  process.stderr.write(`backend.mjs: ${err?.stack ?? err}\n`);
  if (err?.cause) {
    process.stderr.write(`cause: ${JSON.stringify(err.cause)}\n`);
  }
  process.exit(1);
});
