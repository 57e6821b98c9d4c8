/**
 * The JSON API as our pages call it (docs/api.md): a POST with the XSRF token from the
 * `_xsrf` cookie, whose refusal becomes an Error with the server's message.
 */
function xsrf() {
  const found = document.cookie.split('; ').find((part) => part.startsWith('_xsrf='));
  return found ? decodeURIComponent(found.slice(6)) : '';
}

export async function post(path, body) {
  const response = await fetch(path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-XSRFToken': xsrf() },
    body: JSON.stringify(body),
    credentials: 'same-origin',
  });
  const answer = await response.json();
  if (!response.ok) throw new Error(answer.error || response.statusText);
  return answer;
}
