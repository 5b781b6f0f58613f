// oidc-provider 9.13.3 as a benchmark peer: one provider on 127.0.0.1 and
// the port in $PORT (default 3000; 0 picks a free one), default in-memory
// adapter, one client. It prints "oidc-provider is ready at URL" once
// listening.
// Its signing keys mirror smartgate's (one EC P-256 key for ES256, one RSA
// 2048 key for RS256), generated at start, so both servers' JWKS documents
// hold the same kinds of key. Its JWKS is at /jwks.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import Provider from 'oidc-provider';

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

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'bench',
    client_secret: 'bench-secret-0123456789abcdef0123456789abcdef',
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
  }],
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
