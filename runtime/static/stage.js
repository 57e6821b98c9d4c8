/**
 * A stage page's Submit button. The answer is sent over the page's own socket, so the
 * server process that holds the page's widgets saves it (whichever process serves the
 * rest); the reply says where to go next. A retry of the same click reuses its request
 * id, so the server saves it once; an answer that asks for a retry (the server restarting,
 * its database away) is sent again by itself. A labeling widget asks for a submit (its Enter key)
 * with a bubbling `nbfreeze:submit` event.
 *
 * A pool page's widget may hold the next batch already (its element has
 * `data-nbfreeze-ahead`): the click sends it `nbfreeze:advance`, it shows that batch at
 * once, in the same task, and the submit carries the submitted batch's labels and the
 * keys the page moved to (`ahead`). Should the submit fail, the widget goes back to it.
 *
 * A Submit whose socket closed before its answer (its server process died behind nginx)
 * is kept in the tab's sessionStorage with its request id; the page reloads once a
 * process answers (drafts.js), and when the labels are back it sends that Submit again
 * by itself, with the same id, so it is saved once.
 */
import { forget } from './drafts.js';
import { whenIdle } from './idle.js';
import { newId } from './ids.js';

const { socket } = globalThis.nbfreezeSocket; // opened by socket.js, inline

const form = document.querySelector('form.nbf-submit');
const status = form.querySelector('.nbf-submit-status');
const button = form.querySelector('button');
let pending = null;
let workedIn = null; // the cell whose widget asked for the submit (its Enter key)
let moved = null; // what the widget moved past at the click: labels, keys, back()
let unsettled = false; // a Submit was asked for and not answered yet
const RESUBMIT = 'nbfreeze-resubmit';

/** Put the keyboard back into the widget once the new batch is drawn in it, for a
 * person who submitted with Enter: the items they had focus on are gone. */
function refocus(cell, frames = 60) {
  if (!cell || frames === 0) return;
  const lost = !document.activeElement || document.activeElement === document.body;
  const target = cell.querySelector('[tabindex="0"]');
  if (lost && target) target.focus();
  else if (lost) requestAnimationFrame(() => refocus(cell, frames - 1));
}
const FLASH = 'nbfreeze-flash';

/** Say `text` on the page the person goes to next (a submit loads it at once). */
function tell(text) {
  try {
    sessionStorage.setItem(FLASH, text);
  } catch {
    // Without storage the next page only shows its own note.
  }
}

try {
  const told = sessionStorage.getItem(FLASH);
  sessionStorage.removeItem(FLASH);
  if (told) status.textContent = told;
} catch {
  // Nothing was told.
}

/** Show the widget's held batch now, if it holds one (not for a lead-in's widget). */
function advance() {
  for (const view of document.querySelectorAll('[data-nbfreeze-ahead]')) {
    if (view.closest('.nbf-lead-in')) continue;
    const detail = {};
    view.dispatchEvent(new CustomEvent('nbfreeze:advance', { detail }));
    if (detail.keys) return detail;
  }
  return null;
}

/** Keep the unanswered Submit for the page this one reloads into. */
function keepForReload() {
  const kept = { path: location.pathname, id: form.dataset.requestId || newId() };
  try {
    sessionStorage.setItem(RESUBMIT, JSON.stringify(kept));
  } catch {
    // Without storage the labeler submits again: the labels are back all the same.
  }
}

/** The Submit the page before this one kept, if it was on this page; forgotten either way. */
function keptSubmit() {
  try {
    const kept = JSON.parse(sessionStorage.getItem(RESUBMIT));
    sessionStorage.removeItem(RESUBMIT);
    return kept?.path === location.pathname ? kept : null;
  } catch {
    return null;
  }
}

const resubmit = keptSubmit();

function settle(event, ok) {
  if (!pending || event.detail.request_id !== pending) return;
  pending = null;
  unsettled = Boolean(event.detail.retry && !ok);
  if (ok) moved = null;
  else if (!event.detail.retry && moved) {
    moved.back(); // not saved: the submitted batch is the labeler's again, as it was
    moved = null;
  }
  if (ok) {
    forget();
    const { left = 0, swapped, next } = event.detail;
    const late = event.detail.late?.length || 0;
    const items = left === 1 ? 'The item you left unlabeled is' : `The ${left} items you left unlabeled are`;
    let said = swapped ? 'Saved. Here is your next batch.' : 'Saved.';
    if (left) said = `Saved. ${items} still yours: back in this batch.`;
    if (late) {
      const labels = `${late} label${late === 1 ? '' : 's'}`;
      said = `Saved, but ${labels} came too late: others labeled those items while you worked.`;
    }
    status.textContent = said;
    if (swapped) {
      // The next batch is already in the page (a pool): stay, ready for the next submit.
      delete form.dataset.requestId;
      button.disabled = false;
      refocus(workedIn);
      return;
    }
    document.body.dataset.nbfLeaving = '1';
    if (left && !late && next === location.pathname) tell(said);
    setTimeout(() => location.assign(next), late ? 2500 : 0);
  } else if (event.detail.retry) {
    // The server is restarting or its database is away: the same request again, later.
    status.textContent = `Not saved yet: ${event.detail.message}. Trying again…`;
    setTimeout(send, event.detail.retry * 1000);
  } else {
    status.textContent = `Not saved: ${event.detail.message}`;
    button.disabled = false;
  }
}

document.addEventListener('nbf:submitted', (event) => settle(event, true));
document.addEventListener('nbf:submit_error', (event) => settle(event, false));

function send() {
  if (socket.readyState !== WebSocket.OPEN) {
    if (unsettled) keepForReload();
    unsettled = false;
    status.textContent = 'Not connected to the server: reconnecting, then submit again.';
    moved?.back();
    moved = null;
    button.disabled = false;
    return;
  }
  status.textContent = 'Saving…';
  form.dataset.requestId = form.dataset.requestId || newId();
  pending = form.dataset.requestId;
  const message = { type: 'submit', request_id: pending };
  if (moved) Object.assign(message, { labels: moved.labels, ahead: moved.keys });
  socket.send(JSON.stringify(message));
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  if (button.disabled) return;
  button.disabled = true;
  unsettled = true;
  moved = socket.readyState === WebSocket.OPEN ? advance() : null;
  status.textContent = moved ? 'Saving…' : 'Saving your last change…';
  if (moved) refocus(workedIn);
  whenIdle(send);
});

socket.addEventListener('close', () => {
  if (unsettled && !document.body.dataset.nbfLeaving) keepForReload();
});

document.addEventListener('nbf:draft_restored', () => {
  status.textContent = 'Your answers not yet submitted are back, as you left them.';
  if (!resubmit) return;
  // The Submit the connection dropped: the same request again, saved once.
  form.dataset.requestId = resubmit.id;
  status.textContent = 'Your answers are back: submitting them again…';
  form.requestSubmit();
});

document.addEventListener('nbfreeze:submit', (event) => {
  workedIn = event.target.closest?.('.nbf-cell') ?? null;
  if (!button.disabled) form.requestSubmit();
});
