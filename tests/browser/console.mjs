// console.mjs SCENARIO: one scenario of the admin console in chromium, used
// as a person would (keyboard and mouse), with read-backs through the admin
// API. Started by tests/integration/test_console_browser.py, which starts
// rolegate and the IdPs and passes their URLs in RG_BROWSER_ENV. Prints one
// JSON line with what the Python side checks further, exits 1 on failure.
import { assert, eq, admin, signIn, shot, text, env, main } from './lib.mjs';

const scenarios = {};

// Sign-in: the key is exchanged for an HttpOnly SameSite=Strict cookie and a
// CSRF token, never kept in the URL, the page or storage; a wrong key is a
// readable error.
scenarios.signin = async (page, ctx) => {
  await page.goto(env.admin + '/');
  await page.waitForSelector('#signin');
  await shot(page, 'signin');
  await page.fill('#admin-key', 'not-the-key');
  await page.click('#signin button[type=submit]');
  await page.waitForSelector('#signin-result .error');
  const err = await text(page, '#signin-result .error');
  assert(err.includes('unauthorized') && err.includes('wrong admin key'), `wrong key error: ${err}`);
  eq(await page.inputValue('#admin-key'), '', 'the key field is cleared');
  await page.fill('#admin-key', env.key);
  await page.keyboard.press('Enter');      // keyboard only
  await page.waitForSelector('#nav:not([hidden])');
  const cookies = await ctx.cookies(env.admin);
  const c = cookies.find(x => x.name === 'rolegate_console');
  assert(c, 'console cookie set');
  assert(c.httpOnly, 'cookie HttpOnly');
  eq(c.sameSite, 'Strict', 'cookie SameSite');
  const leak = await page.evaluate((k) => ({
    url: location.href.includes(k), html: document.documentElement.outerHTML.includes(k),
    local: JSON.stringify(localStorage).includes(k) || localStorage.length,
    session: JSON.stringify(sessionStorage).includes(k) || sessionStorage.length,
    cookie: document.cookie.includes('rolegate_console') }), env.key);
  eq(leak, { url: false, html: false, local: 0, session: 0, cookie: false }, 'key and cookie not readable by the page');
  // a reload keeps the session (the CSRF token comes back from GET /console/session)
  await page.reload();
  await page.waitForSelector('#nav:not([hidden])');
  await page.waitForSelector('#env-priority');
  return { cookie: c.value };
};

// CSRF: a write with the cookie but without the token is refused; so is a
// write from another origin (the public listener is same-site, other port).
scenarios.csrf = async (page) => {
  await signIn(page);
  const r = await page.evaluate(async () => {
    const x = await fetch('/authorization/roles', { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ slug: 'csrf-no-token', name: 'x' }) });
    return { status: x.status, body: await x.json() };
  });
  eq(r.status, 403, 'write without CSRF token');
  eq(r.body.code, 'csrf_token_invalid', 'its code');
  // read without a token is fine (same origin, cookie)
  const g = await page.evaluate(async () => (await fetch('/authorization/roles')).status);
  eq(g, 200, 'read with the cookie');
  // another origin: the cookie goes along (same site), the token cannot
  await page.goto(env.public + '/healthz');
  const x = await page.evaluate(async (adminUrl) => {
    const out = {};
    try {
      const a = await fetch(adminUrl + '/authorization/roles', { method: 'POST', credentials: 'include', mode: 'no-cors',
        headers: { 'Content-Type': 'text/plain' }, body: JSON.stringify({ slug: 'csrf-cross', name: 'x' }) });
      out.type = a.type;
    } catch (e) { out.error = String(e); }
    return out;
  }, env.admin);
  assert(x.type === 'opaque' || x.error, `cross-origin fetch is opaque: ${JSON.stringify(x)}`);
  // a cross-origin form post as well
  await page.evaluate((adminUrl) => {
    const f = document.createElement('form');
    f.method = 'POST'; f.action = adminUrl + '/console/session'; f.enctype = 'text/plain';
    const i = document.createElement('input'); i.name = '{"key":"x","a":"'; i.value = '"}';
    f.append(i); document.body.append(f); f.submit();
  }, env.admin);
  await page.waitForLoadState();
  for (const slug of ['csrf-no-token', 'csrf-cross'])
    eq((await admin('GET', `/authorization/roles/${slug}`)).status, 404, `${slug} was not created`);
  return {};
};

