/* coldwatch shipments and sites: create a shipment, assign and remove devices, start / deliver / cancel, make a
   share link, and the site board that refreshes itself. Uses api(), flash() (app.js) and livePart() (ops.js). */
"use strict";

function shipmentBody(form) {
  const body = {};
  for (const name of ["reference", "origin", "destination", "customer", "product", "profile", "language"]) {
    const value = form[name].value.trim();
    if (value) body[name] = value;
  }
  for (const name of ["temp_low_c", "temp_high_c"]) {
    if (form[name].value !== "") body[name] = Number(form[name].value);
  }
  for (const name of ["planned_start", "planned_end"]) {
    if (form[name].value) body[name] = new Date(form[name].value).getTime();
  }
  return body;
}

function setupShipmentForm() {
  const form = document.getElementById("shipment-form");
  if (!form) return;
  const error = document.getElementById("shipment-error");
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    formError(error, "");
    const body = shipmentBody(form);
    if (body.temp_low_c !== undefined && body.temp_high_c !== undefined && !(body.temp_low_c < body.temp_high_c)) {
      formError(error, t("The lower limit must be below the upper limit.")); return;
    }
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    try {
      const made = await api("POST", "/api/v1/shipments", body);
      location.assign(`/ui/shipments/${encodeURIComponent(made.reference)}`);
    } catch (err) {
      formError(error, err.message);
      button.disabled = false;
    }
  });
}

function setupShipment() {
  const actions = document.getElementById("shipment-actions");
  if (actions) {
    const ref = encodeURIComponent(actions.dataset.shipment);
    for (const b of actions.querySelectorAll("[data-state]")) {
      b.addEventListener("click", async () => {
        if (b.dataset.state === "cancelled" && !window.confirm(b.textContent.trim() + "?")) return;
        b.disabled = true;
        try {
          await api("POST", `/api/v1/shipments/${ref}/state`, { state: b.dataset.state });
          location.reload();
        } catch (err) { flash(err.message); b.disabled = false; }
      });
    }
  }
  const form = document.getElementById("assign-form");
  if (form) {
    const ref = encodeURIComponent(form.dataset.shipment);
    const error = document.getElementById("assign-error");
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      formError(error, "");
      try {
        await api("POST", `/api/v1/shipments/${ref}/devices`, { kind: form.kind.value, device_id: form.device_id.value.trim() });
        location.reload();
      } catch (err) { formError(error, err.message); }
    });
    for (const b of document.querySelectorAll("[data-unassign]")) {
      b.addEventListener("click", async () => {
        try {
          await api("DELETE", `/api/v1/shipments/${ref}/devices/${b.dataset.unassign}`);
          location.reload();
        } catch (err) { flash(err.message); }
      });
    }
  }
  const share = document.getElementById("share");
  if (share) {
    share.addEventListener("click", async () => {
      share.disabled = true;
      try {
        const link = await api("POST", `/api/v1/shipments/${encodeURIComponent(share.dataset.shipment)}/share`, { days: 14 });
        const box = document.getElementById("share-link");
        document.getElementById("share-url").value = link.url;
        box.hidden = false;
      } catch (err) { flash(err.message); }
      share.disabled = false;
    });
  }
}

function setupLiveParts() {
  for (const id of ["tiles", "shipment-live"]) {
    const holder = document.getElementById(id);
    if (holder && holder.dataset.poll) livePart(holder);
  }
}

document.addEventListener("DOMContentLoaded", () => { setupShipmentForm(); setupShipment(); setupLiveParts(); });
