/* The job page's piano roll: a canvas drawn from a result's notes JSON
 * (GET /api/v1/generations/{id}/notes?variation=N), with the parts coloured,
 * bar lines, section names and chords, zoom and horizontal scroll, a playhead,
 * and bars selected by dragging (or tapping on a phone).
 *
 * Only the visible stretch of time is drawn: each part's notes are sorted by
 * start, so a binary search finds the first visible one. The notes sit on one
 * canvas; the playhead and the selection on a second one above it, redrawn
 * alone while the music plays.
 *
 * Plain ES module, no libraries. Events (CustomEvent on the PianoRoll object):
 * "select" {first, last} (bars counted from 1, or null), "seek" {time}. */

export const PALETTE = ['#0072b2', '#d55e00', '#009e73', '#cc79a7',
                        '#e69f00', '#56b4e9', '#7f3c8d', '#444444'];
const RULER = 30;        // px: section names, then bar numbers
const CHORD_LANE = 16;   // px under the ruler, when the piece has chords
const MAX_PPS = 400;     // pixels per second, zoomed in all the way
const DEFAULT_SPAN = 40; // seconds in view at first (the whole piece if shorter)
const FONT = '11px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';

/* First index i with values[i] > value (values sorted ascending). */
function upperBound(values, value) {
  let low = 0, high = values.length;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (values[middle] > value) { high = middle; } else { low = middle + 1; }
  }
  return low;
}

/* The piece as the roll needs it: each part's notes sorted by start in typed
 * arrays, the pitch range, and the bars (from the tempo if the JSON has none). */
export function preparePiece(data) {
  let low = 127, high = 0, end = Number(data.seconds) || 0;
  const parts = (data.parts || []).map((part, index) => {
    const notes = (part.notes || []).slice().sort((a, b) => a[0] - b[0]);
    const count = notes.length;
    const starts = new Float64Array(count), ends = new Float64Array(count);
    const pitches = new Uint8Array(count), velocities = new Uint8Array(count);
    let longest = 0;
    notes.forEach((note, i) => {
      starts[i] = note[0];
      ends[i] = Math.max(note[1], note[0]);
      pitches[i] = note[2];
      velocities[i] = note[3];
      longest = Math.max(longest, ends[i] - starts[i]);
      low = Math.min(low, note[2]);
      high = Math.max(high, note[2]);
      end = Math.max(end, ends[i]);
    });
    return {
      index, name: part.name || ('part ' + (index + 1)), program: part.program,
      isDrum: Boolean(part.is_drum),
      channel: Number.isInteger(part.channel) ? part.channel : null,
      colour: PALETTE[index % PALETTE.length],
      starts, ends, pitches, velocities, longest, count,
    };
  });
  if (low > high) { low = 48; high = 72; }
  low = Math.max(0, low - 1);
  high = Math.min(127, high + 1);
  let bars = (data.bars || []).filter((time) => Number.isFinite(time)).sort((a, b) => a - b);
  if (!bars.length) {
    const signature = data.time_signature || {};
    const beats = (signature.numerator || 4) * 4 / (signature.denominator || 4);
    const barSeconds = beats * 60 / (data.bpm || 120);
    bars = [];
    for (let time = 0; time < Math.max(end, barSeconds); time += barSeconds) { bars.push(time); }
  }
  return {
    parts, bars, low, high, seconds: Math.max(end, 0.1),
    sections: (data.sections || []).filter((s) => Number.isFinite(s.time)),
    chords: (data.chords || []).filter((c) => Number.isFinite(c.time)),
  };
}

