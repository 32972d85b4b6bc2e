// idp.js: an independent SAML 2.0 IdP (the npm package `samlify`, not lasso)
// for rolegate's acceptance tests. It listens on loopback, prints one line
// "ready port=<port>" on stdout once it serves, and exits on SIGTERM or when
// stdin closes (a crashed test leaves no orphan).
//
// Usage: node idp.js --sp-metadata FILE (read at each login) --key FILE --cert FILE --users FILE
//          [--port 0] [--entity-id ID] [--group-attr groups]
//
// GET /metadata             this IdP's metadata (SSO = HTTP-Redirect at /sso)
// GET /sso?SAMLRequest=...&SigAlg=...&Signature=...&user=NAME
//     verifies the SP's signed AuthnRequest (HTTP-Redirect binding) and
//     answers an auto-submitting HTML form that POSTs a signed SAMLResponse
//     (assertion signed, RSA-SHA256) to the SP's ACS for user NAME; its
//     groups come from the users file: {"alice": {"email": "...",
//     "groups": ["a", "b"]}, ...}. An unknown user is a 403.
// Single Logout, HTTP-Redirect (rolegate issue 13):
// GET /slo?SAMLRequest=...   the SP's signed LogoutRequest (SP-initiated):
//     verified, answered with a signed LogoutResponse redirect to the SP
// GET /slo?SAMLResponse=...  the SP's answer to /slo-init: verified, 200
//     "logout response ok" (the test reads it)
// GET /slo-init?user=NAME    IdP-initiated: a signed LogoutRequest for the
//     NameID and SessionIndex of NAME's last login, redirect to the SP
// GET /state                 JSON of the last logout seen (for the tests)
'use strict';
const fs = require('node:fs');
const http = require('node:http');
const crypto = require('node:crypto');
const saml = require('samlify');

// The AuthnRequest is our own rolegate's; schema validation needs a Java or
// libxml validator package: XML well-formedness and the signature are checked.
saml.setSchemaValidator({ validate: () => Promise.resolve('skipped') });

function parseArgs(argv) {
  const o = { port: 0, entityId: 'https://samlify-idp.rolegate.test/metadata', groupAttr: 'groups' };
  for (let i = 2; i < argv.length; i += 2) {
    const k = argv[i];
    const v = argv[i + 1];
    switch (k) {
      case '--port': o.port = Number(v); break;
      case '--sp-metadata': o.spMetadata = v; break;
      case '--key': o.key = v; break;
      case '--cert': o.cert = v; break;
      case '--users': o.users = v; break;
      case '--entity-id': o.entityId = v; break;
      case '--group-attr': o.groupAttr = v; break;
      default: throw new Error(`unknown argument ${k}`);
    }
  }
  for (const need of ['spMetadata', 'key', 'cert', 'users']) {
    if (!o[need]) throw new Error(`missing --${need}`);
  }
  return o;
}

const opts = parseArgs(process.argv);
const users = JSON.parse(fs.readFileSync(opts.users, 'utf8'));

function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  }[c]));
}

let idp;
let sp;
const sessions = {};     // email -> { nameId, sessionIndex } of the last login
let lastLogout = null;   // what /slo saw last

function build(port) {
  const base = `http://127.0.0.1:${port}`;
  idp = saml.IdentityProvider({
    entityID: opts.entityId,
    privateKey: fs.readFileSync(opts.key),
    signingCert: fs.readFileSync(opts.cert),
    wantAuthnRequestsSigned: true,
    requestSignatureAlgorithm: 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
    nameIDFormat: ['urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress'],
    singleSignOnService: [{
      Binding: 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect', Location: `${base}/sso`,
    }],
    singleLogoutService: [{
      Binding: 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect', Location: `${base}/slo`,
    }],
    wantLogoutRequestSigned: true,
    wantLogoutResponseSigned: true,
  });
}

// The SP metadata is read at each login: the test writes it once rolegate
// has this IdP's metadata (rolegate publishes its SP metadata only then).
function loadSp() {
  // what we send the SP over HTTP-Redirect is signed
  sp = saml.ServiceProvider({
    metadata: fs.readFileSync(opts.spMetadata),
    wantLogoutRequestSigned: true,
    wantLogoutResponseSigned: true,
  });
}

