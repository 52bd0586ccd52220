/* System: the A/B root slots and the last update (GET /api/v1/system, polled), and for an
 * admin a bundle upload (POST /api/v1/system/update). The upload uses XMLHttpRequest, not
 * fetch(): fetch reports no upload progress, and a bundle is hundreds of MiB. */
"use strict";

(() => {
  const { el } = Plantd;
  const POLL_MS = 5000;
  const STATE_TEXT = {
    idle: "No update has been sent from here.",
    installing: "Installing",
    installed: "Installed",
    failed: "Failed",
    rebooting: "Installed; rebooting into it",
  };

  function showSlots(slots) {
    const summary = document.getElementById("slots-summary");
    const rows = document.getElementById("slot-rows");
    if (!slots) {
      summary.textContent = "The slots' states are not known here (not an A/B appliance, or not written yet).";
      rows.replaceChildren();
      return;
    }
    summary.textContent = "Booted: slot " + (slots.booted || "?") + "; next boot: slot " + (slots.primary || "?") +
      (slots.updated ? " (as of " + slots.updated + ")" : "");
    rows.replaceChildren(...Object.entries(slots.slots || {}).map(([slot, state]) =>
      el("tr", { "data-testid": "slot-row", "data-slot": slot, "data-state": state },
        el("td", {}, slot),
        el("td", {}, el("span", { class: "verdict v-" + (state === "good" ? "ok" : state === "trying" ? "degraded" : "failed") }, state)),
        el("td", {}, slot === slots.booted ? "yes" : ""),
        el("td", {}, slot === slots.primary ? "yes" : ""))));
  }

  function showUpdate(update, pending) {
    const status = document.getElementById("update-status");
    const text = STATE_TEXT[update.state] || update.state;
    const parts = [text];
    if (update.bundle) parts.push(update.bundle + (update.by ? ", sent by " + update.by : ""));
    if (update.started) parts.push("started " + update.started);
    if (update.finished) parts.push("ended " + update.finished);
    if (pending && update.state !== "installing") parts.push("a bundle waits to be installed");
    status.textContent = parts.join(" · ");
    status.dataset.state = update.state;
    const message = document.getElementById("update-message");
    message.textContent = update.message || "";
    message.hidden = !update.message;
  }

  async function refresh() {
    try {
      const answer = await Plantd.api("GET", "/api/v1/system");
      showSlots(answer.slots);
      showUpdate(answer.update, answer.pending);
      Plantd.message(document.getElementById("system-error"), "");
    } catch (err) {
      Plantd.message(document.getElementById("system-error"), Plantd.problemText(err), "error");
    }
  }

  function problemOf(xhr) {
    try {
      const body = JSON.parse(xhr.responseText);
      return (body.title || "Error") + " (" + xhr.status + "): " + (body.detail || "");
    } catch (err) {
      return "HTTP " + xhr.status;
    }
  }

  function send(event) {
    event.preventDefault();
    const file = document.getElementById("update-file").files[0];
    const result = document.getElementById("update-result");
    const progress = document.getElementById("update-progress");
    const button = document.getElementById("update-send");
    if (!file) {
      Plantd.message(result, "Choose a bundle (.raucb) first.", "warning");
      return;
    }
    if (!window.confirm("Install " + file.name + " and reboot the device into it?")) return;
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/v1/system/update?name=" + encodeURIComponent(file.name));
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("X-CSRF-Token", document.querySelector('meta[name="csrf-token"]').content);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) progress.value = Math.floor((100 * e.loaded) / e.total);
    };
    xhr.onload = () => {
      button.disabled = false;
      progress.hidden = true;
      if (xhr.status === 202) {
        Plantd.message(result, "Sent: " + file.name + ". The device installs it, then reboots.", "ok");
      } else {
        Plantd.message(result, problemOf(xhr), "error");
      }
      refresh();
    };
    xhr.onerror = () => {
      button.disabled = false;
      progress.hidden = true;
      Plantd.message(result, "The upload did not reach the proxy.", "error");
    };
    button.disabled = true;
    progress.value = 0;
    progress.hidden = false;
    Plantd.message(result, "Sending " + file.name + "…");
    xhr.send(file);
  }

  document.addEventListener("DOMContentLoaded", () => {
    const form = document.getElementById("update-form");
    if (form) form.addEventListener("submit", send);
    refresh();
    setInterval(refresh, POLL_MS);
  });
})();
