// op.mjs: a real OpenID Provider (the certified `oidc-provider` package) for
// rolegate's OIDC tests. It listens on loopback, prints one line
// "ready port=<port> issuer=<issuer>" on stdout once it serves, and exits on
// SIGTERM or when stdin closes (so a crashed test leaves no orphan).
//
// Usage: node op.mjs [--port 0] [--host 127.0.0.1]
//          --client-id ID --client-secret S --redirect-uri URI
//          [--auth-methods client_secret_basic,client_secret_post]
//
// Logging in without a browser: devInteractions are off; every interaction
// (login, then consent) is auto-completed by GET /interaction/<uid> for the
// user named in the authorize request's `login_hint` parameter. An unknown or
// missing login_hint ends the flow with error=access_denied at the client's
// redirect_uri. So following redirects with a cookie jar from the authorize
// URL reaches `redirect_uri?code=...&state=...` with no HTML involved.
//
// Users (all claims go into the ID token, conformIdTokenClaims=false):
//   alice  groups ["engineering","admins"], realm_access.roles ["rg-admin","rg-viewer"]
//   bob    groups "staff" (one string),    realm_access.roles ["viewer"]
//   carol  groups ["support"] only at the userinfo endpoint, not in the ID token
//   dave   no groups; group overage (_claim_names/_claim_sources for groups)
//   erin   no groups at all
//
// Key rotation: POST /__admin/rotate makes a new RSA key with a new kid the
// signing key while the old keys stay published in the JWKS (the provider is
// rebuilt in-process; codes, sessions and grants live in the shared memory
// adapter). It answers {"kid": "<new signing kid>", "kids": [all kids]}.
// GET /__admin/kid answers the current signing kid.
//
// Logout (issue 13): RP-initiated logout (end_session_endpoint) and
// Back-Channel Logout 1.0 are enabled. --post-logout-redirect-uri registers
// the client's post_logout_redirect_uris. POST /__admin/client with a JSON
// object merges client metadata (e.g. backchannel_logout_uri, known only once
// the relying party made its connection) and rebuilds the provider; ID
// tokens then carry sid (backchannel_logout_session_required). POST
// /__admin/sign {"header": {...}, "claims": {...}} answers {"token"}: a JWS
// signed RS256 with the current signing key, header defaults
// {alg RS256, kid, typ logout+jwt}, so a test can send hostile logout tokens
// that are still correctly signed by this OP.
import http from 'node:http';
import { generateKeyPairSync, createPrivateKey, sign as cryptoSign } from 'node:crypto';
import Provider from 'oidc-provider';

function parseArgs(argv) {
  const o = { port: 0, host: '127.0.0.1', authMethods: 'client_secret_basic,client_secret_post' };
  for (let i = 2; i < argv.length; i++) {
    const k = argv[i];
    const v = argv[i + 1];
    switch (k) {
      case '--port': o.port = Number(v); i++; break;
      case '--host': o.host = v; i++; break;
      case '--client-id': o.clientId = v; i++; break;
      case '--client-secret': o.clientSecret = v; i++; break;
      case '--redirect-uri': o.redirectUri = v; i++; break;
      case '--auth-methods': o.authMethods = v; i++; break;
      case '--post-logout-redirect-uri': o.postLogout = v; i++; break;
      default: throw new Error(`unknown argument ${k}`);
    }
  }
  for (const need of ['clientId', 'clientSecret', 'redirectUri']) {
    if (!o[need]) throw new Error(`missing --${need.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`);
  }
  return o;
}

// stdout carries only the ready line (the test stops reading after it);
// everything the provider logs goes to stderr.
console.log = console.error;
console.info = console.error;
process.stdout.on('error', () => {});

const opts = parseArgs(process.argv);

const USERS = {
  alice: {
    email: 'alice@example.com', email_verified: true, name: 'Alice Anders',
    groups: ['engineering', 'admins'],
    realm_access: { roles: ['rg-admin', 'rg-viewer'] },
  },
  bob: {
    email: 'bob@example.com', email_verified: false, name: 'Bob Brown',
    groups: 'staff',
    realm_access: { roles: ['viewer'] },
  },
  carol: {
    email: 'carol@example.com', email_verified: true, name: 'Carol Chen',
    userinfoOnly: { groups: ['support'] },
  },
  dave: {
    email: 'dave@example.com', email_verified: true, name: 'Dave Davis',
    _claim_names: { groups: 'src1' },
    _claim_sources: { src1: { endpoint: 'https://graph.example.com/v1/me/getMemberObjects' } },
  },
  erin: { email: 'erin@example.com', email_verified: true, name: 'Erin Evans' },
};

let keyCounter = 0;
function newSigningKey() {
  keyCounter += 1;
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: `rsa-${keyCounter}`, alg: 'RS256', use: 'sig' };
}

const keys = [newSigningKey()];
const clientExtra = {};

function b64u(buf) {
  return Buffer.from(buf).toString('base64url');
}

