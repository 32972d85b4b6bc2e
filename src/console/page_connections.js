// page_connections.js: Connections of an organization: create SAML or OIDC;
// one connection's SP facts (entity ID, ACS URL, SP metadata) shown before
// any IdP metadata exists; IdP metadata upload (file, pasted XML or URL)
// with the lint result, each finding with its reason; OIDC settings; and the
// group -> role mappings (R15) edited in place, with the roles visible in
// that organization.
import { api, listAll } from './api.js';
import { h, clear, run, field, section, table, errorBox, notice } from './ui.js';

export async function render(main, [kind, id]) {
  if (kind === 'conn' && id) return renderOne(main, id);
  const orgs = await listAll('/organizations');
  main.append(h('h1', { text: 'Connections' }));
  const pick = h('select', { id: 'conn-org' }, h('option', { value: '', text: 'Choose an organization' }),
    orgs.map(o => h('option', { value: o.id, text: o.name, selected: o.id === id })));
  pick.addEventListener('change', () => { location.hash = `#/connections/org/${pick.value}`; });
  main.append(section('Organization', field('Organization', pick)));
  if (kind !== 'org' || !id) return;
  const conns = await listAll(`/organizations/${encodeURIComponent(id)}/connections`);
  main.append(section('Connections', table([
    { title: 'Name', cell: c => h('a', { href: `#/connections/conn/${c.id}`, text: c.name }) },
    { title: 'Type', cell: c => c.type.toUpperCase() },
    { title: 'State', cell: c => c.state || '' },
    { title: 'Id', cell: c => h('code', { text: c.id }) }], conns, { label: 'Connections' })));
  main.append(createForm(id, (c) => { location.hash = `#/connections/conn/${c.id}`; }));
}

// The new-connection form (console and portal); onCreated(connection).
export function createForm(orgId, onCreated, client = api) {
  const slot = h('div', { id: 'conn-create-result' });
  const type = h('select', { id: 'conn-type' }, h('option', { value: 'saml', text: 'SAML 2.0' }),
                 h('option', { value: 'oidc', text: 'OpenID Connect' }));
  const name = h('input', { id: 'conn-name', required: true, placeholder: 'Acme Okta' });
  const issuer = h('input', { id: 'conn-issuer', placeholder: 'https://idp.example.com' });
  const clientId = h('input', { id: 'conn-client-id' });
  const secret = h('input', { id: 'conn-client-secret', type: 'password', autocomplete: 'off' });
  const oidc = h('div', { hidden: true }, field('Issuer', issuer), field('Client ID', clientId),
                 field('Client secret', secret));
  type.addEventListener('change', () => { oidc.hidden = type.value !== 'oidc'; });
  return section('New connection', h('form', { id: 'conn-form', on: { submit: (e) => {
    e.preventDefault();
    const body = { type: type.value, name: name.value.trim() };
    if (type.value === 'oidc') Object.assign(body, { issuer: issuer.value.trim(), client_id: clientId.value.trim(),
                                                      client_secret: secret.value });
    run(slot, 'Creating the connection', () => client('POST', `/organizations/${orgId}/connections`, body)
      .then(onCreated));
  } } }, h('div', { class: 'inline' }, field('Type', type), field('Name', name)), oidc,
    h('button', { type: 'submit', text: 'Create connection' })), slot);
}

function kv(pairs) {
  return h('dl', { class: 'kv' }, pairs.flatMap(([k, v, id]) =>
    [h('dt', { text: k }), h('dd', { id, text: v === undefined || v === null || v === '' ? '\u2014' : String(v) })]));
}

async function renderOne(main, id) {
  const c = await api('GET', `/connections/${encodeURIComponent(id)}`);
  main.append(h('p', {}, h('a', { href: `#/connections/org/${c.organization_id}`, text: '\u2190 Connections' })),
              h('h1', { text: `${c.name} (${c.type.toUpperCase()})` }));
  const facts = [['Id', c.id], ['Organization', c.organization_id], ['State', c.state]];
  main.append(section('Connection', kv(facts),
    h('p', {}, h('a', { href: `#/logins/${c.id}`, text: 'Login records of this connection \u2192' }))));
  if (c.type === 'saml') samlPanels(main, c);
  else oidcPanel(main, c);
  await mappingsPanel(main, c);
}

