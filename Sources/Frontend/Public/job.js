// A job's page: status and history, the live tail of stdout or stderr while it runs, the outcome,
// the manifest and the result's files (with previews) once it ends, and the actions (download,
// cancel, run again, delete).
"use strict";
(() => {
  const id = document.getElementById("job").dataset.jobId, base = "/api/v1/jobs/" + id;
  const statusBadge = document.getElementById("status"), reason = document.getElementById("reason"), actionError = document.getElementById("action-error");
  const buttons = { download: document.getElementById("download"), cancel: document.getElementById("cancel"), rerun: document.getElementById("rerun"), delete: document.getElementById("delete") };
  const facts = document.getElementById("facts"), historyList = document.getElementById("history"), manifestBox = document.getElementById("manifest");
  const log = document.getElementById("log");
  let job = null, stream = "stdout", offset = 0, manifestShown = false;

  function fact(term, value) { return [ferry.el("dt", { text: term }), ferry.el("dd", { text: value })]; }

  let waiting = "";
  function showJob(current) {
    job = current;
    statusBadge.replaceChildren(ferry.badge(job.status).firstChild);
    statusBadge.className = "badge " + job.status;
    const stillWaiting = job.status === "submitted" || job.status === "queued";
    ferry.show(reason, job.reason || (job.status === "succeeded" ? "code.py finished without errors." : (stillWaiting ? waiting : "")));
    reason.className = job.status === "succeeded" ? "notice" : (ferry.isFinal(job.status) ? "error-text" : "muted");
    buttons.download.classList.toggle("hidden", !(ferry.isFinal(job.status) && job.resultBytes !== null && job.resultBytes !== undefined));
    buttons.download.textContent = "Download result (" + ferry.bytes(job.resultBytes) + ")";
    buttons.cancel.classList.toggle("hidden", ferry.isFinal(job.status));
    buttons.delete.classList.toggle("hidden", !ferry.isFinal(job.status));
    facts.replaceChildren(
      ...fact("Submitted", ferry.when(job.submittedAt)), ...fact("Started", ferry.when(job.startedAt)),
      ...fact("Finished", ferry.when(job.finishedAt)), ...fact("Run time", ferry.runTime(job)),
      ...fact("Exit code", job.exitCode === null || job.exitCode === undefined ? "—" : String(job.exitCode)),
      ...fact("Limits", `${job.timeLimit} s · ${job.memoryLimit} MiB`));
    if (job.sweep) {
      // A run of a sweep: which one, and what it was given (params.json and FERRY_PARAM_*).
      facts.append(
        ferry.el("dt", { text: "Sweep" }), ferry.el("dd", {}, ferry.el("a", { href: "/sweeps/" + job.sweep.id, text: `Run ${job.sweep.index} of a sweep` })),
        ...fact("Parameters", job.sweep.parameters.map((p) => `${p.name} = ${p.value}`).join(", ")));
    }
  }

  function showHistory(entries) {
    historyList.replaceChildren(...entries.map((entry) => ferry.el("li", {},
      ferry.badge(entry.status), " ", ferry.el("time", { datetime: entry.at, text: new Date(entry.at).toLocaleString() }),
      entry.reason && entry.status !== "running" ? ferry.el("div", { class: "muted", text: entry.reason }) : null)));
  }

  function showManifest(manifest) {
    const rows = [];
    const add = (term, value) => { if (value !== undefined && value !== null && value !== "") rows.push(...fact(term, value)); };
    add("Python", manifest.python);
    add("Processing unit", manifest.unit);
    add("Cluster job", manifest.cluster ? `Slurm job ${manifest.cluster.jobID}` + (manifest.cluster.attempt > 1 ? ` (attempt ${manifest.cluster.attempt})` : "") : undefined);
    add("Environment", manifest.environment ? (manifest.environment.cacheHit ? "reused" : "built for this job") : undefined);
    add("Preparing", ferry.duration(manifest.preparingSeconds));
    add("Running", ferry.duration(manifest.runningSeconds));
    add("CPU time", manifest.cpuSeconds === undefined ? undefined : ferry.duration(manifest.cpuSeconds));
    add("Peak memory", manifest.peakMemoryBytes === undefined ? undefined : ferry.bytes(manifest.peakMemoryBytes));
    add("Bundle SHA-256", manifest.bundleSHA256);
    const packages = manifest.packages || [];
    manifestBox.replaceChildren(ferry.el("dl", { class: "facts" }, ...rows),
      ferry.el("h3", { text: "Installed packages (" + packages.length + ")" }),
      packages.length ? ferry.el("p", { class: "packages", text: packages.join(", ") }) : ferry.el("p", { class: "muted", text: "None besides Python's own." }));
    manifestShown = true;
  }

  // The result's files, each previewed on the page without a download: images as images, tables
  // and JSON and text as escaped text (the first 64 KiB); anything can be downloaded alone.
  const filesCard = document.getElementById("files-card"), filesBody = document.getElementById("files"), preview = document.getElementById("preview");
  let filesShown = false;
  const fileURL = (name, extra) => `${base}/file?name=${encodeURIComponent(name)}` + (extra ? "&" + extra : "");

  function parseTable(text, separator) {
    const rows = []; let row = [], field = "", quoted = false;
    for (let i = 0; i < text.length && rows.length < 51; i++) {
      const c = text[i];
      if (quoted) {
        if (c === '"' && text[i + 1] === '"') { field += '"'; i++; } else if (c === '"') quoted = false; else field += c;
      } else if (c === '"') quoted = true;
      else if (c === separator) { row.push(field); field = ""; }
      else if (c === "\n" || c === "\r") { if (c === "\r" && text[i + 1] === "\n") i++; row.push(field); rows.push(row); row = []; field = ""; }
      else field += c;
    }
    if ((field || row.length) && rows.length < 51) { row.push(field); rows.push(row); }
    return rows;
  }

  // JSON indented as it is written: re-serialising it would change numbers (2.0 → 2, large
  // integers rounded), and a preview must show what the job wrote.
  function indentJSON(text) {
    let out = "", depth = 0, inString = false;
    const newline = () => "\n" + "  ".repeat(depth);
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (inString) { out += c; if (c === "\\") out += text[++i] || ""; else if (c === '"') inString = false; continue; }
      if (c === '"') { inString = true; out += c; }
      else if (c === "{" || c === "[") {
        let j = i + 1; while (/\s/.test(text[j] || "")) j++;
        if (text[j] === (c === "{" ? "}" : "]")) { out += c + text[j]; i = j; } else { depth++; out += c + newline(); }
      } else if (c === "}" || c === "]") { depth = Math.max(0, depth - 1); out += newline() + c; }
      else if (c === ",") out += c + newline();
      else if (c === ":") out += ": ";
      else if (!/\s/.test(c)) out += c;
    }
    return out;
  }

  async function showPreview(file) {
    preview.classList.remove("hidden");
    const heading = ferry.el("h3", { text: file.name });
    if (file.kind === "image") {
      preview.replaceChildren(heading, ferry.el("img", { src: fileURL(file.name), alt: file.name, class: "preview-image" }));
      return;
    }
    preview.replaceChildren(heading, ferry.el("p", { class: "muted", text: "Loading…" }));
    try {
      const response = await ferry.api(fileURL(file.name, "preview=1"));
      const text = await response.text(), truncated = response.headers.get("X-Ferry-Truncated") === "true";
      let body;
      if (file.kind === "table") {
        const rows = parseTable(text, file.name.toLowerCase().endsWith(".tsv") ? "\t" : ",");
        const [head, ...rest] = rows;
        body = ferry.el("div", { class: "table-wrap" }, ferry.el("table", { class: "data" },
          ferry.el("thead", {}, ferry.el("tr", {}, ...(head || []).map((cell) => ferry.el("th", { text: cell })))),
          ferry.el("tbody", {}, ...rest.slice(0, 50).map((cells) => ferry.el("tr", {}, ...cells.map((cell) => ferry.el("td", { text: cell })))))));
      } else {
        let shown = text;
        if (file.kind === "json" && !truncated) { try { JSON.parse(text); shown = indentJSON(text); } catch (_) {} }
        body = ferry.el("pre", { class: "preview-text", text: shown });
      }
      const more = truncated || file.kind === "table" ? ferry.el("p", { class: "muted small" },
        file.kind === "table" ? "The first rows. " : "The first 64 KiB. ", ferry.el("a", { href: fileURL(file.name, "download=1"), text: "Download the whole file" })) : null;
      preview.replaceChildren(...[heading, body, more].filter(Boolean));
    } catch (e) { preview.replaceChildren(heading, ferry.el("p", { class: "error-text", text: e.message })); }
  }

  async function showFiles() {
    filesShown = true;
    if (job.resultBytes === null || job.resultBytes === undefined) return;
    let listing;
    try { listing = await ferry.json(base + "/files"); } catch (_) { return; }
    filesCard.classList.remove("hidden");
    ferry.show(document.getElementById("files-note"), listing.total === 0 ? "output/ was empty."
      : (listing.total > listing.files.length ? `The first ${listing.files.length} of ${listing.total} files; the result zip has them all.` : ""));
    filesBody.closest(".table-wrap").classList.toggle("hidden", listing.files.length === 0);
    filesBody.replaceChildren(...listing.files.map((file) => ferry.el("tr", {},
      ferry.el("td", { class: "file-name", text: file.name }), ferry.el("td", { text: ferry.bytes(file.size) }),
      ferry.el("td", { class: "file-actions" },
        file.kind !== "other" ? (() => { const b = ferry.el("button", { type: "button", class: "link", text: "Preview" }); b.addEventListener("click", () => showPreview(file)); return b; })() : null,
        file.kind !== "other" ? " · " : null,
        ferry.el("a", { href: fileURL(file.name, "download=1"), text: "Download" })))));
  }

  async function tailLog() {
    const response = await ferry.api(`${base}/log?stream=${stream}&offset=${offset}`);
    const text = await response.text();
    const nextOffset = Number(response.headers.get("X-Next-Offset") || offset);
    if (offset === 0) log.textContent = "";
    if (text) {
      const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
      log.append(text);
      if (atBottom) log.scrollTop = log.scrollHeight;
    }
    offset = nextOffset;
    if (!log.textContent) log.textContent = "";
    log.dataset.empty = log.textContent ? "no" : (job && ferry.isFinal(job.status) ? "ended" : "yes");
  }

  async function tick() {
    try {
      const current = await ferry.json(base);
      // A job that waits says why: its place in the queue, busy units, or none taking jobs.
      if (current.status === "submitted" || current.status === "queued") {
        try { waiting = (await ferry.json(base + "/waiting")).message || ""; } catch (_) { waiting = ""; }
      }
      showJob(current);
      showHistory((await ferry.json(base + "/history")).history);
      await tailLog();
      if (ferry.isFinal(job.status) && !manifestShown) {
        try { showManifest(await ferry.json(base + "/manifest")); } catch (_) {}
      }
      if (ferry.isFinal(job.status) && !filesShown) await showFiles();
      ferry.show(actionError, "");
    } catch (e) { if (e.status === 404) { location.href = "/results"; return false; } ferry.show(actionError, e.message); }
    return !(ferry.isFinal(job.status) && manifestShown);
  }
  const poller = ferry.poll(tick, 1500);

  const streams = ["stdout", "stderr", "install"];
  for (const name of streams) {
    document.getElementById("tab-" + name).addEventListener("click", () => {
      stream = name; offset = 0; log.textContent = "";
      for (const other of streams) document.getElementById("tab-" + other).setAttribute("aria-selected", String(other === name));
      tailLog().catch(() => {});
    });
  }

  async function act(button, work) {
    button.disabled = true; ferry.show(actionError, "");
    try { await work(); } catch (e) { ferry.show(actionError, e.message); } finally { button.disabled = false; }
  }
  buttons.cancel.addEventListener("click", () => act(buttons.cancel, async () => {
    if (!confirm("Cancel this job? Its processes are stopped; what output/ holds by then is kept.")) return;
    showJob(await ferry.json(base + "/cancel", { method: "POST" }));
    poller.refresh();
  }));
  buttons.rerun.addEventListener("click", () => act(buttons.rerun, async () => {
    const again = await ferry.json(base + "/rerun", { method: "POST" });
    location.href = "/jobs/" + again.id;
  }));
  buttons.delete.addEventListener("click", () => act(buttons.delete, async () => {
    if (!confirm("Delete this job with its logs and result? This cannot be undone.")) return;
    await ferry.api(base, { method: "DELETE" });
    location.href = "/results";
  }));
})();
