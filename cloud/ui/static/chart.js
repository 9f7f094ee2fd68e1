/* coldwatch chart: stacked canvas panels (temperature with the allowed band, humidity, battery, anomaly score)
   on one time axis; gaps drawn as gaps; drag to zoom, keys to pan/zoom. No dependencies. */
"use strict";

(function () {
  /* The page's translations (app.js's t()); standalone (the chart's own tests) the English text, values filled in. */
  const say = typeof t === "function" ? t : (message, values = {}) =>
    message.replace(/%\((\w+)\)s/g, (_, name) => String(values[name] ?? ""));
  const COLORS = {
    temp: "#1a5fb4", envelope: "rgba(26,95,180,0.16)", band: "rgba(46,160,67,0.16)", bandEdge: "rgba(46,160,67,0.7)",
    rh: "#0f8a8a", battery: "#9a6700", score: "#8e3fb5", threshold: "#c01c28", alert: "rgba(192,28,40,0.12)",
    gap: "rgba(120,120,120,0.28)", grid: "#e3e6ea", axis: "#5a6270", text: "#303640", select: "rgba(26,95,180,0.15)",
  };
  const TICKS = [60e3, 120e3, 300e3, 600e3, 900e3, 1800e3, 3600e3, 7200e3, 10800e3, 21600e3, 43200e3, 86400e3,
    172800e3, 604800e3];
  const PANELS = [
    { key: "temp", label: say("Temperature °C"), weight: 0.44, field: "temp_c" },
    { key: "rh", label: say("Humidity %"), weight: 0.18, field: "rh_pct" },
    { key: "battery", label: say("Battery mV"), weight: 0.16, field: "battery_mv" },
    { key: "score", label: say("Anomaly score"), weight: 0.22, field: "anomaly_score" },
  ];
  const PAD = { left: 56, right: 14, top: 8, bottom: 26, gap: 14 };

  function pad2(n) { return String(n).padStart(2, "0"); }
  function tickLabel(ts, step) {
    const d = new Date(ts);
    const hm = pad2(d.getHours()) + ":" + pad2(d.getMinutes());
    const day = d.toLocaleDateString(undefined, { day: "numeric", month: "short" });
    if (step >= 86400e3) return day;
    return (d.getHours() === 0 && d.getMinutes() === 0) ? day : hm;
  }
  function niceStep(span, target) {
    const raw = span / target;
    const mag = Math.pow(10, Math.floor(Math.log10(raw || 1)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * mag >= raw) return m * mag;
    return 10 * mag;
  }

  class ColdChart {
    /* opts: load(start, end, points) → Promise<series JSON>; onRange(start, end) after every load;
       marks: [{start, end}] alert spans; threshold: the model's decision threshold (or null). */
    constructor(container, opts) {
      this.el = container;
      this.opts = opts;
      this.canvas = document.createElement("canvas");
      this.canvas.tabIndex = 0;
      this.canvas.setAttribute("role", "img");
      this.canvas.setAttribute("aria-label", say("Chart of the sensor's readings"));
      this.readout = document.createElement("div");
      this.readout.className = "readout";
      this.readout.setAttribute("aria-live", "polite");
      this.status = document.createElement("div");
      this.status.className = "chart-status";
      container.append(this.canvas, this.status, this.readout);
      this.data = null;
      this.drag = null;
      this.home = null;
      this.seq = 0;
      this._bind();
      new ResizeObserver(() => this.draw()).observe(container);
    }

    async load(start, end, { home = false } = {}) {
      start = Math.round(start); end = Math.round(end);
      if (home) this.home = [start, end];
      const seq = ++this.seq;
      this.canvas.dataset.state = "loading";
      this.status.textContent = say("Loading…");
      try {
        const width = Math.max(200, this.el.clientWidth - PAD.left - PAD.right);
        const data = await this.opts.load(start, end, Math.min(5000, Math.round(width)));
        if (seq !== this.seq) return;
        this.data = data;
        this.status.textContent = data.buckets.length ? "" : say("No readings in this range.");
        this.draw();
        if (this.opts.onRange) this.opts.onRange(data.start, data.end);
      } catch (err) {
        if (seq !== this.seq) return;
        this.canvas.dataset.state = "error";
        this.status.textContent = say("Could not load the readings: %(error)s", { error: err.message });
      }
    }

    reset() { if (this.home) this.load(this.home[0], this.home[1]); }

    zoom(factor, centre) {
      if (!this.data) return;
      const { start, end } = this.data;
      const c = centre ?? (start + end) / 2;
      const span = Math.max(60e3, (end - start) * factor);
      const maxSpan = 31 * 86400e3;
      const s = Math.max(0, c - Math.min(span, maxSpan) / 2);
      this.load(s, s + Math.min(span, maxSpan));
    }

    pan(fraction) {
      if (!this.data) return;
      const shift = (this.data.end - this.data.start) * fraction;
      this.load(this.data.start + shift, this.data.end + shift);
    }

    _bind() {
      const c = this.canvas;
      c.addEventListener("pointerdown", (e) => {
        if (!this.data || e.button !== 0) return;
        c.setPointerCapture(e.pointerId);
        this.drag = { x0: e.offsetX, x1: e.offsetX };
      });
      c.addEventListener("pointermove", (e) => {
        if (this.drag) { this.drag.x1 = e.offsetX; this.draw(); } else this._hover(e.offsetX);
      });
      c.addEventListener("pointerup", () => {
        const d = this.drag; this.drag = null;
        if (!d || Math.abs(d.x1 - d.x0) < 6) { this.draw(); return; }
        const a = this._tsAt(Math.min(d.x0, d.x1)), b = this._tsAt(Math.max(d.x0, d.x1));
        this.load(a, Math.max(b, a + 60e3));
      });
      c.addEventListener("dblclick", (e) => this.zoom(2, this._tsAt(e.offsetX)));
      c.addEventListener("keydown", (e) => {
        const keys = { ArrowLeft: () => this.pan(-0.25), ArrowRight: () => this.pan(0.25), "+": () => this.zoom(0.5),
          "=": () => this.zoom(0.5), "-": () => this.zoom(2), "0": () => this.reset(), Escape: () => { this.drag = null; this.draw(); } };
        if (keys[e.key]) { e.preventDefault(); keys[e.key](); }
      });
    }

    _tsAt(x) {
      const { start, end } = this.data;
      const w = this.canvas.clientWidth - PAD.left - PAD.right;
      return start + Math.min(1, Math.max(0, (x - PAD.left) / w)) * (end - start);
    }

    _hover(x) {
      if (!this.data || !this.data.buckets.length) return;
      const ts = this._tsAt(x);
      let best = null;
      for (const b of this.data.buckets) if (!best || Math.abs(b.ts - ts) < Math.abs(best.ts - ts)) best = b;
      if (!best || Math.abs(best.ts - ts) > 3 * this._step()) { this.readout.textContent = ""; return; }
      const f = (v, d, u) => (v === null || v === undefined ? "—" : v.toFixed(d) + u);
      this.readout.textContent = say("%(time)s · %(temp)s (min %(min)s, max %(max)s) · %(rh)s · %(battery)s · score %(score)s · %(n)s reading(s)", {
        time: new Date(best.ts).toLocaleString(), temp: f(best.temp_c, 2, " °C"), min: f(best.temp_min, 2, ""),
        max: f(best.temp_max, 2, ""), rh: f(best.rh_pct, 0, " %"), battery: f(best.battery_mv, 0, " mV"),
        score: f(best.anomaly_score, 3, ""), n: best.n });
    }

    _step() {
      const b = this.data.buckets;
      const diffs = [];
      for (let i = 1; i < b.length; i++) diffs.push(b[i].ts - b[i - 1].ts);
      diffs.sort((x, y) => x - y);
      return Math.max(this.data.bucket_ms, diffs.length ? diffs[Math.floor(diffs.length / 2)] : 0);
    }

    draw() {
      const dpr = window.devicePixelRatio || 1;
      const cssW = Math.max(280, this.el.clientWidth);
      const cssH = Math.max(300, Math.min(520, Math.round(cssW * 0.55)));
      const c = this.canvas;
      if (c.width !== Math.round(cssW * dpr) || c.height !== Math.round(cssH * dpr)) {
        c.width = Math.round(cssW * dpr); c.height = Math.round(cssH * dpr);
        c.style.width = cssW + "px"; c.style.height = cssH + "px";
      }
      const g = c.getContext("2d");
      g.setTransform(dpr, 0, 0, dpr, 0, 0);
      g.clearRect(0, 0, cssW, cssH);
      if (!this.data) return;
      const { start, end, buckets } = this.data;
      const W = cssW - PAD.left - PAD.right;
      const usable = cssH - PAD.top - PAD.bottom - PAD.gap * (PANELS.length - 1);
      const x = (ts) => PAD.left + ((ts - start) / (end - start)) * W;
      const breakAfter = 2.5 * this._step();
      let y0 = PAD.top, drawn = 0;
      this.segments = 0;
      g.font = "11px system-ui, sans-serif";
      for (const p of PANELS) {
        const h = usable * p.weight;
        drawn += this._panel(g, p, { x, y0, h, W, start, end, buckets, breakAfter });
        y0 += h + PAD.gap;
      }
      this._timeAxis(g, x, start, end, y0 - PAD.gap, W);
      if (this.drag) {
        g.fillStyle = COLORS.select;
        const a = Math.min(this.drag.x0, this.drag.x1), b = Math.max(this.drag.x0, this.drag.x1);
        g.fillRect(a, PAD.top, b - a, y0 - PAD.gap - PAD.top);
      }
      c.dataset.start = String(start);
      c.dataset.end = String(end);
      c.dataset.points = String(buckets.length);
      c.dataset.drawn = String(drawn);
      c.dataset.gaps = String((this.data.gaps || []).length);
      c.dataset.segments = String(this.segments);
      c.dataset.state = buckets.length ? "ready" : "empty";
    }

    _panel(g, p, ctx) {
      const { x, y0, h, W, start, end, buckets, breakAfter } = ctx;
      const data = this.data;
      const vals = [];
      for (const b of buckets) {
        const v = b[p.field];
        if (v !== null && v !== undefined) vals.push(v);
        if (p.key === "temp") { if (b.temp_min !== null) vals.push(b.temp_min); if (b.temp_max !== null) vals.push(b.temp_max); }
      }
      if (p.key === "temp") for (const v of [data.band_low_c, data.band_high_c]) if (v !== null && v !== undefined) vals.push(v);
      if (p.key === "score") { vals.push(0, 1); if (this.opts.threshold) vals.push(this.opts.threshold); }
      let lo = vals.length ? Math.min(...vals) : 0, hi = vals.length ? Math.max(...vals) : 1;
      const padding = Math.max((hi - lo) * 0.08, p.key === "battery" ? 20 : 0.5);
      lo -= padding; hi += padding;
      const y = (v) => y0 + h - ((v - lo) / (hi - lo)) * h;
      // frame, grid, labels
      g.strokeStyle = COLORS.grid; g.lineWidth = 1; g.fillStyle = COLORS.axis; g.textAlign = "right"; g.textBaseline = "middle";
      const step = niceStep(hi - lo, h > 120 ? 5 : 2);
      for (let v = Math.ceil(lo / step) * step; v <= hi; v += step) {
        g.beginPath(); g.moveTo(PAD.left, y(v)); g.lineTo(PAD.left + W, y(v)); g.stroke();
        g.fillText(Math.abs(step) < 1 ? v.toFixed(2) : String(Math.round(v * 10) / 10), PAD.left - 6, y(v));
      }
      g.save();
      g.beginPath(); g.rect(PAD.left, y0, W, h); g.clip();
      if (p.key === "temp" && data.profile) {
        const top = data.band_high_c === null ? y0 : y(data.band_high_c);
        const bottom = data.band_low_c === null ? y0 + h : y(data.band_low_c);
        g.fillStyle = COLORS.band; g.fillRect(PAD.left, top, W, bottom - top);
        g.strokeStyle = COLORS.bandEdge; g.setLineDash([4, 3]);
        for (const v of [data.band_low_c, data.band_high_c]) if (v !== null) { g.beginPath(); g.moveTo(PAD.left, y(v)); g.lineTo(PAD.left + W, y(v)); g.stroke(); }
        g.setLineDash([]);
      }
      g.fillStyle = COLORS.alert;
      for (const m of this.opts.marks || []) g.fillRect(x(m.start), y0, Math.max(2, x(m.end || end) - x(m.start)), h);
      for (const gap of data.gaps || []) this._hatch(g, x(Math.max(start, gap.after_ts)), y0, x(Math.min(end, gap.before_ts)), h);
      if (p.key === "score" && this.opts.threshold) {
        g.strokeStyle = COLORS.threshold; g.setLineDash([5, 4]);
        g.beginPath(); g.moveTo(PAD.left, y(this.opts.threshold)); g.lineTo(PAD.left + W, y(this.opts.threshold)); g.stroke();
        g.setLineDash([]);
      }
      if (p.key === "temp") this._envelope(g, buckets, x, y, breakAfter);
      const drawn = this._line(g, buckets, p.field, x, y, breakAfter, COLORS[p.key]);
      g.restore();
      g.strokeStyle = COLORS.axis; g.strokeRect(PAD.left, y0, W, h);
      g.textAlign = "left"; g.textBaseline = "top";
      g.fillStyle = "rgba(255,255,255,0.85)"; g.fillRect(PAD.left + 1, y0 + 1, g.measureText(p.label).width + 10, 16);
      g.fillStyle = COLORS.text; g.fillText(p.label, PAD.left + 6, y0 + 4);
      if (!drawn) {
        g.fillStyle = COLORS.axis; g.textAlign = "center"; g.textBaseline = "middle";
        g.fillText(p.key === "score" ? "no anomaly score in this range (rules only)" : "no data in this range", PAD.left + W / 2, y0 + h / 2);
      }
      return drawn;
    }

    _hatch(g, a, y0, b, h) {
      if (b <= a) return;
      g.save();
      g.beginPath(); g.rect(a, y0, Math.max(2, b - a), h); g.clip();
      g.fillStyle = "rgba(120,120,120,0.10)"; g.fillRect(a, y0, b - a, h);
      g.strokeStyle = COLORS.gap; g.lineWidth = 1;
      for (let i = a - h; i < b; i += 7) { g.beginPath(); g.moveTo(i, y0 + h); g.lineTo(i + h, y0); g.stroke(); }
      g.restore();
    }

    _segments(buckets, field, breakAfter) {
      const out = []; let run = []; let prev = null;
      for (const b of buckets) {
        const v = b[field];
        if (v === null || v === undefined) continue;
        if (prev !== null && b.ts - prev > breakAfter) { out.push(run); run = []; }
        run.push(b); prev = b.ts;
      }
      if (run.length) out.push(run);
      return out;
    }

    _line(g, buckets, field, x, y, breakAfter, color) {
      let drawn = 0;
      g.strokeStyle = color; g.fillStyle = color; g.lineWidth = 1.8; g.lineJoin = "round";
      for (const run of this._segments(buckets, field, breakAfter)) {
        if (field === "temp_c") this.segments++;
        if (run.length === 1) { g.beginPath(); g.arc(x(run[0].ts), y(run[0][field]), 2, 0, 2 * Math.PI); g.fill(); }
        else {
          g.beginPath();
          run.forEach((b, i) => (i ? g.lineTo(x(b.ts), y(b[field])) : g.moveTo(x(b.ts), y(b[field]))));
          g.stroke();
        }
        drawn += run.length;
      }
      return drawn;
    }

    _envelope(g, buckets, x, y, breakAfter) {
      g.fillStyle = COLORS.envelope;
      for (const run of this._segments(buckets, "temp_max", breakAfter)) {
        if (run.length < 2) continue;
        g.beginPath();
        run.forEach((b, i) => (i ? g.lineTo(x(b.ts), y(b.temp_max)) : g.moveTo(x(b.ts), y(b.temp_max))));
        for (let i = run.length - 1; i >= 0; i--) g.lineTo(x(run[i].ts), y(run[i].temp_min ?? run[i].temp_max));
        g.closePath(); g.fill();
      }
    }

    _timeAxis(g, x, start, end, bottom, W) {
      const span = end - start;
      const step = TICKS.find((t) => span / t <= Math.max(2, W / 90)) || TICKS[TICKS.length - 1];
      const offset = new Date(start).getTimezoneOffset() * 60e3;
      g.fillStyle = COLORS.axis; g.textAlign = "center"; g.textBaseline = "top"; g.strokeStyle = COLORS.axis;
      for (let t = Math.ceil((start - offset) / step) * step + offset; t <= end; t += step) {
        g.beginPath(); g.moveTo(x(t), bottom); g.lineTo(x(t), bottom + 4); g.stroke();
        g.fillText(tickLabel(t, step), x(t), bottom + 6);
      }
    }
  }

  window.ColdChart = ColdChart;
})();
