// Ferry's pages: a bearer token from /api/v1/auth/login, kept in this browser's localStorage.
const ferry = {
  token() { return localStorage.getItem("ferry.token"); },
  async api(path, options = {}) {
    const headers = Object.assign({}, options.headers || {});
    if (ferry.token()) headers["Authorization"] = "Bearer " + ferry.token();
    const response = await fetch(path, Object.assign({}, options, { headers }));
    if (!response.ok) {
      let message = response.status + " " + response.statusText;
      try { const body = await response.json(); if (body.error) message = body.error.message; } catch (_) {}
      throw new Error(message);
    }
    return response;
  },
  show(element, text) { element.textContent = text; element.classList.toggle("hidden", !text); },
  requireLogin() { if (!ferry.token()) { location.href = "/?next=" + encodeURIComponent(location.pathname); return false; } return true; },
  logout() { localStorage.removeItem("ferry.token"); location.href = "/"; },
  when(date) { return date ? new Date(date).toLocaleString() : "—"; },
};
document.addEventListener("DOMContentLoaded", () => {
  const logout = document.getElementById("logout");
  if (logout) { logout.classList.toggle("hidden", !ferry.token()); logout.addEventListener("click", (e) => { e.preventDefault(); ferry.logout(); }); }
});
