// The upload page: checks the file before sending it, shows real progress (XMLHttpRequest reports
// upload progress, fetch does not), and shows the server's bundle errors as they are.
"use strict";
(() => {
  const form = document.getElementById("upload-form"), input = document.getElementById("bundle"), zone = document.getElementById("dropzone");
  const chosen = document.getElementById("bundle-chosen"), error = document.getElementById("upload-error"), done = document.getElementById("upload-done");
  const progressBox = document.getElementById("progress-box"), progress = document.getElementById("progress"), progressText = document.getElementById("progress-text");
  const button = document.getElementById("upload-button");
  let limits = { maxUploadBytes: 1 << 30 };
  ferry.json("/api/v1/limits").then((value) => {
    limits = value;
    document.getElementById("time-hint").textContent = `The job is stopped after this long. Empty: ${value.defaultTimeLimit} s; at most ${value.maxTimeLimit} s.`;
    document.getElementById("memory-hint").textContent = `The job is stopped if it uses more. Empty: ${value.defaultMemoryLimit} MiB; at most ${value.maxMemoryLimit} MiB.`;
    form.timeLimit.max = value.maxTimeLimit; form.memoryLimit.max = value.maxMemoryLimit;
  }).catch(() => {});

  // A sweep: the grid's run count comes from the server as it is typed (the same parser as the upload).
  const sweepFields = document.getElementById("sweep-fields"), grid = document.getElementById("grid"), gridPreview = document.getElementById("grid-preview");
  const isSweep = () => form.mode.value === "sweep";
  let previewTimer = null, previewAsked = 0;
  for (const radio of form.querySelectorAll('input[name="mode"]')) radio.addEventListener("change", () => {
    sweepFields.classList.toggle("hidden", !isSweep());
    button.textContent = isSweep() ? "Upload and start the sweep" : "Upload and run";
    if (isSweep()) grid.focus();
  });
  async function previewGrid() {
    const asked = ++previewAsked, text = grid.value.trim();
    if (!text) { ferry.show(gridPreview, "Empty: the runs come from the project's sweep.csv."); gridPreview.className = "preview-count"; return; }
    try {
      const answer = await ferry.json("/api/v1/sweeps/preview", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ grid: text }) });
      if (asked !== previewAsked) return;
      const first = answer.first.map((values) => answer.parameters.map((name, i) => `${name}=${values[i]}`).join(", "));
      ferry.show(gridPreview, `${answer.runs} run${answer.runs === 1 ? "" : "s"} (at most ${answer.maxRuns} here): ${first.join("; ")}${answer.runs > first.length ? "; …" : ""}`);
      gridPreview.className = "preview-count ok";
      throttle.placeholder = String(Math.min(answer.defaultThrottle, answer.runs));
    } catch (failure) {
      if (asked !== previewAsked) return;
      ferry.show(gridPreview, failure.message); gridPreview.className = "preview-count error";
    }
  }
  const throttle = document.getElementById("throttle");
  grid.addEventListener("input", () => { clearTimeout(previewTimer); previewTimer = setTimeout(previewGrid, 250); });

  const file = () => input.files[0];
  const describe = () => ferry.show(chosen, file() ? `${file().name} · ${ferry.bytes(file().size)}` : "");
  input.addEventListener("change", () => { ferry.show(error, ""); describe(); });
  for (const name of ["dragenter", "dragover"]) zone.addEventListener(name, (event) => { event.preventDefault(); zone.classList.add("over"); });
  for (const name of ["dragleave", "drop"]) zone.addEventListener(name, () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    if (event.dataTransfer.files.length) { input.files = event.dataTransfer.files; ferry.show(error, ""); describe(); }
  });

  function problem() {
    const chosenFile = file();
    if (!chosenFile) return "Choose the .zip file of your project folder.";
    if (!chosenFile.name.toLowerCase().endsWith(".zip")) return `${chosenFile.name} is not a .zip file. Zip your project folder first (right-click → Compress).`;
    if (chosenFile.size === 0) return `${chosenFile.name} is empty.`;
    if (chosenFile.size > limits.maxUploadBytes) return `${chosenFile.name} is ${ferry.bytes(chosenFile.size)}; this server takes at most ${ferry.bytes(limits.maxUploadBytes)}. Leave large data out or ask your administrator.`;
    if (isSweep() && gridPreview.classList.contains("error")) return gridPreview.textContent;
    if (isSweep() && throttle.value && !(Number.isInteger(Number(throttle.value)) && Number(throttle.value) > 0)) return "Runs at once must be a whole number above 0.";
    for (const name of ["timeLimit", "memoryLimit"]) {
      const field = form[name];
      if (field.value && !(Number.isInteger(Number(field.value)) && Number(field.value) > 0)) return `${field.labels[0].firstChild.textContent.trim()} must be a whole number above 0.`;
      if (field.value && field.max && Number(field.value) > Number(field.max)) return `${field.labels[0].firstChild.textContent.trim()} can be at most ${field.max}.`;
    }
    return null;
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    ferry.show(error, ""); ferry.show(done, "");
    const message = problem();
    if (message) { ferry.show(error, message); input.focus(); return; }
    const data = new FormData();
    for (const name of ["timeLimit", "memoryLimit"]) if (form[name].value) data.append(name, form[name].value);
    const sweep = isSweep();
    if (sweep) { data.append("grid", grid.value); if (throttle.value) data.append("throttle", throttle.value); }
    data.append("bundle", file(), file().name);

    const request = new XMLHttpRequest();
    request.open("POST", sweep ? "/api/v1/sweeps" : "/api/v1/jobs");
    request.setRequestHeader("X-CSRF-Token", ferry.csrf());
    request.setRequestHeader("Accept", "application/json");
    request.upload.addEventListener("progress", (e) => {
      if (!e.lengthComputable) return;
      progress.value = Math.round((e.loaded / e.total) * 100);
      progressText.textContent = `${ferry.bytes(e.loaded)} of ${ferry.bytes(e.total)}`;
    });
    request.upload.addEventListener("load", () => { progressText.textContent = "Checking the project…"; });
    request.addEventListener("load", async () => {
      button.disabled = false;
      if (request.status === 201 && sweep) {
        const created = JSON.parse(request.responseText);
        progressBox.classList.add("hidden");
        ferry.show(done, `The sweep of ${created.project} has ${created.total} runs. Opening it…`);
        setTimeout(() => { location.href = "/sweeps/" + created.id; }, 700);
      } else if (request.status === 201) {
        const job = JSON.parse(request.responseText);
        progressBox.classList.add("hidden");
        ferry.show(done, `${job.project} is ${ferry.statusNames[job.status].toLowerCase()}. Opening your jobs…`);
        setTimeout(() => { location.href = "/results"; }, 700);
      } else {
        progressBox.classList.add("hidden");
        const failure = await ferry.error(request.status, () => JSON.parse(request.responseText));
        ferry.show(error, failure.message);
      }
    });
    request.addEventListener("error", () => { button.disabled = false; progressBox.classList.add("hidden"); ferry.show(error, "The upload did not reach Ferry. Check your connection and try again."); });
    progress.value = 0; progressText.textContent = ""; progressBox.classList.remove("hidden");
    button.disabled = true;
    request.send(data);
  });
})();
