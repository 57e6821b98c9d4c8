/**
 * The owner's dashboard: every few seconds, the state and progress of every stage,
 * agreement on pools, and each labeler's count and pace, from GET /api/v1/dashboard.
 * Text only goes in through textContent, so nothing a labeler typed can become markup.
 */
import { post } from './api.js';

const stages = document.querySelector('#nbf-stages tbody');
const labelers = document.querySelector('#nbf-labelers tbody');

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
      ? `${stage.progress.complete} of ${stage.progress.items} items complete, ${stage.progress.labels} labels`
      : stage.reason;
    row.querySelector('.nbf-progress').textContent = progress;
    const agreement = stage.agreement
      ? `pairwise ${percent(stage.agreement.pairwise)}, α ${stage.agreement.alpha === null ? '–' : stage.agreement.alpha.toFixed(2)}`
      : '';
    row.querySelector('.nbf-agreement').textContent = agreement;
  }
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
    const response = await fetch(`/api/v1/stages/${encodeURIComponent(stage.name)}/preview`, {
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
    const response = await fetch('/api/v1/dashboard', { credentials: 'same-origin' });
    if (response.ok) {
      const data = await response.json();
      showStages(data);
      showLabelers(data);
      await showPreview(data);
      document.body.dataset.nbfDashboard = 'updated';
    }
  } catch (error) {
    // the server may be restarting: try again on the next tick
  }
  setTimeout(refresh, 2000);
}

// Invites by name: a personal link to hand to one labeler, or revoking a name's links.
const invite = document.querySelector('#nbf-invite');
const result = document.querySelector('#nbf-invite-result');

const linkBox = invite.querySelector('.nbf-invite-link');
const link = invite.querySelector('#nbf-invite-link');

invite.addEventListener('submit', async (event) => {
  event.preventDefault();
  try {
    const answer = await post('/api/v1/invites', { name: invite.elements.name.value });
    link.value = answer.link;
    linkBox.hidden = false;
    result.textContent = `A link for ${answer.name} is ready.`;
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
    const answer = await post('/api/v1/invites/revoke', { name: invite.elements.name.value });
    result.textContent = `revoked ${answer.revoked} labeler(s) named ${answer.name}`;
  } catch (error) {
    result.textContent = error.message;
  }
});

refresh();
