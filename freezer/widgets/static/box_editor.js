// nbfreeze's BoxEditor: an image with boxes to move, resize, delete, add and name.
// One plain ES module for anywidget, the same in Jupyter, Voila and the frozen app.
// The model holds the image (`_image`, a binary buffer), `_choices`, the ids the
// labeler may edit (`_shown`, their item keys `_shown_keys`), and `boxes` in image
// pixels, which this view sets. In the frozen app it may hold the next batch's ids
// (`_ahead`): the page's Submit sends this view `nbfreeze:advance` and those boxes are
// the editable ones at once; a new `_turn` is the server's batch, which wins.

import { keyList } from './keys.js';

const HANDLES = ['nw', 'ne', 'sw', 'se'];
// What `?` lists: the same keys as docs/widgets.md.
const BOX_KEYS = [
  ['Tab', 'the next box (Shift+Tab: the one before)'],
  ['← → ↑ ↓', 'move the box 5 px (with Alt: 1 px)'],
  ['Shift+arrows', 'make the box wider, narrower, taller or shorter'],
  ['1–9', 'name the box with that label'],
  ['Delete', 'remove the box'],
  ['n', 'add a box'],
  ['u', 'undo the last change'],
  ['Escape', 'deselect the box'],
  ['Enter', 'submit'],
  ['?', 'show or hide this list (Escape closes it)'],
];
const MIN = 2; // smallest box side, in image pixels

