/* The login form: POST /api/v1/login as JSON; the session cookie is all the browser keeps.
 * On success, go to the page asked for (the server checked that `next` is a path here). */
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("login-form");
  const error = form.querySelector('[data-testid="login-error"]');
  const submit = form.querySelector('[data-testid="login-submit"]');

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const user = form.elements.user.value.trim();
    const password = form.elements.password.value;
    if (!user || !password) {
      Plantd.message(error, "Enter your user name and password.", "error");
      return;
    }
    submit.disabled = true;
    Plantd.message(error, "");
    try {
      const answer = await Plantd.request("POST", "/api/v1/login", { user, password });
      if (answer.ok) {
        location.assign(form.dataset.next || "/");
        return;
      }
      const detail = (answer.data && answer.data.detail) || "HTTP " + answer.status;
      const text = answer.status === 401 ? "Wrong user name or password." :
        answer.status === 429 ? "Too many attempts: " + detail : detail;
      Plantd.message(error, text, "error");
      form.elements.password.value = "";
      form.elements.password.focus();
    } catch (err) {
      Plantd.message(error, Plantd.problemText(err), "error");
    } finally {
      submit.disabled = false;
    }
  });
});
