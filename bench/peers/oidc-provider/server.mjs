// oidc-provider 9.13.3 as a benchmark peer: one provider on 127.0.0.1 and
// the port in $PORT (default 3000; 0 picks a free one), its in-memory
// adapter, one client (plus those in the JSON array of client metadata in
// the file $BENCH_CLIENTS, if set: bench/peers.sh adds a resource server
// and private_key_jwt clients). It prints "oidc-provider is ready at URL"
// once listening.
//
// For the token benchmark (bench/peers.sh): client_credentials and
// introspection are on; client assertions may also be signed RS384 and
// ES384; client_credentials tokens live an hour (so a pool of tokens minted
// before the runs stays active); the scope system/Patient.rs exists. The
// in-memory adapter is the provider's own (lib/adapters/memory_adapter.js),
// but its LRU store is given room for 200,000 entries instead of 1,000 (so
// the provider no longer prints its in-memory adapter warning): with
// 1,000, a pool of 10,000 tokens would be evicted before it is introspected
// (and introspection would answer {"active": false} without any lookup).
// Its signing keys mirror smartgate's (one EC P-256 key for ES256, one RSA
// 2048 key for RS256), generated at start, so both servers' JWKS documents
// hold the same kinds of key. Its JWKS is at /jwks.
//
// For the browser-flow benchmark (bench/peers.sh modes authcode and
// refresh): one account, "bench-user", and an interaction endpoint,
// /interaction/:uid, that stands in for the login and consent pages and
// accepts at once: a login prompt signs bench-user in (remember: true, so
// a session cookie is set), a consent prompt grants the requested scopes
// and claims in a Grant kept for the session and client. The load
// generator goes through it once per client before it measures anything;
// after that, the provider's default loadExistingGrant finds the session's
// grant and /auth answers with the code at once, with no interaction.
// Two helpers differ from the defaults, so that an existing session and
// grant can go straight to a code with a refresh token:
//   - issueRefreshToken: a refresh token for every client allowed the
//     refresh_token grant. By default one is issued only with
//     offline_access, and the provider drops offline_access from any
//     request without prompt=consent (OpenID Connect Core §11), and
//     prompt=consent shows the consent interaction on every flow.
//   - expiresWithSession: never, as with offline_access (by default a
//     refresh token without offline_access ends with the session, which
//     the refresh grant would look up each time).
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import Provider from 'oidc-provider';
import MemoryAdapter from 'oidc-provider/lib/adapters/memory_adapter.js';
import LRU from 'oidc-provider/lib/helpers/lru.js';

const host = '127.0.0.1'; // loopback only

// The issuer names the port, so a free port is found before the provider is
// built.
function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const port = Number(process.env.PORT ?? 3000) || await freePort();
const issuer = `http://${host}:${port}`;

function jwk(type, options, alg) {
  const { privateKey } = generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: 'jwk' }), alg, use: 'sig' };
}

// The provider's own in-memory adapter over a larger LRU store (see above).
const memoryStore = new LRU({ maxSize: 200_000 });
const adapter = (model) => new MemoryAdapter(model, memoryStore);

const extraClients = process.env.BENCH_CLIENTS
  ? JSON.parse(readFileSync(process.env.BENCH_CLIENTS, 'utf8'))
  : [];

// The one account of the browser-flow benchmark.
const findAccount = (_ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) });

const provider = new Provider(issuer, {
  findAccount,
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  expiresWithSession: async () => false,
  clients: [{
    client_id: 'bench',
    client_secret: 'bench-secret-0123456789abcdef0123456789abcdef',
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    scope: 'system/Patient.rs',
  }, ...extraClients],
  scopes: ['openid', 'offline_access', 'system/Patient.rs'],
  enabledJWA: {
    clientAuthSigningAlgValues: ['RS256', 'RS384', 'PS256', 'ES256', 'ES384', 'EdDSA'],
  },
  adapter,
  ttl: { ClientCredentials: 3600 },
  jwks: {
    keys: [
      jwk('ec', { namedCurve: 'P-256' }, 'ES256'),
      jwk('rsa', { modulusLength: 2048 }, 'RS256'),
    ],
  },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
  },
});

// /interaction/:uid: accepts every login and consent prompt at once (see
// above). Koa middleware after the provider's own routes.
provider.use(async (ctx, next) => {
  if (!ctx.path.startsWith('/interaction/') || ctx.method !== 'GET') {
    return next();
  }
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const { prompt, params, session } = details;
  let result;
  if (prompt.name === 'login') {
    result = { login: { accountId: 'bench-user', remember: true } };
  } else {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
    if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
    result = { consent: { grantId: await grant.save() } };
  }
  ctx.respond = false; // interactionFinished writes the 303 itself
  await provider.interactionFinished(ctx.req, ctx.res, result, { mergeWithLastSubmission: true });
});

const server = provider.listen(port, host, () => {
  console.log(`oidc-provider is ready at ${issuer} (JWKS: ${issuer}/jwks)`);
});
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => server.close(() => process.exit(0)));
}
