/**
 * The page side of the page <-> server widget protocol (docs/protocol.md).
 *
 * It exists to connect the official widget front end (widgets.js) to a session on our
 * server instead of a kernel: it reads the WebSocket that socket.js opened, decodes
 * frames, hands comms to the widget manager, and puts what each cell displays into its
 * `.nbf-cell` container.
 */
import { newId } from './ids.js';
import { WidgetManager } from './widgets.js';

const { early, socket } = globalThis.nbfreezeSocket; // opened by socket.js, inline

const body = document.body;
body.dataset.nbfState = 'loading';
const manager = new WidgetManager(openComm);

// ---- Frames: text is one JSON message; binary is Jupyter's layout (uint32 BE part
// count, uint32 BE offsets, part 0 the JSON message, then the buffers in order).

const utf8 = new TextDecoder();

function decode(data) {
  if (typeof data === 'string') return [JSON.parse(data), []];
  const view = new DataView(data);
  const n = view.getUint32(0);
  if (n < 1 || 4 * (n + 1) > data.byteLength) throw new Error(`bad frame: ${n} parts`);
  const offsets = Array.from({ length: n }, (_, i) => view.getUint32(4 * (i + 1)));
  offsets.push(data.byteLength);
  // Each part is a copy in an ArrayBuffer of its own, as Jupyter's front end makes it:
  // widgets read `view.buffer` whole (`new Uint8Array(view.buffer)`).
  const parts = offsets
    .slice(0, -1)
    .map((start, i) => new DataView(data.slice(start, offsets[i + 1])));
  return [JSON.parse(utf8.decode(parts[0])), parts.slice(1)];
}

function encode(message, buffers) {
  const json = JSON.stringify(message);
  if (!buffers || buffers.length === 0) return json;
  const bytes = (b) =>
    b instanceof ArrayBuffer
      ? new Uint8Array(b)
      : new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  const parts = [new TextEncoder().encode(json), ...buffers.map(bytes)];
  let offset = 4 * (parts.length + 1);
  const frame = new Uint8Array(parts.reduce((size, p) => size + p.byteLength, offset));
  const view = new DataView(frame.buffer);
  view.setUint32(0, parts.length);
  parts.forEach((part, i) => {
    view.setUint32(4 * (i + 1), offset);
    frame.set(part, offset);
    offset += part.byteLength;
  });
  return frame.buffer;
}

// ---- Page -> server. Each message carries a msg_id; a widget model waits for the
// server's `status: idle` naming it before it sends that model's next update (the
// throttle ipywidgets keeps with a kernel), so a dragged slider never floods the server.

let lastId = 0;
let unacknowledged = []; // [msg_id, callbacks], in the order sent

function post(message, buffers, callbacks) {
  const msg_id = `p${++lastId}`;
  socket.send(encode({ ...message, msg_id }, buffers));
  if (callbacks?.iopub?.status) unacknowledged.push([msg_id, callbacks]);
  body.dataset.nbfPending = String(unacknowledged.length); // a Submit waits for zero
  return msg_id;
}

function acknowledge(parentId) {
  // The server handles the page's messages in order: done with one, done with those before.
  const last = unacknowledged.length - 1;
  const upTo = parentId ? unacknowledged.findIndex(([id]) => id === parentId) : last;
  if (upTo < 0) return;
  const done = unacknowledged.slice(0, upTo + 1);
  unacknowledged = unacknowledged.slice(upTo + 1);
  for (const [msg_id, callbacks] of done) {
    const content = { execution_state: 'idle' };
    callbacks.iopub.status({ header: { msg_type: 'status' }, parent_header: { msg_id }, content });
  }
  // The callbacks may have sent a model's held-back update: count it too.
  body.dataset.nbfPending = String(unacknowledged.length);
}

/** A comm as ipywidgets' models expect one (IClassicComm), carried by our socket. */
class Comm {
  constructor(comm_id, target_name) {
    this.comm_id = comm_id;
    this.target_name = target_name;
    this.handlers = {};
    this.queue = []; // messages that arrive before the model has hooked itself up
    this.handled = Promise.resolve(); // settles once the model has handled those given it
  }

