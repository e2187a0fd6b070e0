// The console's HTTP client: same-origin JSON, the session's CSRF token on every mutation, and one
// place that turns a 401 into "sign in again".

let csrf = '';
let onExpired = () => {
  window.location.assign('/login?expired=1');
};

export function setCsrf(token) {
  csrf = token;
}

export function onSessionExpired(fn) {
  onExpired = fn;
}

export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `request failed (${status})`);
    this.status = status;
    this.code = e.code || 'unknown';
    this.details = e.details || {};
  }
}

/** Calls the API; resolves with the JSON body, rejects with ApiError. */
export async function api(path, { method = 'GET', body, signal } = {}) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET') {
    headers['Content-Type'] = 'application/json';
    headers['X-CSRF-Token'] = csrf;
  }
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      signal,
      cache: 'no-store',
    });
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    throw new ApiError(0, {
      error: { code: 'network', message: 'the server cannot be reached; check your connection' },
    });
  }
  let data = null;
  const text = await res.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const err = new ApiError(res.status, data);
    if (res.status === 401 && path !== '/api/login') onExpired(err);
    throw err;
  }
  return data;
}
