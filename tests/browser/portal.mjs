// portal.mjs SCENARIO: the IT admin's setup portal in chromium, started by
// tests/integration/test_console_portal.py (RG_BROWSER_ENV: the link, the
// fixture IdP's paths). The IdP is started here once the new connection's
// SP metadata exists, as an IT admin would configure theirs.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { assert, eq, admin, shot, text, env, main } from './lib.mjs';

const scenarios = {};

async function startIdp(spMetadataUrl) {
  const sp = await (await fetch(spMetadataUrl)).text();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rg-portal-idp-'));
  fs.writeFileSync(path.join(dir, 'sp.xml'), sp);
  const p = spawn(env.fixture_bin, ['serve', '--port', String(env.idp_port), '--sp-metadata', path.join(dir, 'sp.xml'),
    '--idp-metadata', env.good_metadata_file, '--key', env.idp_key, ...(env.idp_args || [])],
    { cwd: env.root, stdio: 'ignore', env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=0' } });
  for (let i = 0; i < 100; i++) {
    try { if ((await fetch(`http://127.0.0.1:${env.idp_port}/healthz`)).ok) return p; } catch { /* not yet */ }
    await new Promise(r => setTimeout(r, 100));
  }
  p.kill();
  throw new Error('fixture IdP did not start');
}

// The whole flow: open the link, create the SAML connection, read what to
// give the IdP, upload bad then good metadata, test sign-in (groups and
// roles, no session), map a group, test again.
scenarios.flow = async (page, ctx) => {
  await page.goto(env.link);
  await page.waitForSelector('#conn-form');
  assert(!page.url().includes('link='), `the token left the address bar: ${page.url()}`);
  await shot(page, 'portal-start');
  await page.fill('#conn-name', 'Acme Entra');
  await page.click('#conn-form button[type=submit]');
  await page.waitForSelector('#portal-metadata');
  const entity = await text(page, '#portal-sp-entity-id');
  const acs = await text(page, '#portal-acs-url');
  assert(entity.startsWith(env.public + '/saml/metadata/') && acs.startsWith(env.public + '/saml/acs/'),
         `SP facts: ${entity} ${acs}`);
  const mdUrl = await page.getAttribute('#portal-sp-metadata', 'href');
  // bad metadata: the lint reason
  await page.fill('#portal-metadata-xml', env.bad_metadata);
  await page.click('#portal-metadata button[type=submit]');
  await page.waitForSelector('#portal-metadata-result .error');
  const bad = await text(page, '#portal-metadata-result .error');
  assert(bad.includes('invalid_metadata'), `bad metadata: ${bad}`);
  // good
  await page.setInputFiles('#portal-metadata-file', env.good_metadata_file);
  await page.waitForFunction(() => document.querySelector('#portal-metadata-xml').value.includes('EntityDescriptor'));
  await page.click('#portal-metadata button[type=submit]');
  await page.waitForSelector('#lint-result');
  await shot(page, 'portal-metadata');
  const idp = await startIdp(mdUrl);
  try {
    // test sign-in: no mapping yet, so the default role
    await page.click('#portal-test');
    await page.waitForSelector('#portal-test-roles');
    const first = { groups: await text(page, '#portal-test-result table'), roles: await text(page, '#portal-test-roles') };
    // map 'admins' to admin, in place, then test again
    await page.click('#mapping-add');
    const row = page.locator('#mappings tbody tr').last();
    await row.locator('.map-group').fill('admins');
    await row.locator('.map-role').selectOption('admin');
    await page.click('#mappings-save');
    await page.waitForSelector('#mappings-result .notice');
    await page.click('#portal-test');
    await page.waitForFunction(() => (document.querySelector('#portal-test-roles') || {}).textContent?.includes('admin'));
    await shot(page, 'portal-test');
    const second = { groups: await text(page, '#portal-test-result table'), roles: await text(page, '#portal-test-roles') };
    const cookies = (await ctx.cookies(env.public)).map(c => c.name);
    const portal = (await ctx.cookies(env.public)).find(c => c.name === 'rolegate_portal');
    return { first, second, cookies, portal_cookie: portal && { httpOnly: portal.httpOnly, sameSite: portal.sameSite, value: portal.value } };
  } finally {
    idp.kill();
  }
};

// A used (or expired, or unknown) link: a readable dead end, nothing else.
scenarios.dead = async (page) => {
  await page.goto(env.link);
  await page.waitForSelector('#portal-dead');
  const t = await text(page, '#portal-dead');
  await shot(page, env.shot || 'portal-dead');
  assert(!(await page.$('#conn-form')) && !(await page.$('#portal-metadata')), 'no setup step shown');
  return { text: t };
};

await main(scenarios);
