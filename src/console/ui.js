// ui.js: small DOM helpers shared by the console and the portal. Text is
// always set with textContent (never innerHTML), so nothing an IdP or an
// admin typed can become markup.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'on') for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    else if (k === 'text') el.textContent = v;
    else if (k === 'class') el.className = v;
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); return el; }

// A readable error: what failed, the API's code, field and message.
export function errorBox(err, what) {
  const box = h('div', { class: 'error', role: 'alert' });
  box.append(h('strong', { text: what ? `${what} failed` : 'Error' }));
  box.append(h('span', { class: 'code', text: err.code || 'error' }));
  if (err.field) box.append(h('span', { class: 'field', text: `field: ${err.field}` }));
  box.append(h('p', { class: 'message', text: err.message || String(err) }));
  return box;
}

export function notice(text) { return h('div', { class: 'notice', role: 'status', text }); }

// Shows the outcome of an async action in `slot`: a notice or an error.
export async function run(slot, what, fn, okText) {
  clear(slot);
  try {
    const r = await fn();
    if (okText) slot.append(notice(typeof okText === 'function' ? okText(r) : okText));
    return r;
  } catch (e) {
    slot.append(errorBox(e, what));
    return undefined;
  }
}

export function field(label, input) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  return h('div', { class: 'field-row' }, h('label', { for: id, text: label }), input);
}

export function table(cols, rows, opts = {}) {
  const t = h('table', { class: 'grid', 'aria-label': opts.label || null });
  t.append(h('thead', {}, h('tr', {}, cols.map(c => h('th', { scope: 'col', text: c.title })))));
  const tb = h('tbody');
  for (const r of rows) tb.append(h('tr', {}, cols.map(c => h('td', {}, c.cell(r)))));
  if (!rows.length) tb.append(h('tr', {}, h('td', { colspan: String(cols.length), class: 'empty',
                                                      text: opts.empty || 'Nothing yet.' })));
  t.append(tb);
  return t;
}

export function section(title, ...children) {
  return h('section', { class: 'card' }, h('h2', { text: title }), ...children);
}

// A list the user reorders by dragging (mouse) or with Alt+ArrowUp/Down or
// the Up/Down buttons (keyboard); onChange(slugs) saves the new order.
export function priorityList(items, label, onChange) {
  const ol = h('ol', { class: 'priority', 'aria-label': label });
  let dragged = null;
  const order = () => [...ol.children].map(li => li.dataset.slug);
  const moved = (li) => { onChange(order()); li.querySelector('.grip').focus(); };
  const move = (li, dir) => {
    const sib = dir < 0 ? li.previousElementSibling : li.nextElementSibling;
    if (!sib) return;
    if (dir < 0) ol.insertBefore(li, sib); else ol.insertBefore(sib, li);
    moved(li);
  };
  for (const it of items) {
    const li = h('li', { draggable: 'true', 'data-slug': it.slug, class: 'prio-item' });
    const grip = h('span', { class: 'grip', tabindex: '0', role: 'button',
                              'aria-label': `${it.slug}: Alt+Up or Alt+Down moves it`,
                              text: '\u2630' });
    grip.addEventListener('keydown', (e) => {
      if (e.altKey && (e.key === 'ArrowUp' || e.key === 'ArrowDown')) {
        e.preventDefault();
        move(li, e.key === 'ArrowUp' ? -1 : 1);
      }
    });
    li.append(...[grip, h('span', { class: 'slug', text: it.slug }), h('span', { class: 'name', text: it.name || '' }),
              it.badge ? h('span', { class: 'badge', text: it.badge }) : null,
              h('button', { type: 'button', class: 'small', 'aria-label': `move ${it.slug} up`, text: '\u2191',
                            on: { click: () => move(li, -1) } }),
              h('button', { type: 'button', class: 'small', 'aria-label': `move ${it.slug} down`, text: '\u2193',
                            on: { click: () => move(li, 1) } })].filter(Boolean));
    li.addEventListener('dragstart', (e) => { dragged = li; li.classList.add('dragging');
                                               e.dataTransfer.effectAllowed = 'move';
                                               e.dataTransfer.setData('text/plain', it.slug); });
    li.addEventListener('dragend', () => { li.classList.remove('dragging'); });
    li.addEventListener('dragover', (e) => { e.preventDefault(); e.dataTransfer.dropEffect = 'move'; });
    li.addEventListener('drop', (e) => {
      e.preventDefault();
      if (!dragged || dragged === li) return;
      const r = li.getBoundingClientRect();
      const after = e.clientY > r.top + r.height / 2;
      ol.insertBefore(dragged, after ? li.nextSibling : li);
      const d = dragged;
      dragged = null;
      moved(d);
    });
    ol.append(li);
  }
  return ol;
}

export function fmtTime(s) { return s ? s.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : ''; }