// Logout: the cookie is cleared, the session ends server-side.
scenarios.logout = async (page, ctx) => {
  await signIn(page);
  const before = (await ctx.cookies(env.admin)).find(x => x.name === 'rolegate_console').value;
  await page.click('#logout');
  await page.waitForSelector('#signin');
  const after = (await ctx.cookies(env.admin)).find(x => x.name === 'rolegate_console');
  assert(!after, 'cookie gone after logout');
  await page.reload();
  await page.waitForSelector('#signin');
  return { cookie: before };
};

// Roles & Permissions: create a permission and a role, give it the
// permission, drag it to the top, move it with the keyboard; the API sees
// each order.
scenarios.roles = async (page) => {
  await signIn(page);
  await page.goto(env.admin + '/#/roles');
  await page.waitForSelector('#perm-form');
  await page.fill('#perm-slug', 'invoices:approve');
  await page.fill('#perm-name', 'Approve invoices');
  await page.click('#perm-form button');
  await page.waitForSelector('text=invoices:approve');
  // a bad slug: readable error, nothing created
  await page.fill('#role-slug', 'Bad Slug');
  await page.fill('#role-name', 'Bad');
  await page.click('#role-form button');
  await page.waitForSelector('#role-result .error');
  const err = await text(page, '#role-result .error');
  assert(err.includes('invalid_slug') && err.includes('field: slug'), `bad slug error: ${err}`);
  await page.fill('#role-slug', 'analyst');
  await page.fill('#role-name', 'Analyst');
  await page.click('#role-form button');
  await page.waitForSelector('#env-priority li[data-slug=analyst]');
  await page.click('button[aria-label="edit permissions of analyst"]');
  await page.check('#role-editor input[value="invoices:approve"]');
  await page.click('#role-editor button');
  await page.waitForSelector('#role-editor .notice');
  eq((await admin('GET', '/authorization/roles/analyst')).body.permissions, ['invoices:approve'], 'permissions saved');
  // drag analyst above the first role
  await page.evaluate(() => window.scrollTo(0, 0));   // both ends of the drag in view
  const first = await page.getAttribute('#env-priority li:first-child', 'data-slug');
  await page.dragAndDrop('#env-priority li[data-slug=analyst]', `#env-priority li[data-slug="${first}"]`,
                         { targetPosition: { x: 20, y: 3 } });
  await page.waitForSelector('#priority-result > *');
  assert(await page.$('#priority-result .notice'), `drag saved: ${await text(page, '#priority-result')}`);
  let order = (await admin('GET', '/authorization/roles?limit=100')).body.data.map(r => r.slug);
  eq(order[0], 'analyst', 'dragged to the top');
  await shot(page, 'roles');
  // keyboard: Alt+ArrowDown moves it one down
  await page.focus('#env-priority li[data-slug=analyst] .grip');
  await page.keyboard.press('Alt+ArrowDown');
  await page.waitForFunction(() => document.querySelector('#priority-result').textContent.includes('Order saved'));
  await page.waitForFunction(() => document.querySelector('#env-priority li:nth-child(2)').dataset.slug === 'analyst');
  order = (await admin('GET', '/authorization/roles?limit=100')).body.data.map(r => r.slug);
  eq(order[1], 'analyst', 'moved down by keyboard');
  eq(order[0], first, 'the old first is first again');
  const focused = await page.evaluate(() => document.activeElement.closest('li').dataset.slug);
  eq(focused, 'analyst', 'focus stays on the moved role');
  return { order };
};

