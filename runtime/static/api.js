/**
 * The JSON API as our pages call it (docs/api.md): a POST with the XSRF token from the
 * `_xsrf` cookie, whose refusal becomes an Error with the server's message; and `url`,
 * which puts an app path under the app's root (`--root-path`, docs/deploy.md).
 *
 * Behind nginx a POST in flight when its process dies is answered by nginx itself (502,
 * or 504), in HTML; the server asks for a repeat with 503 and Retry-After while its
 * database is away. A caller whose POST is safe to repeat (a request id, or a handler
 * that sets a value) passes `{ retry: true }`: such answers, and a lost connection, send
 * it again a few times, waiting longer each time. Any other failure is an Error whose
 * message a person can read, never a SyntaxError or nginx's page.
 */

// This module is served from ROOT/static/, so the root is the directory above it.
const root = new URL('../', import.meta.url).pathname;
const REPEATABLE = new Set([502, 503, 504]); // a process went away, or asks for a repeat
const TRIES = 5;
const FIRST_WAIT_MS = 500;

/** The app path `path` (`/api/v1/stages`) as the server answers it under its root. */
export function url(path) {
  return root + path.replace(/^\//, '');
}

function xsrf() {
  const found = document.cookie.split('; ').find((part) => part.startsWith('_xsrf='));
  return found ? decodeURIComponent(found.slice(6)) : '';
}

/** The answer's JSON, or null when it is none (nginx's HTML error page, an empty body). */
async function json(response) {
  try {
    return await response.json();
  } catch {
    return null;
  }
}

/** Words for a failed answer that carries no message of the server's. */
function said(status) {
  if (REPEATABLE.has(status)) return 'the server is not answering just now: try again in a moment';
  return `the server answered ${status}`;
}

/** Wait before the next try: the server's Retry-After, else twice as long as the last. */
function pause(attempt, retryAfter) {
  const asked = Number(retryAfter) * 1000;
  const wait = asked > 0 ? asked : FIRST_WAIT_MS * 2 ** (attempt - 1);
  return new Promise((resolve) => setTimeout(resolve, wait));
}

async function send(path, body) {
  return fetch(url(path), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-XSRFToken': xsrf() },
    body: JSON.stringify(body),
    credentials: 'same-origin',
  });
}

export async function post(path, body, { retry = false } = {}) {
  for (let attempt = 1; ; attempt += 1) {
    const again = retry && attempt < TRIES;
    let response;
    try {
      response = await send(path, body);
    } catch {
      if (again) {
        await pause(attempt, null);
        continue;
      }
      throw new Error('the server could not be reached: check the connection and try again');
    }
    const answer = await json(response);
    if (response.ok && answer) return answer;
    if (again && REPEATABLE.has(response.status)) {
      await pause(attempt, response.headers.get('Retry-After'));
      continue;
    }
    throw new Error(answer?.error || said(response.status));
  }
}
