/**
 * The welcome page: a labeler who came by the shared invite gives the name the owner
 * sees them by (POST /api/v1/me), then goes on to their first page.
 */
import { post } from './api.js';

const form = document.querySelector('form.nbf-welcome');
const status = form.querySelector('.nbf-welcome-status');

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  const name = form.elements.name.value.trim();
  if (!name) {
    location.assign(form.dataset.next);
    return;
  }
  status.textContent = 'Saving…';
  try {
    // It sets the name: safe to repeat.
    await post('/api/v1/me', { name }, { retry: true });
    location.assign(form.dataset.next);
  } catch (error) {
    status.textContent = `Not saved: ${error.message}`;
  }
});
