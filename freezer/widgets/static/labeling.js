// nbfreeze's stock labelers (ImageGrid, Classify): one plain ES module for anywidget,
// the same in Jupyter, Voila and the frozen app. Python keeps the items; the model
// holds the shown ones (`_items`), their images as binary buffers (`_images`), the
// `_choices`, and `labels` (item key -> label), which is the only thing this view sets.

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

/** Blob URLs of the images the items (and their references) name, by image number. */
function imageUrls(model, items) {
  const images = model.get('_images') || [];
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

function itemView(item, url, decorative) {
  if (item.kind === 'image') {
    const img = document.createElement('img');
    img.className = 'nbfl-image';
    img.loading = 'lazy';
    img.decoding = 'async';
    img.alt = decorative ? '' : item.caption || `item ${item.key}`;
    img.src = url;
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
  let tiles = [];
  let urls = [];

  const picked = () => model.get('_choices')[0];
  const other = () => model.get('_choices')[1];

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
    urls.forEach((url) => url && URL.revokeObjectURL(url));
    const items = model.get('_items');
    urls = imageUrls(model, items);
    grid.style.setProperty('--nbfl-size', `${model.get('_size')}px`);
    tiles = items.map((item, n) => {
      const tile = document.createElement('button');
      tile.type = 'button';
      tile.className = 'nbfl-tile';
      tile.dataset.key = item.key;
      tile.tabIndex = n === 0 ? 0 : -1;
      tile.append(withReference(item, urls, itemView(item, urls[item.image], Boolean(item.caption))));
      if (item.caption) tile.append(caption(item));
      tile.addEventListener('click', () => {
        book.set(item.key, book.get()[item.key] === picked() ? other() : picked());
      });
      return tile;
    });
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
  build();
  return () => {
    model.off('change:_items', build);
    model.off('change:labels', update);
    urls.forEach((url) => url && URL.revokeObjectURL(url));
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
  let cursor = 0;

  const perPage = () => Math.max(1, model.get('_per_page'));

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
    box.append(withReference(item, urls, itemView(item, urls[item.image], Boolean(item.caption))));
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
    urls.forEach((url) => url && URL.revokeObjectURL(url));
    items = model.get('_items');
    urls = imageUrls(model, items);
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
  build();
  return () => {
    model.off('change:_items', build);
    model.off('change:labels', draw);
    urls.forEach((url) => url && URL.revokeObjectURL(url));
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
