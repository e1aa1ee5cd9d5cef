/* The job page's roll and player, one per variation (.roll-view): loads the
 * notes JSON, draws the roll (roll.js), names the parts with mute and solo,
 * plays the MIDI file in the browser (player.js), and sets up the edit form and
 * the versions list (edits.js).
 *
 * Keys: space plays or pauses (the variation last used); on the focused roll,
 * + and - zoom, 0 fits, the arrows scroll. For tests and curious people,
 * window.PerfRNNRolls lists the views: {roll, player, parts, ...}. */

import {PianoRoll} from './roll.js';
import {Player, webAudioSupported} from './player.js';
import {setupEditForm, setupVersions} from './edits.js';

const views = [];
let activeView = null;
window.PerfRNNRolls = views;

function formatTime(seconds) {
  const whole = Math.max(0, Math.floor(seconds));
  return Math.floor(whole / 60) + ':' + String(whole % 60).padStart(2, '0');
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) { node.className = className; }
  if (text !== undefined) { node.textContent = text; }
  return node;
}

async function loadNotes(url) {
  const response = await fetch(url, {headers: {Accept: 'application/json'}});
  let body = null;
  try { body = await response.json(); } catch (error) { body = null; }
  if (!response.ok) {
    throw new Error((body && body.message) || ('the server answered ' + response.status));
  }
  if (!body || !Array.isArray(body.parts)) { throw new Error('the notes are not in the expected form'); }
  return body;
}

class RollView {
  constructor(root) {
    this.root = root;
    this.variation = Number(root.dataset.variation || 0);
    this.message = root.querySelector('.roll-message');
    this.playButton = root.querySelector('.roll-play');
    this.timeLabel = root.querySelector('.roll-time');
    this.legend = root.querySelector('.roll-legend');
    this.parts = [];
    this.mute = [];
    this.solo = [];
    this.frame = null;
  }

  async start() {
    let data;
    try {
      data = await loadNotes(this.root.dataset.notesUrl);
    } catch (error) {
      this.say('The piano roll could not be loaded: ' + error.message + '. The downloads below still work.', true);
      this.root.classList.add('roll-failed');
      this.root.querySelectorAll('.roll-toolbar, .roll-scroll, .roll-edit').forEach((part) => {
        part.classList.add('d-none');
      });
      return;
    }
    this.data = data;
    this.roll = new PianoRoll(this.root, data);
    this.parts = this.roll.piece.parts;
    this.mute = this.parts.map(() => false);
    this.solo = this.parts.map(() => false);
    this.buildLegend();
    this.setupToolbar();
    this.setupPlayer();
    this.edit = setupEditForm(this);
    this.roll.addEventListener('seek', (event) => this.seek(event.detail.time));
    this.root.addEventListener('pointerdown', () => { activeView = this; });
    this.root.addEventListener('focusin', () => { activeView = this; });
    this.say('');
    this.root.dataset.ready = 'true';
  }

  say(text, isError) {
    if (!this.message) { return; }
    this.message.textContent = text;
    this.message.classList.toggle('d-none', !text);
    this.message.classList.toggle('text-danger', Boolean(isError));
  }

  /* ----- parts: colour, name, mute, solo ----- */

  buildLegend() {
    const number = this.variation + 1;
    this.parts.forEach((part, index) => {
      const item = element('li', 'roll-part d-flex align-items-center gap-2');
      item.dataset.part = part.name;
      const swatch = element('span', 'roll-swatch');
      swatch.style.backgroundColor = part.colour;
      swatch.setAttribute('aria-hidden', 'true');
      const name = element('span', 'roll-part-name fw-semibold', part.name);
      item.append(swatch, name);
      for (const [kind, label] of [['mute', 'Mute'], ['solo', 'Solo']]) {
        const wrap = element('label', 'roll-toggle small');
        const box = element('input', 'form-check-input me-1 roll-' + kind);
        box.type = 'checkbox';
        box.setAttribute('aria-label', label + ' ' + part.name + ' (variation ' + number + ')');
        box.addEventListener('change', () => {
          this[kind][index] = box.checked;
          this.applyAudible();
        });
        wrap.append(box, document.createTextNode(kind));
        item.append(wrap);
      }
      this.legend.append(item);
    });
  }

  /* A part sounds unless muted, or unless another part is soloed and it is not. */
  audible() {
    const soloing = this.solo.some(Boolean);
    return this.parts.map((part, index) => !this.mute[index] && (!soloing || this.solo[index]));
  }