function isoIn(minutes) {
  return new Date(Date.now() + minutes * 60000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

// The response XML for one login: samlify signs it (the assertion, as our
// SP metadata asks) through customTagReplacement.
function replacement(extract, user) {
  return (template) => {
    const id = `_${crypto.randomBytes(16).toString('hex')}`;
    const acs = sp.entityMeta.getAssertionConsumerService('post');
    const groups = (user.groups || []).map((g) =>
      `<saml:AttributeValue xsi:type="xs:string">${esc(g)}</saml:AttributeValue>`).join('');
    const attrs = '<saml:AttributeStatement>'
      + `<saml:Attribute Name="${esc(opts.groupAttr)}" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:basic">${groups}</saml:Attribute>`
      + `<saml:Attribute Name="email" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:basic"><saml:AttributeValue xsi:type="xs:string">${esc(user.email)}</saml:AttributeValue></saml:Attribute>`
      + '</saml:AttributeStatement>';
    sessions[user.email] = { nameId: user.email, sessionIndex: `${id}s` };
    const authn = `<saml:AuthnStatement AuthnInstant="${isoIn(0)}" SessionIndex="${id}s">`
      + '<saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:Password'
      + '</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>';
    const v = {
      ID: id,
      AssertionID: `_${crypto.randomBytes(16).toString('hex')}`,
      Destination: acs,
      Audience: sp.entityMeta.getEntityID(),
      SubjectRecipient: acs,
      Issuer: idp.entityMeta.getEntityID(),
      IssueInstant: isoIn(0),
      StatusCode: 'urn:oasis:names:tc:SAML:2.0:status:Success',
      ConditionsNotBefore: isoIn(-1),
      ConditionsNotOnOrAfter: isoIn(5),
      SubjectConfirmationDataNotOnOrAfter: isoIn(5),
      NameIDFormat: 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress',
      NameID: user.email,
      InResponseTo: extract.request.id,
      AuthnStatement: '@@AUTHN@@',
      AttributeStatement: '@@ATTRS@@',
    };
    // replaceTagsByValue escapes values: the two XML fragments go in after
    const xml = saml.SamlLib.replaceTagsByValue(template, v)
      .replace('@@AUTHN@@', authn).replace('@@ATTRS@@', attrs);
    return { id, context: xml };
  };
}

async function sso(req, res, url) {
  const raw = url.search.slice(1);
  // the signed octet string: SAMLRequest, RelayState, SigAlg as received
  const parts = raw.split('&').filter((p) => /^(SAMLRequest|RelayState|SigAlg)=/.test(p));
  const query = Object.fromEntries(url.searchParams.entries());
  const name = query.user;
  const user = users[name];
  if (name === undefined) {
    // a browser without ?user=: the IdP's own sign-in page (the signed
    // query stays as received, the name is appended)
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end('<!doctype html><html><body><h1>samlify test IdP</h1><form id="idp-login">'
      + '<label for="user">User name</label> <input id="user" name="user" autocomplete="username">'
      + ' <button type="submit">Sign in</button></form><script>'
      + 'document.getElementById("idp-login").addEventListener("submit", function (e) {'
      + ' e.preventDefault(); location.href = location.href + "&user=" +'
      + ' encodeURIComponent(document.getElementById("user").value); });</script></body></html>\n');
    return;
  }
  if (!user) {
    res.writeHead(403, { 'content-type': 'text/plain' });
    res.end(`unknown user ${name}\n`);
    return;
  }
  loadSp();
  const { extract } = await idp.parseLoginRequest(sp, 'redirect', {
    query, octetString: parts.join('&'),
  });
  const { context, entityEndpoint } = await idp.createLoginResponse(
    sp, { extract }, 'post', user, replacement(extract, user));
  const relay = query.RelayState
    ? `<input type="hidden" name="RelayState" value="${esc(query.RelayState)}">` : '';
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end('<!doctype html><html><body onload="document.forms[0].submit()">'
    + `<form method="post" action="${esc(entityEndpoint)}">`
    + `<input type="hidden" name="SAMLResponse" value="${esc(context)}">${relay}`
    + '<noscript><button type="submit">Continue</button></noscript></form></body></html>\n');
}

// the signed octets of an HTTP-Redirect message, as received
function octets(url, kind) {
  const re = new RegExp(`^(${kind}|RelayState|SigAlg)=`);
  return url.search.slice(1).split('&').filter((p) => re.test(p)).join('&');
}

async function slo(req, res, url) {
  loadSp();
  const query = Object.fromEntries(url.searchParams.entries());
  if (query.SAMLRequest) {
    const { extract } = await idp.parseLogoutRequest(sp, 'redirect', {
      query, octetString: octets(url, 'SAMLRequest'),
    });
    lastLogout = { from: 'sp', nameId: extract.nameID, sessionIndex: extract.sessionIndex };
    const { context } = idp.createLogoutResponse(sp, { extract }, 'redirect', query.RelayState || '');
    res.writeHead(302, { location: context, 'cache-control': 'no-store' });
    res.end();
    return;
  }
  const { extract } = await idp.parseLogoutResponse(sp, 'redirect', {
    query, octetString: octets(url, 'SAMLResponse'),
  });
  lastLogout = { from: 'idp', response: extract.response, issuer: extract.issuer };
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end(`logout response ok ${JSON.stringify(extract.response || {})}\n`);
}

function sloInit(res, url) {
  loadSp();
  const user = users[url.searchParams.get('user')];
  const s = user && sessions[user.email];
  if (!s) {
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('no session\n');
    return;
  }
  const { context } = idp.createLogoutRequest(sp, 'redirect',
    { logoutNameID: s.nameId, sessionIndex: s.sessionIndex });
  res.writeHead(302, { location: context, 'cache-control': 'no-store' });
  res.end();
}

const server = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, 'http://127.0.0.1');
    if (url.pathname === '/metadata') {
      res.writeHead(200, { 'content-type': 'application/samlmetadata+xml' });
      res.end(idp.getMetadata());
    } else if (url.pathname === '/sso' && req.method === 'GET') {
      await sso(req, res, url);
    } else if (url.pathname === '/slo') {
      await slo(req, res, url);
    } else if (url.pathname === '/slo-init') {
      sloInit(res, url);
    } else if (url.pathname === '/state') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(lastLogout));
    } else if (url.pathname === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok\n');
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found\n');
    }
  } catch (e) {
    if (!res.headersSent) {
      res.writeHead(400, { 'content-type': 'text/plain' });
      res.end(`samlify IdP: ${e && e.message ? e.message : e}\n`);
    } else {
      res.end();
    }
  }
});

server.listen(opts.port, '127.0.0.1', () => {
  const { port } = server.address();
  build(port);
  process.stdout.write(`ready port=${port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
