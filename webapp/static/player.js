/* Plays a result in the browser: its MIDI file through SpessaSynth (an SF2
 * synthesizer in an AudioWorklet, vendored in static/vendor/spessasynth) with
 * the soundfont the server renders with (/soundfont.sf2).
 *
 * One synthesizer serves the whole page: it is made on the first Play (a
 * browser lets audio start only after a gesture), and a variation that starts
 * playing takes it over from the one that played before. Muting a part mutes
 * its MIDI channel in the synthesizer; an analyser on each channel's output
 * measures what each channel plays (`channelLevels`).
 *
 * Events (on the Player): "state" {state: loading|playing|paused|ended|error, message}. */

const VENDOR = new URL('vendor/spessasynth/', import.meta.url);
const CHANNELS = 16;

/* True where the page can play: Web Audio with AudioWorklet. */
export function webAudioSupported() {
  return typeof window.AudioContext === 'function' && typeof window.AudioWorkletNode === 'function';
}

let engine = null;

/* The page's synthesizer: {context, synth, sequencer, analysers, owner}. */
function startEngine(soundfontUrl) {
  if (engine) { return engine; }
  const context = new AudioContext();  // made inside the click, so it may start
  engine = (async () => {
    const [{WorkletSynthesizer, Sequencer}, font] = await Promise.all([
      import(new URL('spessasynth_lib.min.js', VENDOR).href),
      fetch(soundfontUrl).then((response) => {
        if (!response.ok) { throw new Error('the soundfont did not load (HTTP ' + response.status + ')'); }
        return response.arrayBuffer();
      }),
      context.audioWorklet.addModule(new URL('spessasynth_processor.min.js', VENDOR).href),
    ]);
    const synth = new WorkletSynthesizer(context);
    synth.connect(context.destination);
    await synth.soundBankManager.addSoundBank(font, 'main');
    await synth.isReady;
    const analysers = [];
    for (let channel = 0; channel < CHANNELS; channel++) {
      const analyser = context.createAnalyser();
      analyser.fftSize = 1024;
      synth.connectChannel(analyser, channel);
      analysers.push(analyser);
    }
    const sequencer = new Sequencer(synth, {skipToFirstNoteOn: false});
    sequencer.loopCount = 0;
    const state = {context, synth, sequencer, analysers, owner: null};
    sequencer.eventHandler.addEvent('songEnded', 'perfrnn', () => {
      if (state.owner) { state.owner.ended(); }
    });
    return state;
  })();
  engine.catch(() => { engine = null; context.close(); });
  return engine;
}

function waitForSong(sequencer, timeoutMs) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the MIDI file did not load in time')), timeoutMs);
    sequencer.eventHandler.addEvent('songChange', 'perfrnn-load', () => {
      clearTimeout(timer);
      sequencer.eventHandler.removeEvent('songChange', 'perfrnn-load');
      resolve();
    });
  });
}

export class Player extends EventTarget {
  constructor({midiUrl, soundfontUrl, duration}) {
    super();
    this.midiUrl = midiUrl;
    this.soundfontUrl = soundfontUrl;
    this.duration = duration || 0;
    this.position = 0;          // seconds, while this player is not playing
    this.state = 'stopped';
    this.muted = new Array(CHANNELS).fill(false);
    this.midi = null;
    this.engine = null;
  }

  get playing() { return this.state === 'playing'; }

  /* Seconds into the piece. */
  get currentTime() {
    if (this.playing && this.engine && this.engine.owner === this) {
      return Math.min(this.engine.sequencer.currentHighResolutionTime, this.duration || Infinity);
    }
    return this.position;
  }

  /* The AudioContext's clock (seconds), or null before the first Play. */
  get contextTime() { return this.engine ? this.engine.context.currentTime : null; }

  setState(state, message) {
    this.state = state;
    this.dispatchEvent(new CustomEvent('state', {detail: {state, message: message || ''}}));
  }

  toggle() { return this.playing || this.state === 'loading' ? this.pause() : this.play(); }

  async play() {
    if (this.playing || this.state === 'loading') { return; }
    this.setState('loading');
    try {
      const pending = startEngine(this.soundfontUrl);
      const midi = this.midi || fetch(this.midiUrl).then((response) => {
        if (!response.ok) { throw new Error('the MIDI file did not load (HTTP ' + response.status + ')'); }
        return response.arrayBuffer();
      });
      const [state, buffer] = await Promise.all([pending, midi]);
      this.midi = buffer;
      this.engine = state;
      if (this.state !== 'loading') { return; }  // paused while loading
      await state.context.resume();
      if (state.owner !== this) {
        if (state.owner) { state.owner.pause(); }
        state.owner = this;
        const loaded = waitForSong(state.sequencer, 15000);
        state.sequencer.loadNewSongList([{binary: buffer.slice(0), fileName: 'piece.mid'}]);
        await loaded;
        state.sequencer.pause();
      }
      this.applyMutes();
      if (this.position >= (this.duration || Infinity) - 0.05) { this.position = 0; }
      state.sequencer.currentTime = this.position;
      state.sequencer.play();
      this.setState('playing');
    } catch (error) {
      this.setState('error', String(error && error.message ? error.message : error));
    }
  }

  pause() {
    if (this.engine && this.engine.owner === this && this.playing) {
      this.position = this.engine.sequencer.currentTime;
      this.engine.sequencer.pause();
    }
    if (this.state === 'playing' || this.state === 'loading') { this.setState('paused'); }
  }

  ended() {
    this.position = 0;
    if (this.playing) { this.setState('ended'); }
  }

  seek(time) {
    this.position = Math.max(0, time);
    if (this.engine && this.engine.owner === this && this.playing) {
      this.engine.sequencer.currentTime = this.position;
    }
  }

  /* `muted[channel]` true silences that MIDI channel (0-15). */
  setMutedChannels(muted) {
    this.muted = muted.slice(0, CHANNELS);
    this.applyMutes();
  }

  applyMutes() {
    if (!this.engine || this.engine.owner !== this) { return; }
    const channels = this.engine.synth.midiChannels;
    for (let channel = 0; channel < CHANNELS && channel < channels.length; channel++) {
      channels[channel].setSystemParameter('isMuted', Boolean(this.muted[channel]));
    }
  }

  /* Whether the synthesizer has channel `channel` muted (what it was told). */
  channelMuted(channel) {
    if (!this.engine || this.engine.owner !== this) { return Boolean(this.muted[channel]); }
    return Boolean(this.engine.synth.midiChannels[channel].systemParameters.isMuted);
  }

  /* Peak level (0 to 1) of each channel's output over the last ~20 ms. */
  channelLevels() {
    if (!this.engine || this.engine.owner !== this) { return new Array(CHANNELS).fill(0); }
    return this.engine.analysers.map((analyser) => {
      const samples = new Float32Array(analyser.fftSize);
      analyser.getFloatTimeDomainData(samples);
      let peak = 0;
      for (const value of samples) { peak = Math.max(peak, Math.abs(value)); }
      return peak;
    });
  }
}
