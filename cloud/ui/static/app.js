/* coldwatch dashboard: API calls with readable errors, local times, login/logout, the live inbox, alert
   workflow buttons and keys, the sensor page's chart and reports. No dependencies, no build step. */
"use strict";

const flashBox = document.getElementById("flash");

/* The page's language: base.html hands over the translations of what this script says (cloud/ui/wording.py
   SCRIPT_TEXT; empty in English). `t("Resolved as %(code)s.", {code})` fills in the named values. */
const uiText = JSON.parse(document.getElementById("ui-text")?.textContent || "{}");
function t(message, values = {}) {
  return (uiText[message] || message).replace(/%\((\w+)\)s/g, (_, name) => String(values[name] ?? ""));
}

function flash(message, kind = "error") {
  flashBox.textContent = message;
  flashBox.className = "flash " + kind;
  flashBox.hidden = false;
  if (kind !== "error") setTimeout(() => { flashBox.hidden = true; }, 4000);
}

/* Parse the API's error bodies ({"message"}, {"detail": "…"} or FastAPI's list) into one sentence. */
function errorText(status, body) {
  if (status === 401) return t("Your session has ended. Log in again.");
  if (status === 403) return t("Your role does not allow this.");
  if (body && typeof body === "object") {
    if (body.message) return body.message;
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail) && body.detail.length) return body.detail.map((d) => d.msg).join("; ");
  }
  if (status === 503) return t("A database the server needs is unavailable; try again shortly.");
  return t("The server answered %(status)s.", { status });
}

async function api(method, url, body) {
  let response;
  try {
    response = await fetch(url, {
      method, credentials: "same-origin",
      headers: body === undefined ? {} : { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new Error(t("The server cannot be reached. Check the connection and try again."));
  }
  let data = null;
  const type = response.headers.get("content-type") || "";
  if (type.includes("application/json")) { try { data = await response.json(); } catch (e) { data = null; } }
  if (!response.ok) {
    const err = new Error(errorText(response.status, data));
    err.status = response.status;
    throw err;
  }
  return data;
}

function localTimes(root = document) {
  for (const el of root.querySelectorAll("time[data-ts]")) {
    const ts = Number(el.dataset.ts);
    if (!el.dataset.ts || !ts) continue;
    if (el.hasAttribute("title")) continue; // an age ("3 min ago"): the title holds the absolute time
    el.title = el.textContent;
    el.textContent = new Date(ts).toLocaleString();
  }
}

function typing(e) {
  const t = e.target;
  return t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable);
}

/* ---- login / logout ---------------------------------------------------------------------------------- */
function setupLogin() {
  const form = document.getElementById("login-form");
  if (!form) return;
  const error = document.getElementById("login-error");
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.hidden = true;
    const username = form.username.value.trim(), password = form.password.value;
    if (!username || !password) { error.textContent = t("Enter your user name and password."); error.hidden = false; return; }
    try {
      await api("POST", "/api/v1/auth/login", { username, password });
      location.assign(form.dataset.next || "/ui/alerts");
    } catch (err) {
      error.textContent = err.status === 401 ? t("Wrong user name or password.") : err.message;
      error.hidden = false;
      form.password.select();
    }
  });
}

/* The language selector posts its form (POST /ui/language) as soon as a language is picked. */
function setupLanguage() {
  const select = document.getElementById("language");
  if (!select) return;
  document.getElementById("language-apply").hidden = true;
  select.addEventListener("change", () => select.form.submit());
}

function setupLogout() {
  const button = document.getElementById("logout");
  if (!button) return;
  button.addEventListener("click", async () => {
    try { await api("POST", "/api/v1/auth/logout"); } catch (err) { /* already logged out: go on */ }
    location.assign("/login");
  });
}

