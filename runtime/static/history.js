/**
 * The owner's look at one item of a pool stage (docs/labeling.md, "An item's history"):
 * every change to its labels (when, who, old → new), each labeler's answer now, and a
 * button per earlier answer that puts it back while the pool is labeled. Text goes into
 * the page as text, never as HTML.
 */
import { post, url } from './api.js';

const form = document.querySelector('#nbf-history');
const result = document.querySelector('#nbf-history-result');
const changes = document.querySelector('#nbf-history-changes');
const answers = document.querySelector('#nbf-history-answers');

function cell(row, text) {
  const td = document.createElement('td');
  td.textContent = text;
  row.append(td);
  return td;
}

function when(iso) {
  const moment = new Date(iso);
  return Number.isNaN(moment.getTime()) ? iso : moment.toLocaleString();
}

function showChanges(history) {
  const body = changes.querySelector('tbody');
  body.replaceChildren();
  for (const change of history.changes) {
    const row = document.createElement('tr');
    cell(row, when(change.at));
    cell(row, change.labeler.name);
    cell(row, change.old ?? '(first label)');
    cell(row, change.restored ? `${change.new} (put back by the owner)` : change.new);
    body.append(row);
  }
  changes.hidden = false;
}

function showAnswers(stage, history) {
  const body = answers.querySelector('tbody');
  body.replaceChildren();
  for (const { labeler, label, earlier } of history.labelers) {
    const row = document.createElement('tr');
    cell(row, labeler.name);
    cell(row, label);
    const put = cell(row, earlier.length ? '' : 'none');
    for (const answer of earlier) {
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'nbf-history-restore';
      button.textContent = `Put back “${answer}”`;
      button.disabled = !history.open;
      button.title = history.open ? `${labeler.name}'s answer becomes “${answer}” again` : 'The stage is finished: read-only';
      button.addEventListener('click', () => restore(stage, history, labeler, answer));
      put.append(button, ' ');
    }
    body.append(row);
  }
  answers.hidden = false;
}

async function look(stage, item) {
  const path = `/api/v1/stages/${encodeURIComponent(stage)}/history?item=${encodeURIComponent(item)}`;
  const response = await fetch(url(path), { cache: 'no-store', credentials: 'same-origin' });
  const history = await response.json();
  if (!response.ok) throw new Error(history.error || response.statusText);
  return history;
}

async function show(stage, item, told = '') {
  result.textContent = 'Looking…';
  try {
    const history = await look(stage, item);
    showChanges(history);
    showAnswers(stage, history);
    const count = history.changes.length;
    const state = history.open ? '' : ' The stage is finished: its labels are read-only.';
    result.textContent = `${told}Item ${history.item}: ${count} change${count === 1 ? '' : 's'}.${state}`;
  } catch (error) {
    changes.hidden = answers.hidden = true;
    result.textContent = error.message;
  }
}

async function restore(stage, history, labeler, answer) {
  result.textContent = 'Putting it back…';
  try {
    // Not repeated by itself: each POST writes a change to the item's history.
    await post(`/api/v1/stages/${encodeURIComponent(stage)}/history`, {
      item: history.item,
      labeler: labeler.id,
      label: answer,
    });
    await show(stage, history.item, `${labeler.name}'s answer is “${answer}” again. `);
  } catch (error) {
    result.textContent = `Not put back: ${error.message}`;
  }
}

form?.addEventListener('submit', (event) => {
  event.preventDefault();
  const stage = form.querySelector('#nbf-history-stage').value;
  show(stage, form.querySelector('#nbf-history-item').value.trim());
});
