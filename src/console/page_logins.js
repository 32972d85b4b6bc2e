// page_logins.js: Login records of a connection (GET /connections/{id}/logins,
// newest first here): who signed in, the groups the IdP sent, the mappings
// that matched them, the roles chosen and why (R15-R17), or the reason a
// login was refused.
import { api, listAll } from './api.js';
import { h, field, section, fmtTime } from './ui.js';

export async function render(main, [connId]) {
  main.append(h('h1', { text: 'Login records' }));
  if (!connId) return pickConnection(main);
  const c = await api('GET', `/connections/${encodeURIComponent(connId)}`);
  const [page, maps] = await Promise.all([
    api('GET', `/connections/${encodeURIComponent(connId)}/logins?limit=100`),
    listAll(`/connections/${encodeURIComponent(connId)}/role_mappings`)]);
  const recs = page.data.slice().reverse();
  main.append(h('p', {}, h('a', { href: `#/connections/conn/${c.id}`, text: `\u2190 ${c.name}` })));
  if (!recs.length) main.append(section('No logins yet', h('p', { class: 'muted', text: 'Records appear here after the first sign-in through this connection.' })));
  for (const r of recs) main.append(record(r, maps));
}

// Why: the record's own mappings, and every group of it that the
// connection's current mappings send to a role (single-role mode keeps the
// highest of those in the priority order, R16).
function why(r, current) {
  if (r.result !== 'succeeded') return `Refused: ${r.reason || 'unknown reason'}${r.message ? ' \u2014 ' + r.message : ''}`;
  const maps = r.mappings || [];
  if (r.role_source === 'api') return 'Roles were set through the admin API, which IdP groups do not override (R17).';
  if (r.role_source === 'directory') return 'Roles come from directory sync (R27), not from this login.';
  if (!maps.length) return `No group matched a mapping, so the default role applies: ${(r.roles || []).join(', ')}.`;
  const groups = new Set(r.groups || []);
  const mapped = [...new Set([...maps, ...current.filter(m => groups.has(m.idp_group))].map(m => m.role_slug))];
  if (mapped.length > 1 && (r.roles || []).length === 1)
    return `Groups mapped to ${mapped.join(', ')}; single-role mode keeps the highest in priority order: ${r.roles[0]}.`;
  return `Groups mapped to ${mapped.join(', ')}: the member has ${(r.roles || []).join(', ')}.`;
}

function record(r, current) {
  const ok = r.result === 'succeeded';
  const groups = r.groups || [];
  return h('section', { class: 'card login-record', 'data-result': r.result },
    h('h2', { text: `${ok ? 'Signed in' : 'Refused'}: ${r.subject || '(no subject)'} \u2014 ${fmtTime(r.created_at)}` }),
    h('dl', { class: 'kv' },
      h('dt', { text: 'Groups received' }), h('dd', { class: 'groups' },
        `${r.groups_received ?? groups.length}: `, groups.length ? groups.join(', ') : '(none)'),
      h('dt', { text: 'Mappings matched' }), h('dd', { class: 'mappings' },
        (r.mappings || []).length ? r.mappings.map(m => `${m.idp_group} \u2192 ${m.role_slug}`).join(', ') : '(none)'),
      h('dt', { text: 'Roles' }), h('dd', { class: 'roles', text: (r.roles || []).join(', ') || '\u2014' }),
      h('dt', { text: 'Role source' }), h('dd', { text: r.role_source || '\u2014' }),
      h('dt', { text: 'Why' }), h('dd', { class: 'why', text: why(r, current) }),
      r.token_size ? [h('dt', { text: 'Session cookie' }), h('dd', { text: `${r.token_size} bytes` })] : null));
}

async function pickConnection(main) {
  const orgs = await listAll('/organizations');
  const all = [];
  for (const o of orgs)
    for (const c of await listAll(`/organizations/${encodeURIComponent(o.id)}/connections`)) all.push([o, c]);
  const pick = h('select', { id: 'logins-conn' }, h('option', { value: '', text: 'Choose a connection' }),
    all.map(([o, c]) => h('option', { value: c.id, text: `${o.name} / ${c.name} (${c.type})` })));
  pick.addEventListener('change', () => { if (pick.value) location.hash = `#/logins/${pick.value}`; });
  main.append(section('Connection', field('Connection', pick)));
}
