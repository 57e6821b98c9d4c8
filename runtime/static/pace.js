/**
 * A pool page's line on the labeler's own progress: "You: 14 labeled, 6 left in this
 * batch, about 3 minutes." The counts come with each draft the server sends the page
 * (drafts.js): the items of the batch labeled so far, and the batch's size. The pace is
 * the labeler's own on this stage, measured from the changes made since the page opened
 * and kept for the tab's next batch.
 */
const line = document.querySelector('.nbf-you');

function duration(seconds) {
  if (seconds < 60) return 'under a minute';
  const minutes = Math.round(seconds / 60);
  return `about ${minutes} minute${minutes === 1 ? '' : 's'}`;
}

function remembered(slot) {
  try {
    return Number(sessionStorage.getItem(slot)) || 0;
  } catch {
    return 0;
  }
}

function remember(slot, pace) {
  try {
    sessionStorage.setItem(slot, String(pace));
  } catch {
    // Without storage the next batch starts without an estimate.
  }
}

if (line) {
  let before = Number(line.dataset.labeled);
  const slot = `nbfreeze-pace:${line.dataset.stage}`;
  let pace = remembered(slot); // seconds per item
  // Since when, and from how many labels, the pace is measured: the page's opening, or
  // the first count after a restored draft or a new batch.
  let start = { at: performance.now(), done: 0 };
  document.addEventListener('nbf:draft_restored', () => {
    start = null;
  });
  /** The batch has `done` items labeled now: measure the pace since `start`. */
  const measure = (done) => {
    const now = performance.now();
    if (start === null) start = { at: now, done };
    if (done > start.done) {
      pace = (now - start.at) / 1000 / (done - start.done);
      remember(slot, pace);
    }
  };
  document.addEventListener('nbf:submitted', (event) => {
    if (!event.detail.swapped) return;
    measure(event.detail.labeled - before);
    before = event.detail.labeled; // the next batch is in the page: count it afresh
    start = null;
    line.textContent = `You: ${before} labeled.`;
    const everyone = document.querySelector('.nbf-everyone');
    if (everyone && event.detail.everyone) everyone.textContent = event.detail.everyone;
  });
  document.addEventListener('nbf:draft', (event) => {
    const { labels, batch } = event.detail.draft;
    if (typeof batch !== 'number') return;
    const done = Object.keys(labels).length;
    measure(done);
    const left = Math.max(batch - done, 0);
    const time = left && pace ? `, ${duration(left * pace)}` : '';
    line.textContent = `You: ${before + done} labeled, ${left} left in this batch${time}.`;
  });
}
