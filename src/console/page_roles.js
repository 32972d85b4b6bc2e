// page_roles.js: Roles & Permissions of the environment: multiple roles and
// the default role (PATCH /environment), permissions, roles with their
// permissions, and the priority order (PUT /authorization/roles/priority)
// by drag or keyboard (R11-R17: the order decides the role at login).
import { api, listAll } from './api.js';
import { h, clear, run, field, section, table, priorityList } from './ui.js';

export async function render(main) {
  const [env, perms, roles] = await Promise.all([
    api('GET', '/environment'), listAll('/authorization/permissions'), listAll('/authorization/roles')]);
  main.append(h('h1', { text: 'Roles & Permissions' }));

  // environment settings
  const multi = h('input', { type: 'checkbox', id: 'env-multiple', checked: !!env.multiple_roles });
  const def = h('select', { id: 'env-default' },
    roles.map(r => h('option', { value: r.slug, text: r.slug, selected: r.slug === env.default_role })));
  const envSlot = h('div');
  main.append(section('Environment',
    h('form', { class: 'inline', id: 'env-form', on: { submit: (e) => { e.preventDefault();
      run(envSlot, 'Saving the environment', () => api('PATCH', '/environment',
        { multiple_roles: multi.checked, default_role: def.value }), 'Environment saved.'); } } },
      h('label', {}, multi, ' Multiple roles per member'), field('Default role', def),
      h('button', { type: 'submit', text: 'Save' })), envSlot));

  // priority order
  const prioSlot = h('div', { id: 'priority-result', 'aria-live': 'polite' });
  const list = priorityList(roles.map(r => ({ slug: r.slug, name: r.name,
                                               badge: r.slug === env.default_role ? 'default' : null })),
    'Environment role priority', (slugs) => run(prioSlot, 'Saving the priority order',
      () => api('PUT', '/authorization/roles/priority', { slugs }),
      () => `Order saved: ${slugs.join(' > ')}. The next login uses it.`));
  list.id = 'env-priority';
  main.append(section('Priority order',
    h('p', { class: 'muted', text: 'Highest first. When a user\u2019s groups map to several roles, the highest wins (single-role mode). Drag a role, or focus its handle and press Alt+Up / Alt+Down.' }),
    list, prioSlot));

  // roles and their permissions
  const roleSlot = h('div', { id: 'role-result' });
  const slug = h('input', { id: 'role-slug', placeholder: 'e.g. analyst', required: true });
  const name = h('input', { id: 'role-name', placeholder: 'Analyst', required: true });
  const editor = h('div', { id: 'role-editor' });
  const editPerms = (r) => {
    clear(editor);
    const boxes = perms.map(p => h('label', { class: 'perm' },
      h('input', { type: 'checkbox', value: p.slug, checked: (r.permissions || []).includes(p.slug) }), ` ${p.slug} `));
    const slot = h('div');
    editor.append(section(`Permissions of ${r.slug}`, h('div', {}, boxes),
      h('button', { type: 'button', text: 'Save permissions', on: { click: () =>
        run(slot, 'Saving permissions', () => api('PUT', `/authorization/roles/${encodeURIComponent(r.slug)}/permissions`,
          { permissions: boxes.map(b => b.firstChild).filter(c => c.checked).map(c => c.value) }),
          'Permissions saved.') } }), slot));
    boxes[0] && boxes[0].firstChild.focus();
  };
  main.append(section('Roles',
    table([{ title: 'Slug', cell: r => h('code', { text: r.slug }) }, { title: 'Name', cell: r => r.name },
           { title: 'Permissions', cell: r => (r.permissions || []).join(', ') },
           { title: '', cell: r => h('span', {},
             h('button', { type: 'button', class: 'small', text: 'Permissions', 'aria-label': `edit permissions of ${r.slug}`,
                           on: { click: () => editPerms(r) } }), ' ',
             h('button', { type: 'button', class: 'danger small', text: 'Delete', 'aria-label': `delete ${r.slug}`,
                           on: { click: () => run(roleSlot, `Deleting ${r.slug}`,
                             () => api('DELETE', `/authorization/roles/${encodeURIComponent(r.slug)}`)
                               .then(() => render(clear(main)))) } })) }],
          roles, { label: 'Environment roles' }),
    editor,
    h('h2', { text: 'New role' }),
    h('form', { class: 'inline', id: 'role-form', on: { submit: (e) => { e.preventDefault();
      run(roleSlot, 'Creating the role', () => api('POST', '/authorization/roles',
        { slug: slug.value.trim(), name: name.value.trim() }).then(() => render(clear(main)))); } } },
      field('Slug', slug), field('Name', name), h('button', { type: 'submit', text: 'Create role' })),
    roleSlot));

  // permissions
  const permSlot = h('div', { id: 'perm-result' });
  const pslug = h('input', { id: 'perm-slug', placeholder: 'reports:view', required: true });
  const pname = h('input', { id: 'perm-name', placeholder: 'View reports', required: true });
  main.append(section('Permissions',
    table([{ title: 'Slug', cell: p => h('code', { text: p.slug }) }, { title: 'Name', cell: p => p.name }],
          perms, { label: 'Permissions' }),
    h('form', { class: 'inline', id: 'perm-form', on: { submit: (e) => { e.preventDefault();
      run(permSlot, 'Creating the permission', () => api('POST', '/authorization/permissions',
        { slug: pslug.value.trim(), name: pname.value.trim() }).then(() => render(clear(main)))); } } },
      field('Slug', pslug), field('Name', pname), h('button', { type: 'submit', text: 'Create permission' })),
    permSlot));
}
