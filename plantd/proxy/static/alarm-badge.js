/* The alarm badge in every page's header: how many alarms wait for an acknowledgement and
 * annunciate (not acknowledged, not shelved, not suppressed). Hidden while that is none, or
 * when there is no alarm service (no plantd-control on this device).
 *
 * It reads org.plantd.Alarms list once and then follows `event.alarm.` records; per alarm the
 * record with the highest `seq` wins, so the list answer and the stream may arrive in any
 * order. Cost: one small extra SSE stream per page (only alarm transitions flow on it, a
 * handful an hour on a healthy plant), except on the Alarms page, whose own stream feeds the
 * badge through PlantdAlarmBadge.feed (no second EventSource there).
 */
"use strict";

const PlantdAlarmBadge = (() => {
  const alarms = new Map(); // alarm name -> {seq, waiting}
  let known = false;

  function draw() {
    const badge = document.getElementById("alarm-badge");
    if (!badge) return;
    let count = 0;
    alarms.forEach((alarm) => { if (alarm.waiting) count += 1; });
    badge.dataset.count = String(count);
    document.getElementById("alarm-badge-count").textContent = String(count);
    badge.title = count + " unacknowledged alarm" + (count === 1 ? "" : "s");
    badge.setAttribute("aria-label", badge.title);
    badge.hidden = !known || count === 0;
  }

  function feed(record) {
    if (!record || typeof record.alarm !== "string") return;
    const had = alarms.get(record.alarm);
    const seq = typeof record.seq === "number" ? record.seq : 0;
    if (had && seq < had.seq) return;
    alarms.set(record.alarm, { seq, waiting: !record.acknowledged && !record.shelved && !record.suppressed });
    known = true;
    draw();
  }

  async function load() {
    try {
      const records = await Plantd.call("org.plantd.Alarms", "list", { state: "all" });
      (records || []).forEach(feed);
      known = true;
      draw();
    } catch (err) {
      // No alarm service here (or not allowed to read it): no badge, and nothing to complain
      // about on a page that is not about alarms.
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    if (!document.getElementById("alarm-badge")) return;
    if (document.body.dataset.page === "alarms") return; // fed by the page's own stream
    Plantd.stream(["event.alarm."], { record: (data) => feed(data.record) }, null);
    load();
  });

  return { feed };
})();
