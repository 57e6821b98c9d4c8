// The keyboard of ChoiceLabeler, which is built from standard ipywidgets (a card per
// item, a ToggleButtons per card) that have no keys of their own. This view is a child
// of the labeler's box; it finds the labeler's cards around it in the page (the box
// has the class `nbfc`, each card `nbfc-card`, in the order of `_keys`) and gives them
// the keys of Classify. The model holds the shown items' keys (`_keys`), the
// `_choices`, and `_labels` (shown item key -> label), which this view sets and
// Python turns into the labeler's `labels`, the same in Jupyter and the frozen app.
// In the frozen app the box has a second grid (class `nbfc-grid`, as the first), hidden,
// with the next batch's cards (`_ahead_keys`): the page's Submit sends this view
// `nbfreeze:advance`, and it shows that grid at once; `_turn`'s parity says which grid
// the server shows, and wins.

import { keyList } from './keys.js';

// What `?` lists: the same keys as docs/widgets.md.
const CHOICE_KEYS = [
  ['1–9', 'give the focused item that choice and go to the next (a click does too)'],
  ['← →', 'the previous or next item'],
  ['↑ ↓', 'the item above or below'],
  ['Home End', 'the first or last item'],
  ['u', 'undo the last change'],
  ['Enter', 'submit'],
  ['?', 'show or hide this list (Escape closes it)'],
];

