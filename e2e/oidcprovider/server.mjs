// A real, independent OpenID Connect provider for smartgate's end-to-end
// tests: the certified Node.js oidc-provider (9.13.3), on 127.0.0.1 and a
// free port, with its in-memory adapter and its development interactions
// (real HTML login and consent pages, a "Cancel" link that answers
// access_denied). It is configured by one JSON document in $OP_CONFIG:
//
//   {
//     "clients":  [ client metadata, as oidc-provider takes it ],
//     "accounts": { "<login>": { "email": ..., "email_verified": ..., "fhirUser": ..., "groups": [...], ... } },
//     "claimsInIdToken": false,   // true: the profile claims go into the id_token too
//                                  // (as Keycloak does); false: only UserInfo has them
//                                  // (oidc-provider's default for the code flow)
//     "resource": {                // optional: JWT access tokens for a resource server
//       "audience": "http://127.0.0.1:8080/fhir",
//       "scopes": "patient/*.rs system/Patient.rs",
//       "alg": "ES256",                      // or RS256
//       "ttl": 3600,
//       "defaultClients": ["client-id"],     // these get the audience without a resource parameter
//       "accountClaims": ["fhirUser", "patient"],   // copied from the account into user tokens
//       "extraClaims": { "patient": "123" }         // added to every such token
//     }
//   }
//
// Any login name signs in on the development login page (its password is
// not checked); the account's claims are those listed under its name, and
// an unlisted name has only "sub". The scopes openid, email, profile and
// offline_access exist; profile carries name, preferred_username, fhirUser,
// groups and roles (so a relying party asking for the default
// "openid email profile" receives every mapped claim).
//
// With "resource" set, resource indicators (RFC 8707) are on: an access
// token for that audience is an RFC 9068 JWT (typ at+jwt) signed with the
// provider's key of "alg", for the authorization code and the
// client_credentials grants.
//
// It prints one JSON line {"issuer": "..."} on standard output once it
// listens, and stops on SIGTERM.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import Provider, { errors } from 'oidc-provider';

const host = '127.0.0.1';
const cfg = JSON.parse(process.env.OP_CONFIG ?? '{}');

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

const port = Number(cfg.port ?? 0) || await freePort();
const issuer = `http://${host}:${port}`;

function jwk(type, options, alg) {
  const { privateKey } = generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: 'jwk' }), alg, use: 'sig', kid: `${alg.toLowerCase()}-${randomBytes(4).toString('hex')}` };
}

const accounts = cfg.accounts ?? {};
const findAccount = (_ctx, id) => ({
  accountId: id,
  claims: () => ({ ...(accounts[id] ?? {}), sub: id }),
});

const resource = cfg.resource;
const resourceIndicators = resource ? {
  enabled: true,
  defaultResource: (_ctx, client, oneOf) => {
    if (oneOf) return oneOf;
    return (resource.defaultClients ?? []).includes(client.clientId) ? resource.audience : undefined;
  },
  useGrantedResource: () => true,
  getResourceServerInfo: (_ctx, indicator) => {
    if (indicator !== resource.audience) {
      throw new errors.InvalidTarget(`unknown resource ${indicator}`);
    }
    return {
      scope: resource.scopes ?? '',
      audience: resource.audience,
      accessTokenTTL: resource.ttl ?? 3600,
      accessTokenFormat: 'jwt',
      jwt: { sign: { alg: resource.alg ?? 'ES256' } },
    };
  },
} : { enabled: false };

const provider = new Provider(issuer, {
  findAccount,
  clients: cfg.clients ?? [],
  // The resource server's scopes are the provider's too, so that clients
  // may list them in their scope metadata.
  scopes: ['openid', 'offline_access', 'email', 'profile', ...(resource?.scopes ?? '').split(' ').filter(Boolean)],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username', 'fhirUser', 'groups', 'roles'],
  },
  conformIdTokenClaims: !cfg.claimsInIdToken,
  pkce: { required: () => true },
  enabledJWA: {
    clientAuthSigningAlgValues: ['RS256', 'ES256', 'ES384', 'EdDSA'],
    idTokenSigningAlgValues: ['RS256', 'ES256', 'HS256'],
  },
  jwks: {
    keys: [
      jwk('rsa', { modulusLength: 2048 }, 'RS256'),
      jwk('ec', { namedCurve: 'P-256' }, 'ES256'),
    ],
  },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  extraTokenClaims: (_ctx, token) => {
    if (!resource || token.kind === 'RefreshToken') return undefined;
    const out = { ...(resource.extraClaims ?? {}) };
    const claims = token.accountId ? (accounts[token.accountId] ?? {}) : {};
    for (const name of resource.accountClaims ?? []) {
      if (claims[name] !== undefined) out[name] = claims[name];
    }
    return out;
  },
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators,
  },
});

const server = provider.listen(port, host, () => {
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => server.close(() => process.exit(0)));
}
