// sso.mjs flows: browser SSO end to end in chromium, started by
// tests/integration/test_console_sso.py. nginx protects a small app; a
// browser with no session is sent to rolegate's sign-in page, types its
// work email, goes through the organization's IdP (the fixture SAML IdP,
// samlify's SAML IdP with its own sign-in form, oidc-provider) and its ACS /
// callback, and lands on the app, which shows what nginx passed on.
import { assert, shot, env, main } from './lib.mjs';

const scenarios = {};

scenarios.flows = async (page, ctx) => {
  const out = [];
  for (const f of env.flows) {
    await ctx.clearCookies();
    await page.goto(env.app);
    assert(new URL(page.url()).pathname === '/login', `no session: the sign-in page (${page.url()})`);
    await page.waitForSelector('#email');
    if (f.name === 'fixture') await shot(page, 'sso-signin');
    await page.fill('#email', f.email);
    await page.press('#email', 'Enter');
    if (f.user) {   // samlify's own sign-in page
      await page.waitForSelector('#idp-login');
      await page.fill('#user', f.user);
      await page.press('#user', 'Enter');
    }
    await page.waitForURL(env.app, { timeout: 20000 });
    const seen = JSON.parse(await page.textContent('body'));
    const cookies = (await ctx.cookies(env.app)).map(c => c.name);
    out.push({ name: f.name, path: seen.path, headers: seen.headers, cookies });
    if (f.name === 'fixture') await shot(page, 'sso-app');
  }
  return { flows: out };
};

await main(scenarios);
