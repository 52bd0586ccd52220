/* plantd app: what every page shares.
 *
 * Plantd.request/api: fetch with the session cookie; unsafe methods carry the CSRF token the
 * server put in <meta name="csrf-token">. A 401 means the session ended: back to /login.
 * Plantd.call: one service operation through the REST API. Plantd.el: build DOM nodes (text
 * only, never HTML strings: nothing from a device or a log line can become markup).
 * Plantd.stream: an EventSource on bus topic prefixes, with a status label.
 */
"use strict";

const Plantd = (() => {
  const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  class ApiError extends Error {
    constructor(status, detail, body) {
      super(detail);
      this.status = status;
      this.body = body;
    }
  }

  function toLogin() {
    const next = location.pathname + location.search;
    location.assign("/login?next=" + encodeURIComponent(next));
  }

  /* {status, ok, data}: data is the parsed JSON (a problem's body too), or null. */
  async function request(method, path, body) {
    const headers = { Accept: "application/json" };
    const init = { method, headers, credentials: "same-origin", cache: "no-store" };
    if (UNSAFE.has(method)) headers["X-CSRF-Token"] = csrfToken();
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      throw new ApiError(0, "the proxy did not answer (" + err.message + ")", null);
    }
    const type = response.headers.get("Content-Type") || "";
    const data = type.includes("json") ? await response.json().catch(() => null) : null;
    if (response.status === 401 && !path.startsWith("/api/v1/login")) toLogin();
    return { status: response.status, ok: response.ok, data };
  }

  async function api(method, path, body) {
    const answer = await request(method, path, body);
    if (!answer.ok) {
      const detail = (answer.data && answer.data.detail) || "HTTP " + answer.status;
      throw new ApiError(answer.status, detail, answer.data);
    }
    return answer.data;
  }

  function servicePath(service, operation) {
    return "/api/v1/services/" + encodeURIComponent(service) + "/" + encodeURIComponent(operation);
  }

  async function call(service, operation, params) {
    const data = await api("POST", servicePath(service, operation), params || {});
    return data.result;
  }

  /* "Forbidden (403): user.vic may not call 'write' …": what a refusal says, in words. */
  function problemText(err) {
    if (!(err instanceof ApiError)) return String(err && err.message ? err.message : err);
    if (err.status === 0) return err.message;
    const title = (err.body && err.body.title) || "Error";
    return title + " (" + err.status + "): " + err.message;
  }

  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "dataset") Object.assign(node.dataset, value);
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function message(node, text, kind) {
    if (!node) return;
    node.textContent = text || "";
    node.hidden = !text;
    node.classList.remove("error", "ok", "warning");
    if (kind) node.classList.add(kind);
  }

  function pad(n) {
    return String(n).padStart(2, "0");
  }

  function formatTime(seconds, withDate = true) {
    if (typeof seconds !== "number") return "";
    const d = new Date(seconds * 1000);
    const time = pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
    if (!withDate) return time;
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + time;
  }

  function formatAge(seconds) {
    if (typeof seconds !== "number" || !isFinite(seconds)) return "";
    const s = Math.max(0, Math.floor(seconds));
    if (s < 120) return s + " s";
    if (s < 7200) return Math.floor(s / 60) + " min";
    if (s < 172800) return Math.floor(s / 3600) + " h";
    return Math.floor(s / 86400) + " d";
  }

  function formatValue(value) {
    if (value === null || value === undefined) return "—";
    if (typeof value === "number") {
      return Number.isInteger(value) ? String(value) : String(Math.round(value * 1e6) / 1e6);
    }
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  }

  function levels() {
    return new Set((document.body.dataset.levels || "").split(" ").filter(Boolean));
  }

  /* An EventSource on the given bus topic prefixes; handlers per event name. The browser
   * reconnects by itself after a network error; after an HTTP error (the proxy restarting, the
   * session ended) the source is closed for good: ask /api/v1/me (a 401 goes to the login
   * page) and open a new one after RETRY_MS. */
  const RETRY_MS = 3000;

  function stream(prefixes, handlers, statusNode) {
    const url = "/api/v1/stream?" + prefixes.map((p) => "topic=" + encodeURIComponent(p)).join("&");
    const status = (state, text) => {
      if (!statusNode) return;
      statusNode.dataset.state = state;
      statusNode.textContent = text;
    };
    const dispatch = (handler) => (event) => {
      let data;
      try {
        data = JSON.parse(event.data);
      } catch (err) {
        return; // not ours to crash on: skip a malformed event
      }
      handler(data);
    };
    const all = {
      gap: (data) => status("gap", "live (" + data.dropped + " events skipped: this browser fell behind)"),
      ...handlers,
    };
    const open = () => {
      const source = new EventSource(url);
      status("connecting", "connecting…");
      source.addEventListener("open", () => status("live", "live"));
      source.addEventListener("error", () => {
        if (source.readyState !== EventSource.CLOSED) {
          status("down", "reconnecting…");
          return;
        }
        status("down", "stream closed: retrying…");
        setTimeout(() => request("GET", "/api/v1/me").catch(() => null).then(open), RETRY_MS);
      });
      for (const [name, handler] of Object.entries(all)) source.addEventListener(name, dispatch(handler));
    };
    open();
  }

  function setupChrome() {
    const toggle = document.querySelector(".nav-toggle");
    const nav = document.getElementById("nav");
    if (toggle && nav) {
      toggle.addEventListener("click", () => {
        const open = nav.classList.toggle("open");
        toggle.setAttribute("aria-expanded", open ? "true" : "false");
      });
    }
    const logout = document.getElementById("logout");
    if (logout) {
      logout.addEventListener("click", async () => {
        await request("POST", "/api/v1/logout").catch(() => null);
        location.assign("/login");
      });
    }
  }

  document.addEventListener("DOMContentLoaded", setupChrome);

  return {
    ApiError, api, call, el, formatAge, formatTime, formatValue, levels, message,
    problemText, request, servicePath, stream,
  };
})();
