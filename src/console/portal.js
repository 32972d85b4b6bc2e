// portal.js: the IT admin's setup portal. The one-use link's token comes in
// the URL fragment (#link=..., never sent to a server log or a Referer); it
// is removed from the address bar at once and POSTed to /portal/api/session,
// which answers with a session cookie (HttpOnly) and a CSRF token scoped to
// one organization. Then step by step: the connection, what to give the
// IdP, the IdP metadata (lint result) or OIDC settings, a test sign-in that
// shows the groups the IdP sent and the roles they map to (no session, no
// membership), and the group -> role mappings.
import { api, configure, setCsrf, listAll } from './api.js';
import { h, clear, run, field, section, table, errorBox, notice } from './ui.js';
import { lintResult, mappingsPanel, createForm } from './page_connections.js';

const main = document.getElementById('main');
configure({ base: '/portal/api' });
let org = null;

function dead(err) {
  clear(main);
  main.append(h('section', { class: 'card', id: 'portal-dead' }, h('h1', { text: 'This setup link cannot be used' }),
    errorBox(err, 'Opening the setup link'),
    h('p', { text: 'Setup links work once and for 5 minutes. Ask your rolegate operator for a new one.' })));
}

async function start() {
  const params = new URLSearchParams(location.hash.slice(1));
  const link = params.get('link');
  const test = params.get('test');
  history.replaceState(null, '', location.pathname);   // the token leaves the address bar
  let s;
  try {
    s = link ? await api('POST', '/session', { link }, { quiet: true })
             : await api('GET', '/session', undefined, { quiet: true });
  } catch (e) { dead(e); return; }
  setCsrf(s.csrf_token);
  org = s.organization;
  document.getElementById('org-name').textContent = ` \u2014 ${org.name}`;
  await render(test);
}

async function render(testKey) {
  clear(main);
  main.append(h('h1', { text: `Set up single sign-on for ${org.name}` }));
  const conns = await listAll(`/organizations/${org.id}/connections`);
  const steps = h('ol', { class: 'steps' });
  main.append(steps);
  const step = (title, ...body) => { const li = h('li', {}, section(title, ...body)); steps.append(li); return li; };

  // step 1: the connection
  const c = conns[0];
  step('Your connection', c ? h('p', { id: 'portal-conn', text: `${c.name} (${c.type.toUpperCase()}), ${c.state || ''}` })
                            : createForm(org.id, () => render()));
  if (!c) return;
  const conn = await api('GET', `/connections/${c.id}`);

  // step 2: what the IdP needs
  const kv = (pairs) => h('dl', { class: 'kv' }, pairs.flatMap(([k, v, id]) => [h('dt', { text: k }), h('dd', { id, text: v || '\u2014' })]));
  if (conn.type === 'saml')
    step('Give these to your identity provider', kv([['Entity ID (Audience)', conn.sp_entity_id, 'portal-sp-entity-id'],
                                                      ['ACS URL (Reply URL)', conn.acs_url, 'portal-acs-url']]),
         conn.sp_metadata_url ? h('p', {}, h('a', { href: conn.sp_metadata_url, id: 'portal-sp-metadata', text: 'Download our SAML metadata' })) : null);
  else
    step('Give this to your identity provider', kv([['Redirect URI', conn.redirect_uri, 'portal-redirect-uri']]));

  // step 3: the IdP's side
  if (conn.type === 'saml') {
    const mslot = h('div', { id: 'portal-metadata-result', 'aria-live': 'polite' });
    const file = h('input', { type: 'file', id: 'portal-metadata-file', accept: '.xml,application/xml' });
    const text = h('textarea', { id: 'portal-metadata-xml', placeholder: '<md:EntityDescriptor ...>' });
    file.addEventListener('change', async () => { if (file.files[0]) text.value = await file.files[0].text(); });
    step('Upload your identity provider\u2019s metadata',
      h('p', { class: 'muted', text: conn.idp_entity_id ? `Current: ${conn.idp_entity_id}` : 'It is checked before it is kept.' }),
      h('form', { id: 'portal-metadata', on: { submit: (e) => { e.preventDefault();
        run(mslot, 'Uploading the metadata', () => api('PUT', `/connections/${conn.id}/metadata`, text.value,
          { type: 'application/samlmetadata+xml' }).then((r) => { mslot.append(lintResult(r)); return r; }));
      } } }, field('Metadata file', file), field('or paste the XML', text), h('button', { type: 'submit', text: 'Upload' })),
      mslot);
  } else {
    const oslot = h('div', { id: 'portal-oidc-result' });
    const iss = h('input', { id: 'portal-oidc-issuer', value: conn.issuer || '' });
    const cid = h('input', { id: 'portal-oidc-client-id', value: conn.client_id || '' });
    const sec = h('input', { id: 'portal-oidc-secret', type: 'password', autocomplete: 'off', placeholder: 'unchanged unless typed' });
    const gc = h('input', { id: 'portal-oidc-groups-claim', value: conn.groups_claim || '', placeholder: 'groups' });
    step('Your OpenID provider', h('form', { id: 'portal-oidc', on: { submit: (e) => { e.preventDefault();
      const body = { issuer: iss.value.trim(), client_id: cid.value.trim() };
      if (sec.value) body.client_secret = sec.value;
      if (gc.value.trim()) body.groups_claim = gc.value.trim();
      run(oslot, 'Saving', () => api('PATCH', `/connections/${conn.id}`, body), 'Saved.');
    } } }, field('Issuer', iss), field('Client ID', cid), field('Client secret', sec),
      field('Groups claim', gc), h('button', { type: 'submit', text: 'Save' })), oslot);
  }

  // step 4: test sign-in
  const tslot = h('div', { id: 'portal-test-result' });
  step('Test sign-in', h('p', { class: 'muted', text: 'Sign in at your identity provider. You will come back here and see the groups it sent and the roles they give. Nobody is signed in to the application and no member is created.' }),
    h('p', {}, h('a', { id: 'portal-test', class: 'button', href: `/portal/api/connections/${conn.id}/test`, text: 'Run a test sign-in' })), tslot);
  if (testKey) {
    try {
      const t = await api('GET', `/tests/${encodeURIComponent(testKey)}`);
      const mapped = Object.fromEntries((t.mappings || []).map(m => [m.idp_group, m.role_slug]));
      tslot.append(notice(`Signed in as ${t.subject}${t.email ? ' (' + t.email + ')' : ''}`),
        table([{ title: 'Group your IdP sent', cell: g => h('code', { text: g }) },
               { title: 'Maps to role', cell: g => mapped[g] || '(no mapping)' }],
              t.groups, { label: 'Groups received', empty: 'Your IdP sent no groups.' }),
        h('p', { id: 'portal-test-roles', text: `Roles this user would get: ${(t.roles || []).join(', ')}` }));
    } catch (e) { tslot.append(errorBox(e, 'Reading the test result')); }
  }

  // step 5: mappings
  const mstep = h('div');
  step('Map your groups to roles', mstep);
  await mappingsPanel(mstep, conn, { api, listAll, roles: () => listAll(`/organizations/${org.id}/roles`) });
}

start();
