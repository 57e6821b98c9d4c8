/**
 * A review page (docs/labeling.md#review): choose a label for each item shown, with the
 * buttons or the number keys 1-9, and submit with the button or Enter. The decisions go
 * to the JSON API; the answer says where to go next (the next item, or onwards).
 */
import { post } from './api.js';
import { newId } from './ids.js';

const form = document.querySelector('#nbf-review');
const submit = form.querySelector('button[type=submit]');
const result = document.querySelector('#nbf-review-result');
const sections = [...form.querySelectorAll('.nbf-review-item')];
const chosen = new Map();
const requestId = newId(); // one per page: a retried submit is saved once

function choose(section, button) {
  for (const other of section.querySelectorAll('.nbf-review-choice')) {
    other.setAttribute('aria-pressed', String(other === button));
  }
  chosen.set(section.dataset.key, button.dataset.choice);
  submit.disabled = chosen.size < sections.length;
}

form.addEventListener('click', (event) => {
  const button = event.target.closest('.nbf-review-choice');
  if (button) choose(button.closest('.nbf-review-item'), button);
});

document.addEventListener('keydown', (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (/^[1-9]$/.test(event.key)) {
    const section = sections.find((s) => !chosen.has(s.dataset.key)) || sections[0];
    const button = section.querySelectorAll('.nbf-review-choice')[Number(event.key) - 1];
    if (button) {
      event.preventDefault();
      choose(section, button);
      button.focus();
    }
  } else if (event.key === 'Enter' && !submit.disabled) {
    event.preventDefault();
    form.requestSubmit();
  }
});

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  submit.disabled = true;
  result.textContent = 'Saving…';
  try {
    const path = `/api/v1/stages/${encodeURIComponent(form.dataset.stage)}/review`;
    // The page's request id makes a repeat saved once.
    const decisions = Object.fromEntries(chosen);
    const answer = await post(path, { request_id: requestId, decisions }, { retry: true });
    result.textContent = 'Saved.';
    location.assign(answer.next);
  } catch (error) {
    result.textContent = error.message;
    submit.disabled = false;
  }
});
