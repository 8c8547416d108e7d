// A real OpenID Provider (node-oidc-provider v9) for jwt-authz's end-to-end tests.
//
// It issues RFC 9068 JWT access tokens (`typ: at+jwt`) through the client_credentials grant with
// RFC 8707 resource indicators, signed with a fresh RSA key whose `kid` is chosen on the command
// line, so a restart on the same port with another `--kid` is a signing-key rotation.
// It listens on loopback only and must never be used outside tests: client secrets are fixed.
//
// Usage:
//   node provider.mjs [--port N] [--issuer URL] [--kid NAME] [--key FILE]
//                     [--client-id ID] [--client-secret SECRET]
//   env: OP_PORT, OP_ISSUER, OP_KID, OP_KEY_FILE, OP_CLIENT_ID, OP_CLIENT_SECRET
//
//   --port 0 (the default) picks a free port; the issuer then defaults to http://127.0.0.1:<port>.
//   --key FILE signs with the private RSA/EC JWK in FILE instead of generating one.
// Prints `READY <issuer>` on stdout once it accepts connections.
//
// Resources (RFC 8707 `resource` parameter → token `aud`):
//   https://api.jwt-authz.test             aud = itself, TTL 300 s   (jwt-authz accepts it)
//   https://api.jwt-authz.test/short-lived aud = https://api.jwt-authz.test, TTL 1 s (expiry tests)
//   https://other.jwt-authz.test           aud = itself, TTL 300 s   (jwt-authz must reject it)
//
// Example:
//   node provider.mjs --port 8999 --kid key-1 &
//   curl -s -u e2e-client:e2e-secret -d grant_type=client_credentials \
//        -d resource=https://api.jwt-authz.test http://127.0.0.1:8999/token

import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

export const API_AUDIENCE = 'https://api.jwt-authz.test';
export const RESOURCES = {
  [API_AUDIENCE]: { audience: API_AUDIENCE, accessTokenTTL: 300 },
  [`${API_AUDIENCE}/short-lived`]: { audience: API_AUDIENCE, accessTokenTTL: 1 },
  'https://other.jwt-authz.test': { audience: 'https://other.jwt-authz.test', accessTokenTTL: 300 },
};

function options() {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: process.env.OP_PORT ?? '0' },
      issuer: { type: 'string', default: process.env.OP_ISSUER },
      kid: { type: 'string', default: process.env.OP_KID ?? 'e2e-key-1' },
      key: { type: 'string', default: process.env.OP_KEY_FILE },
      'client-id': { type: 'string', default: process.env.OP_CLIENT_ID ?? 'e2e-client' },
      'client-secret': { type: 'string', default: process.env.OP_CLIENT_SECRET ?? 'e2e-secret' },
    },
    strict: true,
  });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`--port must be an integer in 0..65535, got ${values.port}`);
  }
  return { ...values, port };
}

// The private signing JWK: read from --key, or a fresh RSA key named --kid.
function signingKey({ key, kid }) {
  if (key) {
    const jwk = JSON.parse(readFileSync(key, 'utf8'));
    return { use: 'sig', ...jwk, kid: jwk.kid ?? kid };
  }
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid, use: 'sig', alg: 'RS256' };
}

function configuration(opts) {
  return {
    jwks: { keys: [signingKey(opts)] },
    clients: [{
      client_id: opts['client-id'],
      client_secret: opts['client-secret'],
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    scopes: ['read', 'write'],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // A token request without `resource` gets no JWT; the tests always name one.
        defaultResource: (_ctx, _client, oneOf) => oneOf,
        useGrantedResource: () => false,
        getResourceServerInfo: (_ctx, resourceIndicator, client) => {
          const server = RESOURCES[resourceIndicator];
          if (!server || client.clientId !== opts['client-id']) {
            throw new errors.InvalidTarget(`unknown resource ${resourceIndicator}`);
          }
          return { ...server, scope: 'read write', accessTokenFormat: 'jwt' };
        },
      },
    },
    ttl: {
      ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? 300,
    },
    cookies: { keys: ['jwt-authz-e2e-only'] },
  };
}

function main() {
  const opts = options();
  let handler = (_req, res) => { res.statusCode = 503; res.end(); };
  const server = createServer((req, res) => handler(req, res));

  server.on('error', (err) => {
    console.error(`provider: cannot listen on 127.0.0.1:${opts.port}: ${err.message}`);
    process.exit(1);
  });
  server.listen(opts.port, '127.0.0.1', () => {
    const { port } = server.address();
    const issuer = opts.issuer ?? `http://127.0.0.1:${port}`;
    const provider = new Provider(issuer, configuration(opts));
    provider.on('server_error', (_ctx, err) => console.error('provider: server_error', err));
    provider.on('grant.error', (_ctx, err) => console.error('provider: grant.error', err.message));
    // One line per request on stderr: shows when jwt-authz fetches discovery and keys.
    provider.use(async (ctx, next) => {
      await next();
      console.error(`provider: ${ctx.method} ${ctx.path} -> ${ctx.status}`);
    });
    handler = provider.callback();
    console.log(`READY ${issuer}`);
    console.error(`provider: listening on 127.0.0.1:${port}, issuer ${issuer}, kid ${opts.key ? '(from --key)' : opts.kid}`);
  });

  const stop = (signal) => {
    console.error(`provider: ${signal}, closing`);
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  // Never outlive the test that started us, even if it was killed without cleaning up.
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) stop('parent exited');
  }, 1000).unref();
}

main();
