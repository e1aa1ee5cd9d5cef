/* Performance RNN pages: the generate form's style-dependent fields, live job
 * progress (Server-Sent Events, falling back to polling) and the training loss
 * chart. Plain ES2017, no libraries beyond Bootstrap. */
(function () {
  'use strict';

  var FINISHED = ['done', 'failed', 'cancelled', 'expired'];
  var STATE_COLOURS = {queued: 'secondary', running: 'primary', done: 'success', failed: 'danger',
                       cancelled: 'warning', expired: 'light'};

  function byId(id) { return document.getElementById(id); }

  /* Progress bars start at the width their aria-valuenow says (no inline styles:
   * the Content-Security-Policy allows none). */
  document.querySelectorAll('.progress-bar[aria-valuenow]').forEach(function (bar) {
    bar.style.width = bar.getAttribute('aria-valuenow') + '%';
  });

  function readJson(id, fallback) {
    var element = byId(id);
    if (!element) { return fallback; }
    try { return JSON.parse(element.textContent); } catch (error) { return fallback; }
  }

  function formatNumber(value, digits) {
    if (typeof value !== 'number' || !isFinite(value)) { return '-'; }
    return value.toFixed(digits);
  }

  /* "about 40 s left", "about 3 min left", "about 1 h 5 min left" (as the server writes it). */
  function formatEta(seconds) {
    if (typeof seconds !== 'number' || !isFinite(seconds)) { return 'estimating the time left...'; }
    seconds = Math.max(0, seconds);
    if (seconds < 60) { return 'about ' + Math.max(5, Math.round(seconds / 5) * 5) + ' s left'; }
    if (seconds < 3600) { return 'about ' + Math.max(1, Math.round(seconds / 60)) + ' min left'; }
    var minutes = Math.round(seconds / 60);
    var hours = Math.floor(minutes / 60);
    minutes = minutes % 60;
    return 'about ' + hours + ' h' + (minutes ? ' ' + minutes + ' min' : '') + ' left';
  }

  /* ----- busy buttons: no double submissions ----- */

  function setupBusyButtons() {
    document.querySelectorAll('form').forEach(function (form) {
      form.addEventListener('submit', function () {
        var button = form.querySelector('button[type="submit"][data-busy-text]');
        if (!button) { return; }
        button.dataset.idleText = button.textContent;
        // Disabled after the submission has started, so the form still sends.
        setTimeout(function () {
          button.disabled = true;
          button.textContent = button.dataset.busyText;
        }, 0);
      });
    });
    window.addEventListener('pageshow', function (event) {
      if (!event.persisted) { return; }
      document.querySelectorAll('button[data-idle-text]').forEach(function (button) {
        button.disabled = false;
        button.textContent = button.dataset.idleText;
      });
    });
  }

  /* ----- the generate form ----- */

  function setupGenerateForm() {
    var form = byId('generate-form');
    var styleSelect = byId('style');
    if (!form || !styleSelect) { return; }
    var typeSelect = byId('type');
    var bpm = byId('bpm');
    var controls = byId('controls-group');
    var songGroup = byId('song-group');
    var formSelect = byId('form');
    var loop = byId('loop');
    var key = byId('key');
    var density = byId('density');
    var styleHelp = byId('style-help');
    var typeHelp = byId('type-help');
    var temperature = byId('temperature');
    var temperatureValue = byId('temperature-value');
    var blendGroup = byId('blend-group');
    var blendWith = byId('blend_with');
    var blendAmount = byId('blend_amount');
    var blendAmountValue = byId('blend-amount-value');

    function optionData(option, name, fallback) {
      try { return JSON.parse(option.getAttribute(name)); } catch (error) { return fallback; }
    }

    // A density, or chords, form or key, the server refused stays visible until the style changes.
    var keepControls = Boolean(controls && controls.querySelector('.is-invalid'));
    var keepSong = Boolean(songGroup && songGroup.querySelector('.is-invalid'));

    function update() {
      var option = styleSelect.options[styleSelect.selectedIndex];
      if (!option) { return; }
      var types = optionData(option, 'data-types', []) || [];
      var defaults = optionData(option, 'data-default-controls', {}) || {};
      var previous = typeSelect.value;
      while (typeSelect.options.length > 1) { typeSelect.remove(1); }
      types.forEach(function (entry) {
        var item = document.createElement('option');
        item.value = String(entry.program);
        item.textContent = entry.label || (entry.name + ' (GM ' + entry.program + ')');
        if (entry.track) { item.dataset.track = entry.track; }
        typeSelect.appendChild(item);
      });
      typeSelect.value = previous;
      if (typeSelect.value !== previous) { typeSelect.value = ''; }
      if (styleHelp) { styleHelp.textContent = option.dataset.description || ''; }
      if (typeHelp) {
        var parts = option.dataset.parts;
        typeHelp.textContent = 'Changes the General MIDI instrument of the style\'s main part' +
          (parts ? ' (parts: ' + parts + ')' : '') + '.';
      }
      if (bpm) { bpm.placeholder = option.dataset.defaultBpm || '120'; }
      var conditioned = option.dataset.conditioned === 'true';
      if (controls) {
        var steered = conditioned || keepControls;
        controls.classList.toggle('d-none', !steered);
        controls.disabled = !steered;  // hidden fields are not sent
      }
      if (songGroup) {
        // a style that follows chords, or a conditioned one (it takes a key)
        var songs = option.dataset.followsChords === 'true' || conditioned || keepSong;
        songGroup.classList.toggle('d-none', !songs);
        songGroup.disabled = !songs;
      }
      if (blendGroup && blendWith) {
        var blendStyles = optionData(option, 'data-blend-styles', []) || [];
        var chosen = blendWith.value;
        while (blendWith.options.length > 1) { blendWith.remove(1); }
        blendStyles.forEach(function (name) {
          var item = document.createElement('option');
          item.value = name;
          item.textContent = name;
          blendWith.appendChild(item);
        });
        blendWith.value = blendStyles.indexOf(chosen) >= 0 ? chosen : '';
        blendGroup.classList.toggle('d-none', blendStyles.length === 0);
        blendGroup.disabled = blendStyles.length === 0;
      }
      if (key) { key.placeholder = defaults.key || 'e.g. C, F#, Bb or Am'; }
      if (density) {
        density.placeholder = defaults.notes_per_second ? String(defaults.notes_per_second) : 'e.g. 6';
      }
    }

    styleSelect.addEventListener('change', function () {
      keepControls = false;
      keepSong = false;
      update();
    });
    if (loop && formSelect) {
      // a seamless loop plays the main section only
      loop.addEventListener('change', function () {
        if (loop.checked) { formSelect.value = 'loop'; }
      });
    }
    update();
    if (blendAmount && blendAmountValue) {
      blendAmount.addEventListener('input', function () {
        blendAmountValue.textContent = blendAmount.value;
      });
    }
    if (temperature && temperatureValue) {
      var show = function () { temperatureValue.textContent = Number(temperature.value).toFixed(2); };
      temperature.addEventListener('input', show);
      show();
    }
  }

  /* ----- the loss chart (plain canvas) ----- */

  function niceTicks(low, high, count) {
    if (high <= low) { return [low]; }
    var step = (high - low) / count;
    var magnitude = Math.pow(10, Math.floor(Math.log10(step)));
    var residual = step / magnitude;
    step = (residual > 5 ? 10 : residual > 2 ? 5 : residual > 1 ? 2 : 1) * magnitude;
    var ticks = [];
    for (var value = Math.ceil(low / step) * step; value <= high + step * 1e-9; value += step) {
      ticks.push(value);
    }
    return ticks;
  }

  function drawLossChart(canvas, points) {
    if (!canvas || !canvas.getContext) { return; }
    var ratio = window.devicePixelRatio || 1;
    var width = canvas.clientWidth || 600;
    var height = canvas.clientHeight || 260;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    var ctx = canvas.getContext('2d');
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.font = '12px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';
    ctx.fillStyle = '#6c757d';
    points = (points || []).filter(function (point) {
      return Array.isArray(point) && isFinite(point[0]) && isFinite(point[1]);
    });
    if (!points.length) {
      ctx.textAlign = 'center';
      ctx.fillText('The loss curve appears once training starts.', width / 2, height / 2);
      return;
    }
    var left = 56, right = 16, top = 14, bottom = 40;
    var plotWidth = Math.max(10, width - left - right);
    var plotHeight = Math.max(10, height - top - bottom);
    var xs = points.map(function (point) { return point[0]; });
    var ys = points.map(function (point) { return point[1]; });
    var xMin = Math.min.apply(null, xs), xMax = Math.max.apply(null, xs);
    var yMin = Math.min.apply(null, ys), yMax = Math.max.apply(null, ys);
    if (xMax === xMin) { xMax = xMin + 1; }
    if (yMax === yMin) { yMax = yMin + 0.5; yMin = Math.max(0, yMin - 0.5); }
    var pad = (yMax - yMin) * 0.05;
    yMin = Math.max(0, yMin - pad);
    yMax += pad;
    function x(value) { return left + (value - xMin) / (xMax - xMin) * plotWidth; }
    function y(value) { return top + (1 - (value - yMin) / (yMax - yMin)) * plotHeight; }

    // Grid and tick labels.
    ctx.strokeStyle = '#e9ecef';
    ctx.lineWidth = 1;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    var yTicks = niceTicks(yMin, yMax, 5);
    // Enough decimals that neighbouring ticks read differently.
    var tickStep = yTicks.length > 1 ? Math.abs(yTicks[1] - yTicks[0]) : 1;
    var decimals = Math.min(6, Math.max(0, Math.ceil(-Math.log10(tickStep))));
    yTicks.forEach(function (value) {
      ctx.beginPath();
      ctx.moveTo(left, y(value));
      ctx.lineTo(left + plotWidth, y(value));
      ctx.stroke();
      ctx.fillText(value.toFixed(decimals), left - 6, y(value));
    });
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    niceTicks(xMin, xMax, 5).forEach(function (value) {
      ctx.fillText(String(Math.round(value)), x(value), top + plotHeight + 6);
    });

    // Axes.
    ctx.strokeStyle = '#495057';
    ctx.beginPath();
    ctx.moveTo(left, top);
    ctx.lineTo(left, top + plotHeight);
    ctx.lineTo(left + plotWidth, top + plotHeight);
    ctx.stroke();

    // Axis labels.
    ctx.fillStyle = '#212529';
    ctx.fillText('training step', left + plotWidth / 2, height - 16);
    ctx.save();
    ctx.translate(14, top + plotHeight / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textBaseline = 'middle';
    ctx.fillText('loss', 0, 0);
    ctx.restore();

    // The curve.
    ctx.strokeStyle = '#0d6efd';
    ctx.lineWidth = 2;
    ctx.beginPath();
    points.forEach(function (point, index) {
      if (index === 0) { ctx.moveTo(x(point[0]), y(point[1])); } else { ctx.lineTo(x(point[0]), y(point[1])); }
    });
    ctx.stroke();
    var last = points[points.length - 1];
    ctx.fillStyle = '#0d6efd';
    ctx.beginPath();
    ctx.arc(x(last[0]), y(last[1]), 3, 0, 2 * Math.PI);
    ctx.fill();
    canvas.setAttribute('aria-label', 'Training loss by step: ' + last[1].toFixed(3) +
                        ' at step ' + last[0] + ' (from ' + points[0][1].toFixed(3) + ')');
  }

  /* ----- following a job ----- */

  function watchJob(jobId, onUpdate) {
    var finished = false;
    var source = null;
    var timer = null;
    var url = '/api/v1/jobs/' + encodeURIComponent(jobId);

    function handle(job) {
      if (!job || finished) { return; }
      onUpdate(job);
      if (FINISHED.indexOf(job.state) >= 0) {
        finished = true;
        if (source) { source.close(); source = null; }
        if (timer) { clearTimeout(timer); timer = null; }
      }
    }

    function poll() {
      timer = null;
      fetch(url, {headers: {Accept: 'application/json'}, cache: 'no-store'})
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(handle)
        .catch(function () { /* try again on the next tick */ })
        .then(function () { if (!finished && !timer) { timer = setTimeout(poll, 1000); } });
    }

    function startPolling() {
      if (source) { source.close(); source = null; }
      if (!finished && !timer) { poll(); }
    }

    if (typeof window.EventSource === 'function') {
      try {
        source = new EventSource(url + '/events');
        source.addEventListener('job', function (event) {
          try { handle(JSON.parse(event.data)); } catch (error) { /* ignore a bad message */ }
        });
        source.onerror = function () { if (!finished) { startPolling(); } };
      } catch (error) {
        startPolling();
      }
    } else {
      startPolling();
    }
  }

  function setupJobPage() {
    var root = byId('job');
    if (!root) { return; }
    var job = readJson('job-data', null);
    var canvas = byId('loss-chart');
    var lossPoints = readJson('loss-data', []);
    if (canvas) {
      drawLossChart(canvas, lossPoints);
      window.addEventListener('resize', function () { drawLossChart(canvas, lossPoints); });
    }
    if (!job || FINISHED.indexOf(job.state) >= 0) { return; }

    var bar = document.querySelector('#progress .progress-bar');
    var stage = byId('stage');
    var state = byId('state');

    function setText(id, text) {
      var element = byId(id);
      if (element) { element.textContent = text; }
    }

    watchJob(job.id, function (update) {
      var percent = Math.round((update.progress || 0) * 100);
      if (bar) {
        bar.style.width = percent + '%';
        bar.setAttribute('aria-valuenow', String(percent));
        bar.textContent = percent + '%';
      }
      if (stage) {
        stage.textContent = update.state === 'queued' ? 'waiting for a free worker'
          : update.state === 'running' ? (update.stage || 'starting') : update.state;
      }
      if (state) {
        var badge = document.createElement('span');
        badge.className = 'badge job-state text-bg-' + (STATE_COLOURS[update.state] || 'secondary');
        badge.textContent = update.state;
        state.replaceChildren(badge);
      }
      root.dataset.state = update.state;
      var detail = update.detail || {};
      if (update.kind === 'training') {
        // Only what the job has reported so far; the server's first render stays otherwise.
        if (detail.stage || update.stage) { setText('train-stage', detail.stage || update.stage); }
        if (detail.step != null) {
          var steps = detail.steps != null ? detail.steps
            : (byId('train-step').textContent.split('/')[1] || '-').trim();
          setText('train-step', detail.step + ' / ' + steps);
        }
        if (typeof detail.loss === 'number') { setText('train-loss', formatNumber(detail.loss, 4)); }
        if (typeof detail.events_per_second === 'number') {
          setText('train-speed', Math.round(detail.events_per_second) + ' events/s');
        }
        if ('eta_seconds' in detail) { setText('train-eta', formatEta(detail.eta_seconds)); }
        if (Array.isArray(detail.loss_points)) {
          lossPoints = detail.loss_points;
          drawLossChart(canvas, lossPoints);
        }
      }
      if (FINISHED.indexOf(update.state) >= 0) {
        // The server renders the finished job with its results (or its error).
        if (bar) { bar.classList.remove('progress-bar-animated'); }
        setTimeout(function () { window.location.reload(); }, 300);
      }
    });
  }

  /* ----- the train form ----- */

  function setupTrainForm() {
    var files = byId('files');
    var help = byId('files-help');
    if (!files || !help) { return; }
    var original = help.textContent;
    files.addEventListener('change', function () {
      var count = files.files ? files.files.length : 0;
      help.textContent = count ? count + ' file' + (count === 1 ? '' : 's') + ' chosen. ' + original : original;
    });
  }

  window.PerfRNN = {formatEta: formatEta, drawLossChart: drawLossChart, watchJob: watchJob};

  document.addEventListener('DOMContentLoaded', function () {
    setupBusyButtons();
    setupGenerateForm();
    setupTrainForm();
    setupJobPage();
  });
})();
