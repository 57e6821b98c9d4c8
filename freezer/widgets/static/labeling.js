// nbfreeze's stock labelers (ImageGrid, Classify): one plain ES module for anywidget,
// the same in Jupyter, Voila and the frozen app. Python keeps the items; the model
// holds the shown ones (`_items`), their images as binary buffers (`_images`), the
// `_choices`, and `labels` (item key -> label), which is the only thing this view sets.
// In the frozen app it may also hold the next batch (`_ahead_items`, `_ahead_images`),
// drawn ahead and shown at once when the page's Submit sends this view `nbfreeze:advance`.

import { keyList } from './keys.js';

const KEYS = { next: ['ArrowRight', 'ArrowDown'], back: ['ArrowLeft', 'ArrowUp'] };
// What `?` lists: the same keys as docs/widgets.md.
const GRID_KEYS = [
  ['Space', 'pick or unpick the focused image (a click does too)'],
  ['← → ↑ ↓', 'move to the next image, or the one above or below'],
  ['Home End', 'the first or last image'],
  ['u', 'undo the last change'],
  ['Enter', 'submit'],
  ['?', 'show or hide this list (Escape closes it)'],
];
const CLASSIFY_KEYS = [
  ['1–9', 'give the current item that choice and go to the next'],
  ['← →', 'the previous or next item (↑ ↓ too)'],
  ['Home End', 'the first or last item'],
  ['u', 'undo the last change'],
  ['Enter', 'submit'],
  ['?', 'show or hide this list (Escape closes it)'],
];

/** Blob URLs of the images the items (and their references) name, by image number;
 * `trait` holds the images (the shown items', or the held batch's). */
function imageUrls(model, items, trait = '_images') {
  const images = model.get(trait) || [];
  const urls = [];
  const add = (media) => {
    if (!media || media.image < 0 || !images[media.image]) return;
    urls[media.image] = URL.createObjectURL(new Blob([images[media.image]], { type: media.mime }));
  };
  items.forEach((item) => {
    add(item);
    add(item.reference);
  });
  return urls;
}

/** What the items are compared with: beside each item (`reference=` a function), or
 * once above them all (`reference=` a value). */
function referenceView(reference, url) {
  const figure = document.createElement('figure');
  figure.className = 'nbfl-reference';
  const label = document.createElement('figcaption');
  label.textContent = 'Reference';
  figure.append(label, itemView({ ...reference, caption: 'reference', key: '' }, url, false));
  return figure;
}

function withReference(item, urls, view) {
  if (!item.reference) return view;
  const pair = document.createElement('div');
  pair.className = 'nbfl-pair';
  pair.append(referenceView(item.reference, urls[item.reference.image]), view);
  return pair;
}

function fixedReference(model) {
  const reference = model.get('_reference');
  if (!reference || !reference.kind) return null;
  const data = model.get('_reference_image');
  const url = reference.kind === 'image' && data ? URL.createObjectURL(new Blob([data], { type: reference.mime })) : null;
  const view = referenceView(reference, url);
  view.classList.add('nbfl-reference-all');
  return view;
}

function itemView(item, url, decorative, ahead = false) {
  if (item.kind === 'image') {
    const img = document.createElement('img');
    img.className = 'nbfl-image';
    // A held batch's images are decoded before they are shown, off the page.
    img.loading = ahead ? 'eager' : 'lazy';
    img.decoding = 'async';
    img.alt = decorative ? '' : item.caption || `item ${item.key}`;
    img.src = url;
    if (ahead && url) img.decode().catch(() => {}); // a broken image shows as one later
    return img;
  }
  const box = document.createElement('div');
  box.className = item.kind === 'html' ? 'nbfl-html' : 'nbfl-text';
  if (item.kind === 'html') box.innerHTML = item.text; // marked trusted by the author
  else box.textContent = item.text;
  return box;
}