function signJws(header, claims) {
  const h = { alg: 'RS256', kid: keys[0].kid, typ: 'logout+jwt', ...header };
  const input = `${b64u(JSON.stringify(h))}.${b64u(JSON.stringify(claims))}`;
  const key = createPrivateKey({ key: keys[0], format: 'jwk' });
  return `${input}.${b64u(cryptoSign('sha256', Buffer.from(input), key))}`;
}

async function readJson(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : {};
}

function buildProvider(issuer) {
  const config = {
    clients: [{
      client_id: opts.clientId,
      client_secret: opts.clientSecret,
      redirect_uris: [opts.redirectUri],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: opts.authMethods.split(',')[0],
      ...(opts.postLogout ? { post_logout_redirect_uris: [opts.postLogout] } : {}),
      ...clientExtra,
    }],
    clientAuthMethods: opts.authMethods.split(','),
    jwks: { keys },
    cookies: { keys: ['rolegate-test-op-cookie-key-not-secret'] },
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      rpInitiatedLogout: { enabled: true },
      backchannelLogout: { enabled: true },
    },
    conformIdTokenClaims: false,
    // The back-channel POST goes to rolegate on loopback, which the
    // provider's SSRF guard (special-use addresses) refuses: this test OP
    // lives on loopback only, so its outgoing requests skip that guard.
    fetch: (url, options) => {
      const { dispatcher, ...rest } = options;
      return globalThis.fetch(url, rest);
    },
    claims: {
      openid: ['sub', 'groups', 'realm_access'],
      email: ['email', 'email_verified'],
      profile: ['name'],
    },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    async findAccount(ctx, sub) {
      const u = USERS[sub];
      if (!u) return undefined;
      return {
        accountId: sub,
        async claims(use) {
          const { userinfoOnly, ...rest } = u;
          const c = { sub, ...rest };
          if (use === 'userinfo' && userinfoOnly) Object.assign(c, userinfoOnly);
          return c;
        },
      };
    },
    renderError(ctx, out) {
      ctx.type = 'json';
      ctx.body = out;
    },
  };
  const p = new Provider(issuer, config);
  p.proxy = false;
  p.on('backchannel.error', (ctx, err, client) => console.error(`backchannel.error ${client.clientId}: ${err.message}`));
  p.on('backchannel.success', (ctx, client) => console.error(`backchannel.success ${client.clientId}`));
  return p;
}

async function interaction(provider, req, res) {
  const details = await provider.interactionDetails(req, res);
  const { prompt, params, session } = details;
  if (prompt.name === 'login') {
    // a user's name, or an email whose local part is one (what a sign-in
    // page's work-email form passes on as login_hint)
    const hint = params.login_hint && (USERS[params.login_hint] ? params.login_hint
                                                                 : params.login_hint.split('@')[0]);
    if (!hint || !USERS[hint]) {
      await provider.interactionFinished(req, res, {
        error: 'access_denied', error_description: 'unknown login_hint',
      }, { mergeWithLastSubmission: false });
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId: hint } },
      { mergeWithLastSubmission: false });
    return;
  }
  if (prompt.name === 'consent') {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const d = prompt.details;
    if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
    if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
    if (d.missingResourceScopes) {
      for (const [indicator, scopes] of Object.entries(d.missingResourceScopes)) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
    }
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } },
      { mergeWithLastSubmission: true });
    return;
  }
  res.writeHead(400, { 'content-type': 'text/plain' });
  res.end(`unsupported prompt ${prompt.name}\n`);
}

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

let provider;
let handler;
const server = http.createServer(async (req, res) => {
  try {
    const path = req.url.split('?')[0];
    if (path.startsWith('/interaction/')) {
      await interaction(provider, req, res);
    } else if (path === '/__admin/rotate' && req.method === 'POST') {
      keys.unshift(newSigningKey());
      provider = buildProvider(provider.issuer);
      handler = provider.callback();
      json(res, 200, { kid: keys[0].kid, kids: keys.map((k) => k.kid) });
    } else if (path === '/__admin/client' && req.method === 'POST') {
      Object.assign(clientExtra, await readJson(req));
      provider = buildProvider(provider.issuer);
      handler = provider.callback();
      json(res, 200, clientExtra);
    } else if (path === '/__admin/sign' && req.method === 'POST') {
      const body = await readJson(req);
      json(res, 200, { token: signJws(body.header || {}, body.claims || {}) });
    } else if (path === '/__admin/kid') {
      json(res, 200, { kid: keys[0].kid });
    } else {
      handler(req, res);
    }
  } catch (e) {
    if (!res.headersSent) json(res, 500, { error: 'server_error', error_description: String(e.message) });
    else res.end();
  }
});

server.listen(opts.port, opts.host, () => {
  const { port } = server.address();
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  const issuer = `http://${host}:${port}`;
  provider = buildProvider(issuer);
  handler = provider.callback();
  process.stdout.write(`ready port=${port} issuer=${issuer}\n`);
});

const stop = () => { server.close(); process.exit(0); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.resume();