/* ---- inbox: live over server-sent events ------------------------------------------------------------ */
function setupInbox() {
  const live = document.getElementById("live");
  if (!live) return;
  let cursor = live.dataset.cursor;
  let source = null;
  const refresh = async (opened) => {
    const response = await fetch("/ui/alerts/rows" + location.search, { credentials: "same-origin" });
    if (!response.ok) { flash(response.status === 401 ? t("Your session has ended. Log in again.") : t("Could not refresh the alerts.")); return; }
    const holder = document.createElement("tbody");
    const html = await response.text();
    const tmp = document.createElement("table");
    tmp.innerHTML = html;
    const rows = tmp.querySelector("tbody") || holder;
    document.getElementById("alert-rows").replaceWith(rows);
    localTimes(rows);
    let fresh = 0;
    for (const id of opened) {
      const row = rows.querySelector(`tr[data-alert="${id}"]`);
      if (row) { row.classList.add("new"); fresh++; }
    }
    for (const s of ["open", "acknowledged", "resolved"]) document.getElementById("count-" + s).textContent = rows.dataset[s];
    document.getElementById("count-all").textContent =
      Number(rows.dataset.open) + Number(rows.dataset.acknowledged) + Number(rows.dataset.resolved);
    document.getElementById("total").textContent = rows.dataset.total;
    document.getElementById("shown").firstChild.textContent = t("Showing %(shown)s of", { shown: rows.querySelectorAll("tr[data-alert]").length }) + " ";
    live.textContent = t("live · updated %(time)s", { time: new Date().toLocaleTimeString() }) + (fresh ? t(" · %(n)s new", { n: fresh }) : "");
  };
  const connect = () => {
    source = new EventSource("/ui/events?cursor=" + encodeURIComponent(cursor));
    source.onopen = () => { live.textContent = t("live"); live.className = "live on"; };
    source.addEventListener("alerts", (e) => {
      const data = JSON.parse(e.data);
      cursor = String(data.cursor);
      refresh(data.opened || []).catch((err) => flash(err.message));
    });
    source.addEventListener("session", (e) => {
      source.close();
      live.textContent = t("stopped"); live.className = "live off";
      flash(JSON.parse(e.data).message);
    });
    source.onerror = async () => {
      live.textContent = t("reconnecting…"); live.className = "live off";
      if (source.readyState !== EventSource.CLOSED) return; // the browser retries by itself
      try {
        await api("GET", "/api/v1/auth/me");
        setTimeout(connect, 5000);
      } catch (err) {
        live.textContent = t("stopped");
        flash(err.status === 401 ? t("Your session has ended. Log in again to see new alerts.") : err.message);
        if (err.status !== 401) setTimeout(connect, 10000);
      }
    };
  };
  connect();
  for (const select of document.querySelectorAll("#filters select")) {
    select.addEventListener("change", () => select.form.requestSubmit());
  }
}

/* ---- charts ----------------------------------------------------------------------------------------- */
function seriesLoader(sensor) {
  return (start, end, points) =>
    api("GET", `/api/v1/sensors/${encodeURIComponent(sensor)}/series?start=${start}&end=${end}&points=${points}`);
}

function pressed(group, button) {
  for (const b of group.querySelectorAll("button[aria-pressed]")) b.setAttribute("aria-pressed", "false");
  if (button) button.setAttribute("aria-pressed", "true");
}

/* ---- alert detail ----------------------------------------------------------------------------------- */
function setupAlert() {
  const el = document.getElementById("chart");
  if (!el || document.body.dataset.page !== "alert") return;
  const started = Number(el.dataset.start), ended = Number(el.dataset.end) || started;
  const chart = new ColdChart(el, {
    // An alert still active at the gateway is marked to the right edge of the chart.
    load: seriesLoader(el.dataset.sensor), marks: [{ start: started, end: el.dataset.active ? null : ended }],
    threshold: el.dataset.threshold ? Number(el.dataset.threshold) : null,
  });
  chart.load(started - 1800e3, ended + 1800e3, { home: true });
  const group = document.querySelector(".ranges");
  for (const b of group.querySelectorAll("button[data-pad]")) {
    b.addEventListener("click", () => { pressed(group, b); chart.load(started - Number(b.dataset.pad), ended + Number(b.dataset.pad), { home: true }); });
  }
  group.querySelector("[data-zoom-reset]").addEventListener("click", () => chart.reset());

  const actions = document.getElementById("actions");
  if (!actions) return;
  const id = actions.dataset.alert, base = `/api/v1/alerts/${id}`;
  const note = document.getElementById("note");
  const run = async (label, method, url, body) => {
    for (const b of actions.querySelectorAll("button")) b.disabled = true;
    try {
      await api(method, url, body);
      sessionStorage.setItem("coldwatch-flash", label);
      location.reload();
    } catch (err) {
      flash(err.message);
      for (const b of actions.querySelectorAll("button")) b.disabled = false;
    }
  };
  const text = () => note.value.trim() || undefined;
  const handlers = {
    acknowledge: () => run(t("Acknowledged."), "POST", base + "/acknowledge", { comment: text() }),
    assign: () => run(t("Assigned."), "POST", base + "/assign", { assignee: document.getElementById("assign-to").value || null }),
    comment: () => {
      if (!text()) { flash(t("Write the comment first.")); note.focus(); return; }
      run(t("Comment added."), "POST", base + "/comments", { text: text() });
    },
    reopen: () => run(t("Reopened."), "POST", base + "/reopen", { comment: text() }),
  };
  for (const b of actions.querySelectorAll("[data-action]")) b.addEventListener("click", handlers[b.dataset.action]);
  const resolve = (code) => {
    if (code === "other" && !text()) { flash(t("“Other” needs a note: say what happened.")); note.focus(); return; }
    run(t("Resolved as %(code)s.", { code }), "POST", base + "/resolve", { reason_code: code, note: text() });
  };
  const codes = [...actions.querySelectorAll("[data-resolve]")];
  for (const b of codes) b.addEventListener("click", () => resolve(b.dataset.resolve));
  document.addEventListener("keydown", (e) => {
    if (typing(e) || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "a" && actions.querySelector('[data-action="acknowledge"]')) { e.preventDefault(); handlers.acknowledge(); }
    const n = Number(e.key);
    if (n >= 1 && n <= codes.length) { e.preventDefault(); resolve(codes[n - 1].dataset.resolve); }
  });
}

