// The Radio page: start an endless stream, play it, change it live, follow the listener's pace.
(function () {
  "use strict";
  const root = document.getElementById("radio");
  if (!root) return;
  const $ = (id) => document.getElementById(id);
  const style = $("radio-style"), type = $("radio-type"), bpm = $("radio-bpm");
  const temperature = $("radio-temperature"), audio = $("radio-audio");
  const play = $("radio-play"), stop = $("radio-stop"), status = $("radio-status");
  const midi = $("radio-midi"), pace = $("radio-pace"), problem = $("radio-error");
  let stream = null;

  function say(text) { status.textContent = text; }
  function fail(text) { problem.textContent = text; problem.classList.remove("d-none"); }

  function fillTypes() {
    const option = style.selectedOptions[0];
    if (!option) return;
    type.length = 1;
    for (const entry of JSON.parse(option.dataset.types || "[]")) {
      const choice = document.createElement("option");
      choice.value = entry.program;
      choice.textContent = entry.label || entry.name;
      type.appendChild(choice);
    }
    const conditioned = option.dataset.conditioned === "true";
    $("radio-controls").classList.toggle("d-none", !conditioned);
    $("radio-controls").disabled = !conditioned;
    const tempo = Math.round(Number(option.dataset.defaultBpm) || 120);
    bpm.value = tempo;
    $("radio-bpm-value").textContent = tempo;
  }

  async function send(method, url, body) {
    const response = await fetch(url, {
      method, headers: body ? {"Content-Type": "application/json"} : {},
      body: body ? JSON.stringify(body) : undefined, keepalive: method === "DELETE"});
    const data = response.status === 204 ? {} : await response.json();
    if (!response.ok) {
      const fields = data.fields ? " (" + Object.values(data.fields).join("; ") + ")" : "";
      throw new Error((data.message || "the server refused") + fields);
    }
    return data;
  }

  async function start() {
    problem.classList.add("d-none");
    play.disabled = true;
    say("starting...");
    const body = {style: style.value, bpm: Number(bpm.value),
                  temperature: Number(temperature.value)};
    if (type.value) body.type = type.value;
    try {
      stream = await send("POST", "/api/v1/streams", body);
    } catch (error) {
      fail("The radio did not start: " + error.message);
      play.disabled = false;
      say("");
      return;
    }
    audio.src = stream.audio_url;
    $("radio-url").textContent = new URL(stream.audio_url, location.href).href;
    midi.href = stream.midi_url;
    midi.classList.remove("d-none");
    stop.disabled = false;
    say("playing " + stream.style + " (seed " + stream.seed + ")");
    try { await audio.play(); } catch (error) { say("press the player's play button"); }
  }

  async function end() {
    stop.disabled = true;
    audio.pause();
    audio.removeAttribute("src");
    audio.load();
    if (stream) {
      const url = "/api/v1/streams/" + stream.id;
      stream = null;
      try { await send("DELETE", url); } catch (error) { /* it stops by itself anyway */ }
    }
    play.disabled = false;
    say("stopped");
  }

  let pending = null, timer = null;
  function change(settings) {  // at most one request in flight; the latest settings win
    if (!stream) return;
    pending = Object.assign(pending || {}, settings);
    if (timer) return;
    timer = setTimeout(async () => {
      const body = pending;
      pending = null;
      try {
        if (stream) await send("PATCH", "/api/v1/streams/" + stream.id, body);
      } catch (error) { fail("The change was not taken: " + error.message); }
      timer = null;
      if (pending) change({});
    }, 250);
  }

  function setTempo(value) {
    const tempo = Math.round(Math.min(Math.max(value, Number(bpm.min)), Number(bpm.max)));
    bpm.value = tempo;
    $("radio-bpm-value").textContent = tempo;
    change({bpm: tempo});
  }

  // Follow my pace: steps a minute from the motion sensor (a step is a peak of
  // acceleration at least 0.3 s after the last), else the GPS speed; smoothed
  // with a ten-second time constant, so the tempo glides instead of jumping.
  const SMOOTHING_SECONDS = 10;
  let steps = [], smoothed = null, lastUpdate = 0, lastPeak = 0, above = false, watch = null;
  function follow(target) {
    const now = performance.now() / 1000;
    const dt = lastUpdate ? now - lastUpdate : SMOOTHING_SECONDS;
    lastUpdate = now;
    const current = smoothed === null ? Number(bpm.value) : smoothed;
    smoothed = current + (target - current) * (1 - Math.exp(-dt / SMOOTHING_SECONDS));
    if (Math.abs(smoothed - Number(bpm.value)) >= 2) setTempo(smoothed);
  }
  function onMotion(event) {
    const a = event.accelerationIncludingGravity;
    if (!a || a.x === null) return;
    const magnitude = Math.hypot(a.x, a.y, a.z);
    const now = performance.now() / 1000;
    if (magnitude > 12 && !above && now - lastPeak > 0.3) {
      above = true;
      lastPeak = now;
      steps.push(now);
      steps = steps.filter((t) => now - t < 10);
      if (steps.length >= 4) follow(60 * (steps.length - 1) / (steps[steps.length - 1] - steps[0]));
    } else if (magnitude < 10) {
      above = false;
    }
  }
  function onPosition(position) {
    const speed = position.coords.speed;  // metres a second
    if (speed !== null && speed >= 0) follow(Math.min(Math.max(80 + 27 * speed, 60), 200));
  }
  async function togglePace() {
    if (!pace.checked) {
      window.removeEventListener("devicemotion", onMotion);
      if (watch !== null) navigator.geolocation.clearWatch(watch);
      watch = null;
      return;
    }
    smoothed = Number(bpm.value);  // glide from the tempo playing now
    lastUpdate = performance.now() / 1000;
    steps = [];
    try {
      if (window.DeviceMotionEvent && typeof DeviceMotionEvent.requestPermission === "function") {
        await DeviceMotionEvent.requestPermission();  // iOS asks the user
      }
    } catch (error) { /* denied: the GPS may still do */ }
    if (window.DeviceMotionEvent) window.addEventListener("devicemotion", onMotion);
    if (navigator.geolocation) {
      watch = navigator.geolocation.watchPosition(onPosition, () => {}, {enableHighAccuracy: true});
    }
    say("following your pace");
  }

  style.addEventListener("change", fillTypes);
  bpm.addEventListener("input", () => setTempo(Number(bpm.value)));
  temperature.addEventListener("input", () => {
    $("radio-temperature-value").textContent = Number(temperature.value).toFixed(2);
    change({temperature: Number(temperature.value)});
  });
  $("radio-key").addEventListener("change", () => {
    if ($("radio-key").value.trim()) change({key: $("radio-key").value.trim()});
  });
  $("radio-density").addEventListener("input", () => {
    $("radio-density-value").textContent = $("radio-density").value + " notes a second";
    change({density: Number($("radio-density").value)});
  });
  play.addEventListener("click", start);
  stop.addEventListener("click", end);
  pace.addEventListener("change", togglePace);
  audio.addEventListener("error", () => { if (stream) say("the stream ended; press Play to start again"); });
  window.addEventListener("pagehide", () => { if (stream) send("DELETE", "/api/v1/streams/" + stream.id).catch(() => {}); });
  fillTypes();
})();