function render({ model, el }) {
  el.classList.add('nbfb');
  el.dataset.lmSuppressShortcuts = 'true';
  const url = URL.createObjectURL(new Blob([model.get('_image')], { type: model.get('_mime') }));
  const root = document.createElement('div');
  root.className = 'nbfb-root';
  root.tabIndex = 0;
  root.setAttribute('role', 'group');
  root.setAttribute('aria-label', 'Edit the boxes');
  const tools = document.createElement('div');
  tools.className = 'nbfb-tools';
  const stage = document.createElement('div');
  stage.className = 'nbfb-stage';
  const img = document.createElement('img');
  img.className = 'nbfb-image';
  img.alt = '';
  img.draggable = false;
  img.src = url;
  stage.append(img);
  const status = document.createElement('div');
  status.className = 'nbfb-status';
  status.setAttribute('aria-live', 'polite');
  root.append(stage, tools, status); // Tab reaches the boxes first
  el.append(root);
  const help = keyList(el, 'Keys for fixing boxes', BOX_KEYS, root);

  const history = [];
  let selected = null;
  let added = 0;
  let size = { width: 0, height: 0 };

  const served = () => ({ ids: model.get('_shown') || [], keys: model.get('_shown_keys') || [] });
  let current = served(); // the editable boxes: the server's, or the held ones after a move

  const boxes = () => model.get('boxes') || [];
  const editable = (box) => typeof box.id === 'string' && box.id.startsWith('new-')
    || current.ids.some((id) => id === box.id);
  const ahead = () => model.get('_ahead') || [];
  const same = (a, b) => a.length === b.length && a.every((id, n) => id === b[n]);

  /** Say whether a batch is held for the page's Submit (`data-nbfreeze-ahead`). */
  function mark() {
    if (ahead().length && !same(ahead(), current.ids)) el.dataset.nbfreezeAhead = 'true';
    else delete el.dataset.nbfreezeAhead;
  }

  function fromModel() {
    current = served();
    mark();
    draw();
  }

  // The page's Submit: edit the held boxes now, once every editable box is named (a
  // box left unnamed stays the labeler's, and the server brings it back).
  el.addEventListener('nbfreeze:advance', (event) => {
    if (event.detail.keys || !ahead().length || same(ahead(), current.ids)) return;
    const named = new Map(boxes().map((box) => [box.id, box.label]));
    if (!current.ids.every((id) => named.get(id) != null)) return;
    const before = current;
    const keys = model.get('_ahead_keys') || [];
    event.detail.labels = Object.fromEntries(current.ids.map((id, n) => [current.keys[n], named.get(id)]));
    event.detail.keys = [...keys];
    event.detail.back = () => {
      current = before;
      selected = null;
      mark();
      draw();
    };
    current = { ids: [...ahead()], keys: [...keys] };
    selected = null;
    mark();
    draw();
  });

  function save(next) {
    history.push(boxes());
    model.set('boxes', next);
    model.save_changes();
  }

  function change(id, patch) {
    save(boxes().map((box) => (box.id === id ? { ...box, ...patch } : box)));
  }

  function clamp(box) {
    const width = Math.max(MIN, Math.min(box.width, size.width));
    const height = Math.max(MIN, Math.min(box.height, size.height));
    const x = Math.max(0, Math.min(box.x, size.width - width));
    const y = Math.max(0, Math.min(box.y, size.height - height));
    return { ...box, x, y, width, height };
  }

  function scale() {
    const rect = stage.getBoundingClientRect();
    return { rect, k: size.width / rect.width };
  }

  function pointAt(event) {
    const { rect, k } = scale();
    return { x: (event.clientX - rect.left) * k, y: (event.clientY - rect.top) * k };
  }

  function newBox(box) {
    added += 1;
    const id = `new-${Date.now().toString(36)}-${added}`;
    const label = model.get('_choices')[0] ?? null;
    return { id, label, ...box };
  }

  /** Follow a pointer from `event` until it is let go: `follow` sees each move and
   * `done` the last, each as { dx, dy, at } in image pixels. */
  function drag(event, follow, done) {
    event.preventDefault();
    stage.setPointerCapture(event.pointerId);
    const from = pointAt(event);
    const moved = (e) => {
      const at = pointAt(e);
      return { dx: at.x - from.x, dy: at.y - from.y, at };
    };
    const followMove = (e) => follow(moved(e));
    const finish = (e) => {
      stage.removeEventListener('pointermove', followMove);
      stage.removeEventListener('pointerup', finish);
      stage.removeEventListener('pointercancel', finish);
      done(moved(e));
    };
    stage.addEventListener('pointermove', followMove);
    stage.addEventListener('pointerup', finish);
    stage.addEventListener('pointercancel', finish);
  }

  function resized(box, corner, dx, dy) {
    let { x, y, width, height } = box;
    if (corner.includes('w')) { x += dx; width -= dx; }
    if (corner.includes('e')) width += dx;
    if (corner.includes('n')) { y += dy; height -= dy; }
    if (corner.includes('s')) height += dy;
    if (width < 0) { x += width; width = -width; }
    if (height < 0) { y += height; height = -height; }
    return clamp({ ...box, x, y, width, height });
  }

  function place(node, box) {
    node.style.left = `${(box.x / size.width) * 100}%`;
    node.style.top = `${(box.y / size.height) * 100}%`;
    node.style.width = `${(box.width / size.width) * 100}%`;
    node.style.height = `${(box.height / size.height) * 100}%`;
  }

  function describe(box, n) {
    return `box ${n + 1}: ${box.label ?? 'no label'}`;
  }

  function draw() {
    if (!size.width) return;
    const focused = root.contains(document.activeElement);
    stage.querySelectorAll('.nbfb-box').forEach((node) => node.remove());
    boxes().forEach((box, n) => {
      const node = document.createElement('div');
      node.className = 'nbfb-box';
      node.dataset.id = String(box.id);
      place(node, box);
      const tag = document.createElement('span');
      tag.className = 'nbfb-tag';
      tag.textContent = box.label ?? '?';
      node.append(tag);
      if (!editable(box)) {
        node.classList.add('nbfb-locked');
        stage.append(node);
        return;
      }
      node.tabIndex = 0;
      node.setAttribute('role', 'button');
      node.setAttribute('aria-label', describe(box, n));
      node.setAttribute('aria-pressed', String(box.id === selected));
      for (const corner of HANDLES) {
        const handle = document.createElement('span');
        handle.className = `nbfb-handle nbfb-${corner}`;
        handle.addEventListener('pointerdown', (event) => {
          event.stopPropagation();
          select(box.id, false);
          const sized = ({ dx, dy }) => resized(box, corner, dx, dy);
          drag(event, (m) => place(node, sized(m)), (m) => change(box.id, sized(m)));
        });
        node.append(handle);
      }
      node.addEventListener('pointerdown', (event) => {
        event.stopPropagation();
        select(box.id, false);
        const shifted = ({ dx, dy }) => clamp({ ...box, x: box.x + dx, y: box.y + dy });
        drag(event, (m) => place(node, shifted(m)), (m) => {
          if (Math.abs(m.dx) + Math.abs(m.dy) > 0.5) change(box.id, shifted(m));
        });
      });
      node.addEventListener('focus', () => select(box.id, false));
      stage.append(node);
    });
    drawTools();
    const chosen = stage.querySelector(`.nbfb-box[data-id="${CSS.escape(String(selected))}"]`);
    if (focused && chosen) chosen.focus({ preventScroll: true });
    else if (focused) root.focus();
  }

  function select(id, redraw = true) {
    if (selected === id) return;
    selected = id;
    if (redraw) draw();
    else {
      stage.querySelectorAll('.nbfb-box[role="button"]').forEach((node) => {
        node.setAttribute('aria-pressed', String(node.dataset.id === String(id)));
      });
      drawTools();
    }
  }

  function drawTools() {
    const box = boxes().find((b) => b.id === selected);
    const buttons = model.get('_choices').map((choice, c) => {
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'nbfb-label';
      button.disabled = !box;
      button.setAttribute('aria-pressed', String(Boolean(box) && box.label === choice));
      if (c < 9) {
        const hint = document.createElement('kbd');
        hint.setAttribute('aria-hidden', 'true');
        hint.textContent = String(c + 1);
        button.append(hint);
      }
      button.append(choice);
      button.addEventListener('click', () => box && change(box.id, { label: choice }));
      return button;
    });
    const add = document.createElement('button');
    add.type = 'button';
    add.className = 'nbfb-add';
    add.textContent = 'Add box';
    add.addEventListener('click', addBox);
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.className = 'nbfb-delete';
    remove.textContent = 'Delete box';
    remove.disabled = !box;
    remove.addEventListener('click', () => box && deleteBox(box.id));
    tools.replaceChildren(...buttons, add, remove, help.button);
    const count = boxes().length;
    status.textContent = `${count} box${count === 1 ? '' : 'es'} · drag on the image to add, `
      + 'Tab picks a box, arrows move it (Shift: resize), 1-9 names it, Delete removes, u undoes, Enter submits, ? lists the keys';
  }

  function addBox() {
    const side = Math.max(MIN, Math.round(Math.min(size.width, size.height) / 4));
    const box = newBox({ x: (size.width - side) / 2, y: (size.height - side) / 2, width: side, height: side });
    selected = box.id;
    save([...boxes(), box]);
  }

  function deleteBox(id) {
    const list = boxes();
    const at = list.findIndex((b) => b.id === id);
    save(list.filter((b) => b.id !== id));
    const rest = boxes().filter(editable);
    selected = rest.length ? rest[Math.min(at, rest.length - 1)].id : null;
  }

  stage.addEventListener('pointerdown', (event) => {
    if (event.button !== 0 || !size.width) return;
    const from = pointAt(event);
    const ghost = document.createElement('div');
    ghost.className = 'nbfb-box nbfb-ghost';
    stage.append(ghost);
    const spanned = (at) => clamp({
      x: Math.min(from.x, at.x), y: Math.min(from.y, at.y),
      width: Math.abs(at.x - from.x), height: Math.abs(at.y - from.y),
    });
    drag(event, ({ at }) => place(ghost, spanned(at)), ({ dx, dy, at }) => {
      ghost.remove();
      if (Math.abs(dx) < MIN || Math.abs(dy) < MIN) {
        select(null);
        return;
      }
      const box = newBox(spanned(at));
      selected = box.id;
      save([...boxes(), box]);
    });
  });

  root.addEventListener('keydown', (event) => {
    const box = boxes().find((b) => b.id === selected);
    const step = event.altKey ? 1 : 5;
    const arrows = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
    const number = Number.parseInt(event.key, 10);
    const choices = model.get('_choices');
    if (event.key in arrows && box) {
      const [dx, dy] = arrows[event.key];
      change(box.id, event.shiftKey
        ? clamp({ ...box, width: box.width + dx, height: box.height + dy })
        : clamp({ ...box, x: box.x + dx, y: box.y + dy }));
    } else if (number >= 1 && number <= Math.min(9, choices.length) && box) {
      change(box.id, { label: choices[number - 1] });
    } else if ((event.key === 'Delete' || event.key === 'Backspace') && box) deleteBox(box.id);
    else if (event.key === 'n') addBox();
    else if (event.key === 'u') {
      const before = history.pop();
      if (!before) return;
      model.set('boxes', before);
      model.save_changes();
    } else if (event.key === 'Enter' && event.target.tagName !== 'BUTTON') {
      model.send({ event: 'submit' });
      el.dispatchEvent(new CustomEvent('nbfreeze:submit', { bubbles: true }));
    } else if (event.key === 'Escape') select(null);
    else if (event.key === '?') help.toggle();
    else return;
    event.preventDefault();
    event.stopPropagation();
  });

  function measured() {
    size = { width: img.naturalWidth, height: img.naturalHeight };
    stage.style.aspectRatio = `${size.width} / ${size.height}`;
    draw();
  }

  img.addEventListener('load', measured);
  if (img.complete && img.naturalWidth) measured();
  model.on('change:boxes', draw);
  model.on('change:_turn', fromModel);
  model.on('change:_ahead', mark);
  mark();
  drawTools();
  return () => {
    model.off('change:boxes', draw);
    model.off('change:_turn', fromModel);
    model.off('change:_ahead', mark);
    URL.revokeObjectURL(url);
  };
}

export default { render };