export class PianoRoll extends EventTarget {
  /* `root` holds .roll-scroll > (.roll-stage > canvas.roll-notes + canvas.roll-overlay)
   * + .roll-spacer; `data` is the notes JSON. */
  constructor(root, data) {
    super();
    const started = performance.now();
    this.root = root;
    this.piece = preparePiece(data);
    this.prepareMs = performance.now() - started;
    this.scroller = root.querySelector('.roll-scroll');
    this.stage = root.querySelector('.roll-stage');
    this.spacer = root.querySelector('.roll-spacer');
    this.canvas = root.querySelector('canvas.roll-notes');
    this.overlay = root.querySelector('canvas.roll-overlay');
    this.audible = this.piece.parts.map(() => true);
    this.selection = null;   // {first, last}, bars counted from 1
    this.playhead = null;    // seconds, or null when not shown
    this.lastDrawMs = 0;
    this.width = 0;
    this.height = 0;
    this.pps = 0;
    this.pending = false;
    this.resize();
    this.pps = Math.min(MAX_PPS, Math.max(this.fitPps(),
                                          this.width / Math.min(DEFAULT_SPAN, this.piece.seconds)));
    this.updateSpacer();
    this.describe();
    this.listen();
    this.draw();
  }

  get barCount() { return this.piece.bars.length; }

  /* Start and end (s) of bar `number` (from 1). */
  barSpan(number) {
    const bars = this.piece.bars;
    const start = bars[number - 1];
    const end = number < bars.length ? bars[number] : Math.max(this.piece.seconds, start);
    return [start, end];
  }

  /* The bar (from 1) playing at `time`. */
  barAt(time) {
    return Math.min(this.barCount, Math.max(1, upperBound(this.piece.bars, time)));
  }

  fitPps() { return this.width / this.piece.seconds; }

  get viewStart() { return this.scroller.scrollLeft / this.pps; }

  timeAtX(x) { return this.viewStart + x / this.pps; }

  resize() {
    const ratio = window.devicePixelRatio || 1;
    this.width = Math.max(50, this.scroller.clientWidth);
    this.height = Math.max(80, this.stage.clientHeight);
    this.stage.style.width = this.width + 'px';
    for (const canvas of [this.canvas, this.overlay]) {
      canvas.width = Math.round(this.width * ratio);
      canvas.height = Math.round(this.height * ratio);
      canvas.style.width = this.width + 'px';
      canvas.style.height = this.height + 'px';
    }
    this.ratio = ratio;
  }

  updateSpacer() {
    this.spacer.style.width = Math.ceil(this.piece.seconds * this.pps) + 'px';
  }

  describe() {
    const names = this.piece.parts.map((part) => part.name).join(', ');
    const count = this.piece.parts.length;
    this.canvas.setAttribute('aria-label', 'Piano roll: ' + count + ' part' + (count === 1 ? '' : 's') +
      (names ? ' (' + names + ')' : '') + ', ' + this.barCount + ' bars, ' +
      Math.round(this.piece.seconds) + ' s');
  }

  /* ----- zoom and scroll ----- */

  /* Zooms by `factor`, keeping the time under `anchorX` (px from the left) in place. */
  zoom(factor, anchorX) {
    const x = anchorX === undefined ? this.width / 2 : anchorX;
    const time = this.timeAtX(x);
    const pps = Math.min(MAX_PPS, Math.max(this.fitPps(), this.pps * factor));
    if (pps === this.pps) { return; }
    this.pps = pps;
    this.updateSpacer();
    this.scroller.scrollLeft = Math.max(0, time * pps - x);
    this.draw();
  }

  zoomToFit() { this.zoom(this.fitPps() / this.pps, 0); }

  scrollBy(pixels) { this.scroller.scrollLeft += pixels; }

  scrollToTime(time) { this.scroller.scrollLeft = Math.max(0, time * this.pps); }

  /* ----- what the page sets ----- */

  setAudible(audible) {
    this.audible = audible.slice();
    this.draw();
  }

  setSelection(first, last) {
    if (!first || !last) {
      this.selection = null;
    } else {
      const a = Math.min(Math.max(1, first), this.barCount);
      const b = Math.min(Math.max(1, last), this.barCount);
      this.selection = {first: Math.min(a, b), last: Math.max(a, b)};
    }
    this.drawOverlay();
  }

  /* Moves the playhead; with `follow`, turns the page when it leaves the view. */
  setPlayhead(time, follow) {
    this.playhead = time;
    if (follow && time !== null) {
      const x = (time - this.viewStart) * this.pps;
      if (x < 0 || x > this.width * 0.95) {
        this.scroller.scrollLeft = Math.max(0, time * this.pps - this.width * 0.1);
        return;  // the scroll event redraws
      }
    }
    this.drawOverlay();
  }