function caption(item) {
  const text = document.createElement('div');
  text.className = 'nbfl-caption';
  text.textContent = item.caption;
  return text;
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** Labels with undo: every change goes to the model and onto a stack `u` pops. */
function labelBook(model) {
  const history = [];
  const write = (labels) => {
    model.set('labels', labels);
    model.save_changes();
  };
  return {
    get: () => model.get('labels') || {},
    /** A new batch's labels, set here and not sent: the server sets the same ones. */
    start(labels) {
      history.length = 0;
      model.set('labels', labels);
    },
    set(key, label) {
      const labels = { ...this.get() };
      if (labels[key] === label) return;
      history.push([key, labels[key]]);
      if (label === undefined) delete labels[key];
      else labels[key] = label;
      write(labels);
    },
    undo() {
      const last = history.pop();
      if (!last) return null;
      const [key, before] = last;
      const labels = { ...this.get() };
      if (before === undefined) delete labels[key];
      else labels[key] = before;
      write(labels);
      return key;
    },
  };
}

/**
 * The batch after the shown one, which the server sends ahead (`_ahead_items`): made
 * ready by `make(items, urls)` (the view's nodes, their images decoding) and not shown.
 * `el` says it holds one (`data-nbfreeze-ahead`), for the page's Submit to find.
 */
function heldBatch(model, el, make) {
  let held = null;
  const forget = () => held?.urls.forEach((url) => url && URL.revokeObjectURL(url));
  const mark = () => {
    if (held) el.dataset.nbfreezeAhead = 'true';
    else delete el.dataset.nbfreezeAhead;
  };
  return {
    fill() {
      forget();
      const items = model.get('_ahead_items') || [];
      const urls = imageUrls(model, items, '_ahead_images');
      held = items.length ? { items, urls, made: make(items, urls) } : null;
      mark();
    },
    /** The held batch, no longer held (null when none is). */
    take() {
      const taken = held;
      held = null;
      mark();
      return taken;
    },
    /** Hold `batch` again (a submit moved past it and failed). */
    put(batch) {
      forget();
      held = batch;
      mark();
    },
    dispose: forget,
  };
}

/** Move the view to its held batch when the page's Submit asks (`nbfreeze:advance`):
 * the event's detail gets the submitted batch's labels, the keys moved to, and `back`,
 * which returns to the submitted batch. `shown()` is what the view shows, `may()` says
 * whether this batch may be moved past, `show(batch, labels)` draws one. */
function advancing(el, book, held, shown, may, show, starting) {
  let expected = null; // the keys the view moved to, until the server's state says them
  el.addEventListener('nbfreeze:advance', (event) => {
    if (event.detail.keys || !may()) return;
    const batch = held.take();
    if (!batch) return;
    const before = shown();
    const labels = book.get();
    const keys = before.items.map((item) => item.key);
    event.detail.labels = Object.fromEntries(keys.filter((k) => k in labels).map((k) => [k, labels[k]]));
    event.detail.keys = batch.items.map((item) => item.key);
    expected = event.detail.keys.join('\n');
    event.detail.back = () => {
      expected = null;
      held.put(batch);
      book.start(labels);
      show(before);
    };
    book.start(starting(batch.items));
    show(batch);
  });
  /** Is the server's new `_items` the batch the view moved to (nothing to draw)? */
  return (items) => {
    const same = expected !== null && items.map((item) => item.key).join('\n') === expected;
    expected = null;
    return same;
  };
}

function submitter(model, el) {
  return () => {
    model.send({ event: 'submit' });
    // The frozen app's stage page listens for this and submits the page.
    el.dispatchEvent(new CustomEvent('nbfreeze:submit', { bubbles: true }));
  };
}

function gridView({ model, el }) {
  const book = labelBook(model);
  const submit = submitter(model, el);
  const status = document.createElement('div');
  status.className = 'nbfl-status';
  status.setAttribute('aria-live', 'polite');
  const grid = document.createElement('div');
  grid.className = 'nbfl-grid';
  grid.setAttribute('role', 'group');
  const head = document.createElement('div');
  head.className = 'nbfl-head';
  const help = keyList(el, 'Keys for picking images', GRID_KEYS, grid);
  head.append(status, help.button);
  const above = fixedReference(model);
  if (above) el.append(above);
  el.append(head, grid);
  let items = [];
  let tiles = [];
  let urls = [];

  const picked = () => model.get('_choices')[0];
  const other = () => model.get('_choices')[1];

  function tilesOf(batch, batchUrls, ahead = false) {
    return batch.map((item, n) => {
      const tile = document.createElement('button');
      tile.type = 'button';
      tile.className = 'nbfl-tile';
      tile.dataset.key = item.key;
      tile.tabIndex = n === 0 ? 0 : -1;
      const view = itemView(item, batchUrls[item.image], Boolean(item.caption), ahead);
      tile.append(withReference(item, batchUrls, view));
      if (item.caption) tile.append(caption(item));
      tile.addEventListener('click', () => {
        book.set(item.key, book.get()[item.key] === picked() ? other() : picked());
      });
      return tile;
    });
  }

  const held = heldBatch(model, el, (batch, batchUrls) => tilesOf(batch, batchUrls, true));
  const moved = advancing(
    el,
    book,
    held,
    () => ({ items, urls, made: tiles }),
    () => true, // a grid's items all have labels: picked or not
    (batch) => {
      ({ items, urls, made: tiles } = batch);
      grid.replaceChildren(...tiles);
      update();
    },
    (batch) => Object.fromEntries(batch.map((item) => [item.key, other()])),
  );

  function update() {
    const labels = book.get();
    let count = 0;
    for (const tile of tiles) {
      const on = labels[tile.dataset.key] === picked();
      tile.setAttribute('aria-pressed', String(on));
      count += on ? 1 : 0;
    }
    status.textContent = `${count} of ${tiles.length} picked · click or Space picks, u undoes, Enter submits, ? lists the keys`;
  }

  function build() {
    grid.style.setProperty('--nbfl-size', `${model.get('_size')}px`);
    if (moved(model.get('_items'))) return; // drawn already, at the Submit
    urls.forEach((url) => url && URL.revokeObjectURL(url));
    items = model.get('_items');
    urls = imageUrls(model, items);
    tiles = tilesOf(items, urls);
    grid.replaceChildren(...tiles);
    update();
  }

  function focusTile(n) {
    if (!tiles.length) return;
    const index = Math.max(0, Math.min(tiles.length - 1, n));
    tiles.forEach((tile, i) => { tile.tabIndex = i === index ? 0 : -1; });
    tiles[index].focus();
  }

  function columns() {
    const top = tiles[0]?.offsetTop;
    const n = tiles.filter((tile) => tile.offsetTop === top).length;
    return Math.max(1, n);
  }

  grid.addEventListener('keydown', (event) => {
    const at = tiles.indexOf(document.activeElement);
    const moves = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns(), ArrowUp: -columns() };
    if (event.key in moves && at >= 0) focusTile(at + moves[event.key]);
    else if (event.key === 'Home') focusTile(0);
    else if (event.key === 'End') focusTile(tiles.length - 1);
    else if (event.key === 'u') {
      const key = book.undo();
      if (key !== null) focusTile(tiles.findIndex((tile) => tile.dataset.key === key));
    } else if (event.key === 'Enter') submit();
    else if (event.key === '?') help.toggle();
    else return;
    event.preventDefault();
    event.stopPropagation();
  });

  model.on('change:_items', build);
  model.on('change:labels', update);
  model.on('change:_ahead_items', held.fill);
  build();
  held.fill();
  return () => {
    model.off('change:_items', build);
    model.off('change:labels', update);
    model.off('change:_ahead_items', held.fill);
    urls.forEach((url) => url && URL.revokeObjectURL(url));
    held.dispose();
  };
}

