// page_orgs.js: Organizations: list and create (name, domains); one
// organization's domains and its Roles tab: the roles it sees (environment
// roles and its own, R9-R11) in its priority order (drag or keyboard), its
// default role, and its own roles.
import { api, listAll } from './api.js';
import { h, clear, run, field, section, table, priorityList } from './ui.js';

const splitList = (s) => s.split(',').map(x => x.trim()).filter(Boolean);

export async function render(main, [id, tab]) {
  if (id) return renderOne(main, id, tab || 'overview');
  const orgs = await listAll('/organizations');
  const slot = h('div', { id: 'org-result' });
  const name = h('input', { id: 'org-name', required: true, placeholder: 'Acme' });
  const domains = h('input', { id: 'org-domains', placeholder: 'acme.com, acme.org' });
  main.append(h('h1', { text: 'Organizations' }),
    section('Organizations', table([
      { title: 'Name', cell: o => h('a', { href: `#/orgs/${o.id}`, text: o.name }) },
      { title: 'Id', cell: o => h('code', { text: o.id }) },
      { title: 'Domains', cell: o => (o.domains || []).map(d => (typeof d === 'string' ? d : d.domain)).join(', ') }],
      orgs, { label: 'Organizations' })),
    section('New organization', h('form', { class: 'inline', id: 'org-form', on: { submit: (e) => {
      e.preventDefault();
      run(slot, 'Creating the organization', () => api('POST', '/organizations',
        { name: name.value.trim(), domains: splitList(domains.value) })
        .then((o) => { location.hash = `#/orgs/${o.id}`; }));
    } } }, field('Name', name), field('Domains (comma-separated)', domains),
      h('button', { type: 'submit', text: 'Create organization' })), slot));
}

async function renderOne(main, id, tab) {
  const org = await api('GET', `/organizations/${encodeURIComponent(id)}`);
  main.append(h('p', {}, h('a', { href: '#/orgs', text: '\u2190 Organizations' })),
              h('h1', { text: org.name }));
  const tabs = [['overview', 'Overview'], ['roles', 'Roles']];
  main.append(h('div', { class: 'tabs', role: 'tablist' }, tabs.map(([t, label]) =>
    h('button', { type: 'button', role: 'tab', 'aria-selected': String(t === tab), id: `tab-${t}`, text: label,
                  on: { click: () => { location.hash = `#/orgs/${id}/${t}`; } } })),
    h('a', { href: `#/connections/org/${id}`, class: 'tab-link', text: 'Connections \u2192' })));
  const panel = h('div', { role: 'tabpanel', 'aria-labelledby': `tab-${tab}` });
  main.append(panel);
  if (tab === 'roles') return rolesTab(panel, org);
  const slot = h('div', { id: 'org-edit-result' });
  const name = h('input', { id: 'org-edit-name', value: org.name });
  const domains = h('input', { id: 'org-edit-domains',
    value: (org.domains || []).map(d => (typeof d === 'string' ? d : d.domain)).join(', ') });
  panel.append(section('Overview',
    h('dl', { class: 'kv' }, h('dt', { text: 'Id' }), h('dd', { text: org.id }),
      h('dt', { text: 'Default role' }), h('dd', { text: org.default_role || '(the environment\u2019s)' })),
    h('form', { class: 'inline', id: 'org-edit-form', on: { submit: (e) => { e.preventDefault();
      run(slot, 'Saving the organization', () => api('PATCH', `/organizations/${id}`,
        { name: name.value.trim(), domains: splitList(domains.value) }), 'Organization saved.'); } } },
      field('Name', name), field('Domains (comma-separated)', domains), h('button', { type: 'submit', text: 'Save' })),
    slot));
}

async function rolesTab(panel, org) {
  const base = `/authorization/organizations/${encodeURIComponent(org.id)}/roles`;
  const roles = await listAll(base);
  const own = roles.filter(r => r.type === 'OrganizationRole');
  const prioSlot = h('div', { id: 'org-priority-result', 'aria-live': 'polite' });
  const list = priorityList(roles.map(r => ({ slug: r.slug, name: r.name,
      badge: r.type === 'OrganizationRole' ? 'organization' : null })), `Role priority of ${org.name}`,
    (slugs) => run(prioSlot, 'Saving the priority order', () => api('PUT', `${base}/priority`, { slugs }),
                   () => `Order saved: ${slugs.join(' > ')}.`));
  list.id = 'org-priority';
  panel.append(section(`Roles visible in ${org.name}`,
    h('p', { class: 'muted', text: own.length
      ? 'This organization has its own roles, so it has its own order and default role.'
      : 'No organization roles yet: the order is the environment\u2019s until the first one (R9).' }),
    list, prioSlot));
  const defSlot = h('div', { id: 'org-default-result' });
  const def = h('select', { id: 'org-default' }, roles.map(r =>
    h('option', { value: r.slug, text: r.slug, selected: r.slug === org.default_role })));
  panel.append(section('Default role', h('form', { class: 'inline', id: 'org-default-form', on: { submit: (e) => {
    e.preventDefault();
    run(defSlot, 'Saving the default role', () => api('PATCH', `/organizations/${org.id}`, { default_role: def.value }),
        'Default role saved.');
  } } }, field('Default role', def), h('button', { type: 'submit', text: 'Save' })), defSlot));
  const slot = h('div', { id: 'org-role-result' });
  const name = h('input', { id: 'org-role-name', required: true, placeholder: 'Billing Admin' });
  panel.append(section('New organization role', h('form', { class: 'inline', id: 'org-role-form', on: { submit: (e) => {
    e.preventDefault();
    run(slot, 'Creating the role', () => api('POST', base, { name: name.value.trim() })
      .then(() => { const p = panel.parentNode; clear(p); renderOne(p, org.id, 'roles'); }));
  } } }, field('Name (the slug is generated, R5)', name), h('button', { type: 'submit', text: 'Create role' })), slot));
}