  on_msg(callback) {
    this.handlers.msg = callback;
    queueMicrotask(() => this.flush());
  }

  on_close(callback) {
    this.handlers.close = callback;
    queueMicrotask(() => this.flush());
  }

  deliver(kind, message) {
    this.queue.push([kind, message]);
    this.flush();
  }

  flush() {
    while (this.queue.length && this.handlers[this.queue[0][0]]) {
      const [kind, message] = this.queue.shift();
      this.handled = Promise.allSettled([this.handled, this.handlers[kind](message)]);
    }
  }

  open(data, callbacks, metadata, buffers) {
    const message = { type: 'comm_open', comm_id: this.comm_id, target_name: this.target_name };
    return post({ ...message, data, metadata }, buffers, callbacks);
  }

  send(data, callbacks, metadata, buffers) {
    return post({ type: 'comm_msg', comm_id: this.comm_id, data }, buffers, callbacks);
  }

  close(data, callbacks) {
    comms.delete(this.comm_id);
    return post({ type: 'comm_close', comm_id: this.comm_id }, [], callbacks);
  }
}

const comms = new Map();

/** A comm for a model the page's own code creates (a Controller's buttons and axes). */
function openComm(targetName, modelId, data, metadata, buffers) {
  const id = modelId ?? newId();
  const comm = new Comm(id, targetName);
  comms.set(id, comm);
  comm.open(data, undefined, metadata, buffers);
  return comm;
}

// As in Jupyter, a widget output is displayed with the state the server had when it
// was shown: its view waits until its model, and the models that model refers to
// (layout, style, children, ...), have handled every message that came before it
// (anywidget's handle updates asynchronously), and the models connected to it have been
// made (inOrder, below). Models not connected to it (an Output widget's code still
// loading, say) do not hold it up.
const handled = new Map(); // comm_id -> settles once that model has handled its messages so far
const refers = new Map(); // comm_id -> ids of the models its state has named

function handling(commId, promise, state) {
  handled.set(commId, Promise.allSettled([handled.get(commId), promise]));
  const ids = refers.get(commId) ?? new Set();
  refers.set(commId, modelReferences(state, ids));
}

function modelReferences(value, ids) {
  if (typeof value === 'string') {
    if (value.startsWith('IPY_MODEL_')) ids.add(value.slice('IPY_MODEL_'.length));
  } else if (value && typeof value === 'object' && !ArrayBuffer.isView(value)) {
    for (const item of Object.values(value)) modelReferences(item, ids);
  }
  return ids;
}

/** Settles once `modelId` and every model it refers to, directly or not, are up to date. */
function handledWithReferences(modelId) {
  const seen = new Set();
  const todo = [modelId];
  while (todo.length) {
    const id = todo.pop();
    if (seen.has(id)) continue;
    seen.add(id);
    todo.push(...(refers.get(id) ?? []));
  }
  return Promise.allSettled([...seen].map((id) => handled.get(id)));
}

// ---- Server -> page.

// Comm messages take effect in the order they came, as in Jupyter, where the kernel
// connection handles a message only once the one before it is done, and a comm_open is
// done once its model is made (JupyterLab's and Voila's KernelConnection: `_msgChain`,
// `_handleCommOpen` awaiting the widget manager). Making a model can change others: a
// jslink sets its target to its source's value. So a link between a bqplot scale and a
// slider, made once bqplot's front end has loaded, must not come after the notebook's
// later `slider.value = 1.5`, nor after the other links on that slider. Unlike a kernel
// connection, models that are not connected do not wait for each other (an Output widget
// whose code is loading holds up no slider): the models a model's state names join its
// group, and each group's messages take effect one after another, in order.
const group = new Map(); // comm_id -> a model of its group, towards the group's root
const turn = new Map(); // a group's root -> settles once its messages so far took effect

function root(id) {
  let top = id;
  while (group.has(top) && group.get(top) !== top) top = group.get(top);
  group.set(id, top); // the path is short from now on
  return top;
}

/** One group of the models `ids`, waiting for what each of theirs waited for. */
function join(ids) {
  const [top, ...others] = [...new Set(ids.map(root))];
  for (const other of others) {
    group.set(other, top);
    turn.set(top, Promise.allSettled([turn.get(top), turn.get(other)]));
    turn.delete(other);
  }
  return top;
}

