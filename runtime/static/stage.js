/**
 * A stage page's Submit button: posts to the JSON API (docs/api.md) and follows the
 * answer to the next page. A retry of the same click reuses its request id, so the
 * server applies it once.
 */
const form = document.querySelector('form.nbf-submit');
const status = form.querySelector('.nbf-submit-status');
const button = form.querySelector('button');

function xsrf() {
  const found = document.cookie.split('; ').find((part) => part.startsWith('_xsrf='));
  return found ? decodeURIComponent(found.slice(6)) : '';
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  if (document.body.dataset.nbfStatus === 'busy') {
    status.textContent = 'Still working… submit again in a moment.';
    return;
  }
  button.disabled = true;
  status.textContent = 'Saving…';
  const requestId = form.dataset.requestId || crypto.randomUUID();
  form.dataset.requestId = requestId;
  try {
    const response = await fetch(`/api/v1/stages/${encodeURIComponent(form.dataset.stage)}/submit`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-XSRFToken': xsrf() },
      body: JSON.stringify({ request_id: requestId }),
      credentials: 'same-origin',
    });
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.error || response.statusText);
    status.textContent = 'Saved.';
    location.assign(answer.next);
  } catch (error) {
    status.textContent = `Not saved: ${error.message}`;
    button.disabled = false;
  }
});
