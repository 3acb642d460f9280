// The settings page: change the password, create an API token (shown once) and revoke all of them.
"use strict";
(() => {
  const error = document.getElementById("token-error"), notice = document.getElementById("token-notice");
  const box = document.getElementById("token-box"), field = document.getElementById("token"), placeholder = document.getElementById("token-placeholder");
  for (const span of document.querySelectorAll(".origin")) span.textContent = location.origin;
  document.getElementById("new-token").addEventListener("click", async () => {
    ferry.show(error, ""); ferry.show(notice, "");
    try {
      const issued = await ferry.json("/api/v1/auth/tokens", { method: "POST" });
      field.value = issued.token; placeholder.textContent = issued.token; box.classList.remove("hidden");
      field.focus(); field.select();
      ferry.show(notice, "Copy the token now: Ferry shows it only once. It works until " + ferry.when(issued.expiresAt) + ".");
    } catch (e) { ferry.show(error, e.message); }
  });
  document.getElementById("revoke-tokens").addEventListener("click", async () => {
    if (!confirm("Revoke all your API tokens? Scripts that use them stop working.")) return;
    ferry.show(error, ""); ferry.show(notice, "");
    try {
      await ferry.api("/api/v1/auth/tokens", { method: "DELETE" });
      box.classList.add("hidden"); placeholder.textContent = "your-token";
      ferry.show(notice, "All your tokens are revoked. This browser stays logged in.");
    } catch (e) { ferry.show(error, e.message); }
  });
  const passwordForm = document.getElementById("password-form");
  const passwordError = document.getElementById("password-error"), passwordNotice = document.getElementById("password-notice");
  passwordForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    ferry.show(passwordError, ""); ferry.show(passwordNotice, "");
    const current = document.getElementById("current-password"), next = document.getElementById("new-password");
    try {
      await ferry.api("/api/v1/auth/password", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ currentPassword: current.value, newPassword: next.value }) });
      current.value = ""; next.value = "";
      ferry.show(passwordNotice, "Your password is changed. Every other session and all your API tokens have ended.");
    } catch (e) { ferry.show(passwordError, e.message); }
  });
})();