/** Run `step` once the earlier messages of the models connected to `ids` took effect. */
function inOrder(ids, step) {
  const top = join(ids);
  const done = Promise.resolve(turn.get(top)).then(step);
  turn.set(
    top,
    done.then(
      () => undefined,
      () => undefined,
    ),
  );
  return done;
}

function kernelMessage(type, message, buffers) {
  const { comm_id, data = {}, parent_id } = message;
  return {
    header: { msg_type: type },
    // An empty parent_header still makes a model drop echoes of values it is waiting to
    // hear back about, which is right when no parent_id says which send it answers.
    parent_header: parent_id ? { msg_id: parent_id } : {},
    metadata: message.metadata ?? {},
    content: { comm_id, target_name: message.target_name, data },
    buffers,
  };
}

const views = new WeakMap(); // cell element -> widget views shown in it
const clearOnNextOutput = new Set();

/**
 * Show the cells after the page's first screen, which the server sends hidden so that
 * the browser lays out only the first screen before the first widget: once that widget
 * is drawn, when something is shown in a hidden cell (a widget must not render into a
 * hidden element: it could not measure itself), or when the notebook has run.
 */
function showRest() {
  const rest = document.querySelector('.nbf-rest[hidden]');
  if (!rest) return;
  rest.hidden = false;
  // The browser could not scroll to an anchor in the hidden part when the page loaded.
  const id = decodeURIComponent(location.hash.slice(1));
  const target = id && document.getElementById(id);
  if (target && rest.contains(target)) target.scrollIntoView();
}

function cell(n) {
  const number = Number.parseInt(n, 10);
  let el = document.querySelector(`.nbf-cell[data-cell="${number}"]`);
  if (el?.closest('.nbf-rest[hidden]')) showRest();
  if (!el) {
    el = Object.assign(document.createElement('div'), { className: 'nbf-cell' });
    el.dataset.cell = String(number);
    (document.querySelector('main') ?? body).append(el);
  }
  if (clearOnNextOutput.delete(number)) clear(el);
  return el;
}

function clear(el) {
  for (const view of views.get(el) ?? []) view.remove();
  views.delete(el);
  el.replaceChildren();
}

function append(el, className) {
  const child = Object.assign(document.createElement('div'), { className });
  el.append(child);
  return child;
}

const rendering = new Set(); // outputs not yet on the page, so "ready" means rendered

async function showWidget(el, target, modelId) {
  try {
    const model = await manager.get_model(modelId);
    const view = await manager.create_view(model);
    if (!target.isConnected) return view.remove();
    views.set(el, [...(views.get(el) ?? []), view]);
    await manager.display_view(view, target);
  } catch (error) {
    console.error(`nbfreeze: could not show widget ${modelId}`, error);
    target.className = 'nbf-error';
    target.textContent = `This widget could not be shown: ${error.message ?? error}`;
  }
}

