/* Editing a result from its job page: regenerate the bars selected on the roll
 * (some parts or all), or extend the piece by N bars. Both POST to
 * /api/v1/generations/{id}/edits, follow the new job, and open its page when it
 * is done. The versions card lists every version of the result, with Undo (back
 * to the version this one was made from). */

const API = '/api/v1';

function byId(id) { return document.getElementById(id); }

function jobData() {
  const node = byId('job-data');
  try { return node ? JSON.parse(node.textContent) : null; } catch (error) { return null; }
}

function randomSeed() {
  const values = new Uint32Array(1);
  window.crypto.getRandomValues(values);
  return values[0] % 2147483647;
}

/* The API's message for a refused request (never a stack trace). */
async function problem(response) {
  try {
    const body = await response.json();
    if (body && body.message) { return body.message; }
  } catch (error) { /* not JSON */ }
  return 'the server answered ' + response.status + ' ' + (response.statusText || '');
}

/* Posts an edit; resolves with the new job's id once it is done, rejects with a message. */
async function postEdit(jobId, body, onProgress) {
  const response = await fetch(API + '/generations/' + encodeURIComponent(jobId) + '/edits', {
    method: 'POST',
    headers: {'Content-Type': 'application/json', Accept: 'application/json'},
    body: JSON.stringify(body),
  });
  if (!response.ok) { throw new Error(await problem(response)); }
  const answer = await response.json();
  const job = answer.job || {};
  if (!job.id) { throw new Error('the server did not say which job makes the edit'); }
  return new Promise((resolve, reject) => {
    window.PerfRNN.watchJob(job.id, (update) => {
      onProgress(update);
      if (update.state === 'done') {
        resolve(update.id || job.id);
      } else if (['failed', 'cancelled', 'expired'].indexOf(update.state) >= 0) {
        reject(new Error('the edit ' + update.state + (update.error ? ': ' + update.error : '')));
      }
    });
  });
}

export function setupEditForm(view) {
  const form = view.root.querySelector('.roll-edit-form');
  if (!form) { return null; }
  const job = jobData() || {};
  const roll = view.roll;
  const first = form.querySelector('.edit-first');
  const last = form.querySelector('.edit-last');
  const seed = form.querySelector('.edit-seed');
  const temperature = form.querySelector('.edit-temperature');
  const bars = form.querySelector('.edit-bars');
  const partsBox = form.querySelector('.edit-parts');
  const errorBox = form.querySelector('.edit-error');
  const status = form.querySelector('.edit-status');
  const buttons = form.querySelectorAll('button');
  const partBoxes = [];

  for (const input of [first, last]) {
    input.max = String(roll.barCount);
  }
  const parentTemperature = Number((job.params || {}).temperature);
  if (!temperature.value && Number.isFinite(parentTemperature)) {
    temperature.value = String(parentTemperature);
  }
  view.parts.forEach((part) => {
    const label = document.createElement('label');
    label.className = 'form-check-label small';
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.className = 'form-check-input me-1 edit-part';
    box.value = part.name;
    box.checked = true;
    label.append(box, document.createTextNode(part.name));
    partsBox.append(label);
    partBoxes.push(box);
  });

  // The roll and the two bar fields show the same selection.
  roll.addEventListener('select', (event) => {
    const selection = event.detail;
    first.value = selection ? String(selection.first) : '';
    last.value = selection ? String(selection.last) : '';
  });
  const fromFields = () => {
    const a = parseInt(first.value, 10), b = parseInt(last.value, 10);
    if (Number.isInteger(a) && Number.isInteger(b)) {
      roll.setSelection(a, b);
    } else if (Number.isInteger(a)) {
      roll.setSelection(a, a);
    } else {
      roll.setSelection(null, null);
    }
  };
  first.addEventListener('input', fromFields);
  last.addEventListener('input', fromFields);

  function showError(message) {
    errorBox.textContent = message;
    errorBox.classList.toggle('d-none', !message);
  }

  function busy(isBusy) {
    buttons.forEach((button) => { button.disabled = isBusy; });
  }

  function settings() {
    const value = seed.value.trim();
    const body = {variation: view.variation, seed: value === '' ? randomSeed() : Number(value)};
    if (value !== '' && !Number.isInteger(body.seed)) { throw new Error('the seed must be a whole number'); }
    return body;
  }

  async function send(body) {
    showError('');
    busy(true);
    status.textContent = 'Sending the edit…';
    try {
      const newId = await postEdit(job.id, body, (update) => {
        const percent = Math.round((update.progress || 0) * 100);
        status.textContent = update.state === 'queued' ? 'Waiting for a free worker…'
          : 'Making the new version… ' + percent + '%';
      });
      status.textContent = 'Done: opening the new version…';
      window.location.assign('/jobs/' + encodeURIComponent(newId));
    } catch (error) {
      status.textContent = '';
      showError(error.message || String(error));
      busy(false);
    }
  }

  form.querySelector('.edit-regenerate').addEventListener('click', () => {
    const a = parseInt(first.value, 10), b = parseInt(last.value, 10);
    if (!Number.isInteger(a)) {
      showError('Select the bars to regenerate first: drag over them on the roll, or type the first and last bar.');
      return;
    }
    const parts = partBoxes.filter((box) => box.checked).map((box) => box.value);
    if (!parts.length) {
      showError('Pick at least one part to regenerate.');
      return;
    }
    let body;
    try { body = settings(); } catch (error) { showError(error.message); return; }
    body.kind = 'regenerate';
    body.first_bar = Math.min(a, Number.isInteger(b) ? b : a);
    body.last_bar = Math.max(a, Number.isInteger(b) ? b : a);
    if (parts.length < partBoxes.length) { body.parts = parts; }
    const creativity = Number(temperature.value);
    if (temperature.value !== '' && Number.isFinite(creativity)) { body.temperature = creativity; }
    send(body);
  });

  form.querySelector('.edit-extend').addEventListener('click', () => {
    const count = parseInt(bars.value, 10);
    if (!Number.isInteger(count) || count < 1) {
      showError('Say how many bars to add (a whole number from 1).');
      return;
    }
    let body;
    try { body = settings(); } catch (error) { showError(error.message); return; }
    body.kind = 'extend';
    body.bars = count;
    const creativity = Number(temperature.value);
    if (temperature.value !== '' && Number.isFinite(creativity)) { body.temperature = creativity; }
    send(body);
  });

  return {form, send};
}

