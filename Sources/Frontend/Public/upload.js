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
    if (declared) renderDeclared();
    else if (isSweep()) grid.focus();
  });
  async function previewGrid() {
    const asked = ++previewAsked, text = gridText().trim();
    if (!text) {
      ferry.show(gridPreview, declared ? "One run with the declared defaults." : "Empty: the runs come from the project's sweep.csv.");
      gridPreview.className = "preview-count"; return;
    }
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
  const schedulePreview = () => { clearTimeout(previewTimer); previewTimer = setTimeout(previewGrid, 250); };
  grid.addEventListener("input", schedulePreview);

  // Parameters the project declares (parameters.json beside code.py, read from the chosen zip here):
  // a form with a field each, one value for a single run or several for a sweep.
  const declaredBox = document.getElementById("declared"), declaredFields = document.getElementById("declared-fields");
  const declaredHint = document.getElementById("declared-hint"), gridBox = document.getElementById("grid-box");
  let declared = null;
  const kindOf = (p) => p.type || "string";
  const fieldOf = (p) => document.getElementById("param-" + p.name);

  async function loadDeclarations() {
    declared = null;
    let note = "";
    try {
      const text = file() ? await zipfile.besideCode(file(), "parameters.json") : null;
      if (text) {
        const list = JSON.parse(text);
        if (!Array.isArray(list) || !list.every((p) => p && typeof p.name === "string")) throw new Error("it is not a list of parameters");
        declared = list;
      }
    } catch (failure) {
      note = `The project's parameters.json cannot be read (${failure.message}); Ferry will say what is wrong when you upload.`;
    }
    renderDeclared(note);
  }

  function renderDeclared(note = "") {
    const previous = {};
    for (const field of declaredFields.querySelectorAll("[data-param]")) previous[field.dataset.param] = field.value;
    declaredBox.classList.toggle("hidden", !declared && !note);
    gridBox.classList.toggle("hidden", !!declared);
    if (!declared) { declaredFields.replaceChildren(); ferry.show(declaredHint, note); return; }
    const sweep = isSweep();
    sweepFields.classList.toggle("hidden", !sweep);
    ferry.show(declaredHint, sweep
      ? "This project declares its parameters. Give each one or more values, like 8,10,12 or a range 1..5; every combination runs once. Empty: its default."
      : "This project declares its parameters. Give each its value; empty: its default.");
    declaredFields.replaceChildren(...declared.map((p) => {
      const id = "param-" + p.name, kind = kindOf(p), fallback = p.default === undefined ? "" : String(p.default);
      const value = previous[p.name] !== undefined ? previous[p.name] : fallback;
      let input;
      const choices = kind === "bool" ? ["true", "false"] : (p.choices || []).map(String);
      if (!sweep && choices.length) {
        input = ferry.el("select", { id }, ...(fallback ? [] : [ferry.el("option", { value: "", text: "—" })]),
          ...choices.map((c) => ferry.el("option", { value: c, text: c })));
        input.value = choices.includes(value) ? value : fallback;
      } else {
        const numeric = !sweep && (kind === "int" || kind === "float");
        input = ferry.el("input", { id, type: numeric ? "number" : "text", step: kind === "int" ? "1" : "any", min: numeric ? p.min : null, max: numeric ? p.max : null,
          inputmode: kind === "int" || kind === "float" ? (sweep ? "text" : "decimal") : null, spellcheck: "false", placeholder: fallback ? `default ${fallback}` : "" });
        input.value = value;
      }
      input.dataset.param = p.name;
      input.addEventListener("input", () => { ferry.show(error, ""); if (isSweep()) schedulePreview(); });
      const range = p.min !== undefined && p.max !== undefined ? `${p.min} to ${p.max}` : (p.min !== undefined ? `at least ${p.min}` : (p.max !== undefined ? `at most ${p.max}` : ""));
      const facts = [kind, range, choices.length && sweep ? `one or more of ${choices.join(", ")}` : ""].filter(Boolean).join(", ");
      return ferry.el("div", { class: "declared-field" },
        ferry.el("label", { for: id }, p.name + " ", ferry.el("span", { class: "muted", text: `(${facts})` })),
        input, p.help ? ferry.el("p", { class: "hint", text: p.help }) : null);
    }));
    if (sweep) schedulePreview();
  }

  /** The grid the form stands for: the textarea's, or a line per declared parameter that has values. */
  function gridText() {
    if (!declared) return grid.value;
    return declared.map((p) => [p.name, fieldOf(p) ? fieldOf(p).value.trim() : ""]).filter(([, v]) => v).map(([n, v]) => `${n}=${v}`).join("\n");
  }

  /** What is wrong with the declared fields' values, checked as the server will, or null. */
  function declaredProblem() {
    for (const p of declared || []) {
      const field = fieldOf(p), text = field ? field.value.trim() : "";
      if (!text) { if (p.default === undefined) return `${p.name} has no default; give it a value.`; continue; }
      const values = isSweep() ? text.split(",").map((v) => v.trim()) : [text];
      if (!isSweep() && text.includes(",") ) return `${p.name}: a single run takes one value; to run several, choose "As a sweep".`;
      for (const value of values) {
        if (isSweep() && /^-?\d+\.\.-?\d+$/.test(value)) continue;  // a range; the server expands and checks it
        const kind = kindOf(p), number = Number(value);
        if (kind === "int" && !/^-?\d+$/.test(value)) return `${p.name}: ${value} is not a whole number.`;
        if (kind === "float" && (value === "" || isNaN(number))) return `${p.name}: ${value} is not a number.`;
        if (kind === "bool" && !["true", "false"].includes(value)) return `${p.name} must be true or false.`;
        if ((kind === "int" || kind === "float") && p.min !== undefined && number < p.min) return `${p.name}: ${value} is below its minimum, ${p.min}.`;
        if ((kind === "int" || kind === "float") && p.max !== undefined && number > p.max) return `${p.name}: ${value} is above its maximum, ${p.max}.`;
        if (p.choices && p.choices.length && !p.choices.map(String).includes(value)) return `${p.name}: ${value} is not one of ${p.choices.join(", ")}.`;
      }
    }
    return null;
  }

  const file = () => input.files[0];
  const describe = () => ferry.show(chosen, file() ? `${file().name} · ${ferry.bytes(file().size)}` : "");
  input.addEventListener("change", () => { ferry.show(error, ""); describe(); loadDeclarations(); });
  for (const name of ["dragenter", "dragover"]) zone.addEventListener(name, (event) => { event.preventDefault(); zone.classList.add("over"); });
  for (const name of ["dragleave", "drop"]) zone.addEventListener(name, () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    if (event.dataTransfer.files.length) { input.files = event.dataTransfer.files; ferry.show(error, ""); describe(); loadDeclarations(); }
  });

  function problem() {
    const chosenFile = file();
    if (!chosenFile) return "Choose the .zip file of your project folder.";
    if (!chosenFile.name.toLowerCase().endsWith(".zip")) return `${chosenFile.name} is not a .zip file. Zip your project folder first (right-click → Compress).`;
    if (chosenFile.size === 0) return `${chosenFile.name} is empty.`;
    if (chosenFile.size > limits.maxUploadBytes) return `${chosenFile.name} is ${ferry.bytes(chosenFile.size)}; this server takes at most ${ferry.bytes(limits.maxUploadBytes)}. Leave large data out or ask your administrator.`;
    const declaredMessage = declaredProblem();
    if (declaredMessage) return declaredMessage;
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
    // A project with declared parameters always goes as a sweep (of one run, when run once): the
    // Backend checks the values against parameters.json and gives the run its params.json.
    const sweep = isSweep() || !!declared;
    if (sweep) { data.append("grid", gridText()); if (isSweep() && throttle.value) data.append("throttle", throttle.value); }
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
        const single = created.total === 1 && !isSweep();
        ferry.show(done, single ? `${created.project} is submitted with its parameters. Opening it…` : `The sweep of ${created.project} has ${created.total} runs. Opening it…`);
        setTimeout(() => { location.href = single ? "/jobs/" + created.runs[0].job.id : "/sweeps/" + created.id; }, 700);
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