function samlPanels(main, c) {
  const sp = [['SP entity ID', c.sp_entity_id, 'sp-entity-id'], ['ACS URL', c.acs_url, 'acs-url']];
  const md = c.sp_metadata_url
    ? h('p', {}, h('a', { id: 'sp-metadata', href: c.sp_metadata_url, download: `rolegate-sp-${c.id}.xml`,
                          text: 'Download the SP metadata' }), h('span', { class: 'muted', text: ` (${c.sp_metadata_url})` }))
    : h('p', { class: 'muted', id: 'sp-metadata-missing', text: 'This rolegate does not report the SP metadata URL in the connection answer.' });
  main.append(section('For the IdP (give these to the customer\u2019s IT admin)', kv(sp), md));

  const slot = h('div', { id: 'metadata-result', 'aria-live': 'polite' });
  const file = h('input', { type: 'file', id: 'metadata-file', accept: '.xml,application/xml,application/samlmetadata+xml' });
  const text = h('textarea', { id: 'metadata-xml', placeholder: '<md:EntityDescriptor ...>' });
  const url = h('input', { id: 'metadata-url', type: 'url', placeholder: 'https://idp.example.com/metadata' });
  file.addEventListener('change', async () => { if (file.files[0]) text.value = await file.files[0].text(); });
  const upload = (body, opts) => run(slot, 'Uploading the IdP metadata',
    () => api('PUT', `/connections/${c.id}/metadata`, body, opts).then((r) => { slot.append(lintResult(r)); return r; }));
  main.append(section('IdP metadata', h('p', { class: 'muted', text: c.idp_entity_id
      ? `Current IdP: ${c.idp_entity_id}` : 'No IdP metadata yet. It is checked (fail closed) before it is kept.' }),
    h('form', { id: 'metadata-form', on: { submit: (e) => { e.preventDefault();
      upload(text.value, { type: 'application/samlmetadata+xml' }); } } },
      field('Metadata file', file), field('or paste the XML', text),
      h('button', { type: 'submit', text: 'Upload metadata' })),
    h('form', { class: 'inline', id: 'metadata-url-form', on: { submit: (e) => { e.preventDefault();
      upload({ metadata_url: url.value.trim() }); } } },
      field('or fetch it from a URL', url), h('button', { type: 'submit', class: 'secondary', text: 'Fetch' })),
    slot));
}

// The lint result of an accepted upload: entity, endpoints, certificates
// and each warning with its reason (a refusal is the API error, shown by run).
export function lintResult(r) {
  const box = h('div', { class: 'lint', id: 'lint-result' });
  box.append(notice(`Metadata accepted: ${r.entity_id}`));
  box.append(table([{ title: 'Binding', cell: s => s.binding }, { title: 'SSO location', cell: s => s.location }],
                   r.sso || [], { label: 'Single sign-on endpoints' }));
  box.append(table([{ title: 'Certificate', cell: x => x.subject }, { title: 'Use', cell: x => x.use || 'any' },
                    { title: 'Valid until', cell: x => x.not_after }, { title: 'SHA-256', cell: x => h('code', { text: x.sha256 }) },
                    { title: 'Findings', cell: x => (x.warnings || []).map(w => h('div', { class: 'warning', text: fmt(w) })) }],
                   r.certificates || [], { label: 'Certificates' }));
  for (const w of r.warnings || []) box.append(h('div', { class: 'warning', text: fmt(w) }));
  if (!(r.warnings || []).length) box.append(h('p', { class: 'muted', text: 'No lint findings.' }));
  return box;
}
const fmt = (w) => (typeof w === 'string' ? w : `${w.code || ''}: ${w.message || JSON.stringify(w)}`);

