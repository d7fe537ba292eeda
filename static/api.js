// pixdrop's HTTP API as the page uses it: job requests, deletion, and problem+json errors turned
// into words.
import { authHeaders, signedIn } from './session.js';

export function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** The reason a request failed, for people: the server's `detail` when it gave one. */
export function problemDetail(body, status, statusText) {
  if (body && typeof body.detail === 'string' && body.detail) return body.detail;
  if (!status) return 'pixdrop could not be reached';
  return `the server answered ${status}${statusText ? ` ${statusText}` : ''}`;
}

/**
 * Resolves to `{ status, ok, body }`, never rejects: status 0 means no answer at all. `headers`
 * replace the sign-in's where they name the same.
 */
export async function request(method, url, headers = {}) {
  try {
    const response = await fetch(url, {
      method, headers: { Accept: 'application/json', ...authHeaders(), ...headers },
    });
    const body = parseJson(await response.text());
    return { status: response.status, ok: response.ok, body };
  } catch {
    return { status: 0, ok: false, body: null };
  }
}

const jobUrl = (id) => `/jobs/${encodeURIComponent(id)}`;

/** 200 with the job's status; 409 when it had already finished. */
export const cancelJob = (id) => request('DELETE', jobUrl(id));

/** 202 with the job's status; 409 when it is not failed or cancelled. */
export const retryJob = (id) => request('POST', `${jobUrl(id)}/retry`);

export const jobStatus = (id) => request('GET', jobUrl(id));

/**
 * 204 once the upload, its variants and (unless shared) its original are gone; 404 when it is
 * gone already. The owner's sign-in proves it; without one, the upload's `delete_token`, sent as
 * the bearer (a header: a URL's query ends up in proxies' logs).
 */
export const deleteUpload = (id, token) => request(
  'DELETE', `/uploads/${encodeURIComponent(id)}`,
  token && !signedIn() ? { Authorization: `Bearer ${token}` } : {},
);

/** 200 with `{ jobs, next }`: the signed-in caller's latest jobs, newest first. */
export const myJobs = (limit) => request('GET', `/jobs?limit=${limit}`);
