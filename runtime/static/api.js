/**
 * The JSON API as our pages call it (docs/api.md): a POST with the XSRF token from the
 * `_xsrf` cookie, whose refusal becomes an Error with the server's message; and `url`,
 * which puts an app path under the app's root (`--root-path`, docs/deploy.md).
 */

// This module is served from ROOT/static/, so the root is the directory above it.
const root = new URL('../', import.meta.url).pathname;

/** The app path `path` (`/api/v1/stages`) as the server answers it under its root. */
export function url(path) {
  return root + path.replace(/^\//, '');
}

function xsrf() {
  const found = document.cookie.split('; ').find((part) => part.startsWith('_xsrf='));
  return found ? decodeURIComponent(found.slice(6)) : '';
}

export async function post(path, body) {
  const response = await fetch(url(path), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-XSRFToken': xsrf() },
    body: JSON.stringify(body),
    credentials: 'same-origin',
  });
  const answer = await response.json();
  if (!response.ok) throw new Error(answer.error || response.statusText);
  return answer;
}
