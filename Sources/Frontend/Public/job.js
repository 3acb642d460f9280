// A job's page: status and history, the live tail of stdout or stderr while it runs, the outcome
// and the manifest once it ends, and the actions (download, cancel, run again, delete).
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
    log.dataset.empty = log.textContent ? "no" : "yes";
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
