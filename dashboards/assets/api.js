// The collector's JSON API, with errors that tell the user what to do.
import { h } from './format.js';

/** An API failure; `message` says what happened and what to do. */
export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

/** Builds "/api/v1/…?a=1&b=2", leaving out null/undefined/'' parameters. */
export function url(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') q.set(k, v);
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

/** GETs JSON from the API; throws ApiError. */
export async function getJson(path, params) {
  const target = url(path, params);
  let response;
  try {
    response = await fetch(target, { headers: { accept: 'application/json' } });
  } catch (e) {
    throw new ApiError(`Cannot reach the collector at ${location.host}: is \`headlight serve\` still running? Reload the page once it is back. (${e.message})`, 0);
  }
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    body = null;
  }
  if (!response.ok) {
    const reason = body && body.error ? body.error.message : `HTTP ${response.status}`;
    let hint = '';
    if (response.status === 400) hint = ' Check the parameters (range, versions, times) and try again.';
    else if (response.status === 401 || response.status === 403) hint = ' The collector wants a token: open the UI through a proxy that adds it.';
    else if (response.status === 503) hint = ' The collector is busy or its store is down; this page retries on the next refresh.';
    else if (response.status >= 500) hint = ' This is a collector bug; its log has the details.';
    throw new ApiError(`${reason}.${hint}`.replace('..', '.'), response.status);
  }
  return body;
}

/** Runs at most `limit` async jobs at once, keeping the order of results. */
export async function pool(items, limit, job) {
  const out = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await job(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** Replaces the content of `el` with a loading line. */
export function loading(el, what) {
  el.replaceChildren(h('p', { class: 'state loading' }, `loading ${what}…`));
}

/** Replaces the content of `el` with an error line. */
export function failed(el, what, error) {
  el.replaceChildren(h('p', { class: 'state error', role: 'alert' }, `Could not load ${what}: ${error.message}`));
}

/** Replaces the content of `el` with an empty state. */
export function empty(el, ...message) {
  el.replaceChildren(h('p', { class: 'state empty' }, ...message));
}
