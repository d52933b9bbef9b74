// Small conveniences on top of plain HTML forms (everything works without this file).
"use strict";
(function () {
  document.documentElement.classList.add("js");
  const csrf = document.body.dataset.csrf;
  // Frames are sent in requests of at most this many.
  const UPLOAD_CHUNK = 50;

  function post(url, fields, files) {
    const data = new FormData();
    data.append("csrf", csrf);
    for (const [key, value] of fields) data.append(key, value);
    for (const [name, blob] of files || []) data.append("files", blob, name);
    return fetch(url, {method: "POST", body: data, credentials: "same-origin",
                       headers: {"X-Requested-With": "fetch"}})
      .then((r) => r.json().then((body) => {
        if (!r.ok) throw new Error(body.error || r.statusText);
        return body;
      }));
  }

  function say(text, kind) {
    let box = document.querySelector(".flash");
    if (!box) {
      box = document.createElement("div");
      box.setAttribute("role", "status");
      const span = document.createElement("span");
      span.id = "flash-text";
      box.appendChild(span);
      document.querySelector("main").prepend(box);
    }
    box.className = "flash " + (kind || "ok");
    box.querySelector("#flash-text").textContent = text;
  }

  // -- selecting in the grid (and the review queue) -------------------------------
  function boxes() {
    return Array.from(document.querySelectorAll('input[type=checkbox][name=ids]'));
  }
  function countSelected() {
    const out = document.getElementById("selected-count");
    if (out) out.textContent = "(" + boxes().filter((b) => b.checked).length + " selected)";
  }
  let last = null;
  function toggle(box, checked, shift) {
    const all = boxes();
    if (shift && last !== null && all.includes(last)) {
      const [a, b] = [all.indexOf(last), all.indexOf(box)].sort((x, y) => x - y);
      for (let i = a; i <= b; i++) all[i].checked = checked;
    } else {
      box.checked = checked;
    }
    last = box;
    countSelected();
  }
  document.addEventListener("click", (event) => {
    const target = event.target;
    if (target.matches && target.matches('input[type=checkbox][name=ids]')) {
      toggle(target, target.checked, event.shiftKey);
      return;
    }
    const tile = target.closest && target.closest(".tile label");
    if (tile) {
      const box = tile.querySelector("input[type=checkbox]");
      if (box) {
        event.preventDefault();
        toggle(box, !box.checked, event.shiftKey);
        tile.closest(".tile").focus();
      }
    }
  });
  const selectPage = document.getElementById("select-page");
  if (selectPage) {
    selectPage.addEventListener("click", (event) => {
      event.preventDefault();
      const all = boxes();
      const on = !all.every((b) => b.checked);
      all.forEach((b) => { b.checked = on; });
      countSelected();
    });
  }
  const selectNone = document.getElementById("select-none");
  if (selectNone) {
    selectNone.addEventListener("click", (event) => {
      event.preventDefault();
      boxes().forEach((b) => { b.checked = false; });
      countSelected();
    });
  }
  countSelected();

  // -- number keys label the focused image -----------------------------------------
  const keyClasses = {};
  document.querySelectorAll("#key-help [data-key]").forEach((el) => {
    keyClasses[el.dataset.key] = el.dataset.class;
  });
  function tiles() { return Array.from(document.querySelectorAll(".grid .tile")); }
  document.addEventListener("keydown", (event) => {
    const tile = document.activeElement && document.activeElement.closest &&
      document.activeElement.closest(".grid .tile");
    if (!tile || event.ctrlKey || event.metaKey || event.altKey) return;
    if (/^(INPUT|SELECT|TEXTAREA)$/.test(event.target.tagName) && event.target.type !== "checkbox") return;
    const list = tiles();
    const index = list.indexOf(tile);
    if (keyClasses[event.key]) {
      event.preventDefault();
      const name = keyClasses[event.key];
      tile.classList.add("busy");
      post("/images/batch", [["action", "label"], ["label", name], ["ids", tile.dataset.id]])
        .then((body) => {
          const text = tile.querySelector(".label-text");
          text.textContent = name;
          text.classList.remove("none");
          tile.classList.add("labeled-now");
          say(body.message);
          const next = list[index + 1];
          if (next) next.focus();
        })
        .catch((error) => say(error.message, "error"))
        .finally(() => tile.classList.remove("busy"));
    } else if (event.key === "ArrowRight" || event.key === "ArrowLeft") {
      event.preventDefault();
      const next = list[index + (event.key === "ArrowRight" ? 1 : -1)];
      if (next) next.focus();
    } else if (event.key === "x" || (event.key === " " && event.target === tile)) {
      event.preventDefault();
      const box = tile.querySelector("input[type=checkbox]");
      if (box) toggle(box, !box.checked, event.shiftKey);
    }
  });

  // -- drag-and-drop upload ------------------------------------------------------------
  const drop = document.getElementById("drop-zone");
  if (drop) {
    const input = drop.querySelector("input[type=file]");
    ["dragenter", "dragover"].forEach((name) => drop.addEventListener(name, (event) => {
      event.preventDefault();
      drop.classList.add("over");
    }));
    ["dragleave", "drop"].forEach((name) => drop.addEventListener(name, () => {
      drop.classList.remove("over");
    }));
    drop.addEventListener("drop", (event) => {
      event.preventDefault();
      input.files = event.dataTransfer.files;
      say(input.files.length + " file(s) ready: press Upload.");
    });
  }

  // -- webcam bursts --------------------------------------------------------------------
  const video = document.getElementById("webcam-video");
  if (video) {
    const start = document.getElementById("webcam-start");
    const record = document.getElementById("webcam-record");
    const count = document.getElementById("webcam-count");
    const rate = document.getElementById("webcam-rate");
    const status = document.getElementById("webcam-status");
    const form = document.getElementById("webcam-form");
    const canvas = document.createElement("canvas");
    // A burst stops here even if the button is still held (the server sets it).
    const maxFrames = parseInt(form.dataset.maxFrames, 10) || 300;
    let frames = [], timer = null, began = 0, recording = false;

    start.addEventListener("click", () => {
      if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
        status.textContent = "This browser gives no camera access here (it needs localhost or https).";
        return;
      }
      navigator.mediaDevices.getUserMedia({video: true, audio: false}).then((stream) => {
        video.srcObject = stream;
        record.disabled = false;
        status.textContent = "Camera on. Hold the button (or the space bar) to record.";
      }).catch((error) => { status.textContent = "No camera: " + error.message; });
    });

    function grab() {
      if (frames.length >= maxFrames) { stop(); return; }
      canvas.width = video.videoWidth || 320;
      canvas.height = video.videoHeight || 240;
      canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
      const index = frames.length;
      frames.push(null);
      canvas.toBlob((blob) => { frames[index] = blob; }, "image/png");
      count.textContent = frames.length + " frames";
      const seconds = (performance.now() - began) / 1000;
      rate.textContent = (seconds > 0 ? frames.length / seconds : 0).toFixed(1) + " fps";
    }
    function begin(event) {
      if (recording || record.disabled) return;
      if (event) event.preventDefault();
      recording = true;
      frames = [];
      began = performance.now();
      record.classList.add("recording");
      record.textContent = "Recording… let go to store";
      const fps = parseInt(document.getElementById("webcam-fps").value, 10) || 5;
      grab();
      timer = setInterval(grab, 1000 / fps);
    }
    function stop() {
      if (!recording) return;
      recording = false;
      clearInterval(timer);
      record.classList.remove("recording");
      record.textContent = "Hold to record";
      // toBlob is asynchronous: wait for the last frames before sending.
      setTimeout(() => send(frames.filter(Boolean)), 300);
    }
    function send(blobs) {
      if (!blobs.length) return;
      const fields = ["label", "new_label", "split"].map((name) =>
        [name, form.elements[name].value]).concat([["source", "webcam"]]);
      let stored = 0, duplicates = 0, sent = 0;
      status.textContent = "Storing " + blobs.length + " frames…";
      const chunks = [];
      for (let i = 0; i < blobs.length; i += UPLOAD_CHUNK) chunks.push(blobs.slice(i, i + UPLOAD_CHUNK));
      chunks.reduce((done, chunk) => done.then(() =>
        post("/upload", fields, chunk.map((blob, i) => ["webcam-" + (sent + i) + ".png", blob]))
          .then((body) => { stored += body.stored; duplicates += body.duplicates; sent += chunk.length; })),
      Promise.resolve()).then(() => {
        const label = form.elements.new_label.value || form.elements.label.value;
        status.textContent = "Stored " + stored + " new frame(s)" + (label ? " as " + label : "") +
          (duplicates ? " (" + duplicates + " already stored)" : "") + ".";
      }).catch((error) => { status.textContent = "Upload failed: " + error.message; });
    }
    record.addEventListener("pointerdown", begin);
    ["pointerup", "pointerleave", "pointercancel"].forEach((name) => record.addEventListener(name, stop));
    document.addEventListener("keydown", (event) => {
      if (event.key === " " && !event.repeat && !/^(INPUT|SELECT|TEXTAREA|BUTTON)$/.test(event.target.tagName)) begin(event);
    });
    document.addEventListener("keyup", (event) => { if (event.key === " ") stop(); });
  }

  // -- live retrain progress ---------------------------------------------------------------
  const job = document.getElementById("job");
  if (job && job.dataset.state === "running") {
    const poll = () => fetch("/retrain/status", {credentials: "same-origin"}).then((r) => r.json())
      .then((state) => {
        if (state.state !== "running") { window.location.reload(); return; }
        const bar = document.getElementById("job-progress");
        if (bar) { bar.max = state.total || 1; bar.value = state.done; }
        const message = document.getElementById("job-message");
        if (message) message.textContent = state.message || state.stage;
        setTimeout(poll, 400);
      }).catch(() => setTimeout(poll, 2000));
    setTimeout(poll, 200);
  }

  // -- a new live version, made by the demo or another labeler page ------------------------
  const shown = document.getElementById("live-model");
  if (shown && !job) {
    const watch = () => fetch("/live", {credentials: "same-origin"}).then((r) => r.json())
      .then((state) => {
        const live = state.live === null ? "" : String(state.live);
        if (live === shown.dataset.live) { setTimeout(watch, 5000); return; }
        const note = document.createElement("a");
        note.id = "live-changed";
        note.href = window.location.href;
        note.textContent = ` · v${live} is live now: reload to see its predictions`;
        shown.appendChild(note);
      }).catch(() => setTimeout(watch, 15000));
    setTimeout(watch, 5000);
  }

  // -- times in the browser's own time zone ------------------------------------------------
  document.querySelectorAll("time[datetime]").forEach((el) => {
    const moment = new Date(el.getAttribute("datetime"));
    if (!isNaN(moment)) {
      el.title = el.textContent;
      el.textContent = moment.toLocaleString(undefined, {dateStyle: "medium", timeStyle: "short"});
    }
  });
})();
