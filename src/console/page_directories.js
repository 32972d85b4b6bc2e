// page_directories.js: Directories (SCIM 2.0, R27-R31) of an organization:
// create one (its SCIM base URL and bearer token, the token shown once),
// rotate the token (R31), the groups the IdP pushed and their group -> role
// mappings (R28), and the directory's users with their roles.
import { api, listAll } from './api.js';
import { h, run, field, section, table, notice } from './ui.js';

const TYPES = ['okta scim v2.0', 'azure scim v2.0', 'generic scim v2.0'];

function tokenBox(d) {
  return h('div', { class: 'card', id: 'dir-token-box', role: 'status' },
    notice('Copy the bearer token now: it is shown only this once.'),
    h('dl', { class: 'kv' }, h('dt', { text: 'SCIM base URL' }), h('dd', { id: 'dir-scim-url', text: d.scim_base_url }),
      h('dt', { text: 'Bearer token' }), h('dd', { id: 'dir-token', text: d.bearer_token })));
}

export async function render(main, [kind, id]) {
  main.append(h('h1', { text: 'Directories' }));
  if (kind === 'dir' && id) return renderOne(main, id);
  const orgs = await listAll('/organizations');
  const pick = h('select', { id: 'dir-org' }, h('option', { value: '', text: 'Choose an organization' }),
    orgs.map(o => h('option', { value: o.id, text: o.name, selected: o.id === id })));
  pick.addEventListener('change', () => { location.hash = `#/directories/org/${pick.value}`; });
  main.append(section('Organization', field('Organization', pick)));
  if (kind !== 'org' || !id) return;
  const dirs = await listAll(`/directories?organization_id=${encodeURIComponent(id)}`);
  main.append(section('Directories', table([
    { title: 'Name', cell: d => h('a', { href: `#/directories/dir/${d.id}`, text: d.name }) },
    { title: 'Type', cell: d => d.type }, { title: 'State', cell: d => d.state },
    { title: 'SCIM base URL', cell: d => h('code', { text: d.scim_base_url }) }], dirs, { label: 'Directories' })));
  const slot = h('div', { id: 'dir-create-result' });
  const name = h('input', { id: 'dir-name', required: true, placeholder: 'Okta' });
  const type = h('select', { id: 'dir-type' }, TYPES.map(t => h('option', { value: t, text: t })));
  main.append(section('New directory', h('form', { class: 'inline', id: 'dir-form', on: { submit: (e) => {
    e.preventDefault();
    run(slot, 'Creating the directory', () => api('POST', `/organizations/${id}/directories`,
      { name: name.value.trim(), type: type.value }).then((d) => {
        slot.append(tokenBox(d), h('p', {}, h('a', { href: `#/directories/dir/${d.id}`, text: `Open ${d.name} \u2192` })));
      }));
  } } }, field('Name', name), field('Type', type), h('button', { type: 'submit', text: 'Create directory' })), slot));
}

async function renderOne(main, id) {
  const d = await api('GET', `/directories/${encodeURIComponent(id)}`);
  const [groups, users, maps, roles] = await Promise.all([
    listAll(`/directory_groups?directory=${encodeURIComponent(id)}`),
    listAll(`/directory_users?directory=${encodeURIComponent(id)}`),
    api('GET', `/directories/${encodeURIComponent(id)}/role_mappings`),
    listAll(`/authorization/organizations/${encodeURIComponent(d.organization_id)}/roles`)]);
  const tslot = h('div', { id: 'dir-rotate-result' });
  main.append(h('p', {}, h('a', { href: `#/directories/org/${d.organization_id}`, text: '\u2190 Directories' })),
    section(d.name, h('dl', { class: 'kv' },
      h('dt', { text: 'Type' }), h('dd', { text: d.type }), h('dt', { text: 'State' }), h('dd', { text: d.state }),
      h('dt', { text: 'SCIM base URL' }), h('dd', { id: 'dir-scim-url', text: d.scim_base_url }),
      h('dt', { text: 'Bearer token' }), h('dd', { text: '(shown once, when made; rotate to get a new one)' })),
      h('button', { type: 'button', class: 'secondary', id: 'dir-rotate', text: 'Rotate the token', on: { click: () =>
        run(tslot, 'Rotating the token', () => api('POST', `/directories/${id}/token`).then((r) => tslot.append(tokenBox(r)))) } }),
      tslot));
  const mapped = Object.fromEntries((Array.isArray(maps) ? maps : maps.data || []).map(m => [m.directory_group_id, m.role_slug]));
  const selects = [];
  const mslot = h('div', { id: 'dir-mappings-result', 'aria-live': 'polite' });
  main.append(section('Groups \u2192 roles', table([
    { title: 'Group', cell: g => g.name }, { title: 'IdP id', cell: g => h('code', { text: g.idp_id || '' }) },
    { title: 'Role', cell: g => { const s = h('select', { class: 'dir-map-role', 'data-group': g.id, 'aria-label': `role of ${g.name}` },
        h('option', { value: '', text: '(no role)' }),
        roles.map(r => h('option', { value: r.slug, text: r.slug, selected: mapped[g.id] === r.slug })));
      selects.push(s); return s; } }], groups, { label: 'Directory groups', empty: 'No groups pushed yet.' }),
    h('button', { type: 'button', id: 'dir-mappings-save', text: 'Save mappings', disabled: !groups.length, on: { click: () =>
      run(mslot, 'Saving the mappings', () => api('PUT', `/directories/${id}/role_mappings`,
        selects.filter(s => s.value).map(s => ({ directory_group_id: s.dataset.group, role_slug: s.value }))),
        'Mappings saved: the members\u2019 roles are recomputed (R28).') } }), mslot));
  main.append(section('Users', table([
    { title: 'Email', cell: u => u.email }, { title: 'State', cell: u => u.state },
    { title: 'Roles', cell: u => h('span', { class: 'dir-user-roles', text: (u.roles || []).map(r => r.slug).join(', ') }) },
    { title: 'Groups', cell: u => (u.groups || []).map(g => g.name).join(', ') }], users, { label: 'Directory users', empty: 'No users pushed yet.' })));
}
