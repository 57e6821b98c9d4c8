/**
 * Whether the session has handled every change the page sent: widgets hold an update
 * back until the one before it is acknowledged, so a Submit, or a page leaving, must
 * not overtake it.
 */
function settled() {
  const { nbfStatus, nbfPending } = document.body.dataset;
  return nbfStatus !== 'busy' && (nbfPending ?? '0') === '0';
}

/** Run `then` once the session has handled every change sent before. */
export function whenIdle(then) {
  if (settled()) {
    then();
    return;
  }
  const watch = new MutationObserver(() => {
    if (!settled()) return;
    watch.disconnect();
    then();
  });
  const attributeFilter = ['data-nbf-status', 'data-nbf-pending'];
  watch.observe(document.body, { attributes: true, attributeFilter });
}
