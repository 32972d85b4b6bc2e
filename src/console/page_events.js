// page_events.js: Events (R26), oldest first, a page at a time
// (GET /events?limit=&after=), filtered by event name.
import { api } from './api.js';
import { h, clear, field, section, table, fmtTime, errorBox } from './ui.js';

const PAGE = 20;

export async function render(main) {
  main.append(h('h1', { text: 'Events' }));
  const filter = h('input', { id: 'events-filter', placeholder: 'e.g. authentication.succeeded' });
  const out = h('div', { id: 'events-list' });
  const cursors = [null];
  let at = 0;
  const load = async () => {
    clear(out);
    const after = cursors[at];
    const q = `/events?limit=${PAGE}${after ? '&after=' + encodeURIComponent(after) : ''}` +
              (filter.value.trim() ? '&event=' + encodeURIComponent(filter.value.trim()) : '');
    let page;
    try { page = await api('GET', q); } catch (e) { out.append(errorBox(e, 'Loading events')); return; }
    const next = page.list_metadata && page.list_metadata.after;
    out.append(table([{ title: 'Time', cell: e => fmtTime(e.created_at) },
                      { title: 'Event', cell: e => h('code', { text: e.event }) },
                      { title: 'Object', cell: e => (e.data && (e.data.id || e.data.slug || e.data.connection_id)) || '' },
                      { title: 'Data', cell: e => h('details', {}, h('summary', { text: 'show' }),
                          h('pre', { class: 'mono', text: JSON.stringify(e.data, null, 2) })) }],
                     page.data, { label: 'Events', empty: 'No events.' }),
      h('p', { class: 'pager' },
        h('button', { type: 'button', id: 'events-prev', class: 'secondary', text: '\u2190 Previous', disabled: at === 0,
                      on: { click: () => { at--; load(); } } }), ' ',
        h('span', { id: 'events-page', text: `Page ${at + 1}` }), ' ',
        h('button', { type: 'button', id: 'events-next', class: 'secondary', text: 'Next \u2192', disabled: !next,
                      on: { click: () => { cursors[at + 1] = next; at++; load(); } } })));
  };
  main.append(section('Filter', h('form', { class: 'inline', id: 'events-form', on: { submit: (e) => {
    e.preventDefault(); cursors.length = 1; at = 0; load(); } } },
    field('Event name', filter), h('button', { type: 'submit', text: 'Apply' }))), out);
  await load();
}