  /* The MIDI channels to silence: those whose every part is silent. */
  mutedChannels() {
    const audible = this.audible();
    const muted = new Array(16).fill(false);
    const heard = new Array(16).fill(false);
    this.parts.forEach((part, index) => {
      const channel = part.channel !== null ? part.channel : (part.isDrum ? 9 : index);
      if (channel < 0 || channel > 15) { return; }
      if (audible[index]) { heard[channel] = true; } else { muted[channel] = true; }
    });
    return muted.map((silent, channel) => silent && !heard[channel]);
  }

  applyAudible() {
    const audible = this.audible();
    this.roll.setAudible(audible);
    this.legend.querySelectorAll('.roll-part').forEach((item, index) => {
      item.classList.toggle('roll-part-silent', !audible[index]);
    });
    if (this.player) { this.player.setMutedChannels(this.mutedChannels()); }
  }

  /* ----- toolbar and player ----- */

  setupToolbar() {
    const on = (selector, action) => {
      const button = this.root.querySelector(selector);
      if (button) { button.addEventListener('click', action); }
    };
    on('.roll-zoom-in', () => this.roll.zoom(1.5));
    on('.roll-zoom-out', () => this.roll.zoom(1 / 1.5));
    on('.roll-zoom-fit', () => this.roll.zoomToFit());
    this.showTime(0);
  }

  showTime(time) {
    if (this.timeLabel) {
      this.timeLabel.textContent = formatTime(time) + ' / ' + formatTime(this.roll.piece.seconds);
    }
  }

  setupPlayer() {
    if (!webAudioSupported()) {
      const note = this.root.querySelector('.roll-audio-note');
      if (note) { note.classList.remove('d-none'); }
      if (this.playButton) { this.playButton.classList.add('d-none'); }
      return;
    }
    this.player = new Player({midiUrl: this.root.dataset.midiUrl,
                              soundfontUrl: this.root.dataset.soundfontUrl,
                              duration: this.roll.piece.seconds});
    this.player.setMutedChannels(this.mutedChannels());
    this.player.addEventListener('state', (event) => this.onState(event.detail));
    if (this.playButton) {
      this.playButton.disabled = false;
      this.playButton.addEventListener('click', () => this.toggle());
    }
  }

  toggle() {
    if (!this.player) { return; }
    activeView = this;
    this.player.toggle();
  }

  seek(time) {
    if (this.player) { this.player.seek(time); }
    this.roll.setPlayhead(time, false);
    this.showTime(time);
  }

  onState({state, message}) {
    const labels = {loading: 'Loading…', playing: '❚❚ Pause'};
    if (this.playButton) {
      this.playButton.textContent = labels[state] || '▶ Play';
      this.playButton.setAttribute('aria-pressed', String(state === 'playing'));
    }
    this.root.dataset.playerState = state;
    if (state === 'error') {
      this.say('The player could not start: ' + message + '. Download the MIDI or WAV below instead.', true);
    } else if (state === 'loading') {
      this.say('Loading the synthesizer and the soundfont…');
    } else {
      this.say('');
    }
    if (state === 'playing') {
      this.follow();
    } else {
      if (this.frame) { cancelAnimationFrame(this.frame); this.frame = null; }
      const time = this.player.currentTime;
      this.roll.setPlayhead(state === 'ended' ? null : time, false);
      this.showTime(time);
    }
  }

  follow() {
    const tick = () => {
      if (!this.player.playing) { this.frame = null; return; }
      const time = this.player.currentTime;
      this.roll.setPlayhead(time, true);
      this.showTime(time);
      this.frame = requestAnimationFrame(tick);
    };
    if (!this.frame) { this.frame = requestAnimationFrame(tick); }
  }

  /* For the browser tests: what a muted part's channel plays, and the like. */
  partState() {
    const levels = this.player ? this.player.channelLevels() : [];
    const channels = this.mutedChannels();
    return this.parts.map((part, index) => {
      const channel = part.channel !== null ? part.channel : index;
      return {name: part.name, channel, audible: this.audible()[index],
              channelMuted: this.player ? this.player.channelMuted(channel) : channels[channel],
              level: levels[channel] || 0};
    });
  }
}

function isTyping(target) {
  return Boolean(target && target.closest &&
                 target.closest('input, textarea, select, button, a, summary, [contenteditable]'));
}

document.addEventListener('keydown', (event) => {
  if (event.key !== ' ' || event.ctrlKey || event.metaKey || event.altKey) { return; }
  if (isTyping(event.target)) { return; }
  const view = activeView || views.find((candidate) => candidate.player);
  if (!view || !view.player) { return; }
  event.preventDefault();
  view.toggle();
});

document.querySelectorAll('.roll-view[data-notes-url]').forEach((root) => {
  const view = new RollView(root);
  views.push(view);
  view.start();
});
setupVersions();
