/**
 * The owner's dashboard: every few seconds, the state and progress of every stage, for
 * each pool its progress bars, pace, time left and labels per minute, agreement, its
 * label quality (full agreement, Fleiss' kappa, Cohen's kappa of each pair of labelers,
 * each labeler's time per item and labels per hour), and each labeler's count, pace and
 * agreement with the others, from GET /api/v1/dashboard.
 * Charts are SVG drawn here (no library, nothing fetched); each is an image whose
 * accessible name and <title> say its numbers. Text only goes in through textContent,
 * so nothing a labeler typed can become markup.
 */
import { post, url } from './api.js';

const stages = document.querySelector('#nbf-stages tbody');
const labelers = document.querySelector('#nbf-labelers tbody');
const pools = document.querySelector('#nbf-pools');

const SVG = 'http://www.w3.org/2000/svg';
const METER_WIDTH = 140;

function svg(tag, attributes, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  element.append(...children);
  return element;
}

function titled(tag, attributes, text) {
  const title = svg('title', {});
  title.textContent = text;
  return svg(tag, attributes, title);
}

// An image of the chart, named by `label` for screen readers and shown as its tooltip.
function chart(width, height, label, className, ...parts) {
  const image = titled('svg', {
    class: `nbf-chart ${className}`,
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    role: 'img',
    'aria-label': label,
  }, label);
  image.append(...parts);
  return image;
}

// A horizontal bar: `share` (0 to 1, clamped) of a framed track.
function bar(share, label, width = METER_WIDTH) {
  const filled = Math.max(0, Math.min(1, share || 0)) * (width - 2);
  return chart(
    width,
    14,
    label,
    'nbf-meter-bar',
    svg('rect', { class: 'nbf-chart-track', x: 0.5, y: 0.5, width: width - 1, height: 13, rx: 2 }),
    svg('rect', {
      class: 'nbf-chart-fill', x: 1, y: 1, width: filled.toFixed(2), height: 12, rx: 1.5,
    }),
  );
}

function meter(name, share, value, label) {
  const row = document.createElement('div');
  row.className = 'nbf-meter';
  const title = document.createElement('span');
  title.className = 'nbf-meter-name';
  title.textContent = name;
  const amount = document.createElement('span');
  amount.className = 'nbf-meter-value';
  amount.textContent = value;
  row.append(title, bar(share, label), amount);
  return row;
}

