/**
 * Waiting pages (and the owner's page) ask every two seconds where the person should
 * be; when that changes, the page goes there by itself.
 */
import { url } from './api.js';

const here = location.pathname;

async function check() {
  try {
    const response = await fetch(url('/api/v1/stages'), { credentials: 'same-origin' });
    if (response.ok) {
      const { next } = await response.json();
      if (next && next !== here) {
        location.assign(next);
        return;
      }
    }
  } catch (error) {
    // the server may be restarting: keep asking
  }
  setTimeout(check, 2000);
}

setTimeout(check, 2000);
