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

const provider = new Provider(issuer, {
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

const server = provider.listen(port, host, () => {
  console.log(`oidc-provider is ready at ${issuer} (JWKS: ${issuer}/jwks)`);
});
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => server.close(() => process.exit(0)));
}