// Organizations: create one with a domain, its Roles tab: an organization
// role, the order and the default role.
scenarios.orgs = async (page) => {
  await signIn(page);
  await page.goto(env.admin + '/#/orgs');
  await page.fill('#org-name', 'Globex');
  await page.fill('#org-domains', 'globex.example');
  await page.click('#org-form button');
  await page.waitForSelector('#tab-roles');
  const orgId = decodeURIComponent(page.url().split('#/orgs/')[1]);
  await page.click('#tab-roles');
  await page.waitForSelector('#org-role-form');
  await page.fill('#org-role-name', 'Billing Admin');
  await page.click('#org-role-form button');
  await page.waitForSelector('#org-priority li .badge');
  const slug = await page.getAttribute('#org-priority li:has(.badge)', 'data-slug');
  const first = await page.getAttribute('#org-priority li:first-child', 'data-slug');
  await page.dragAndDrop(`#org-priority li[data-slug="${slug}"]`, `#org-priority li[data-slug="${first}"]`,
                         { targetPosition: { x: 20, y: 3 } });
  await page.waitForSelector('#org-priority-result .notice');
  const roles = (await admin('GET', `/authorization/organizations/${orgId}/roles?limit=100`)).body.data;
  eq(roles[0].slug, slug, 'organization order: its role first');
  await page.selectOption('#org-default', slug);
  await page.click('#org-default-form button');
  await page.waitForSelector('#org-default-result .notice');
  eq((await admin('GET', `/organizations/${orgId}`)).body.default_role, slug, 'organization default role');
  await shot(page, 'organization-roles');
  const org = (await admin('GET', `/organizations/${orgId}`)).body;
  assert(JSON.stringify(org.domains).includes('globex.example'), `domain kept: ${JSON.stringify(org.domains)}`);
  return { org: orgId, slug };
};

// Connections: a new SAML connection shows the SP facts before any IdP
// metadata; bad metadata shows its lint reason and keeps nothing; good
// metadata (a file) shows the lint result; a mapping is added in place.
scenarios.connection = async (page) => {
  await signIn(page);
  await page.goto(env.admin + `/#/connections/org/${env.org}`);
  await page.waitForSelector('#conn-form');
  await page.fill('#conn-name', 'Browser SAML');
  await page.click('#conn-form button[type=submit]');
  await page.waitForSelector('#metadata-form');
  const connId = decodeURIComponent(page.url().split('#/connections/conn/')[1]);
  const c = (await admin('GET', `/connections/${connId}`)).body;
  const sp = { entity: await text(page, '#sp-entity-id'), acs: await text(page, '#acs-url') };
  if (c.sp_entity_id) {
    eq(sp.entity, c.sp_entity_id, 'SP entity ID shown');
    eq(sp.acs, c.acs_url, 'ACS URL shown');
    eq(await page.getAttribute('#sp-metadata', 'href'), c.sp_metadata_url, 'SP metadata link');
    const md = await (await fetch(c.sp_metadata_url)).text();
    assert(md.includes('EntityDescriptor'), 'SP metadata downloads before any IdP metadata');
  }
  await shot(page, 'connection-new');
  // bad: not signed-able metadata (no signing certificate)
  await page.fill('#metadata-xml', env.bad_metadata);
  await page.click('#metadata-form button[type=submit]');
  await page.waitForSelector('#metadata-result .error');
  const err = await text(page, '#metadata-result .error');
  assert(err.includes('Uploading the IdP metadata failed') && err.includes(env.bad_metadata_code),
         `bad metadata error shows its code: ${err}`);
  const msg = await text(page, '#metadata-result .error .message');
  assert(msg.length > 10, `bad metadata error has a reason: ${msg}`);
  await shot(page, 'connection-bad-metadata');
  eq((await admin('GET', `/connections/${connId}`)).body.idp_entity_id || null, null, 'bad metadata kept nothing');
  // good, from a file
  await page.fill('#metadata-xml', '');
  await page.setInputFiles('#metadata-file', env.good_metadata_file);
  await page.waitForFunction(() => document.querySelector('#metadata-xml').value.includes('EntityDescriptor'));
  await page.click('#metadata-form button[type=submit]');
  await page.waitForSelector('#lint-result');
  const lint = await text(page, '#lint-result');
  assert(lint.includes('Metadata accepted') && lint.includes(env.idp_sso), `lint result: ${lint.slice(0, 300)}`);
  // a mapping, in place, with the organization's roles to pick from
  await page.click('#mapping-add');
  const row = page.locator('#mappings tbody tr').last();
  await row.locator('.map-group').fill('engineering');
  const opts = await row.locator('.map-role option').evaluateAll(os => os.map(o => o.value));
  const visible = (await admin('GET', `/authorization/organizations/${env.org}/roles?limit=100`)).body.data.map(r => r.slug);
  eq(opts, visible, 'the role picker lists the roles visible in the organization');
  await row.locator('.map-role').selectOption('member');
  await page.click('#mapping-add');
  await page.locator('#mappings tbody tr').last().locator('.map-group').fill('admins');
  await page.locator('#mappings tbody tr').last().locator('.map-role').selectOption('admin');
  await page.click('#mappings-save');
  await page.waitForSelector('#mappings-result .notice');
  await shot(page, 'connection');
  const maps = (await admin('GET', `/connections/${connId}/role_mappings`)).body.data
    .map(m => [m.idp_group, m.role_slug]).sort();
  eq(maps, [['admins', 'admin'], ['engineering', 'member']], 'mappings saved');
  // a mapping to an unknown role is refused with its reason
  await page.locator('#mappings tbody tr').first().locator('.map-group').fill('');
  await page.click('#mappings-save');
  await page.waitForSelector('#mappings-result .error');
  return { connection: connId };
};