const handlers = {
  comm_open(message, buffers) {
    if (message.target_name !== 'jupyter.widget') {
      console.warn(`nbfreeze: ignoring comm_open for target ${message.target_name}`);
      return;
    }
    const comm = new Comm(message.comm_id, message.target_name);
    comms.set(comm.comm_id, comm);
    const state = message.data?.state ?? {};
    // Its class is fetched now, beside those of the models before it; it is made after them.
    manager
      .loadClass(state._model_name, state._model_module, state._model_module_version)
      .catch(() => {}); // the error is the manager's to report, when it makes the model
    const opened = kernelMessage('comm_open', message, buffers);
    const ids = [comm.comm_id, ...modelReferences(state, new Set())];
    const created = inOrder(ids, () => manager.handle_comm_open(comm, opened));
    // Messages that came before the model hooked itself up are handled by the time it is.
    handling(comm.comm_id, created.then(() => comm.handled), state);
    created.catch((error) => {
      notice(`Widget ${message.comm_id} could not be created: ${error.message ?? error}`, 'error');
    });
  },

  comm_msg(message, buffers) {
    const comm = comms.get(message.comm_id);
    if (!comm) return;
    const update = kernelMessage('comm_msg', message, buffers);
    const ids = [comm.comm_id, ...modelReferences(message.data?.state, new Set())];
    const delivered = inOrder(ids, () => comm.deliver('msg', update));
    handling(comm.comm_id, delivered.then(() => comm.handled), message.data?.state);
  },

  comm_close(message) {
    const comm = comms.get(message.comm_id);
    comms.delete(message.comm_id);
    handled.delete(message.comm_id);
    refers.delete(message.comm_id);
    const closed = kernelMessage('comm_close', message, []);
    if (comm) inOrder([comm.comm_id], () => comm.deliver('close', closed));
  },

  output(message) {
    const el = cell(message.cell);
    if (typeof message.html === 'string') {
      append(el, 'nbf-output').innerHTML = message.html;
    } else if (message.widget) {
      const target = append(el, 'nbf-output nbf-widget');
      const made = turn.get(root(message.widget)); // and the models connected to it
      const before = Promise.allSettled([made, handledWithReferences(message.widget)]);
      const done = before.then(() => showWidget(el, target, message.widget));
      rendering.add(done);
      done.finally(() => rendering.delete(done));
      return done;
    }
    return undefined;
  },

  clear_output(message) {
    if (message.wait) clearOnNextOutput.add(Number.parseInt(message.cell, 10));
    else clear(cell(message.cell));
  },

  cell_error(message) {
    const error = append(cell(message.cell), 'nbf-error');
    error.setAttribute('role', 'alert');
    error.textContent = message.message ?? `${message.ename}: ${message.evalue}`;
  },

  status(message) {
    body.dataset.nbfStatus = message.state;
    if (message.state !== 'idle') return;
    showRest();
    acknowledge(message.parent_id);
    if (body.dataset.nbfState === 'loading') {
      body.dataset.nbfState = 'rendering';
      Promise.allSettled([...rendering]).then(() => {
        if (body.dataset.nbfState === 'rendering') body.dataset.nbfState = 'ready';
      });
    }
  },

  unsupported(message) {
    const text =
      message.message ?? `${message.class_name} from ${message.module} is not supported.`;
    console.error(`nbfreeze: ${text}`);
    notice(text, 'error');
    // The server never opens this model; a stand-in saying why takes its place in boxes.
    if (message.comm_id && !manager.has_model(message.comm_id)) {
      const escaped = Object.assign(document.createElement('div'), { textContent: text }).innerHTML;
      const html = { model_module: '@jupyter-widgets/controls', model_module_version: '2.0.0' };
      manager.new_model(
        { ...html, model_name: 'HTMLModel', model_id: message.comm_id },
        { value: escaped, _dom_classes: ['nbf-unsupported'] },
      );
    }
  },

  reply_error(message) {
    console.error('nbfreeze: the server refused a message:', message.message, message.request);
    notice(message.message, 'warning', 8000);
  },
};

// A stage page's own messages, for its scripts as DOM events (`nbf:TYPE`): the answer to
// its Submit, which goes over this socket to the process holding the page's session
// (stage.js), and what the page holds unsubmitted, and whether the draft it sent back on
// opening was put into the widget (drafts.js, pace.js).
for (const type of ['submitted', 'submit_error', 'draft', 'draft_restored', 'draft_refused']) {
  handlers[type] = (message) => {
    document.dispatchEvent(new CustomEvent(`nbf:${type}`, { detail: message }));
  };
}

/**
 * Handle one frame. Returns its message (null if it could not be read) and, for a widget
 * output, a promise that settles once the widget is on the page.
 */
function receive(data) {
  let message;
  let buffers;
  try {
    [message, buffers] = decode(data);
  } catch (error) {
    console.error('nbfreeze: unreadable frame from the server', error);
    return [null];
  }
  if (!Object.hasOwn(handlers, message?.type)) {
    console.warn(`nbfreeze: unknown message type ${message?.type}`);
    return [message];
  }
  try {
    return [message, handlers[message.type](message, buffers)];
  } catch (error) {
    console.error(`nbfreeze: could not handle a ${message.type} message`, error);
  }
  return [message];
}

