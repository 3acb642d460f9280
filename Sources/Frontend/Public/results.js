// The results page: the user's jobs newest first, filtered by status and project, a page at a time
// (the server's cursor), refreshed every few seconds while the page is open.
"use strict";
(() => {
  const body = document.querySelector("#jobs tbody"), empty = document.getElementById("empty"), error = document.getElementById("list-error");
  const status = document.getElementById("status"), project = document.getElementById("project");
  const newer = document.getElementById("newer"), older = document.getElementById("older"), updated = document.getElementById("updated");
  const params = new URLSearchParams(location.search);
  status.value = params.get("status") || ""; let wantedProject = params.get("project") || "";
  let cursors = [null];  // cursor of each page seen; the last is the current page's
  let next = null;

  ferry.json("/api/v1/projects").then(({ projects }) => {
    for (const name of projects) project.append(ferry.el("option", { value: name, text: name }));
    project.value = wantedProject;
  }).catch(() => {});

  function row(job) {
    const link = ferry.el("a", { href: "/jobs/" + job.id, text: job.project });
    const result = job.resultBytes !== null && job.resultBytes !== undefined && ferry.isFinal(job.status)
      ? ferry.el("a", { href: `/api/v1/jobs/${job.id}/result`, download: "", text: "Download", "aria-label": `Download the result of ${job.project}` })
      : ferry.el("span", { class: "muted", text: ferry.isFinal(job.status) ? "none" : "…" });
    const statusCell = ferry.el("td", {}, ferry.badge(job.status));
    if (job.reason && job.status !== "succeeded") statusCell.append(ferry.el("div", { class: "reason", text: job.reason }));
    const projectCell = ferry.el("td", {}, link);
    if (job.sweep) {
      projectCell.append(ferry.el("div", { class: "reason" },
        ferry.el("a", { href: "/sweeps/" + job.sweep.id, text: `sweep run ${job.sweep.index}` }),
        ": " + job.sweep.parameters.map((p) => `${p.name}=${p.value}`).join(", ")));
    }
    return ferry.el("tr", { "data-job-id": job.id, "data-status": job.status },
      projectCell, statusCell,
      ferry.el("td", { class: "optional", text: ferry.when(job.submittedAt) }),
      ferry.el("td", { class: "optional", text: ferry.runTime(job) }),
      ferry.el("td", {}, result));
  }

  async function load() {
    const query = new URLSearchParams({ limit: "25" });
    if (status.value) query.set("status", status.value);
    if (project.value || wantedProject) query.set("project", project.value || wantedProject);
    const cursor = cursors[cursors.length - 1];
    if (cursor) query.set("cursor", cursor);
    try {
      const page = await ferry.json("/api/v1/jobs?" + query);
      ferry.show(error, "");
      body.replaceChildren(...page.jobs.map(row));
      empty.classList.toggle("hidden", page.jobs.length > 0 || cursors.length > 1);
      next = page.next || null;
      older.disabled = !next; newer.disabled = cursors.length <= 1;
      updated.textContent = "Updated " + new Date().toLocaleTimeString();
    } catch (e) { ferry.show(error, e.message); }
  }
  const poller = ferry.poll(load, 3000);

  function filtersChanged() {
    wantedProject = project.value;
    cursors = [null];
    const query = new URLSearchParams();
    if (status.value) query.set("status", status.value);
    if (project.value) query.set("project", project.value);
    history.replaceState(null, "", "/results" + (query.toString() ? "?" + query : ""));
    poller.refresh();
  }
  status.addEventListener("change", filtersChanged);
  project.addEventListener("change", filtersChanged);
  older.addEventListener("click", () => { if (next) { cursors.push(next); poller.refresh(); } });
  newer.addEventListener("click", () => { if (cursors.length > 1) { cursors.pop(); poller.refresh(); } });

  // The newest sweeps, above the jobs: each links to its table.
  const sweepsCard = document.getElementById("sweeps-card"), sweepList = document.getElementById("sweeps");
  ferry.poll(async () => {
    try {
      const { sweeps } = await ferry.json("/api/v1/sweeps?limit=10");
      sweepsCard.classList.toggle("hidden", sweeps.length === 0);
      sweepList.replaceChildren(...sweeps.map((sweep) => {
        const ended = Object.entries(sweep.counts).filter(([status]) => ferry.isFinal(status)).reduce((sum, [, n]) => sum + n, 0);
        return ferry.el("li", {}, ferry.el("a", { href: "/sweeps/" + sweep.id, text: sweep.project }),
          ferry.el("span", { class: "muted", text: ` · ${sweep.parameters.join(", ")} · ${ended} of ${sweep.total} runs ended · ${ferry.when(sweep.createdAt)}` }));
      }));
      return sweeps.some((sweep) => !sweep.finished);
    } catch (_) { return true; }
  }, 5000);
})();