// Log in through the IdP in the browser, then read the login record: groups
// received, mappings matched, the role chosen and why.
scenarios.login_record = async (page) => {
  if (env.drag_first) {   // put a role first by drag: the next login uses the order
    await signIn(page);
    await page.goto(env.admin + '/#/roles');
    const first = await page.getAttribute('#env-priority li:first-child', 'data-slug');
    await page.dragAndDrop(`#env-priority li[data-slug="${env.drag_first}"]`, `#env-priority li[data-slug="${first}"]`,
                           { targetPosition: { x: 20, y: 3 } });
    await page.waitForSelector('#priority-result .notice');
  }
  await page.goto(`${env.public}/login?organization=${env.org}&return_to=${encodeURIComponent('/auth')}`);
  await page.waitForURL(u => u.toString().startsWith(env.public + '/auth'));
  const auth = await page.evaluate(async () => {
    const r = await fetch('/auth');
    return { status: r.status, roles: r.headers.get('x-rolegate-roles') };
  });
  await signIn(page);
  await page.goto(env.admin + `/#/logins/${env.connection}`);
  await page.waitForSelector('.login-record');
  const rec = page.locator('.login-record').first();
  const groups = await rec.locator('.groups').textContent();
  const mappings = await rec.locator('.mappings').textContent();
  const roles = await rec.locator('.roles').textContent();
  const why = await rec.locator('.why').textContent();
  if (env.drag_first) await shot(page, 'login-record');
  return { groups, mappings, roles, why, auth };
};

// Members: the member created by the login, its roles and role_source; revoke.
scenarios.members = async (page) => {
  await signIn(page);
  await page.goto(env.admin + `/#/members/${env.org}`);
  await page.waitForSelector('.member-roles');
  const roles = await text(page, '.member-roles');
  const source = await text(page, '.role-source');
  // the member's sessions: the one its login made, revoked from here
  await page.click('button[aria-label^="sessions of"]');
  await page.waitForSelector('.session-state');
  const sessionBefore = await text(page, '.session-state');
  await shot(page, 'members');
  await page.click('button[aria-label^="revoke session"]');
  await page.waitForFunction(() => document.querySelector('.session-state')?.textContent === 'revoked');
  const sessionAfter = await text(page, '.session-state');
  page.once('dialog', d => d.accept());
  await page.click('button[aria-label^="revoke"]');
  await page.waitForSelector('td.empty');
  return { roles, source, sessionBefore, sessionAfter };
};

// Events: paging forward and back.
scenarios.events = async (page) => {
  await signIn(page);
  await page.goto(env.admin + '/#/events');
  await page.waitForSelector('#events-page');
  const first = await page.locator('#events-list tbody tr').first().textContent();
  const n1 = await page.locator('#events-list tbody tr').count();
  assert(await page.isDisabled('#events-prev'), 'no previous page at first');
  await page.click('#events-next');
  await page.waitForFunction(() => document.querySelector('#events-page')?.textContent === 'Page 2');
  const second = await page.locator('#events-list tbody tr').first().textContent();
  assert(second !== first, 'page 2 differs');
  await shot(page, 'events');
  await page.click('#events-prev');
  await page.waitForFunction(() => document.querySelector('#events-page')?.textContent === 'Page 1');
  eq(await page.locator('#events-list tbody tr').first().textContent(), first, 'back to page 1');
  await page.fill('#events-filter', 'role.created');
  await page.press('#events-filter', 'Enter');
  await page.waitForFunction(() => [...document.querySelectorAll('#events-list tbody code')].every(c => c.textContent === 'role.created'));
  return { rows: n1 };
};