function classifyView({ model, el }) {
  const book = labelBook(model);
  const submit = submitter(model, el);
  const root = document.createElement('div');
  root.className = 'nbfl-classify';
  root.tabIndex = 0;
  root.setAttribute('role', 'group');
  root.setAttribute('aria-label', 'Label the items');
  const cards = document.createElement('div');
  cards.className = 'nbfl-cards';
  const bar = document.createElement('div');
  bar.className = 'nbfl-bar';
  const back = document.createElement('button');
  back.type = 'button';
  back.className = 'nbfl-nav';
  back.textContent = '‹ Back';
  const status = document.createElement('span');
  status.className = 'nbfl-status';
  status.setAttribute('aria-live', 'polite');
  const next = document.createElement('button');
  next.type = 'button';
  next.className = 'nbfl-nav';
  next.textContent = 'Next ›';
  const help = keyList(el, 'Keys for labeling items', CLASSIFY_KEYS, root);
  bar.append(back, status, next, help.button);
  root.append(cards, bar);
  const above = fixedReference(model);
  if (above) el.append(above);
  el.append(root);
  let items = [];
  let urls = [];
  let views = new Map(); // item key -> what shows it (its image, text or HTML)
  let cursor = 0;

  const perPage = () => Math.max(1, model.get('_per_page'));

  function viewsOf(batch, batchUrls, ahead = false) {
    const made = batch.map((item) => {
      const view = itemView(item, batchUrls[item.image], Boolean(item.caption), ahead);
      return [item.key, withReference(item, batchUrls, view)];
    });
    return new Map(made);
  }

  const held = heldBatch(model, el, (batch, batchUrls) => viewsOf(batch, batchUrls, true));
  const moved = advancing(
    el,
    book,
    held,
    () => ({ items, urls, made: views, cursor }),
    // An item left unlabeled stays the labeler's: the server brings it back.
    () => items.every((item) => item.key in book.get()),
    (batch) => {
      ({ items, urls, made: views } = batch);
      cursor = batch.cursor ?? 0;
      draw();
    },
    () => ({}),
  );

  function move(to) {
    cursor = Math.max(0, Math.min(items.length - 1, to));
    draw();
  }

  function pick(item, choice) {
    book.set(item.key, choice);
    const at = items.indexOf(item);
    if (at === cursor && cursor < items.length - 1) cursor += 1;
    draw();
  }

  function card(item, n) {
    const box = document.createElement('div');
    box.className = 'nbfl-card';
    box.dataset.key = item.key;
    if (n === cursor) box.classList.add('nbfl-current');
    const chosen = book.get()[item.key];
    box.append(views.get(item.key));
    if (item.caption) box.append(caption(item));
    const choices = document.createElement('div');
    choices.className = 'nbfl-choices';
    model.get('_choices').forEach((choice, c) => {
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'nbfl-choice';
      button.setAttribute('aria-pressed', String(chosen === choice));
      if (c < 9) {
        const hint = document.createElement('kbd');
        hint.setAttribute('aria-hidden', 'true');
        hint.textContent = String(c + 1);
        button.append(hint);
      }
      button.append(choice);
      button.addEventListener('click', (event) => {
        event.stopPropagation(); // the card's own click would move the cursor back
        cursor = n;
        pick(item, choice);
      });
      choices.append(button);
    });
    box.append(choices);
    box.addEventListener('click', () => {
      if (cursor !== n) move(n);
    });
    return box;
  }

  function draw() {
    const focused = root.contains(document.activeElement);
    const start = Math.floor(cursor / perPage()) * perPage();
    const page = items.slice(start, start + perPage());
    cards.replaceChildren(...page.map((item, i) => card(item, start + i)));
    const labels = book.get();
    const done = items.filter((item) => item.key in labels).length;
    const where = items.length ? `item ${cursor + 1} of ${items.length}` : 'nothing to label';
    status.textContent = `${done} of ${plural(items.length, 'item')} labeled · ${where} · ? lists the keys`;
    back.disabled = cursor === 0;
    next.disabled = cursor >= items.length - 1;
    back.hidden = items.length <= 1;
    next.hidden = items.length <= 1;
    if (focused) root.focus();
  }

  function build() {
    if (moved(model.get('_items'))) return; // drawn already, at the Submit
    urls.forEach((url) => url && URL.revokeObjectURL(url));
    items = model.get('_items');
    urls = imageUrls(model, items);
    views = viewsOf(items, urls);
    cursor = Math.min(cursor, Math.max(0, items.length - 1));
    draw();
  }

  back.addEventListener('click', () => move(cursor - (perPage() > 1 ? perPage() : 1)));
  next.addEventListener('click', () => move(cursor + (perPage() > 1 ? perPage() : 1)));
  root.addEventListener('keydown', (event) => {
    const choices = model.get('_choices');
    const number = Number.parseInt(event.key, 10);
    if (number >= 1 && number <= Math.min(9, choices.length) && items[cursor]) {
      pick(items[cursor], choices[number - 1]);
    } else if (KEYS.next.includes(event.key)) move(cursor + 1);
    else if (KEYS.back.includes(event.key)) move(cursor - 1);
    else if (event.key === 'Home') move(0);
    else if (event.key === 'End') move(items.length - 1);
    else if (event.key === 'u') {
      const key = book.undo();
      const at = items.findIndex((item) => item.key === key);
      if (at >= 0) move(at);
    } else if (event.key === 'Enter' && event.target !== help.button) submit();
    else if (event.key === '?') help.toggle();
    else return;
    event.preventDefault();
    event.stopPropagation();
  });

  model.on('change:_items', build);
  model.on('change:labels', draw);
  model.on('change:_ahead_items', held.fill);
  build();
  held.fill();
  return () => {
    model.off('change:_items', build);
    model.off('change:labels', draw);
    model.off('change:_ahead_items', held.fill);
    urls.forEach((url) => url && URL.revokeObjectURL(url));
    held.dispose();
  };
}

function render(context) {
  context.el.classList.add('nbfl');
  // JupyterLab leaves keys pressed inside this element to the widget.
  context.el.dataset.lmSuppressShortcuts = 'true';
  const view = context.model.get('_view') === 'grid' ? gridView : classifyView;
  return view(context);
}

export default { render };
