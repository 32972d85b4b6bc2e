// app.js: the console's shell: sign-in (the admin key is POSTed once to
// /console/session and exchanged for an HttpOnly cookie + a CSRF token; the
// key field is cleared at once and the key is never stored), the hash
// router and the navigation. Each page is its own module over the admin API.
import { api, configure, setCsrf } from './api.js';
import { h, clear, errorBox } from './ui.js';
import * as roles from './page_roles.js';
import * as orgs from './page_orgs.js';
import * as conns from './page_connections.js';
import * as members from './page_members.js';
import * as logins from './page_logins.js';
import * as events from './page_events.js';
import * as directories from './page_directories.js';

const pages = { roles, orgs, connections: conns, members, directories, logins, events };
const main = document.getElementById('main');
const nav = document.getElementById('nav');
const logoutBtn = document.getElementById('logout');

function signedOut() {
  setCsrf(null);
  nav.hidden = true;
  logoutBtn.hidden = true;
  showSignIn();
}

function showSignIn(err) {
  clear(main);
  const key = h('input', { type: 'password', id: 'admin-key', name: 'admin-key', autocomplete: 'off',
                           required: true, 'aria-describedby': 'key-help' });
  const slot = h('div', { id: 'signin-result' });
  if (err) slot.append(errorBox(err, 'Sign-in'));
  const form = h('form', { class: 'card signin', id: 'signin' },
    h('h1', { text: 'Sign in to the rolegate console' }),
    h('div', { class: 'field-row' }, h('label', { for: 'admin-key', text: 'Admin key' }), key),
    h('p', { id: 'key-help', class: 'muted',
             text: 'The admin key of this rolegate (var/admin.key or ROLEGATE_ADMIN_KEY). It is exchanged for a session cookie and not kept by the page.' }),
    h('button', { type: 'submit', text: 'Sign in' }), slot);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const value = key.value;
    key.value = '';
    clear(slot);
    try {
      const s = await api('POST', '/console/session', { key: value }, { quiet: true });
      setCsrf(s.csrf_token);
      signedIn();
    } catch (ex) {
      slot.append(errorBox(ex, 'Sign-in'));
      key.focus();
    }
  });
  main.append(form);
  key.focus();
}

function signedIn() {
  nav.hidden = false;
  logoutBtn.hidden = false;
  if (!location.hash || location.hash === '#/') location.hash = '#/roles';
  else route();
}

async function route() {
  if (nav.hidden) return;
  const [name, ...rest] = location.hash.replace(/^#\//, '').split('/');
  const page = pages[name] || roles;
  for (const a of nav.querySelectorAll('a'))
    a.toggleAttribute('aria-current', a.getAttribute('href') === `#/${name}`) &&
      a.setAttribute('aria-current', 'page');
  clear(main);
  try {
    await page.render(main, rest.map(decodeURIComponent));
  } catch (e) {
    main.append(errorBox(e, 'Loading the page'));
  }
  main.focus({ preventScroll: true });
}

logoutBtn.addEventListener('click', async () => {
  try { await api('DELETE', '/console/session'); } catch { /* signed out anyway */ }
  signedOut();
});
window.addEventListener('hashchange', route);
configure({ onSignedOut: signedOut });

// a reload keeps the cookie; the CSRF token comes back from GET
api('GET', '/console/session', undefined, { quiet: true })
  .then((s) => { setCsrf(s.csrf_token); signedIn(); })
  .catch(() => signedOut());
