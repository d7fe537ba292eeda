// Who the page acts for. Where pixdrop requires sign-in, the page asks for an API token once and
// keeps it for this tab's session only (sessionStorage: gone when the tab closes, never sent
// anywhere but pixdrop), sending it as `Authorization: Bearer` on every request. A host app that
// signs its users in (a JWT from its identity provider) hands the page a token by opening it as
// `/#token=<token>`: the fragment never reaches a server or a log, and the page removes it at once.
// The websocket cannot carry headers: it opens with a single-use ticket from `POST /ws/ticket`.

const KEY = 'pixdrop.token';

function fromFragment() {
  const match = /(?:^|&)token=([^&]+)/.exec(location.hash.slice(1));
  if (!match) return null;
  history.replaceState(null, '', location.pathname + location.search);
  return decodeURIComponent(match[1]);
}

let token = fromFragment() || sessionStorage.getItem(KEY);
if (token) sessionStorage.setItem(KEY, token);

/** The headers that say who is asking (none when no token is held). */
export function authHeaders() {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

/** Whether the page acts for a signed-in subject, who owns (and may delete) its uploads. */
export function signedIn() {
  return Boolean(token);
}

export function useToken(value) {
  token = value;
  sessionStorage.setItem(KEY, value);
}

export function signOut() {
  token = null;
  sessionStorage.removeItem(KEY);
}

/** `GET /me`: `{ status, body }`; 401 when sign-in is required and the token is missing or bad. */
export async function whoAmI() {
  try {
    const response = await fetch('/me', { headers: { Accept: 'application/json', ...authHeaders() } });
    return { status: response.status, body: await response.json().catch(() => null) };
  } catch {
    return { status: 0, body: null };
  }
}

/** A ticket for one websocket, or null when the page holds no token (or none could be had). */
export async function socketTicket() {
  if (!token) return null;
  try {
    const response = await fetch('/ws/ticket', { method: 'POST', headers: authHeaders() });
    if (!response.ok) return null;
    return (await response.json()).ticket || null;
  } catch {
    return null;
  }
}
