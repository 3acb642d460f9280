// The admin page: the queue, the units and what each runs, all jobs and the accounts.
"use strict";
(() => {
  const error = document.getElementById("admin-error"), notice = document.getElementById("admin-notice"), stats = document.getElementById("stats");
  const units = document.querySelector("#units tbody"), jobs = document.querySelector("#all-jobs tbody"), users = document.querySelector("#users tbody");
  const newer = document.getElementById("admin-newer"), older = document.getElementById("admin-older");
  let cursors = [null], next = null;

  function stat(label, value) { return ferry.el("div", {}, ferry.el("dt", { text: label }), ferry.el("dd", { text: String(value) })); }

  async function overview() {
    const data = await ferry.json("/api/v1/admin/overview");
    const count = (status) => data.jobsByStatus[status] || 0;
    stats.replaceChildren(
      stat("Waiting in the queue", data.queueDepth === null || data.queueDepth === undefined ? "unknown" : data.queueDepth),
      stat("Consumers", data.queueConsumers ?? "unknown"),
      stat("Preparing or running", count("preparing") + count("running")),
      stat("Succeeded", count("succeeded")),
      stat("Failed, killed or timed out", count("failed") + count("killed") + count("timed_out")),
      stat("Errors", count("error")));
    const volume = data.volume || {};
    document.getElementById("volume").replaceChildren(
      stat("Free", ferry.bytes(volume.freeBytes) + " of " + ferry.bytes(volume.totalBytes)),
      stat("Bundles", ferry.bytes(volume.bundlesBytes)), stat("Results", ferry.bytes(volume.resultsBytes)),
      stat("Job folders and logs", ferry.bytes(volume.jobFoldersBytes)), stat("Environments", ferry.bytes(volume.environmentsBytes)));
    const byUser = Object.entries(data.storedBytesByUser || {}).sort((a, b) => b[1] - a[1]);
    document.querySelector("#storage-by-user tbody").replaceChildren(...(byUser.length ? byUser.map(([user, bytes]) =>
      ferry.el("tr", {}, ferry.el("td", { text: user }), ferry.el("td", { text: ferry.bytes(bytes) })))
      : [ferry.el("tr", {}, ferry.el("td", { colspan: "2", class: "muted", text: "Nothing stored yet." }))]));
    ferry.show(notice, data.queueConsumers === 0 ? "No processing unit is taking jobs: queued jobs wait. The units below say which are down; their logs say why." : "");
    units.replaceChildren(...(data.units.length ? data.units.map((unit) => ferry.el("tr", {},
      ferry.el("td", {}, ferry.el("code", { text: unit.name }),
        unit.answering === false ? ferry.el("div", { class: "error-text", text: "down: " + (unit.problem || "not answering") }) : null),
      ferry.el("td", { text: ferry.when(unit.lastSeen) }),
      ferry.el("td", { text: unit.jobs.length ? unit.jobs.map((job) => `${job.project} (${job.owner}, ${job.status})`).join(", ") : "idle" })))
      : [ferry.el("tr", {}, ferry.el("td", { colspan: "3", class: "muted", text: "No unit has reported a job yet." }))]));
  }

  async function allJobs() {
    const query = new URLSearchParams({ limit: "25" });
    const cursor = cursors[cursors.length - 1];
    if (cursor) query.set("cursor", cursor);
    const page = await ferry.json("/api/v1/admin/jobs?" + query);
    jobs.replaceChildren(...page.jobs.map((job) => ferry.el("tr", {},
      ferry.el("td", { text: job.project }), ferry.el("td", { text: job.owner }), ferry.el("td", {}, ferry.badge(job.status)),
      ferry.el("td", { class: "optional", text: ferry.when(job.submittedAt) }))));
    next = page.next || null; older.disabled = !next; newer.disabled = cursors.length <= 1;
  }

  async function accounts() {
    const data = await ferry.json("/api/v1/admin/users");
    users.replaceChildren(...data.users.map((user) => {
      const button = ferry.el("button", { type: "button", class: user.disabled ? "secondary" : "danger", text: user.disabled ? "Enable" : "Disable",
        "aria-label": (user.disabled ? "Enable " : "Disable ") + user.username });
      button.addEventListener("click", async () => {
        if (!user.disabled && !confirm(`Disable ${user.username}? They are logged out and cannot log in until enabled again. Their jobs stay.`)) return;
        try { await ferry.api(`/api/v1/admin/users/${user.id}/${user.disabled ? "enable" : "disable"}`, { method: "POST" }); await accounts(); ferry.show(error, ""); }
        catch (e) { ferry.show(error, e.message); }
      });
      const role = ferry.el("button", { type: "button", class: "secondary small", text: user.isAdmin ? "Remove administration" : "Make administrator",
        "aria-label": (user.isAdmin ? "Remove administration from " : "Make administrator: ") + user.username });
      role.addEventListener("click", async () => {
        try { await ferry.api(`/api/v1/admin/users/${user.id}/admin`, { method: user.isAdmin ? "DELETE" : "POST" }); await accounts(); ferry.show(error, ""); }
        catch (e) { ferry.show(error, e.message); }
      });
      // The account id is what auth.admins names.
      return ferry.el("tr", {}, ferry.el("td", {}, ferry.el("span", { text: user.username }), ferry.el("br"), ferry.el("code", { class: "muted small", text: user.id })),
        ferry.el("td", {}, ferry.el("span", { text: (user.isAdmin ? "administrator" : "researcher") + " " }), role),
        ferry.el("td", { class: "optional", text: ferry.when(user.createdAt) }), ferry.el("td", { text: String(user.jobs) }),
        ferry.el("td", {}, ferry.el("span", { class: "muted", text: user.disabled ? "disabled " : "active " }), button));
    }));
  }

  const invites = document.querySelector("#invites tbody"), inviteBox = document.getElementById("invite-box"), inviteLink = document.getElementById("invite-link");
  async function invitations() {
    const data = await ferry.json("/api/v1/admin/invites");
    invites.replaceChildren(...(data.invites.length ? data.invites.map((invite) => {
      const cell = ferry.el("td", {}, ferry.el("code", { text: invite.id }));
      if (!invite.usedBy) {
        const withdraw = ferry.el("button", { type: "button", class: "secondary small", text: "Withdraw", "aria-label": "Withdraw invitation " + invite.id });
        withdraw.addEventListener("click", async () => {
          try { await ferry.api(`/api/v1/admin/invites/${invite.id}`, { method: "DELETE" }); await invitations(); } catch (e) { ferry.show(error, e.message); }
        });
        cell.append(" ", withdraw);
      }
      return ferry.el("tr", {}, cell, ferry.el("td", { text: invite.createdBy || "—" }),
        ferry.el("td", { class: "optional", text: ferry.when(invite.expiresAt) }), ferry.el("td", { text: invite.usedBy || "not yet" }));
    }) : [ferry.el("tr", {}, ferry.el("td", { colspan: "4", class: "muted", text: "No invitations yet." }))]));
  }
  document.getElementById("new-invite").addEventListener("click", async () => {
    try {
      const issued = await ferry.json("/api/v1/admin/invites", { method: "POST" });
      inviteLink.value = location.origin + issued.path; inviteBox.classList.remove("hidden");
      inviteLink.focus(); inviteLink.select();
      await invitations(); ferry.show(error, "");
    } catch (e) { ferry.show(error, e.message); }
  });

  const poller = ferry.poll(async () => {
    try { await Promise.all([overview(), allJobs()]); ferry.show(error, ""); } catch (e) { ferry.show(error, e.message); }
  }, 5000);
  accounts().catch((e) => ferry.show(error, e.message));
  invitations().catch((e) => ferry.show(error, e.message));
  older.addEventListener("click", () => { if (next) { cursors.push(next); poller.refresh(); } });
  newer.addEventListener("click", () => { if (cursors.length > 1) { cursors.pop(); poller.refresh(); } });
})();
