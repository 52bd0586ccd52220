/* State browser: scopes (list-scopes), a scope's keys (list, 100 a page), a key's value (get).
 * Those who may `set` (configure access by default) can change a value: it is sent as a
 * compare-and-set on the revision that was read, after a confirmation naming scope, key and
 * value, so a change made meanwhile by someone else is refused (409) rather than overwritten. */
"use strict";

(() => {
  const STATE = "org.plantd.State";
  const { el } = Plantd;
  let scope = null;
  let current = null; // {scope, key, value, revision, version}
  let next = null;

  const error = (text) => Plantd.message(document.getElementById("state-error"), text, "error");

  async function loadScopes() {
    try {
      const answer = await Plantd.call(STATE, "list-scopes");
      document.getElementById("state-scopes").replaceChildren(...answer.scopes.map((s) =>
        el("li", {}, el("button", {
          type: "button", class: "pick", "data-testid": "state-scope", "data-scope": s.scope,
          onclick: () => openScope(s.scope),
        }, s.scope, el("span", { class: "muted" }, " " + s.keys)))));
      error("");
    } catch (err) {
      error(Plantd.problemText(err));
    }
  }

  async function openScope(name, more = false) {
    scope = name;
    document.getElementById("state-scope-name").textContent = name;
    document.querySelectorAll("[data-testid=state-scope]").forEach((b) =>
      b.setAttribute("aria-current", b.dataset.scope === name ? "true" : "false"));
    const params = { scope: name, limit: 100 };
    const prefix = document.getElementById("state-prefix").value;
    if (prefix) params.prefix = prefix;
    if (more && next) params.after = next;
    try {
      const answer = await Plantd.call(STATE, "list", params);
      const body = document.getElementById("state-key-rows");
      const rows = answer.keys.map((k) => el("tr", {
        "data-testid": "state-key-row", "data-key": k.key, class: "clickable", tabindex: "0",
        onclick: () => openKey(k.key),
        onkeydown: (event) => { if (event.key === "Enter") openKey(k.key); },
      }, el("td", {}, k.key), el("td", { class: "num" }, k.revision), el("td", { class: "num" }, k.version)));
      if (more) body.append(...rows); else body.replaceChildren(...rows);
      next = answer.next;
      document.getElementById("state-more").hidden = !next;
      error("");
    } catch (err) {
      error(Plantd.problemText(err));
    }
  }

  async function openKey(key) {
    try {
      current = await Plantd.call(STATE, "get", { scope, key });
      document.getElementById("state-key-name").textContent = key;
      document.getElementById("state-value").textContent = JSON.stringify(current.value, null, 2);
      document.getElementById("state-meta").textContent = "revision " + current.revision + ", version " + current.version;
      const edit = document.getElementById("state-edit");
      if (edit) {
        edit.hidden = false;
        document.getElementById("state-set-value").value = JSON.stringify(current.value);
      }
      error("");
    } catch (err) {
      error(Plantd.problemText(err));
    }
  }

  function reviewSet() {
    let value;
    try {
      value = JSON.parse(document.getElementById("state-set-value").value);
    } catch (err) {
      error("The new value is not JSON: " + err.message);
      return;
    }
    error("");
    current.newValue = value;
    document.getElementById("state-set-summary").textContent = "Set key “" + current.key + "” in scope “" +
      current.scope + "” to " + JSON.stringify(value) + " (only if its revision is still " + current.revision + ")?";
    Plantd.message(document.getElementById("state-set-result"), "");
    document.getElementById("state-set-confirm").hidden = false;
    document.getElementById("state-set-dialog").showModal();
  }

  async function confirmSet() {
    const result = document.getElementById("state-set-result");
    const confirm = document.getElementById("state-set-confirm");
    confirm.disabled = true;
    try {
      const answer = await Plantd.call(STATE, "set", {
        scope: current.scope, key: current.key, value: current.newValue, if_revision: current.revision,
      });
      Plantd.message(result, "Set: revision " + answer.revision + ", version " + answer.version, "ok");
      confirm.hidden = true;
      openKey(current.key);
    } catch (err) {
      Plantd.message(result, Plantd.problemText(err), "error");
    } finally {
      confirm.disabled = false;
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.getElementById("state-prefix").addEventListener("change", () => scope && openScope(scope));
    document.getElementById("state-more").addEventListener("click", () => openScope(scope, true));
    const setButton = document.getElementById("state-set-button");
    if (setButton) {
      setButton.addEventListener("click", reviewSet);
      document.getElementById("state-set-confirm").addEventListener("click", confirmSet);
      document.getElementById("state-set-cancel").addEventListener("click", () =>
        document.getElementById("state-set-dialog").close());
    }
    loadScopes();
  });
})();