function clock(moment) {
  return moment.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

function duration(minutes) {
  if (minutes === 0) return 'every label is given';
  if (minutes < 1) return 'under a minute left at that pace';
  if (minutes < 90) return `about ${Math.round(minutes)} minutes left at that pace`;
  const hours = Math.floor(minutes / 60);
  return `about ${hours} h ${Math.round(minutes - hours * 60)} min left at that pace`;
}

// One bar per clock minute, oldest on the left; the last is the minute now, so far.
function timeline({ start, counts }) {
  const width = 8;
  const gap = 2;
  const height = 48;
  const top = Math.max(1, ...counts);
  const first = new Date(start);
  const minute = (index) => new Date(first.getTime() + index * 60000);
  const total = counts.reduce((sum, count) => sum + count, 0);
  const busy = counts
    .map((count, index) => [count, index])
    .filter(([count]) => count > 0)
    .map(([count, index]) => `${count} at ${clock(minute(index))}`);
  const label =
    `Labels per minute from ${clock(first)} to now: ${total} in all` +
    (busy.length ? `, the most in one minute ${top}; ${busy.join(', ')}` : '');
  const bars = counts.map((count, index) => {
    const tall = count ? Math.max(2, (count / top) * height) : 0;
    return titled(
      'rect',
      {
        class: 'nbf-chart-fill',
        x: index * (width + gap),
        y: (height - tall).toFixed(2),
        width,
        height: tall.toFixed(2),
        'data-count': count,
      },
      `${clock(minute(index))}: ${count} label${count === 1 ? '' : 's'}`,
    );
  });
  const span = counts.length * (width + gap) - gap;
  return chart(
    span,
    height + 1,
    label,
    'nbf-timeline',
    svg('line', { class: 'nbf-chart-axis', x1: 0, x2: span, y1: height + 0.5, y2: height + 0.5 }),
    ...bars,
  );
}

function poolCard(stage, names) {
  const card = document.createElement('section');
  card.className = 'nbf-pool';
  card.dataset.stage = stage.name;
  const heading = document.createElement('h3');
  heading.textContent = stage.title;
  const state = document.createElement('span');
  state.className = `nbf-state nbf-state-${stage.state}`;
  state.textContent = stage.state;
  heading.append(' ', state);

  const { items, complete, labels, needed } = stage.progress;
  const itemsText = `${complete} of ${items} items`;
  const labelsText = `${labels} of ${needed} labels`;
  const share = (part, whole) => (whole ? part / whole : 0);
  const pace = document.createElement('p');
  pace.className = 'nbf-pace';
  pace.textContent = stage.pace.per_minute
    ? `${stage.pace.per_minute} labels per minute over the last 10 minutes; ` +
      `${duration(stage.pace.minutes_left)}.`
    : `No labels in the last 10 minutes: no pace to estimate the time left from${
        stage.pace.minutes_left === 0 ? ', and every label is given' : ''
      }.`;

  const { counts, start } = stage.timeline;
  const chartTitle = document.createElement('p');
  chartTitle.className = 'nbf-chart-title';
  chartTitle.textContent =
    `Labels per minute, the last ${counts.length} minutes ` +
    `(most in one minute: ${Math.max(0, ...counts)})`;
  const axis = document.createElement('div');
  axis.className = 'nbf-timeline-axis';
  axis.setAttribute('aria-hidden', 'true'); // the chart's own name says when it starts
  const from = document.createElement('span');
  from.textContent = clock(new Date(start));
  const to = document.createElement('span');
  to.textContent = 'now';
  axis.append(from, to);

  const { pairwise, alpha } = stage.agreement;
  const agreement = document.createElement('div');
  agreement.className = 'nbf-agreement-bars';
  agreement.append(
    meter(
      'Pairwise agreement',
      pairwise,
      percent(pairwise),
      pairwise === null
        ? 'Pairwise agreement: no item has two labels yet'
        : `Pairwise agreement: ${percent(pairwise)} of pairs of labels of the same item are equal`,
    ),
    meter(
      'Krippendorff’s α',
      alpha,
      alpha === null ? '–' : alpha.toFixed(2),
      alpha === null
        ? 'Krippendorff’s alpha: not defined yet'
        : `Krippendorff’s alpha: ${alpha.toFixed(2)} (1 is full agreement, 0 what chance gives)`,
    ),
  );
  card.append(
    heading,
    meter(
      'Items complete',
      share(complete, items),
      itemsText,
      `Items complete: ${itemsText} (${percent(share(complete, items))})`,
    ),
    meter(
      'Labels given',
      share(labels, needed),
      labelsText,
      `Labels given: ${labelsText} (${percent(share(labels, needed))})`,
    ),
    pace,
    chartTitle,
    timeline(stage.timeline),
    axis,
    agreement,
    qualityBlock(stage.quality, names),
  );
  return card;
}

function fixed(value, digits = 2) {
  return value === null || value === undefined ? '–' : value.toFixed(digits);
}

function seconds(value) {
  if (value === null || value === undefined) return '–';
  return value < 90 ? `${value.toFixed(1)} s` : `${(value / 60).toFixed(1)} min`;
}

// Cohen's kappa of each pair of labelers as a grid: a darker square agrees more.
function kappaGrid(kappas, names) {
  const people = [...new Set(kappas.flatMap((pair) => pair.labelers))].sort((a, b) => a - b);
  const size = Math.max(6, Math.min(16, Math.floor(160 / Math.max(1, people.length))));
  const at = new Map(people.map((person, index) => [person, index]));
  const squares = kappas.map(({ labelers: [a, b], kappa, items }) => {
    const shade = kappa === null ? 0 : Math.max(0, Math.min(1, kappa));
    const text = `${names(a)} and ${names(b)}: κ ${fixed(kappa)} on ${items} shared items`;
    return titled(
      'rect',
      {
        class: 'nbf-kappa-cell',
        x: at.get(b) * size,
        y: at.get(a) * size,
        width: size - 1,
        height: size - 1,
        'fill-opacity': (0.08 + 0.92 * shade).toFixed(2),
        'data-kappa': kappa === null ? '' : kappa.toFixed(3),
      },
      text,
    );
  });
  const span = Math.max(1, people.length) * size;
  const label = `Cohen’s kappa of ${kappas.length} pairs of labelers who share items`;
  return chart(span, span, label, 'nbf-kappa-grid', ...squares);
}

// A pool's label quality: chance-corrected agreement, and each labeler's pace and kappa.
function qualityBlock(quality, names) {
  const block = document.createElement('div');
  block.className = 'nbf-quality';
  if (!quality) return block;
  const { fleiss_kappa: fleiss, alpha_ordinal: ordinal, full_agreement: full } = quality;
  const meters = [
    meter(
      'Full agreement',
      full,
      percent(full),
      full === null
        ? 'Full agreement: no item has two labels yet'
        : `Full agreement: every label the same on ${percent(full)} of the items labeled twice or more`,
    ),
    meter(
      'Fleiss’ κ',
      fleiss,
      fixed(fleiss),
      fleiss === null
        ? 'Fleiss’ kappa: not defined yet'
        : `Fleiss’ kappa: ${fixed(fleiss)} (1 is full agreement, 0 what chance gives)`,
    ),
  ];
  if (ordinal !== null) {
    meters.push(
      meter('α, ordinal', ordinal, fixed(ordinal), `Krippendorff’s alpha for ordered choices: ${fixed(ordinal)}`),
    );
  }
  const table = document.createElement('table');
  table.className = 'nbf-table nbf-quality-labelers';
  const head = document.createElement('tr');
  for (const title of ['labeler', 'labels', 'per item, median', 'p90', 'per hour', 'κ with the others']) {
    const th = document.createElement('th');
    th.textContent = title;
    head.append(th);
  }
  table.createTHead().append(head);
  const body = table.createTBody();
  for (const person of quality.labelers) {
    const tr = document.createElement('tr');
    tr.dataset.labeler = person.id;
    const kappa = document.createElement('td');
    kappa.className = 'nbf-labeler-kappa';
    const value = document.createElement('span');
    value.textContent = fixed(person.kappa);
    kappa.append(
      bar(person.kappa, `${names(person.id)}: Cohen’s kappa with the others ${fixed(person.kappa)}`, 60),
      ' ',
      value,
    );
    tr.append(
      cell(names(person.id)),
      cell(String(person.labels)),
      cell(seconds(person.median_seconds)),
      cell(seconds(person.p90_seconds)),
      cell(person.per_hour === null ? '–' : String(Math.round(person.per_hour))),
      kappa,
    );
    body.append(tr);
  }
  const title = document.createElement('p');
  title.className = 'nbf-chart-title';
  title.textContent = 'Label quality';
  block.append(title, ...meters);
  if (quality.kappas.length) {
    const gridTitle = document.createElement('p');
    gridTitle.className = 'nbf-chart-title';
    gridTitle.textContent = 'Cohen’s κ between labelers (darker agrees more)';
    block.append(gridTitle, kappaGrid(quality.kappas, names));
  }
  if (quality.labelers.length) block.append(table);
  return block;
}

function showPools(data) {
  if (!pools) return;
  const byId = new Map(data.labelers.map((person) => [person.id, person.name]));
  const names = (id) => byId.get(id) || `labeler ${id}`;
  pools.replaceChildren(
    ...data.stages.filter((stage) => stage.progress).map((stage) => poolCard(stage, names)),
  );
}

function cell(text) {
  const td = document.createElement('td');
  td.textContent = text;
  return td;
}

function percent(value) {
  return value === null || value === undefined ? '–' : `${Math.round(value * 100)}%`;
}

function showStages(data) {
  for (const stage of data.stages) {
    const row = stages.querySelector(`tr[data-stage="${CSS.escape(stage.name)}"]`);
    if (!row) continue;
    const state = row.querySelector('.nbf-state');
    state.textContent = stage.state;
    state.className = `nbf-state nbf-state-${stage.state}`;
    const progress = stage.progress
      ? `${stage.progress.complete} of ${stage.progress.items} items complete, ` +
        `${stage.progress.labels} of ${stage.progress.needed} labels`
      : stage.reason;
    row.querySelector('.nbf-progress').textContent = progress;
    const agreement = stage.agreement
      ? `pairwise ${percent(stage.agreement.pairwise)}, α ${stage.agreement.alpha === null ? '–' : stage.agreement.alpha.toFixed(2)}`
      : '';
    row.querySelector('.nbf-agreement').textContent = agreement;
  }
}

function agreementCell(person) {
  const td = document.createElement('td');
  td.className = 'nbf-labeler-agreement';
  if (person.agreement === null) {
    td.textContent = person.labels ? 'nobody else labeled their items yet' : '–';
    return td;
  }
  const share = percent(person.agreement);
  const text = `${share} on ${person.compared} item${person.compared === 1 ? '' : 's'}`;
  const label =
    `${share} of their labels match the other labels of the same items ` +
    `(${person.compared} items labeled by others too)`;
  const value = document.createElement('span');
  value.textContent = text;
  td.append(bar(person.agreement, label, 80), ' ', value);
  return td;
}

function showLabelers(data) {
  labelers.replaceChildren(
    ...data.labelers.map((person) => {
      const tr = document.createElement('tr');
      tr.append(
        cell(person.name),
        cell(String(person.labels)),
        cell(String(person.answers)),
        cell(String(person.per_minute)),
        agreementCell(person),
        cell(person.last_label_at ? new Date(person.last_label_at).toLocaleTimeString() : ''),
      );
      return tr;
    }),
  );
}

const preview = document.querySelector('#nbf-preview');
let previewed = 0;

// The stages after an open pool, run on the labels so far; their HTML is rendered on
// the server by nbconvert (text escaped), as every output of ours is.
async function showPreview(data) {
  const open = data.stages.filter((stage) => stage.state === 'labeling');
  if (!open.length || Date.now() - previewed < 10000) return;
  previewed = Date.now();
  const parts = [];
  for (const stage of open) {
    const response = await fetch(url(`/api/v1/stages/${encodeURIComponent(stage.name)}/preview`), {
      credentials: 'same-origin',
    });
    if (!response.ok) continue;
    const { stages, waiting } = await response.json();
    for (const [name, outputs] of Object.entries(stages)) {
      const section = document.createElement('section');
      const heading = document.createElement('h3');
      heading.textContent = `${name} (from “${stage.title}” so far)`;
      const body = document.createElement('div');
      body.innerHTML = outputs.join('\n');
      section.append(heading, body);
      parts.push(section);
    }
    for (const name of waiting || []) {
      const note = document.createElement('p');
      note.className = 'nbf-hint';
      note.textContent = `${name}: waits for an answer or a stage that is not done yet.`;
      parts.push(note);
    }
  }
  if (parts.length) preview.replaceChildren(...parts);
}

async function refresh() {
  try {
    const response = await fetch(url('/api/v1/dashboard'), { credentials: 'same-origin' });
    if (response.ok) {
      const data = await response.json();
      showStages(data);
      showPools(data);
      showLabelers(data);
      document.dispatchEvent(new CustomEvent('nbf-dashboard', { detail: data }));
      await showPreview(data);
      document.body.dataset.nbfDashboard = 'updated';
    }
  } catch (error) {
    // the server may be restarting: try again on the next tick
  }
  clearTimeout(next);
  next = setTimeout(refresh, 2000);
}

let next = null;
// A change made on the page (the gold floor) is shown at once, not at the next tick.
document.addEventListener('nbf-dashboard-stale', () => {
  clearTimeout(next);
  refresh();
});

// Invites by name: a personal link to hand to one labeler, or revoking a name's links.
const invite = document.querySelector('#nbf-invite');
const result = document.querySelector('#nbf-invite-result');

const linkBox = invite.querySelector('.nbf-invite-link');
const link = invite.querySelector('#nbf-invite-link');

invite.addEventListener('submit', async (event) => {
  event.preventDefault();
  try {
    const role = event.submitter?.value === 'reviewer' ? 'reviewer' : 'labeler';
    // Not repeated by itself: each POST makes another link, which the owner would never see.
    const answer = await post('/api/v1/invites', { name: invite.elements.name.value, role });
    link.value = answer.link;
    linkBox.hidden = false;
    const what = role === 'reviewer' ? 'A reviewer link' : 'A link';
    result.textContent = `${what} for ${answer.name} is ready.`;
    link.select();
  } catch (error) {
    result.textContent = error.message;
  }
});

// The selection's copy command, not the Clipboard API: that one needs a secure context
// (https or localhost), which a server on a LAN name over plain http is not.
document.querySelector('#nbf-copy').addEventListener('click', () => {
  link.select();
  const copied = document.execCommand('copy');
  result.textContent = copied ? 'Copied.' : 'Select the link and copy it (Ctrl+C).';
});

document.querySelector('#nbf-revoke').addEventListener('click', async () => {
  try {
    // Not repeated by itself: a repeat would report 0 links revoked, the first's count lost.
    const answer = await post('/api/v1/invites/revoke', { name: invite.elements.name.value });
    result.textContent = `revoked ${answer.revoked} labeler(s) named ${answer.name}`;
  } catch (error) {
    result.textContent = error.message;
  }
});

refresh();
