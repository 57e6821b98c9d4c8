/**
 * The welcome page: a labeler who came by the shared invite gives the name the owner
 * sees them by (POST /api/v1/me), then goes on to their first page.
 */
const form = document.querySelector('form.nbf-welcome');
const status = form.querySelector('.nbf-welcome-status');

function xsrf() {
  const found = document.cookie.split('; ').find((part) => part.startsWith('_xsrf='));
  return found ? decodeURIComponent(found.slice(6)) : '';
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  const name = form.elements.name.value.trim();
  if (!name) {
    location.assign(form.dataset.next);
    return;
  }
  status.textContent = 'Saving…';
  try {
    const response = await fetch('/api/v1/me', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-XSRFToken': xsrf() },
      body: JSON.stringify({ name }),
      credentials: 'same-origin',
    });
    if (!response.ok) throw new Error((await response.json()).error || response.statusText);
    location.assign(form.dataset.next);
  } catch (error) {
    status.textContent = `Not saved: ${error.message}`;
  }
});