function render({ model, el }) {
  el.classList.add('nbfc-keys');
  el.dataset.lmSuppressShortcuts = 'true';
  const hint = document.createElement('span');
  hint.className = 'nbfc-hint';
  el.append(hint);
  let root = null;
  let cursor = 0;
  let front = 0; // the grid that shows the items: `_turn`'s parity, or moved to at Submit
  let current = []; // the shown items' keys: `_keys`, or the held batch's after a move
  let disposed = false;
  const history = []; // [item key, its label before], newest last
  let batch = ''; // the items shown: a new batch starts at its first item, with no undo
  const help = keyList(el, 'Keys for labeling items', CHOICE_KEYS, el);
  el.append(help.button);

  const keys = () => current;
  const held = () => model.get('_ahead_keys') || [];
  const labels = () => model.get('_labels') || {};
  const choices = () => model.get('_choices') || [];
  const grids = () => (root ? [...root.querySelectorAll('.nbfc-grid')] : []);
  const cardsOf = (grid) => (grid ? [...grid.querySelectorAll('.nbfc-card')] : []);
  const cards = () => cardsOf(grids()[front]);
  // The cards are drawn by their own views, a moment after `_keys` arrives.
  const ready = (list) => list.length === keys().length;
  const heldReady = () => held().length > 0 && cardsOf(grids()[1 - front]).length === held().length
    && held().join('\n') !== current.join('\n');

  function write(key, label) {
    // Only the items on the page: a label of a batch gone would be refused with the rest.
    const on = new Set([...(model.get('_keys') || []), ...held()]);
    const next = Object.fromEntries(Object.entries(labels()).filter(([k]) => on.has(k)));
    if (label === undefined) delete next[key];
    else next[key] = label;
    model.set('_labels', next);
    model.save_changes();
  }

  function label(key, choice) {
    const before = labels()[key];
    if (before === choice) return;
    history.push([key, before]);
    write(key, choice);
  }

  function arrange() {
    const list = cards();
    const n = keys().length;
    const text = choices().length > 1
      ? `1–${Math.min(9, choices().length)} chooses, arrows move, u undoes, Enter submits, ? lists the keys`
      : 'Arrows move, u undoes, Enter submits, ? lists the keys';
    if (hint.textContent !== text) hint.textContent = text; // else the observer calls again
    place();
    if (!ready(list)) return;
    const shown = keys().join('\n');
    if (shown !== batch) {
      if (batch) {
        cursor = 0;
        history.length = 0;
      }
      batch = shown;
    }
    cursor = Math.max(0, Math.min(cursor, list.length - 1));
    const given = labels();
    list.forEach((card, i) => {
      const key = keys()[i];
      card.tabIndex = i === cursor ? 0 : -1;
      card.setAttribute('role', 'group');
      card.setAttribute('aria-label', `item ${i + 1} of ${n}: ${given[key] ?? 'not labeled yet'}`);
      card.querySelectorAll('.widget-toggle-button').forEach((button, c) => {
        button.tabIndex = -1; // Tab goes from the labeler to what follows; keys choose
        button.setAttribute('aria-pressed', String(given[key] === choices()[c]));
        if (c < 9 && !button.querySelector('kbd')) {
          const hint = document.createElement('kbd'); // its number key, as in Classify
          hint.className = 'nbfc-kbd';
          hint.setAttribute('aria-hidden', 'true');
          hint.textContent = String(c + 1);
          button.prepend(hint);
        }
      });
    });
  }

  /** Show the front grid, hide the other and get its images decoded, and say whether
   * a batch is held ready for the page's Submit (`data-nbfreeze-ahead`). */
  function place() {
    grids().forEach((grid, i) => {
      const display = i === front ? '' : 'none';
      if (grid.style.display !== display) grid.style.display = display;
      if (i === front) return;
      cardsOf(grid).forEach((card) => { card.tabIndex = -1; });
      grid.querySelectorAll('img:not([data-nbfc-decoded])').forEach((img) => {
        img.dataset.nbfcDecoded = 'true';
        img.decode().catch(() => {}); // a broken image shows as one later
      });
    });
    if (heldReady()) el.dataset.nbfreezeAhead = 'true';
    else delete el.dataset.nbfreezeAhead;
  }

  /** What the server shows: its grid and its batch. */
  function fromModel() {
    front = (model.get('_turn') || 0) % 2;
    current = model.get('_keys') || [];
    arrange();
  }

  // The page's Submit: show the held batch now, if every shown item has its label (an
  // item left unlabeled stays the labeler's, and the server brings it back).
  el.addEventListener('nbfreeze:advance', (event) => {
    const given = labels();
    if (event.detail.keys || !heldReady() || !ready(cards())) return;
    if (!current.every((key) => key in given)) return;
    const before = { front, current, cursor };
    event.detail.labels = Object.fromEntries(current.map((key) => [key, given[key]]));
    event.detail.keys = [...held()];
    event.detail.back = () => {
      ({ front, current, cursor } = before);
      batch = current.join('\n'); // the same batch again: its cursor stays
      arrange();
    };
    front = 1 - front;
    current = [...held()];
    arrange();
  });

  function focusCard(n) {
    const list = cards();
    if (!list.length) return;
    cursor = Math.max(0, Math.min(list.length - 1, n));
    arrange();
    list[cursor].focus();
  }

  function columns(list) {
    const top = list[0]?.offsetTop;
    return Math.max(1, list.filter((card) => card.offsetTop === top).length);
  }

  function onKey(event) {
    if (event.ctrlKey || event.metaKey) return;
    const list = cards();
    if (!ready(list) || !list.length) return;
    const card = event.target.closest?.('.nbfc-card');
    const at = card ? list.indexOf(card) : cursor;
    const number = Number.parseInt(event.key, 10);
    const across = columns(list);
    const moves = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: across, ArrowUp: -across };
    if (number >= 1 && number <= Math.min(9, choices().length) && at >= 0) {
      label(keys()[at], choices()[number - 1]);
      focusCard(at + 1);
    } else if (event.key in moves) focusCard(at + moves[event.key]);
    else if (event.key === 'Home') focusCard(0);
    else if (event.key === 'End') focusCard(list.length - 1);
    else if (event.key === 'u') {
      const last = history.pop();
      if (!last) return;
      write(...last);
      const back = keys().indexOf(last[0]);
      if (back >= 0) focusCard(back);
    } else if (event.key === 'Enter' && event.target !== help.button) {
      model.send({ event: 'submit' });
      // The frozen app's stage page listens for this and submits the page.
      el.dispatchEvent(new CustomEvent('nbfreeze:submit', { bubbles: true }));
    } else if (event.key === '?') help.toggle();
    else return;
    event.preventDefault();
    event.stopPropagation();
  }

  function onClick(event) {
    // Before the ToggleButtons sets its value: remember the label, for `u`.
    // It is written to `_labels` too, at once: a Submit in the same moment sends it.
    const button = event.target.closest?.('.widget-toggle-button');
    const card = button?.closest('.nbfc-card');
    const list = cards();
    if (!card || !ready(list)) return;
    const at = list.indexOf(card);
    const choice = choices()[Number.parseInt(button.value, 10)];
    if (at < 0) return;
    if (choice !== undefined) label(keys()[at], choice);
    cursor = at;
    arrange();
  }

  function onFocus(event) {
    const at = cards().indexOf(event.target.closest?.('.nbfc-card'));
    if (at >= 0 && at !== cursor) {
      cursor = at;
      arrange();
    }
  }

  const redrawn = new MutationObserver(arrange);

  function attach() {
    if (disposed) return;
    root = el.closest('.nbfc');
    if (!root) {
      requestAnimationFrame(attach); // not in the labeler's box yet
      return;
    }
    root.dataset.lmSuppressShortcuts = 'true'; // JupyterLab leaves these keys to us
    root.addEventListener('keydown', onKey);
    root.addEventListener('click', onClick, true);
    root.addEventListener('focusin', onFocus);
    redrawn.observe(root, { childList: true, subtree: true });
    arrange();
  }

  model.on('change:_labels', arrange);
  model.on('change:_ahead_keys', arrange);
  model.on('change:_keys change:_turn', fromModel);
  current = model.get('_keys') || [];
  front = (model.get('_turn') || 0) % 2;
  attach();
  return () => {
    disposed = true;
    redrawn.disconnect();
    model.off('change:_labels', arrange);
    model.off('change:_ahead_keys', arrange);
    model.off('change:_keys change:_turn', fromModel);
    if (root) {
      root.removeEventListener('keydown', onKey);
      root.removeEventListener('click', onClick, true);
      root.removeEventListener('focusin', onFocus);
    }
  };
}

export default { render };
