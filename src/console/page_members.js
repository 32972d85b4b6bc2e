// page_members.js: Members of an organization: each membership's roles and
// role_source (idp, api or directory, R17-R19), setting roles through the
// API (role_source becomes "api"), a member's sessions (revoke one: it is
// refused at once on every instance) and revoking a membership.
import { api, listAll } from './api.js';
import { h, clear, run, field, section, table, fmtTime } from './ui.js';

// The sessions of one membership, newest first, each with its state and a
// revoke button (DELETE /sessions/{id}).
async function showSessions(box, m, who) {
  const list = await api('GET', `/user_management/organization_memberships/${encodeURIComponent(m.id)}/sessions?limit=100`);
  const slot = h('div', { id: 'sessions-result', 'aria-live': 'polite' });
  clear(box).append(section(`Sessions of ${who}`, table([
    { title: 'Started', cell: x => fmtTime(x.created_at) },
    { title: 'Ends', cell: x => fmtTime(x.expires_at) },
    { title: 'Through', cell: x => x.connection_id || (x.actor ? `issued by ${x.actor}` : '') },
    { title: 'State', cell: x => h('span', { class: 'badge session-state', text: x.state }) },
    { title: '', cell: x => x.state !== 'active' ? '' : h('button', { type: 'button', class: 'danger small',
        text: 'Revoke', 'aria-label': `revoke session ${x.id}`, on: { click: () =>
          run(slot, 'Revoking the session', () => api('DELETE', `/sessions/${encodeURIComponent(x.id)}`)
            .then(() => showSessions(box, m, who))) } }) }],
    list.data || [], { label: 'Sessions', empty: 'No sessions.' }), slot));
}

export async function render(main, [orgId]) {
  const orgs = await listAll('/organizations');
  main.append(h('h1', { text: 'Members' }));
  const pick = h('select', { id: 'members-org' }, h('option', { value: '', text: 'Choose an organization' }),
    orgs.map(o => h('option', { value: o.id, text: o.name, selected: o.id === orgId })));
  pick.addEventListener('change', () => { location.hash = `#/members/${pick.value}`; });
  main.append(section('Organization', field('Organization', pick)));
  if (!orgId) return;
  const [ms, users, roles] = await Promise.all([
    listAll(`/user_management/organization_memberships?organization_id=${encodeURIComponent(orgId)}`),
    listAll('/user_management/users'),
    listAll(`/authorization/organizations/${encodeURIComponent(orgId)}/roles`)]);
  const email = Object.fromEntries(users.map(u => [u.id, u.email]));
  const slot = h('div', { id: 'members-result', 'aria-live': 'polite' });
  const sessionsBox = h('div', { id: 'member-sessions' });
  main.append(section('Members', table([
    { title: 'User', cell: m => h('span', {}, email[m.user_id] || m.user_id, h('br'), h('code', { class: 'muted', text: m.id })) },
    { title: 'Roles', cell: m => h('span', { class: 'member-roles', text: (m.roles || []).map(r => r.slug).join(', ') }) },
    { title: 'Role source', cell: m => h('span', { class: 'badge role-source', text: m.role_source }) },
    { title: 'Status', cell: m => m.status },
    { title: 'Set role', cell: m => {
      const sel = h('select', { 'aria-label': `role of ${email[m.user_id] || m.user_id}` },
        roles.map(r => h('option', { value: r.slug, text: r.slug, selected: m.role && r.slug === m.role.slug })));
      return h('span', {}, sel, ' ', h('button', { type: 'button', class: 'small', text: 'Set', on: { click: () =>
        run(slot, 'Setting the role', () => api('PUT', `/user_management/organization_memberships/${m.id}`,
          { role_slug: sel.value }).then(() => render(main.replaceChildren() || main, [orgId]))) } }));
    } },
    { title: 'Sessions', cell: m => h('button', { type: 'button', class: 'small', text: 'Sessions',
        'aria-label': `sessions of ${email[m.user_id] || m.user_id}`, on: { click: () =>
          run(slot, 'Reading the sessions', () => showSessions(sessionsBox, m, email[m.user_id] || m.user_id)) } }) },
    { title: '', cell: m => h('button', { type: 'button', class: 'danger small', text: 'Revoke',
        'aria-label': `revoke ${email[m.user_id] || m.user_id}`, on: { click: () =>
          run(slot, 'Revoking the membership', () => api('DELETE', `/user_management/organization_memberships/${m.id}`)
            .then(() => render(main.replaceChildren() || main, [orgId]))) } }) }],
    ms, { label: 'Members', empty: 'No members yet: they appear at their first login.' }), slot), sessionsBox);
}
