/**
 * The dashboard's Gold section: for each pool with gold answers, each labeler's accuracy
 * on them as a dot on a 0–100% scale with its 95% Wilson interval as a line, the owner's
 * floor as a dashed line, who it leaves out of the merge, and the control that sets or
 * clears the floor (POST /api/v1/stages/NAME/floor). It draws from the data dashboard.js
 * polls (the `nbf-dashboard` event), so it is live like the rest of the page. The form
 * of each pool is made once and kept, so a refresh never takes what the owner is typing.
 * Text only goes in through textContent.
 */
import { post } from './api.js';

const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 160;
const HEIGHT = 18;
const section = document.querySelector('#nbf-gold');
const shown = new Map(); // stage name -> {card, figure, form}

function svg(tag, attributes, text) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  if (text) {
    const title = document.createElementNS(SVG, 'title');
    title.textContent = text;
    element.append(title);
  }
  return element;
}

function percent(value) {
  return `${Math.round(value * 100)}%`;
}

const x = (share) => (1 + share * (WIDTH - 2)).toFixed(2);

// One labeler's accuracy on gold: the track is 0 to 100%, the line the interval, the dot
// the accuracy, the dashed line the floor.
function interval(person, floor, label) {
  const image = svg('svg', {
    class: `nbf-chart nbf-gold-chart${person.left_out ? ' nbf-gold-out' : ''}`,
    width: WIDTH,
    height: HEIGHT,
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    role: 'img',
    'aria-label': label,
    'data-low': person.low.toFixed(3),
    'data-high': person.high.toFixed(3),
  }, label);
  const middle = HEIGHT / 2;
  image.append(
    svg('rect', { class: 'nbf-chart-track', x: 0.5, y: 0.5, width: WIDTH - 1, height: HEIGHT - 1, rx: 2 }),
    svg('line', {
      class: 'nbf-gold-interval', x1: x(person.low), x2: x(person.high), y1: middle, y2: middle,
    }),
    svg('circle', { class: 'nbf-gold-dot', cx: x(person.accuracy), cy: middle, r: 4 }),
  );
  if (floor !== null) {
    image.append(svg('line', {
      class: 'nbf-gold-floor', x1: x(floor), x2: x(floor), y1: 1, y2: HEIGHT - 1,
    }, `floor ${percent(floor)}`));
  }
  return image;
}

function cell(content, className) {
  const td = document.createElement('td');
  if (className) td.className = className;
  td.append(content);
  return td;
}

function table(gold, names) {
  const element = document.createElement('table');
  element.className = 'nbf-table nbf-gold-labelers';
  const head = document.createElement('tr');
  for (const title of ['labeler', 'right', 'accuracy and its 95% interval', 'merge']) {
    const th = document.createElement('th');
    th.scope = 'col';
    th.textContent = title;
    head.append(th);
  }
  element.createTHead().append(head);
  const body = element.createTBody();
  for (const person of gold.labelers) {
    const name = names(person.id);
    const range = `${percent(person.low)} to ${percent(person.high)}`;
    const label =
      `${name}: ${percent(person.accuracy)} right on gold (${person.correct} of ${person.total}), ` +
      `95% interval ${range}` +
      (gold.floor === null ? '' : `, floor ${percent(gold.floor)}`);
    const tr = document.createElement('tr');
    tr.dataset.labeler = person.id;
    tr.classList.toggle('nbf-gold-left-out', person.left_out);
    if (person.left_out) tr.title = 'below the floor: their labels are left out of the merge';
    const value = document.createElement('span');
    value.textContent = ` ${percent(person.accuracy)} (${range})`;
    const chart = document.createElement('span');
    chart.append(interval(person, gold.floor, label), value);
    tr.append(
      cell(name),
      cell(`${person.correct} of ${person.total}`),
      cell(chart, 'nbf-gold-accuracy'),
      cell(person.left_out ? 'left out' : 'counted', 'nbf-gold-status'),
    );
    body.append(tr);
  }
  return element;
}

function floorForm(stage) {
  const form = document.createElement('form');
  form.className = 'nbf-floor';
  const id = `nbf-floor-${stage.name}`;
  const label = document.createElement('label');
  label.htmlFor = id;
  label.textContent = 'Accuracy floor (a share from 0 to 1)';
  const input = document.createElement('input');
  input.id = id;
  input.name = 'floor';
  input.type = 'number';
  input.min = '0';
  input.max = '1';
  input.step = '0.05';
  input.required = true;
  input.inputMode = 'decimal';
  const set = document.createElement('button');
  set.type = 'submit';
  set.textContent = 'Set floor';
  const clear = document.createElement('button');
  clear.type = 'button';
  clear.className = 'nbf-secondary';
  clear.textContent = 'Clear floor';
  const row = document.createElement('div');
  row.className = 'nbf-floor-row';
  row.append(input, set, clear);
  const result = document.createElement('output');
  result.setAttribute('aria-live', 'polite');
  form.append(label, row, result);
  const send = async (floor) => {
    try {
      // Setting the floor to a value twice is setting it once: safe to repeat.
      const path = `/api/v1/stages/${encodeURIComponent(stage.name)}/floor`;
      const answer = await post(path, { floor }, { retry: true });
      result.textContent =
        answer.floor === null
          ? 'No floor: every labeler counts.'
          : `Floor set to ${percent(answer.floor)}: labelers under it are left out.`;
      document.dispatchEvent(new CustomEvent('nbf-dashboard-stale'));
    } catch (error) {
      result.textContent = error.message;
    }
  };
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    send(input.value === '' ? null : Number(input.value));
  });
  clear.addEventListener('click', () => {
    input.value = '';
    send(null);
  });
  return form;
}

function card(stage) {
  const element = document.createElement('section');
  element.className = 'nbf-pool nbf-gold-pool';
  element.dataset.stage = stage.name;
  const heading = document.createElement('h3');
  heading.textContent = stage.title;
  const floorText = document.createElement('p');
  floorText.className = 'nbf-gold-floor-text';
  const figure = document.createElement('div');
  const form = floorForm(stage);
  element.append(heading, floorText, figure, form);
  return { element, floorText, figure, form };
}

function show(data) {
  if (!section) return;
  const byId = new Map(data.labelers.map((person) => [person.id, person.name]));
  const names = (id) => byId.get(id) || `labeler ${id}`;
  const pools = data.stages.filter((stage) => stage.gold);
  for (const stage of pools) {
    if (!shown.has(stage.name)) {
      const made = card(stage);
      shown.set(stage.name, made);
      section.append(made.element);
    }
    const { floorText, figure, form } = shown.get(stage.name);
    const { gold } = stage;
    const out = gold.labelers.filter((person) => person.left_out).length;
    floorText.textContent =
      (gold.floor === null
        ? `No floor: every labeler counts. `
        : `Floor ${percent(gold.floor)}: ${out} labeler${out === 1 ? '' : 's'} left out of the merge. `) +
      `${gold.items} gold item${gold.items === 1 ? '' : 's'}.`;
    figure.replaceChildren(
      gold.labelers.length
        ? table(gold, names)
        : Object.assign(document.createElement('p'), {
            className: 'nbf-hint',
            textContent: 'Nobody has labeled a gold item yet.',
          }),
    );
    form.hidden = !gold.settable;
    form.elements.floor.placeholder = gold.floor === null ? 'none' : String(gold.floor);
  }
  section.closest('.nbf-gold-section')?.toggleAttribute('hidden', pools.length === 0);
}

document.addEventListener('nbf-dashboard', (event) => show(event.detail));