// Frames are handled one at a time, in order, except once: the frames after the first
// widget output wait until that widget is drawn. Otherwise the models of a whole notebook
// (Widget List makes 260) could be made before its first widget is shown. Then the page
// shows the rest of its cells and tells the server, which has paused the notebook's run
// for it (docs/protocol.md).
const FIRST_WIDGET_WAIT_MS = 1000; // the server resumes on its own after a second too
const inbox = [];
let holding = false; // the inbox waits for the first widget
let held = false; // it has waited once, and will not again

function deliver(frames) {
  inbox.push(...frames);
  if (!holding) handleInbox();
}

function handleInbox() {
  holding = false;
  let next = 0;
  while (next < inbox.length) {
    const [message, shown] = receive(inbox[next++]);
    if (!held && message?.type === 'output' && message.widget) {
      held = holding = true;
      inbox.splice(0, next);
      const waited = new Promise((resolve) => setTimeout(resolve, FIRST_WIDGET_WAIT_MS));
      Promise.race([shown, waited]).then(() =>
        afterNextPaint(() => {
          showRest();
          post({ type: 'ready' });
          handleInbox();
        }),
      );
      return;
    }
  }
  inbox.length = 0;
}

function afterNextPaint(callback) {
  // A hidden page runs no animation frames.
  if (document.visibilityState === 'visible') requestAnimationFrame(() => setTimeout(callback));
  else setTimeout(callback);
}

// ---- What the page's Content-Security-Policy blocks says so, where it would have been,
// with the serve option that allows it (docs/security.md): a blank box tells no one why.

let evalReported = false;

document.addEventListener('securitypolicyviolation', (event) => {
  if (event.effectiveDirective === 'frame-src') blockedFrames(event.blockedURI);
  else if (event.blockedURI === 'eval' && !evalReported) {
    evalReported = true;
    const text =
      "Code on this page needs JavaScript's eval (it makes code as it runs, as regl-based " +
      "plots do), which this server's Content-Security-Policy forbids, so it may not be " +
      'drawn. The server can allow it: nbfreeze serve --allow-eval (see docs/security.md).';
    console.error(`nbfreeze: ${text}`);
    notice(text, 'error');
  }
});

function originOf(url) {
  try {
    return new URL(url, location.href).origin;
  } catch {
    return null;
  }
}

function blockedFrames(blocked) {
  const origin = originOf(blocked);
  for (const frame of document.querySelectorAll('iframe')) {
    if (!origin || originOf(frame.src) !== origin) continue;
    const item = Object.assign(document.createElement('div'), {
      className: 'nbf-notice nbf-notice-warning',
      textContent:
        `This frame of ${origin} is blocked by this server's Content-Security-Policy. ` +
        `The server can allow it: nbfreeze serve --allow-frames ${origin} (see docs/security.md).`,
    });
    item.setAttribute('role', 'note');
    frame.replaceWith(item);
  }
}

// ---- Notices and the busy indicator.

function notice(text, kind, timeout) {
  let area = document.getElementById('nbf-notices');
  if (!area) {
    area = Object.assign(document.createElement('div'), { id: 'nbf-notices' });
    area.className = 'nbf-notices';
    area.setAttribute('aria-live', 'polite');
    body.prepend(area);
  }
  const item = append(area, `nbf-notice nbf-notice-${kind}`);
  item.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  item.textContent = text;
  if (timeout) setTimeout(() => item.remove(), timeout);
}

if (!document.getElementById('nbf-status')) {
  // Visual only: announcing every slider step to a screen reader would drown the page.
  const status = Object.assign(document.createElement('div'), { id: 'nbf-status' });
  Object.assign(status, { className: 'nbf-status', textContent: 'Running…' });
  status.setAttribute('aria-hidden', 'true');
  body.append(status);
}

socket.onclose = () => {
  showRest();
  body.dataset.nbfState = 'closed';
  if (body.dataset.nbfLeaving) return; // the page is going to its next one
  const text =
    body.dataset.nbfReconnects === '1'
      ? 'The connection to the server was lost: what you have not submitted is kept in this browser. Reconnecting…'
      : 'The connection to the server was closed. Reload the page to start again.';
  notice(text, 'error');
};
socket.onmessage = (event) => deliver([event.data]);
deliver(early.splice(0));
