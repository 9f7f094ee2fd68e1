/* coldwatch ops pages: start a rollout or a training job, pages that refresh themselves (poll an HTML part and
   swap it in), and the promote / halt / roll back buttons. Uses api(), flash() and localTimes() from app.js. */
"use strict";

const POLL_MS = 2500, FINAL_POLL_MS = 10000;

/* Poll the part `holder.dataset.poll` and swap it in; slower once its root says data-final, never on a hidden tab. */
function livePart(holder, onSwap) {
  const live = document.getElementById("live");
  let failures = 0;
  const tick = async () => {
    let next = POLL_MS;
    if (!document.hidden) {
      try {
        const response = await fetch(holder.dataset.poll, { credentials: "same-origin" });
        if (response.status === 401) {
          flash(t("Your session has ended. Log in again to follow this page."));
          if (live) { live.textContent = t("stopped"); live.className = "live off"; }
          return;
        }
        if (!response.ok) throw new Error(t("The server answered %(status)s.", { status: response.status }));
        const html = await response.text();
        if (holder.tagName === "TBODY") {
          const tmp = document.createElement("table");
          tmp.innerHTML = html;
          const body = tmp.querySelector("tbody");
          holder.replaceWith(body);
          holder = body;
        } else {
          holder.innerHTML = html;
        }
        localTimes(holder);
        failures = 0;
        if (live) { live.textContent = `live · updated ${new Date().toLocaleTimeString()}`; live.className = "live on"; }
        if (onSwap) onSwap(holder);
      } catch (err) {
        failures++;
        if (live) { live.textContent = t("reconnecting…"); live.className = "live off"; }
        if (failures === 3) flash(t("Could not refresh this page: %(error)s", { error: err.message }));
      }
    }
    const root = holder.matches("[data-final]") ? holder : holder.querySelector("[data-final]");
    if (root && root.dataset.final) next = FINAL_POLL_MS;
    setTimeout(tick, next);
  };
  setTimeout(tick, POLL_MS);
}

function localMs(value) { return new Date(value).getTime(); }

function localInput(ms) {
  const d = new Date(ms - new Date().getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 16);
}

function formError(box, message) { box.textContent = message; box.hidden = !message; }

/* ---- rollouts: start ----------------------------------------------------------------------------------- */
function setupRolloutForm() {
  const form = document.getElementById("rollout-form");
  if (!form) return;
  const error = document.getElementById("rollout-error");
  for (const box of form.querySelectorAll('input[name="gateway"]')) {
    box.addEventListener("change", () => { form.querySelector('input[name="group"][value="chosen"]').checked = true; });
  }
  const site = document.getElementById("ro-site");
  if (site) site.addEventListener("change", () => { form.querySelector('input[name="group"][value="site"]').checked = true; });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    formError(error, "");
    const fraction = Number(form.canary_fraction.value), minutes = Number(form.probation_min.value);
    const ratio = Number(form.max_alert_ratio.value), evidence = Number(form.min_sensor_hours.value);
    if (!(fraction >= 0 && fraction <= 1)) { formError(error, t("The canary fraction is a number from 0 to 1.")); return; }
    if (!(minutes > 0)) { formError(error, t("The probation must be at least a minute.")); return; }
    if (!(ratio > 0)) { formError(error, t("The alert ratio must be above 0.")); return; }
    if (!(evidence > 0)) { formError(error, t("The evidence must be above 0 sensor-hours.")); return; }
    const body = { model: form.model.value, canary_fraction: fraction, probation_s: minutes * 60, max_alert_ratio: ratio,
                   min_sensor_hours: evidence };
    const group = form.querySelector('input[name="group"]:checked').value;
    if (group === "site") body.site = form.site.value;
    if (group === "chosen") {
      body.gateways = [...form.querySelectorAll('input[name="gateway"]:checked')].map((b) => b.value);
      if (!body.gateways.length) { formError(error, t("Tick at least one gateway, or choose every gateway.")); return; }
    }
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    try {
      const started = await api("POST", "/api/v1/rollouts", body);
      sessionStorage.setItem("coldwatch-flash", t("Rollout #%(id)s of %(model)s started.", { id: started.id, model: started.model_stem }));
      location.assign(`/ui/rollouts/${started.id}`);
    } catch (err) {
      formError(error, err.message);
      button.disabled = false;
    }
  });
}

