// A sweep's page: its runs as a table that fills in while they run (parameters, status, run time
// and the numbers of each run's output/summary.json), sortable by any column; cancel the sweep or
// one run, re-run the failed ones, download every result or the table.
"use strict";
(() => {
  const root = document.getElementById("sweep"), id = root.dataset.sweepId, base = "/api/v1/sweeps/" + id;
  const state = document.getElementById("sweep-state"), summary = document.getElementById("sweep-summary"), bar = document.getElementById("sweep-progress");
  const head = document.querySelector("#runs thead tr"), body = document.querySelector("#runs tbody"), facts = document.getElementById("sweep-facts");
  const actionError = document.getElementById("action-error"), cancelButton = document.getElementById("cancel-sweep"), rerunButton = document.getElementById("rerun-failed");
  const failedStatuses = ["failed", "timed_out", "killed", "error"];
  let sweep = null, sort = { key: "index", descending: false };

  // A column: its title, the value it sorts by, and how a cell shows it.
  function columns() {
    const list = [{ key: "index", title: "Run", value: (run) => run.index, cell: (run) => String(run.index), numeric: true }];
    sweep.parameters.forEach((name, i) => list.push({
      key: "param:" + name, title: name, numeric: sweep.runs.every((run) => run.parameters[i] && !isNaN(Number(run.parameters[i].value))),
      value: (run) => run.parameters[i] ? run.parameters[i].value : "", cell: (run) => run.parameters[i] ? run.parameters[i].value : "",
    }));
    list.push({ key: "status", title: "Status", value: (run) => run.job.status, cell: (run) => ferry.badge(run.job.status) });
    list.push({ key: "time", title: "Run time", numeric: true, value: (run) => run.runSeconds ?? -1, cell: (run) => ferry.runTime(run.job) });
    for (const name of sweep.summaryColumns || []) list.push({
      key: "summary:" + name, title: name, numeric: true, summary: true,
      value: (run) => (run.summary && name in run.summary) ? run.summary[name] : null,
      cell: (run) => (run.summary && name in run.summary) ? format(run.summary[name]) : "—",
    });
    return list;
  }

  function format(number) {
    if (Number.isInteger(number)) return String(number);
    return Math.abs(number) >= 1e-3 && Math.abs(number) < 1e6 ? String(Number(number.toPrecision(6))) : number.toExponential(3);
  }

  function compare(column) {
    return (a, b) => {
      const x = column.value(a), y = column.value(b);
      // Runs without the value go last in either direction.
      if (x === null || x === "") return y === null || y === "" ? a.index - b.index : 1;
      if (y === null || y === "") return -1;
      const order = column.numeric ? Number(x) - Number(y) : String(x).localeCompare(String(y), undefined, { numeric: true });
      return (sort.descending ? -order : order) || a.index - b.index;
    };
  }

  function render() {
    const list = columns();
    const column = list.find((c) => c.key === sort.key) || list[0];
    head.replaceChildren(...list.map((c) => {
      const current = c.key === column.key;
      const button = ferry.el("button", { type: "button", class: "sort", text: c.title + (current ? (sort.descending ? " ▼" : " ▲") : "") });
      button.addEventListener("click", () => {
        sort = { key: c.key, descending: current ? !sort.descending : c.summary === true };
        render();
      });
      return ferry.el("th", { scope: "col", class: c.summary || c.key === "time" ? "number" : null, "aria-sort": current ? (sort.descending ? "descending" : "ascending") : null }, button);
    }), ferry.el("th", { scope: "col" }, ferry.el("span", { class: "visually-hidden", text: "Actions" })));

    const rows = [...sweep.runs].sort(compare(column)).map((run) => {
      const cells = list.map((c, i) => {
        const content = c.cell(run);
        if (i === 0) return ferry.el("td", {}, ferry.el("a", { href: "/jobs/" + run.job.id, text: "Run " + content }));
        return ferry.el("td", { class: c.summary || c.key === "time" ? "number" : null }, content);
      });
      const actions = ferry.el("td");
      if (!ferry.isFinal(run.job.status)) {
        const stop = ferry.el("button", { type: "button", class: "secondary small-button", text: "Cancel" });
        stop.addEventListener("click", () => act(() => ferry.json("/api/v1/jobs/" + run.job.id + "/cancel", { method: "POST" })));
        actions.append(stop);
      }
      const row = ferry.el("tr", { "data-run": run.index, "data-status": run.job.status }, ...cells, actions);
      if (run.job.reason && !ferry.isFinal(run.job.status) && run.job.status !== "running") row.title = run.job.reason;
      return row;
    });
    body.replaceChildren(...rows);
  }

  function showSweep(current) {
    sweep = current;
    const ended = Object.entries(sweep.counts).filter(([status]) => ferry.isFinal(status)).reduce((sum, [, n]) => sum + n, 0);
    const failed = failedStatuses.reduce((sum, status) => sum + (sweep.counts[status] || 0), 0);
    bar.max = sweep.total; bar.value = ended;
    state.className = "badge " + (sweep.finished ? (failed ? "failed" : (sweep.counts.canceled ? "canceled" : "succeeded")) : "running");
    state.textContent = sweep.finished ? "Ended" : "Running";
    const parts = Object.entries(sweep.counts).sort().map(([status, n]) => `${n} ${ferry.statusNames[status].toLowerCase()}`);
    summary.textContent = `${ended} of ${sweep.total} runs ended: ${parts.join(", ")}.`;
    facts.replaceChildren(
      ferry.el("dt", { text: "Parameters" }), ferry.el("dd", { text: sweep.source === "sweep.csv" ? `${sweep.parameters.join(", ")} (from sweep.csv)` : sweep.source.split(/\n|;/).map((line) => line.trim()).filter(Boolean).join("; ") }),
      ferry.el("dt", { text: "Runs at once" }), ferry.el("dd", { text: `at most ${sweep.throttle}` }),
      ferry.el("dt", { text: "Started" }), ferry.el("dd", { text: ferry.when(sweep.createdAt) }),
    );
    cancelButton.classList.toggle("hidden", sweep.finished);
    rerunButton.classList.toggle("hidden", failed === 0);
    rerunButton.textContent = failed ? `Re-run the ${failed} failed run${failed === 1 ? "" : "s"}` : "Re-run the failed runs";
    render();
    document.getElementById("updated").textContent = "Updated " + new Date().toLocaleTimeString();
  }

  async function act(action) {
    ferry.show(actionError, "");
    try { await action(); poller.refresh(); } catch (failure) { ferry.show(actionError, failure.message); }
  }
  cancelButton.addEventListener("click", () => {
    if (confirm("Cancel every run of this sweep that has not ended? Runs that ended keep their results.")) act(async () => showSweep(await ferry.json(base + "/cancel", { method: "POST" })));
  });
  rerunButton.addEventListener("click", () => act(async () => showSweep(await ferry.json(base + "/rerun-failed", { method: "POST" }))));

  const poller = ferry.poll(async () => {
    try {
      showSweep(await ferry.json(base));
      ferry.show(actionError, "");
    } catch (failure) {
      ferry.show(actionError, failure.message);
    }
    return !sweep || !sweep.finished;
  }, 2000);
})();