  /* ----- drawing ----- */

  scheduleDraw() {
    if (this.pending) { return; }
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.draw(); });
  }

  draw() {
    const started = performance.now();
    const ctx = this.canvas.getContext('2d');
    const {width, height, pps, piece} = this;
    const t0 = this.viewStart;
    const t1 = t0 + width / pps;
    const x = (time) => (time - t0) * pps;
    ctx.setTransform(this.ratio, 0, 0, this.ratio, 0, 0);
    ctx.globalAlpha = 1;
    ctx.fillStyle = '#ffffff';
    ctx.fillRect(0, 0, width, height);
    ctx.font = FONT;
    ctx.textBaseline = 'middle';

    const chordLane = piece.chords.length ? CHORD_LANE : 0;
    const top = RULER + chordLane;
    const rows = piece.high - piece.low + 1;
    const row = (height - top - 1) / rows;

    // The ruler, and a line at every C.
    ctx.fillStyle = '#f1f3f5';
    ctx.fillRect(0, 0, width, RULER);
    if (chordLane) {
      ctx.fillStyle = '#fafbfc';
      ctx.fillRect(0, RULER, width, chordLane);
    }
    ctx.fillStyle = '#eef0f2';
    for (let pitch = piece.low; pitch <= piece.high; pitch++) {
      if (pitch % 12 === 0) { ctx.fillRect(0, top + (piece.high - pitch + 1) * row - 1, width, 1); }
    }

    // Bar lines and numbers (fewer numbers when the bars are narrow).
    const bars = piece.bars;
    const first = Math.max(0, upperBound(bars, t0) - 1);
    const barWidth = bars.length > 1 ? (bars[bars.length - 1] - bars[0]) / (bars.length - 1) * pps : width;
    // a number every 1, 2, 4, 8, 16... bars, at least 32 px apart
    let every = 1;
    while (every * barWidth < 32 && every < bars.length) { every *= 2; }
    ctx.textAlign = 'left';
    for (let i = first; i < bars.length && bars[i] <= t1; i++) {
      const bx = Math.round(x(bars[i])) + 0.5;
      ctx.fillStyle = '#ced4da';
      ctx.fillRect(bx - 0.5, RULER - 12, 1, height - RULER + 12);
      if (i % every === 0) {
        ctx.fillStyle = '#495057';
        ctx.fillText(String(i + 1), bx + 3, RULER - 7);
      }
    }

    // Sections: a dark line and the name in the ruler's top half.
    // (a name is left out where the one before it still is)
    ctx.font = 'bold ' + FONT;
    let freeX = -Infinity;
    for (const section of piece.sections) {
      if (section.time > t1) { continue; }
      const sx = Math.round(x(section.time));
      if (sx < -200) { continue; }
      ctx.fillStyle = '#343a40';
      ctx.fillRect(sx, 0, 2, height);
      const name = String(section.name || '');
      const nameX = Math.max(sx + 4, 2);
      if (nameX >= freeX) {
        ctx.fillText(name, nameX, 8);
        freeX = nameX + ctx.measureText(name).width + 8;
      }
    }
    ctx.font = FONT;

    // Chord symbols, each where it starts (skipped where the last one's text still is).
    if (chordLane && barWidth >= 20) {
      let free = -Infinity;
      ctx.fillStyle = '#6c757d';
      for (const chord of piece.chords) {
        if (chord.time > t1) { break; }
        const cx = x(chord.time) + 2;
        const text = String(chord.symbol || '');
        if (cx < free || cx < -100) { continue; }
        ctx.fillText(text, cx, RULER + chordLane / 2);
        free = cx + ctx.measureText(text).width + 6;
      }
    }

    // The notes, part by part; a muted part is drawn faint.
    const height1 = Math.max(1, row - (row > 4 ? 1 : 0));
    piece.parts.forEach((part, index) => {
      if (!part.count) { return; }
      ctx.fillStyle = part.colour;
      const faint = this.audible[index] === false;
      let i = upperBound(part.starts, t0 - part.longest) - 1;
      if (i < 0) { i = 0; }
      for (; i < part.count; i++) {
        const start = part.starts[i];
        if (start > t1) { break; }
        if (part.ends[i] < t0) { continue; }
        const velocity = part.velocities[i];
        ctx.globalAlpha = (faint ? 0.18 : 0.45) + (faint ? 0.1 : 0.55) * velocity / 127;
        const nx = (start - t0) * pps;
        ctx.fillRect(nx, top + (piece.high - part.pitches[i]) * row,
                     Math.max(1.5, (part.ends[i] - start) * pps), height1);
      }
    });
    ctx.globalAlpha = 1;
    this.lastDrawMs = performance.now() - started;
    this.drawOverlay();
  }

  drawOverlay() {
    const ctx = this.overlay.getContext('2d');
    const {width, height, pps} = this;
    const t0 = this.viewStart;
    ctx.setTransform(this.ratio, 0, 0, this.ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    if (this.selection) {
      const [start] = this.barSpan(this.selection.first);
      const [, end] = this.barSpan(this.selection.last);
      const sx = (start - t0) * pps, ex = (end - t0) * pps;
      ctx.fillStyle = 'rgba(13, 110, 253, 0.16)';
      ctx.fillRect(sx, 0, ex - sx, height);
      ctx.strokeStyle = '#0d6efd';
      ctx.lineWidth = 2;
      ctx.strokeRect(sx + 1, 1, ex - sx - 2, height - 2);
      ctx.fillStyle = '#0d6efd';
      ctx.font = 'bold ' + FONT;
      ctx.textBaseline = 'middle';
      const label = this.selection.first === this.selection.last ? 'bar ' + this.selection.first
        : 'bars ' + this.selection.first + '–' + this.selection.last;
      ctx.fillText(label, Math.max(sx + 4, 4), height - 10);
    }
    if (this.playhead !== null) {
      const px = (this.playhead - t0) * pps;
      if (px >= -2 && px <= width + 2) {
        ctx.fillStyle = '#dc3545';
        ctx.fillRect(Math.round(px) - 1, 0, 2, height);
      }
    }
  }

  /* Draws `times` times and returns each draw's milliseconds (for the draw-time test). */
  measureDraws(times) {
    const took = [];
    for (let i = 0; i < (times || 5); i++) {
      this.draw();
      took.push(this.lastDrawMs);
    }
    return took;
  }

  /* ----- input ----- */

  listen() {
    this.scroller.addEventListener('scroll', () => this.scheduleDraw(), {passive: true});
    if (typeof ResizeObserver === 'function') {
      new ResizeObserver(() => this.onResize()).observe(this.scroller);
    } else {
      window.addEventListener('resize', () => this.onResize());
    }

    // Ctrl/cmd + wheel (and a trackpad's pinch, which the browser sends as one) zooms.
    this.scroller.addEventListener('wheel', (event) => {
      if (!event.ctrlKey && !event.metaKey) { return; }
      event.preventDefault();
      this.zoom(Math.exp(-event.deltaY * 0.002), this.pointerX(event));
    }, {passive: false});

    this.scroller.addEventListener('keydown', (event) => this.onKey(event));

    // Two fingers pinch to zoom; one finger scrolls natively (touch-action: pan-x pan-y).
    let pinch = null;
    const distance = (touches) => Math.hypot(touches[0].clientX - touches[1].clientX,
                                             touches[0].clientY - touches[1].clientY);
    this.scroller.addEventListener('touchstart', (event) => {
      if (event.touches.length === 2) {
        pinch = {distance: distance(event.touches), pps: this.pps};
      }
    }, {passive: true});
    this.scroller.addEventListener('touchmove', (event) => {
      if (!pinch || event.touches.length !== 2) { return; }
      event.preventDefault();
      const middle = (event.touches[0].clientX + event.touches[1].clientX) / 2;
      const target = pinch.pps * distance(event.touches) / pinch.distance;
      this.zoom(target / this.pps, middle - this.stage.getBoundingClientRect().left);
    }, {passive: false});
    this.scroller.addEventListener('touchend', (event) => {
      if (event.touches.length < 2) { pinch = null; }
    }, {passive: true});

    this.overlay.addEventListener('pointerdown', (event) => this.onPointerDown(event));
    this.overlay.addEventListener('pointermove', (event) => this.onPointerMove(event));
    this.overlay.addEventListener('pointerup', (event) => this.onPointerUp(event));
    this.overlay.addEventListener('pointercancel', () => { this.drag = null; });
  }

  onResize() {
    const fitted = Math.abs(this.pps - this.fitPps()) < 1e-6;
    this.resize();
    if (fitted || this.pps < this.fitPps()) { this.pps = this.fitPps(); }
    this.updateSpacer();
    this.draw();
  }

  pointerX(event) { return event.clientX - this.stage.getBoundingClientRect().left; }

  pointerY(event) { return event.clientY - this.stage.getBoundingClientRect().top; }

  onKey(event) {
    if (event.altKey || event.ctrlKey || event.metaKey) { return; }
    const page = this.width * 0.8;
    const actions = {
      '+': () => this.zoom(1.5), '=': () => this.zoom(1.5), '-': () => this.zoom(1 / 1.5),
      '_': () => this.zoom(1 / 1.5), '0': () => this.zoomToFit(),
      ArrowRight: () => this.scrollBy(event.shiftKey ? page : page / 8),
      ArrowLeft: () => this.scrollBy(-(event.shiftKey ? page : page / 8)),
      PageDown: () => this.scrollBy(page), PageUp: () => this.scrollBy(-page),
      Home: () => this.scrollToTime(0), End: () => this.scrollToTime(this.piece.seconds),
      Escape: () => this.select(null, null),
    };
    const action = actions[event.key];
    if (action) {
      event.preventDefault();
      action();
    }
  }

  select(first, last) {
    this.setSelection(first, last);
    this.dispatchEvent(new CustomEvent('select', {detail: this.selection}));
  }

  /* Mouse and pen: press in the ruler to move the playhead, drag over the notes to
   * select bars. Touch: a tap in the ruler moves the playhead; a tap on the notes
   * selects a bar, and a second tap on another bar selects the bars between. */
  onPointerDown(event) {
    if (event.button !== 0) { return; }
    const x = this.pointerX(event), y = this.pointerY(event);
    const time = this.timeAtX(x);
    if (event.pointerType === 'touch') {
      this.drag = {touch: true, x, y, at: performance.now()};
      return;
    }
    if (y < RULER) {
      this.dispatchEvent(new CustomEvent('seek', {detail: {time: Math.max(0, time)}}));
      return;
    }
    const bar = this.barAt(time);
    this.drag = {anchor: bar};
    this.overlay.setPointerCapture(event.pointerId);
    this.setSelection(bar, bar);
    event.preventDefault();
  }

  onPointerMove(event) {
    if (!this.drag || this.drag.touch) { return; }
    const x = this.pointerX(event);
    if (x > this.width - 16) { this.scrollBy(12); } else if (x < 16) { this.scrollBy(-12); }
    this.setSelection(this.drag.anchor, this.barAt(this.timeAtX(x)));
  }

  onPointerUp(event) {
    const drag = this.drag;
    this.drag = null;
    if (!drag) { return; }
    if (!drag.touch) {
      this.select(this.selection && this.selection.first, this.selection && this.selection.last);
      return;
    }
    const x = this.pointerX(event), y = this.pointerY(event);
    if (Math.hypot(x - drag.x, y - drag.y) > 10) { return; }  // a swipe scrolls, a tap selects
    const time = this.timeAtX(x);
    if (y < RULER) {
      this.dispatchEvent(new CustomEvent('seek', {detail: {time: Math.max(0, time)}}));
      return;
    }
    const bar = this.barAt(time);
    const single = this.selection && this.selection.first === this.selection.last;
    if (single && this.tapped && bar !== this.selection.first) {
      this.select(this.selection.first, bar);
      this.tapped = false;
    } else {
      this.select(bar, bar);
      this.tapped = true;
    }
  }
}
