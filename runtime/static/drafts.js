/**
 * Nothing a person has not submitted is lost to a reload or a lost connection. Whenever
 * their changes pause, the server sends the page what its widget holds (a `draft`); the
 * page keeps it in the browser's storage, per person and stage, for a day. A page that
 * opens again sends it back, and the server puts what still fits into the fresh widget
 * (docs/serving.md). A page whose connection drops waits for the server and reloads.
 * Submitted, the draft is forgotten.
 */
import { url } from './api.js';

const { socket } = globalThis.nbfreezeSocket; // opened by socket.js, inline

const key = document.querySelector('meta[name="nbf-draft"]')?.content;
const slot = key ? `nbfreeze-draft:${key}` : null;
const KEPT_MS = 24 * 3600 * 1000;
const RETRY_MS = 2000;

function read() {
  try {
    const kept = JSON.parse(localStorage.getItem(slot));
    return kept && Date.now() - kept.at < KEPT_MS ? kept.draft : null;
  } catch {
    return null;
  }
}

function write(draft) {
  try {
    localStorage.setItem(slot, JSON.stringify({ at: Date.now(), draft }));
  } catch {
    // Storage is full or turned off: the page works as before, it only forgets on reload.
  }
}

/** Forget the draft: it was submitted, or no longer fits the stage. */
export function forget() {
  if (!slot) return;
  try {
    localStorage.removeItem(slot);
  } catch {
    // Nothing was kept.
  }
}

/** Reload once the server answers again; the reloaded page restores the draft. */
function reconnect() {
  fetch(url('/api/v1/stages'), { cache: 'no-store', credentials: 'same-origin' })
    .then((answer) => {
      if (answer.status < 500) location.reload();
      else setTimeout(reconnect, RETRY_MS);
    })
    .catch(() => setTimeout(reconnect, RETRY_MS));
}

if (slot) {
  document.body.dataset.nbfReconnects = '1';
  document.addEventListener('nbf:draft', (event) => write(event.detail.draft));
  document.addEventListener('nbf:draft_refused', forget);
  const kept = read();
  const send = () => socket.send(JSON.stringify({ type: 'draft', draft: kept }));
  let opened = socket.readyState === WebSocket.OPEN;
  if (kept && opened) send();
  socket.addEventListener('open', () => {
    opened = true;
    if (kept) send();
  });
  socket.addEventListener('close', () => {
    // A page that never connected would only reload into the same failure.
    if (opened && !document.body.dataset.nbfLeaving) setTimeout(reconnect, RETRY_MS);
  });
}