function describe(version) {
  const words = ['Version ' + version.version];
  if (version.kind === 'regenerate') {
    const span = version.first_bar === version.last_bar ? 'bar ' + version.first_bar
      : 'bars ' + version.first_bar + '–' + version.last_bar;
    words.push('regenerated ' + span + (version.parts && version.parts.length ? ' (' + version.parts.join(', ') + ')' : ''));
  } else if (version.kind === 'extend') {
    words.push('extended by ' + version.bars + ' bars');
  } else {
    words.push('the original');
  }
  return words.join(': ');
}

/* The versions card: every version of this result, and Undo. */
export async function setupVersions() {
  const card = byId('versions');
  const job = jobData();
  if (!card || !job) { return; }
  const list = byId('versions-list');
  const undo = byId('undo');
  const edit = job.edit || null;
  let parent = edit && edit.of ? edit.of : null;
  let versions = [];
  try {
    const response = await fetch(API + '/generations/' + encodeURIComponent(job.id) + '/versions',
                                 {headers: {Accept: 'application/json'}});
    if (response.ok) { versions = (await response.json()).versions || []; }
  } catch (error) { /* no list; Undo still works from the job's own record */ }
  versions.forEach((version, index) => {
    const item = document.createElement('li');
    item.className = 'list-group-item small version';
    const current = version.id === job.id;
    const link = document.createElement('a');
    link.href = (version.links && version.links.page) || ('/jobs/' + encodeURIComponent(version.id));
    link.textContent = describe(version);
    if (current) {
      link.setAttribute('aria-current', 'page');
      item.classList.add('active');
      if (!parent && index > 0) { parent = versions[index - 1].id; }
    }
    item.append(link);
    if (version.state && version.state !== 'done') {
      item.append(document.createTextNode(' (' + version.state + ')'));
    }
    list.append(item);
  });
  if (parent) {
    undo.classList.remove('d-none');
    undo.addEventListener('click', () => {
      window.location.assign('/jobs/' + encodeURIComponent(parent));
    });
  }
  card.classList.toggle('d-none', versions.length < 2 && !parent);
}