// Every console answer carries the security headers.
scenarios.headers = async (page) => {
  const seen = [];
  page.on('response', (r) => { if (!r.url().includes('/console/session')) seen.push([r.url(), r.headers()]); });
  const violations = [];
  page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) violations.push(m.text()); });
  await signIn(page);
  await page.waitForSelector('#env-priority');
  return { assets: seen.filter(([u]) => u.endsWith('/') || /\/console\//.test(u)).map(([u, h]) => ({
    url: u, csp: h['content-security-policy'], nosniff: h['x-content-type-options'], type: h['content-type'] })),
    violations };
};

// Directories: create one, its SCIM URL and token shown once (not after a
// reload).
scenarios.directory_create = async (page) => {
  await signIn(page);
  await page.goto(env.admin + `/#/directories/org/${env.org}`);
  await page.waitForSelector('#dir-form');
  await page.fill('#dir-name', 'Okta');
  await page.selectOption('#dir-type', 'okta scim v2.0');
  await page.click('#dir-form button[type=submit]');
  await page.waitForSelector('#dir-token');
  const token = await text(page, '#dir-token');
  const url = await text(page, '#dir-scim-url');
  await shot(page, 'directory-created');
  await page.click('#dir-create-result a');
  await page.waitForSelector('#dir-rotate');
  const html = await page.content();
  assert(!html.includes(token), 'the token is not shown again');
  return { token, url };
};

// Directories: map the pushed group to a role; the users' roles follow.
scenarios.directory_map = async (page) => {
  await signIn(page);
  await page.goto(env.admin + `/#/directories/dir/${env.directory}`);
  await page.waitForSelector('.dir-map-role');
  await page.selectOption('.dir-map-role', 'admin');
  await page.click('#dir-mappings-save');
  await page.waitForSelector('#dir-mappings-result .notice');
  await page.reload();
  await page.waitForSelector('.dir-user-roles');
  const roles = await text(page, '.dir-user-roles');
  await shot(page, 'directory');
  return { roles };
};

// Environment: multiple roles and the default role (PATCH /environment).
scenarios.environment = async (page) => {
  await signIn(page);
  await page.goto(env.admin + '/#/roles');
  await page.waitForSelector('#env-form');
  await page.check('#env-multiple');
  await page.selectOption('#env-default', 'viewer');
  await page.click('#env-form button[type=submit]');
  await page.waitForSelector('#env-form + div .notice');
  const e = (await admin('GET', '/environment')).body;
  eq([e.multiple_roles, e.default_role], [true, 'viewer'], 'environment saved');
  return {};
};

// An OIDC connection made in the console: its fields, the secret never
// shown back, the groups claim edited, the redirect URI to register shown.
scenarios.oidc_connection = async (page) => {
  await signIn(page);
  await page.goto(env.admin + `/#/connections/org/${env.org}`);
  await page.waitForSelector('#conn-form');
  await page.selectOption('#conn-type', 'oidc');
  await page.fill('#conn-name', 'Keycloak');
  await page.fill('#conn-issuer', 'https://idp.example.com/realms/acme');
  await page.fill('#conn-client-id', 'rolegate');
  await page.fill('#conn-client-secret', 'not-shown-again-0123');
  await page.click('#conn-form button[type=submit]');
  await page.waitForSelector('#oidc-form');
  const connId = decodeURIComponent(page.url().split('#/connections/conn/')[1]);
  eq(await page.inputValue('#oidc-issuer'), 'https://idp.example.com/realms/acme', 'issuer shown');
  eq(await page.inputValue('#oidc-client-secret'), '', 'the secret is not shown back');
  assert(!(await page.content()).includes('not-shown-again-0123'), 'secret not in the page');
  await page.fill('#oidc-groups-claim', 'realm_access.roles');
  await page.click('#oidc-form button[type=submit]');
  await page.waitForSelector('#oidc-result .notice');
  const c = (await admin('GET', `/connections/${connId}`)).body;
  eq(c.groups_claim, 'realm_access.roles', 'groups claim saved');
  eq(await text(page, '#oidc-redirect-uri'), c.redirect_uri, 'the redirect URI to register is shown');
  return { redirect_uri: c.redirect_uri };
};

await main(scenarios);
