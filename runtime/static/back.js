/**
 * A pool page's Back (docs/labeling.md, "Going back"): the labeler's previous batch,
 * their answers shown in it, to change and submit again; the `b` key does the same,
 * outside a text field. Back shows once the labeler has a batch saved. "On to new work"
 * leaves a batch gone back to. Before the page leaves, it asks the server for what its
 * widget holds unsubmitted (`keep`) and keeps that draft (drafts.js), so the batch being
 * labeled comes back with its picks in it.
 */
import { whenIdle } from './idle.js';

const { socket } = globalThis.nbfreezeSocket; // opened by socket.js, inline
const KEEP_MS = 3000; // a server that does not answer in time: leave all the same
let leaving = false;

function leave(link) {
  if (leaving) return;
  leaving = true;
  document.body.dataset.nbfLeaving = '1'; // drafts.js: no reconnecting as it closes
  const go = () => location.assign(link.href);
  const drafted = document.querySelector('meta[name="nbf-draft"]');
  if (!drafted || socket.readyState !== WebSocket.OPEN) {
    go();
    return;
  }
  whenIdle(() => {
    // drafts.js keeps the draft first: its listener was added as the page loaded.
    document.addEventListener('nbf:draft', () => setTimeout(go, 0), { once: true });
    setTimeout(go, KEEP_MS);
    socket.send(JSON.stringify({ type: 'keep' }));
  });
}

for (const link of document.querySelectorAll('a.nbf-go-back, a.nbf-go-on')) {
  link.addEventListener('click', (event) => {
    if (event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    leave(link);
  });
}

// A page that has nothing to go back to yet gets its Back once a batch is saved in it.
document.addEventListener('nbf:submitted', (event) => {
  const back = document.querySelector('a.nbf-go-back');
  if (back && event.detail.swapped) back.hidden = false;
});

function typing(target) {
  return target.closest?.('input, textarea, select, [contenteditable=""], [contenteditable="true"]');
}

document.addEventListener('keydown', (event) => {
  if (event.key !== 'b' || event.ctrlKey || event.metaKey || event.altKey) return;
  if (typing(event.target) || document.querySelector('dialog[open]')) return;
  const back = document.querySelector('a.nbf-go-back');
  if (!back || back.hidden) return;
  event.preventDefault();
  leave(back);
});