function oidcPanel(main, c) {
  const slot = h('div', { id: 'oidc-result' });
  const inputs = {
    issuer: h('input', { id: 'oidc-issuer', value: c.issuer || '' }),
    client_id: h('input', { id: 'oidc-client-id', value: c.client_id || '' }),
    client_secret: h('input', { id: 'oidc-client-secret', type: 'password', autocomplete: 'off',
                                placeholder: 'unchanged unless typed' }),
    scopes: h('input', { id: 'oidc-scopes', value: [].concat(c.scopes || []).join(' ') }),
    groups_claim: h('input', { id: 'oidc-groups-claim', value: c.groups_claim || '', placeholder: 'groups' }),
  };
  main.append(section('OpenID Connect', h('form', { id: 'oidc-form', on: { submit: (e) => {
    e.preventDefault();
    const body = { issuer: inputs.issuer.value.trim(), client_id: inputs.client_id.value.trim() };
    if (inputs.client_secret.value) body.client_secret = inputs.client_secret.value;
    if (inputs.scopes.value.trim()) body.scopes = inputs.scopes.value.trim().split(/\s+/);
    if (inputs.groups_claim.value.trim()) body.groups_claim = inputs.groups_claim.value.trim();
    run(slot, 'Saving the OIDC settings', () => api('PATCH', `/connections/${c.id}`, body), 'OIDC settings saved.');
  } } }, field('Issuer', inputs.issuer), field('Client ID', inputs.client_id),
    field('Client secret', inputs.client_secret), field('Scopes (space-separated)', inputs.scopes),
    field('Groups claim (dotted path, e.g. realm_access.roles)', inputs.groups_claim),
    h('button', { type: 'submit', text: 'Save' })), slot,
    h('p', { class: 'muted' }, 'Redirect URI to register at the IdP: ',
      h('code', { id: 'oidc-redirect-uri', text: c.redirect_uri || '(not reported by this rolegate)' }))));
}

export async function mappingsPanel(main, c, client = { api, listAll, roles: null }) {
  const [maps, roles] = await Promise.all([
    client.listAll(`/connections/${c.id}/role_mappings`),
    client.roles ? client.roles() : client.listAll(`/authorization/organizations/${encodeURIComponent(c.organization_id)}/roles`)]);
  const slot = h('div', { id: 'mappings-result', 'aria-live': 'polite' });
  const tbody = h('tbody');
  const row = (m) => {
    const g = h('input', { class: 'map-group', value: m.idp_group || '', 'aria-label': 'IdP group', placeholder: 'IdP group' });
    const r = h('select', { class: 'map-role', 'aria-label': 'Role' }, roles.map(x =>
      h('option', { value: x.slug, text: x.name ? `${x.slug} (${x.name})` : x.slug, selected: x.slug === m.role_slug })));
    const tr = h('tr', {}, h('td', {}, g), h('td', {}, r),
      h('td', {}, h('button', { type: 'button', class: 'danger small', text: 'Remove', 'aria-label': 'remove this mapping',
                                on: { click: () => tr.remove() } })));
    return tr;
  };
  for (const m of maps) tbody.append(row(m));
  const t = h('table', { class: 'grid', id: 'mappings', 'aria-label': 'Group to role mappings' },
    h('thead', {}, h('tr', {}, h('th', { text: 'IdP group (exact, case-sensitive)' }), h('th', { text: 'Role' }), h('th'))), tbody);
  main.append(section('Group \u2192 role mappings', t,
    h('p', {}, h('button', { type: 'button', class: 'secondary', id: 'mapping-add', text: 'Add mapping', on: { click: () => {
      const tr = row({}); tbody.append(tr); tr.querySelector('input').focus(); } } }), ' ',
      h('button', { type: 'button', id: 'mappings-save', text: 'Save mappings', on: { click: () => {
        const body = [...tbody.children].map(tr => ({ idp_group: tr.querySelector('.map-group').value.trim(),
                                                       role_slug: tr.querySelector('.map-role').value }));
        run(slot, 'Saving the mappings', () => client.api('PUT', `/connections/${c.id}/role_mappings`, body),
            (res) => `Mappings saved (${res.data.length}).`);
      } } })), slot));
}