/* ---- rollouts: detail ---------------------------------------------------------------------------------- */
function setupRollout() {
  const holder = document.getElementById("rollout-live");
  if (!holder) return;
  const actions = document.getElementById("rollout-actions");
  const sync = () => {
    if (!actions) return;
    const state = holder.querySelector("#rollout-state").dataset;
    const allowed = { promote: state.canPromote, halt: state.canHalt, rollback: state.canRollback };
    for (const b of actions.querySelectorAll("[data-op]")) { b.hidden = !allowed[b.dataset.op]; b.disabled = false; }
  };
  sync();
  livePart(holder, sync);
  if (!actions) return;
  const id = actions.dataset.rollout;
  const words = { promote: t("Promoted."), halt: t("Halted."), rollback: t("Rolled back.") };
  const ask = { rollback: t("Send every gateway of this rollout its previous model?"), halt: t("Stop sending this model to further gateways?") };
  for (const b of actions.querySelectorAll("[data-op]")) {
    b.addEventListener("click", async () => {
      const op = b.dataset.op;
      if (ask[op] && !window.confirm(ask[op])) return;
      const reason = document.getElementById("ro-reason").value.trim() || undefined;
      for (const x of actions.querySelectorAll("[data-op]")) x.disabled = true;
      try {
        await api("POST", `/api/v1/rollouts/${id}/${op}`, op === "promote" ? undefined : { reason });
        flash(words[op], "ok");
        const response = await fetch(holder.dataset.poll, { credentials: "same-origin" });
        if (response.ok) { holder.innerHTML = await response.text(); localTimes(holder); }
      } catch (err) {
        flash(err.message);
      }
      sync();
    });
  }
}

/* ---- model page: the shadow table follows the canaries' reports ------------------------------------------ */
function setupModel() {
  const shadows = document.getElementById("shadows-live");
  if (shadows) livePart(shadows);
}

/* ---- retraining ---------------------------------------------------------------------------------------- */
function setupTraining() {
  const rows = document.getElementById("job-rows");
  if (rows) livePart(rows);
  const job = document.getElementById("job-live");
  if (job) livePart(job);
  const form = document.getElementById("training-form");
  if (!form) return;
  const error = document.getElementById("training-error");
  const now = Date.now();
  form.from.value = localInput(now - 7 * 86400e3);
  form.to.value = localInput(now);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    formError(error, "");
    const start = localMs(form.from.value), end = localMs(form.to.value);
    if (!(start < end)) { formError(error, "“From” must be before “to”."); return; }
    const epochs = Number(form.epochs.value);
    if (!(epochs >= 1 && epochs <= 200)) { formError(error, t("Epochs: from 1 to 200.")); return; }
    const body = { profile: form.profile.value, start, end, epochs };
    const version = form.version.value.trim();
    if (version) {
      if (!/^[A-Za-z0-9_.]+$/.test(version)) { formError(error, t("A version has letters, digits, “_” and “.” only.")); return; }
      body.version = version;
    }
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    try {
      const job = await api("POST", "/api/v1/training-jobs", body);
      sessionStorage.setItem("coldwatch-flash", t("Training job #%(id)s queued.", { id: job.id }));
      location.assign(`/ui/training/${job.id}`);
    } catch (err) {
      formError(error, err.message);
      button.disabled = false;
    }
  });
}

document.addEventListener("DOMContentLoaded", () => { setupRolloutForm(); setupRollout(); setupModel(); setupTraining(); });
