// Ferry's pages share these helpers. The browser is logged in by an HttpOnly session cookie; every
// request that changes something carries the session's CSRF token from the page's meta tag.
"use strict";
const ferry = {
  csrf() { const meta = document.querySelector('meta[name="csrf-token"]'); return meta ? meta.content : ""; },

  /** fetch() with the session and CSRF token; throws an Error with the server's message. */
  async api(path, options = {}) {
    const headers = Object.assign({ "Accept": "application/json" }, options.headers || {});
    const method = (options.method || "GET").toUpperCase();
    if (!["GET", "HEAD"].includes(method)) headers["X-CSRF-Token"] = ferry.csrf();
    const response = await fetch(path, Object.assign({ credentials: "same-origin" }, options, { headers }));
    if (response.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search); throw new Error("Your session ended; log in again."); }
    if (!response.ok) throw await ferry.error(response.status, () => response.json());
    return response;
  },
  async json(path, options) { return (await ferry.api(path, options)).json(); },

  async error(status, readJSON) {
    let message = "Ferry answered " + status + ".";
    try { const body = await readJSON(); if (body && body.error) message = body.error.message; } catch (_) {}
    const error = new Error(message); error.status = status; return error;
  },

  show(element, text) { element.textContent = text || ""; element.classList.toggle("hidden", !text); },
  el(tag, attributes = {}, ...children) {
    const element = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "class") element.className = value; else if (name === "text") element.textContent = value; else element.setAttribute(name, value);
    }
    for (const child of children) if (child !== null && child !== undefined) element.append(child);
    return element;
  },

  statusNames: { submitted: "Submitted", queued: "Queued", preparing: "Preparing", running: "Running", succeeded: "Succeeded",
    failed: "Failed", timed_out: "Timed out", killed: "Killed", canceled: "Canceled", error: "Error" },
  isFinal(status) { return ["succeeded", "failed", "timed_out", "killed", "canceled", "error"].includes(status); },
  badge(status) { return ferry.el("span", { class: "badge " + status, text: ferry.statusNames[status] || status }); },

  when(date) { return date ? new Date(date).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" }) : "—"; },
  duration(seconds) {
    if (seconds === null || seconds === undefined || isNaN(seconds)) return "—";
    if (seconds < 1) return Math.round(seconds * 1000) + " ms";
    if (seconds < 60) return seconds.toFixed(seconds < 10 ? 1 : 0) + " s";
    const minutes = Math.floor(seconds / 60), hours = Math.floor(minutes / 60);
    return hours ? hours + " h " + (minutes % 60) + " min" : minutes + " min " + Math.round(seconds % 60) + " s";
  },
  runTime(job) {
    if (!job.startedAt) return "—";
    const end = job.finishedAt ? new Date(job.finishedAt) : new Date();
    return ferry.duration((end - new Date(job.startedAt)) / 1000) + (job.finishedAt ? "" : " so far");
  },
  bytes(n) {
    if (n === null || n === undefined) return "—";
    const units = ["bytes", "KiB", "MiB", "GiB"]; let i = 0; while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : n) + " " + units[i];
  },

  /** Calls `tick` now and then every `ms` while the page is visible, until it returns false. */
  poll(tick, ms) {
    let timer = null, stopped = false, busy = false;
    const run = async () => {
      timer = null;
      if (busy) return;
      busy = true;
      let again = true;
      try { again = (await tick()) !== false; } catch (_) {} finally { busy = false; }
      if (!again) { stopped = true; return; }
      if (!document.hidden) timer = setTimeout(run, ms);
    };
    document.addEventListener("visibilitychange", () => { if (!document.hidden && !timer && !stopped) run(); });
    run();
    return { refresh() { if (timer) clearTimeout(timer); stopped = false; run(); } };
  },
};

// On every page of a logged-in researcher: say so when no processing unit takes jobs (or the queue
// cannot be reached), so that nobody waits without a word why.
(() => {
  const notice = document.getElementById("service-notice");
  if (!notice) return;
  ferry.poll(async () => {
    try { ferry.show(notice, (await ferry.json("/api/v1/service")).notice || ""); } catch (_) {}
  }, 15000);
})();

// How long results are kept, where a page shows results.
(async () => {
  const places = document.querySelectorAll("[data-retention]");
  if (!places.length) return;
  try {
    const limits = await ferry.json("/api/v1/limits");
    for (const place of places) ferry.show(place, limits.retention || "");
  } catch (_) {}
})();