/* ---- sensor page ------------------------------------------------------------------------------------ */
function setupSensor() {
  const el = document.getElementById("chart");
  if (!el || document.body.dataset.page !== "sensor") return;
  const sensor = el.dataset.sensor;
  const facts = document.getElementById("report-facts");
  const csv = document.getElementById("report-csv"), pdf = document.getElementById("report-pdf");
  const report = async (start, end) => {
    const q = `/api/v1/reports/sensors/${encodeURIComponent(sensor)}?start=${start}&end=${end}`;
    csv.href = q + "&format=csv"; pdf.href = q + "&format=pdf";
    try {
      const r = await api("GET", q);
      const f = (v, d, u) => (v === null || v === undefined ? "—" : v.toFixed(d) + u);
      const rows = [[t("Completeness"), f(r.completeness_pct, 2, " %")], [t("Readings"), String(r.readings)],
        [t("Missing"), String(r.missing)], [t("Min / mean / max"), `${f(r.min_c, 2, "")} / ${f(r.mean_c, 2, "")} / ${f(r.max_c, 2, " °C")}`],
        [t("MKT"), f(r.mkt_c, 2, " °C")], [t("Time out of band"), t("%(n)s min", { n: Math.round(r.time_out_of_band_s / 60) })],
        [t("Excursions"), String(r.excursions.length)]];
      facts.replaceChildren(...rows.map(([k, v]) => {
        const div = document.createElement("div"), dt = document.createElement("dt"), dd = document.createElement("dd");
        dt.textContent = k; dd.textContent = v; div.append(dt, dd); return div;
      }));
    } catch (err) {
      facts.textContent = t("The report could not be computed: %(error)s", { error: err.message });
    }
  };
  const group = document.querySelector(".ranges");
  const chart = new ColdChart(el, {
    load: seriesLoader(sensor),
    onRange: (start, end) => {
      if (chart.home && (start !== chart.home[0] || end !== chart.home[1])) pressed(group, null);
      report(start, end);
    },
  });
  const lastSeen = Number(el.dataset.lastSeen) || Date.now();
  const endAt = () => Math.min(Date.now(), lastSeen + 600e3);
  chart.load(endAt() - 86400e3, endAt(), { home: true });
  for (const b of group.querySelectorAll("button[data-last]")) {
    b.addEventListener("click", () => { pressed(group, b); chart.load(endAt() - Number(b.dataset.last), endAt(), { home: true }); });
  }
  group.querySelector("[data-zoom-reset]").addEventListener("click", () => chart.reset());
  document.getElementById("custom-range").addEventListener("submit", (e) => {
    e.preventDefault();
    const from = new Date(e.target.from.value).getTime(), to = new Date(e.target.to.value).getTime();
    if (!(from < to)) { flash(t("“From” must be before “To”.")); return; }
    if (to - from > 31 * 86400e3) { flash(t("At most 31 days at a time.")); return; }
    pressed(group, null);
    chart.load(from, to, { home: true });
  });
}

document.addEventListener("DOMContentLoaded", () => {
  localTimes();
  const pending = sessionStorage.getItem("coldwatch-flash");
  if (pending) { sessionStorage.removeItem("coldwatch-flash"); flash(pending, "ok"); }
  setupLogin(); setupLanguage(); setupLogout(); setupInbox(); setupAlert(); setupSensor();
});
