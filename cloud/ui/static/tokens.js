/* coldwatch API tokens page: create a token (its secret shown once, until hidden or the page is left), revoke one, and the
   table fetched again after each. Uses api(), flash() and localTimes() from app.js, formError() from ops.js. */
"use strict";

async function refreshTokens() {
  const holder = document.getElementById("token-rows");
  let response;
  try {
    response = await fetch(holder.dataset.rows, { credentials: "same-origin" });
  } catch (err) {
    flash(t("The server cannot be reached; reload the page to see the tokens."));
    return;
  }
  if (response.status === 401) { flash(t("Your session has ended. Log in again.")); return; }
  if (!response.ok) { flash(t("Could not refresh the tokens: the server answered %(status)s.", { status: response.status })); return; }
  const tmp = document.createElement("table");
  tmp.innerHTML = await response.text();
  const body = tmp.querySelector("tbody");
  holder.replaceWith(body);
  localTimes(body);
}

function setupTokenForm() {
  const form = document.getElementById("token-form");
  if (!form) return;
  const error = document.getElementById("token-error");
  const name = document.getElementById("tok-name"), days = document.getElementById("tok-days");
  const secret = document.getElementById("token-secret"), value = document.getElementById("token-value");
  const hide = () => { value.textContent = ""; secret.hidden = true; };
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    formError(error, "");
    const label = name.value.trim(), ttl = Number(days.value), most = Number(days.max);
    if (!label) { formError(error, t("Give the token a name: what will use it?")); name.focus(); return; }
    if (!(Number.isInteger(ttl) && ttl >= 1 && ttl <= most)) {
      formError(error, t("A token is valid for 1 to %(most)s whole days.", { most }));
      days.focus();
      return;
    }
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    hide();
    try {
      const made = await api("POST", "/api/v1/auth/tokens", { name: label, ttl_days: ttl });
      document.getElementById("token-made-name").textContent = made.name;
      value.textContent = made.token;
      secret.hidden = false;
      secret.focus();
      name.value = "";
      await refreshTokens();
    } catch (err) {
      formError(error, err.message);
    }
    button.disabled = false;
  });
  document.getElementById("token-copy").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(value.textContent);
      flash(t("Copied."), "ok");
    } catch (err) {  // no clipboard outside HTTPS or localhost: select it for Ctrl+C
      const range = document.createRange();
      range.selectNodeContents(value);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      flash(t("Selected: press Ctrl+C (⌘C) to copy."), "ok");
    }
  });
  document.getElementById("token-done").addEventListener("click", () => { hide(); name.focus(); });
}

function setupTokenRevoke() {
  const table = document.getElementById("tokens");
  if (!table) return;
  table.addEventListener("click", async (e) => {
    const button = e.target.closest("button[data-revoke]");
    if (!button) return;
    const row = button.closest("tr");
    const named = button.dataset.name ? `“${button.dataset.name}”` : `#${button.dataset.revoke}`;
    const question = row.dataset.owner
      ? t("Revoke the token %(name)s of %(owner)s? Scripts using it are refused from their next request.", { name: named, owner: row.dataset.owner })
      : t("Revoke the token %(name)s? Scripts using it are refused from their next request.", { name: named });
    if (!window.confirm(question)) return;
    button.disabled = true;
    try {
      await api("DELETE", `/api/v1/auth/tokens/${encodeURIComponent(button.dataset.revoke)}`);
      flash(t("Token %(name)s revoked.", { name: named }), "ok");
    } catch (err) {
      flash(err.message);
      button.disabled = false;
    }
    await refreshTokens();
  });
}

document.addEventListener("DOMContentLoaded", () => { setupTokenForm(); setupTokenRevoke(); });
