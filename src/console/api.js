// api.js: the one way the console and the portal talk to rolegate: fetch
// with the session cookie (HttpOnly: this code never sees it) and the CSRF
// token (kept in this module's memory only, never in storage or the page)
// on every write. Errors come back as ApiError with the API's stable code,
// message and field, so every page can show them as they are.
let csrf = null;
let base = '';
let onSignedOut = () => {};

export function configure(opts) {
  if (opts.base !== undefined) base = opts.base;
  if (opts.onSignedOut) onSignedOut = opts.onSignedOut;
}
export function setCsrf(token) { csrf = token; }

export class ApiError extends Error {
  constructor(status, body) {
    const b = body && typeof body === 'object' ? body : {};
    super(b.message || `HTTP ${status}`);
    this.status = status;
    this.code = b.code || `http_${status}`;
    this.errors = Array.isArray(b.errors) ? b.errors : [];
    this.field = this.errors.length ? this.errors[0].field : null;
  }
}

// method, path, body (a JS value sent as JSON, or with opts.type the raw
// text sent with that Content-Type). Returns the parsed JSON (or null).
export async function api(method, path, body, opts = {}) {
  const headers = {};
  let payload;
  if (body !== undefined) {
    headers['Content-Type'] = opts.type || 'application/json';
    payload = opts.type ? body : JSON.stringify(body);
  }
  if (method !== 'GET' && method !== 'HEAD' && csrf) headers['X-CSRF-Token'] = csrf;
  let r;
  try {
    r = await fetch(base + path, { method, headers, body: payload, credentials: 'same-origin',
                                   cache: 'no-store' });
  } catch (e) {
    throw new ApiError(0, { code: 'network_error', message: 'rolegate did not answer: ' + e.message });
  }
  const text = await r.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = { message: text.slice(0, 200) }; }
  }
  if (r.status === 401 && !opts.quiet) onSignedOut();
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

// Every item of a list endpoint, following list_metadata.after.
export async function listAll(path) {
  const out = [];
  let after = null;
  for (let i = 0; i < 100; i++) {
    const sep = path.includes('?') ? '&' : '?';
    const page = await api('GET', `${path}${sep}limit=100${after ? '&after=' + encodeURIComponent(after) : ''}`);
    out.push(...page.data);
    after = page.list_metadata && page.list_metadata.after;
    if (!after || !page.data.length) break;
  }
  return out;
}
