// liqfast page: canvas heatmap (time x price, colour = USD), live 1-D map, price line,
// controls, hover read-out, WebSocket updates. Plain JS; talks only to this server's API.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const state = {
    heat: null,        // {x:[], res, yLo, yStep, K, T, data:Float32Array (T*K), candles:[], liqL:[], liqS:[], etag}
    map: null,         // {yLo, yStep, long:[], short:[], lc:[], sc:[], price}
    events: [],        // realized liquidations [ts, venue, side, price, usd]
    ws: null, wsBackoff: 500, gen: 0,
  };
  const debug = (window.__liqfast = { requests: [], frames: 0, paints: 0, errors: [] });
  const fmtUsd = (v) => {
    const a = Math.abs(v);
    if (a >= 1e9) return "$" + (v / 1e9).toFixed(2) + "B";
    if (a >= 1e6) return "$" + (v / 1e6).toFixed(2) + "M";
    if (a >= 1e3) return "$" + (v / 1e3).toFixed(1) + "k";
    return "$" + v.toFixed(0);
  };
  const fmtPrice = (p) => (p >= 1000 ? p.toLocaleString("en-US", { maximumFractionDigits: 1 }) : p.toPrecision(6));
  const fmtTime = (ms) => new Date(ms).toISOString().replace("T", " ").slice(0, 16) + " UTC";

  // 256-entry colour table: dark blue -> purple -> teal -> yellow.
  const STOPS = [[0, [8, 10, 24]], [0.15, [45, 18, 92]], [0.35, [92, 30, 140]], [0.55, [33, 118, 160]],
    [0.75, [40, 190, 140]], [0.9, [190, 225, 60]], [1, [255, 245, 120]]];
  const LUT = new Uint8ClampedArray(256 * 4);
  for (let i = 0; i < 256; i++) {
    const t = i / 255;
    let j = 0;
    while (j < STOPS.length - 2 && t > STOPS[j + 1][0]) j++;
    const [t0, c0] = STOPS[j], [t1, c1] = STOPS[j + 1];
    const f = Math.min(1, Math.max(0, (t - t0) / (t1 - t0)));
    for (let c = 0; c < 3; c++) LUT[i * 4 + c] = c0[c] + (c1[c] - c0[c]) * f;
    LUT[i * 4 + 3] = 255;
  }

  function params(extra) {
    const p = new URLSearchParams();
    for (const id of ["symbol", "venue", "window", "side", "leverage"]) { const v = $(id).value; if (v) p.set(id, v); }
    if (extra) for (const [k, v] of Object.entries(extra)) p.set(k, v);
    return p;
  }

  async function getJSON(path, p) {
    const url = path + "?" + p.toString();
    debug.requests.push(url);
    // no-cache: revalidate with the ETag (304 when unchanged) — the live page must never show a cached window.
    const r = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-cache" });
    if (!r.ok) {
      let msg = r.status + "";
      try { msg = (await r.json()).msg; } catch (e) { /* not JSON */ }
      throw new Error(msg);
    }
    return r.json();
  }

  function setStatus(text, cls) {
    $("statustext").textContent = text;
    $("dot").className = cls || "";
  }

  async function loadOptions() {
    const spec = await getJSON("/openapi.json", new URLSearchParams());
    const ps = spec.paths["/api/v1/heatmap"].get.parameters;
    const enumOf = (n) => ps.find((x) => x.name === n).schema.enum;
    const url = new URLSearchParams(location.search);
    const fill = (id, values, def) => {
      const s = $(id);
      s.innerHTML = "";
      for (const v of values) { const o = document.createElement("option"); o.value = v; o.textContent = v; s.appendChild(o); }
      s.value = url.get(id) && values.includes(url.get(id)) ? url.get(id) : def;
    };
    fill("symbol", enumOf("symbol"), enumOf("symbol")[0]);
    fill("venue", enumOf("venue"), "all");
    fill("window", enumOf("window"), "24h");
    for (const id of ["side", "leverage", "scale"]) if (url.get(id)) $(id).value = url.get(id);
  }

  async function loadAll() {
    const gen = ++state.gen;
    const p = params({ bins: "300" });
    history.replaceState(null, "", "?" + params({ scale: $("scale").value }).toString());
    try {
      const mp = params({ bins: "300" }); mp.delete("window");
      const lp = params({ limit: "2000" }); lp.delete("side"); lp.delete("leverage");
      const [h, m, l] = await Promise.all([getJSON("/api/v1/heatmap", p), getJSON("/api/v1/map", mp), getJSON("/api/v1/liquidations", lp)]);
      if (gen !== state.gen) return;
      setHeat(h.data); setMap(m.data); state.events = l.data.events;
      state.heat.liqL = l.data.long_usd; state.heat.liqS = l.data.short_usd;
      paint();
    } catch (e) {
      debug.errors.push(String(e));
      setStatus("error: " + e.message, "down");
    }
    connect();
  }

  function setHeat(d) {
    const T = d.x_axis.length, K = d.y_axis.length;
    const data = new Float32Array(T * K);
    for (const [x, y, v] of d.liquidation_leverage_data) data[x * K + y] = v;
    const candles = new Array(T).fill(null);
    const idx = new Map(d.x_axis.map((t, i) => [Math.floor(t / 1000), i]));
    for (const c of d.price_candlesticks) { const i = idx.get(c[0]); if (i !== undefined) candles[i] = c.slice(1).map(Number); }
    state.heat = { x: d.x_axis.slice(), res: d.resolution_ms, yLo: K ? d.y_axis[0] : 0, yStep: d.y_step, K, T, data, candles,
      liqL: new Array(T).fill(0), liqS: new Array(T).fill(0), version: d.version };
  }

  function setMap(d) {
    state.map = { yLo: d.prices.length ? d.prices[0] : 0, yStep: d.y_step, long: d.long, short: d.short,
      lc: d.long_cumulative, sc: d.short_cumulative, price: d.price };
    if (d.price) $("price").textContent = fmtPrice(d.price);
  }

  // -- stream --------------------------------------------------------------------------------
  function connect() {
    if (state.ws) { state.ws.onclose = null; state.ws.close(); }
    const p = params({ bins: "300" });
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/api/v1/stream?" + p.toString());
    state.ws = ws;
    ws.onopen = () => { setStatus("live", "live"); state.wsBackoff = 500; };
    ws.onmessage = (m) => { try { onFrame(JSON.parse(m.data)); } catch (e) { debug.errors.push(String(e)); } };
    ws.onclose = () => {
      setStatus("reconnecting…", "down");
      setTimeout(() => { if (state.ws === ws) connect(); }, state.wsBackoff);
      state.wsBackoff = Math.min(state.wsBackoff * 2, 15000);
    };
  }

  function onFrame(f) {
    debug.frames++;
    const h = state.heat;
    state.map = { yLo: f.map_y_lo, yStep: f.map_y_step, long: f.map_long, short: f.map_short, price: f.price,
      lc: cumulative(f.map_long, f.map_y_lo, f.map_y_step, f.price, -1), sc: cumulative(f.map_short, f.map_y_lo, f.map_y_step, f.price, 1) };
    if (f.price) $("price").textContent = fmtPrice(f.price);
    for (const e of f.liquidations) state.events.push(e);
    if (state.events.length > 5000) state.events.splice(0, state.events.length - 5000);
    const same = h && h.K === f.y_n && Math.abs(h.yLo - f.y_lo) < 1e-9 && Math.abs(h.yStep - f.y_step) < 1e-12 && h.res === f.resolution_ms;
    if (!same) { refetchHeat(); return; }
    const last = h.x[h.T - 1];
    let i;
    if (f.x_ms === last) i = h.T - 1;
    else if (f.x_ms === last + h.res && f.x0_ms === h.x[0] + h.res) {
      h.data.copyWithin(0, h.K); h.x.shift(); h.x.push(f.x_ms);
      h.candles.shift(); h.candles.push(null); h.liqL.shift(); h.liqL.push(0); h.liqS.shift(); h.liqS.push(0);
      i = h.T - 1;
    } else { refetchHeat(); return; }
    for (let k = 0; k < h.K; k++) h.data[i * h.K + k] = (f.long[k] || 0) + (f.short[k] || 0);
    if (f.candle && f.candle[4] !== null) h.candles[i] = f.candle.slice(1);
    for (const e of f.liquidations) if (e[0] >= h.x[i]) { if (e[2] === "long") h.liqL[i] += e[4]; else h.liqS[i] += e[4]; }
    paint();
  }

  function cumulative(arr, lo, step, price, dir) {
    const n = arr.length, out = new Array(n).fill(0);
    const k = Math.max(0, Math.min(n - 1, Math.floor((price - lo) / step)));
    let s = 0;
    if (dir < 0) for (let i = k; i >= 0; i--) { s += arr[i]; out[i] = s; }
    else for (let i = k; i < n; i++) { s += arr[i]; out[i] = s; }
    return out;
  }

  let refetching = false, again = false;
  async function refetchHeat() {
    if (refetching) { again = true; return; }
    refetching = true;
    try {
      do {
        again = false;
        const h = await getJSON("/api/v1/heatmap", params({ bins: "300" }));
        const old = state.heat;
        setHeat(h.data);
        if (old && old.T === state.heat.T && old.x[0] === state.heat.x[0]) { state.heat.liqL = old.liqL; state.heat.liqS = old.liqS; }
        paint();
      } while (again);
    } catch (e) { debug.errors.push(String(e)); }
    finally { refetching = false; }
  }

  // -- painting ------------------------------------------------------------------------------
  const PAD = { l: 6, r: 64, t: 6, b: 22 };
  function fit(canvas) {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(50, Math.round(canvas.clientWidth * dpr)), h = Math.max(50, Math.round(canvas.clientHeight * dpr));
    if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
    return dpr;
  }
  function priceRange() {
    const h = state.heat;
    return h && h.K ? [h.yLo, h.yLo + h.yStep * h.K] : [0, 1];
  }
  function scaleFn(max) {
    const mode = $("scale").value;
    if (mode === "log") { const l = Math.log1p(max); return (v) => Math.log1p(v) / l; }
    if (mode === "linear") return (v) => v / max;
    const s = Math.sqrt(max); return (v) => Math.sqrt(v) / s;
  }
  function colourMax(data) {
    // 99.5th percentile of non-zero cells: one spike must not wash out the picture.
    const nz = [];
    const step = Math.max(1, Math.floor(data.length / 20000));
    for (let i = 0; i < data.length; i += step) if (data[i] > 0) nz.push(data[i]);
    if (!nz.length) return 1;
    nz.sort((a, b) => a - b);
    return nz[Math.min(nz.length - 1, Math.floor(nz.length * 0.995))] || 1;
  }

  const off = document.createElement("canvas");
  function paint() {
    debug.paints++;
    paintHeat();
    paintMap();
  }

  function paintHeat() {
    const cv = $("heatmap"), dpr = fit(cv), g = cv.getContext("2d");
    const W = cv.width, H = cv.height;
    g.fillStyle = "#05070d"; g.fillRect(0, 0, W, H);
    const h = state.heat;
    if (!h || !h.T || !h.K) { g.fillStyle = "#8a93a8"; g.font = 14 * dpr + "px sans-serif"; g.fillText("waiting for data…", 20 * dpr, 30 * dpr); return; }
    const pl = PAD.l * dpr, pr = PAD.r * dpr, pt = PAD.t * dpr, pb = PAD.b * dpr;
    const pw = W - pl - pr, ph = H - pt - pb;
    const max = colourMax(h.data), f = scaleFn(max);
    off.width = h.T; off.height = h.K;
    const og = off.getContext("2d"), img = og.createImageData(h.T, h.K), px = img.data;
    for (let t = 0; t < h.T; t++) {
      for (let k = 0; k < h.K; k++) {
        const v = h.data[t * h.K + k];
        const li = v > 0 ? Math.min(255, Math.max(1, Math.round(f(v) * 255))) * 4 : 0;
        const o = ((h.K - 1 - k) * h.T + t) * 4;
        px[o] = LUT[li]; px[o + 1] = LUT[li + 1]; px[o + 2] = LUT[li + 2]; px[o + 3] = 255;
      }
    }
    og.putImageData(img, 0, 0);
    g.imageSmoothingEnabled = false;
    g.drawImage(off, pl, pt, pw, ph);
    const [plo, phi] = priceRange();
    const yOf = (p) => pt + ph * (1 - (p - plo) / (phi - plo));
    const xOf = (i) => pl + pw * (i + 0.5) / h.T;
    // realized liquidation totals as a strip at the bottom
    let lmax = 0;
    for (let i = 0; i < h.T; i++) lmax = Math.max(lmax, h.liqL[i] || 0, h.liqS[i] || 0);
    if (lmax > 0) {
      const sh = 26 * dpr;
      for (let i = 0; i < h.T; i++) {
        const bw = Math.max(1, pw / h.T);
        const a = (h.liqL[i] || 0) / lmax * sh, b = (h.liqS[i] || 0) / lmax * sh;
        g.fillStyle = "rgba(255,90,110,.8)"; g.fillRect(pl + pw * i / h.T, pt + ph - a, bw, a);
        g.fillStyle = "rgba(57,217,138,.8)"; g.fillRect(pl + pw * i / h.T, pt + ph - a - b, bw, b);
      }
    }
    // realized liquidation events
    const x0 = h.x[0], span = h.res * h.T;
    for (const e of state.events) {
      if (e[0] < x0 || e[3] < plo || e[3] > phi) continue;
      const r = Math.max(1.5, Math.min(8, Math.sqrt(e[4] / 2e4))) * dpr;
      g.beginPath(); g.arc(pl + pw * (e[0] - x0) / span, yOf(e[3]), r, 0, 6.283);
      g.fillStyle = e[2] === "long" ? "rgba(255,90,110,.85)" : "rgba(57,217,138,.85)"; g.fill();
    }
    // price line (close per column)
    g.strokeStyle = "rgba(255,255,255,.9)"; g.lineWidth = 1.5 * dpr; g.beginPath();
    let started = false, lastClose = null;
    for (let i = 0; i < h.T; i++) {
      const c = h.candles[i];
      if (!c || !isFinite(c[3])) { started = false; continue; }
      const x = xOf(i), y = yOf(c[3]);
      if (!started) { g.moveTo(x, y); started = true; } else g.lineTo(x, y);
      lastClose = c[3];
    }
    g.stroke();
    // axes
    g.fillStyle = "#8a93a8"; g.font = 11 * dpr + "px sans-serif"; g.textBaseline = "middle";
    const ticks = niceTicks(plo, phi, Math.max(3, Math.floor(ph / (40 * dpr))));
    for (const p of ticks) { const y = yOf(p); g.fillRect(pl + pw, y, 4 * dpr, 1); g.fillText(fmtPrice(p), pl + pw + 6 * dpr, y); }
    if (lastClose !== null) {
      const y = yOf(lastClose);
      g.fillStyle = "#ffd24a"; g.fillRect(pl + pw, y - 8 * dpr, pr, 16 * dpr);
      g.fillStyle = "#000"; g.fillText(fmtPrice(lastClose), pl + pw + 6 * dpr, y);
    }
    g.fillStyle = "#8a93a8"; g.textBaseline = "top";
    const nt = Math.max(2, Math.floor(pw / (140 * dpr)));
    for (let j = 0; j <= nt; j++) {
      const i = Math.min(h.T - 1, Math.round(j * (h.T - 1) / nt));
      const d = new Date(h.x[i]);
      const label = h.res >= 86400000 ? d.toISOString().slice(5, 10) : d.toISOString().slice(5, 16).replace("T", " ");
      g.fillText(label, Math.min(pl + pw - 80 * dpr, Math.max(pl, xOf(i) - 30 * dpr)), pt + ph + 5 * dpr);
    }
    // legend
    $("legendlo").textContent = "$0";
    $("legendhi").textContent = "≥ " + fmtUsd(max);
    const lg = $("legendbar").getContext("2d"), li = lg.createImageData(256, 12);
    for (let i = 0; i < 256; i++) for (let y = 0; y < 12; y++) { const o = (y * 256 + i) * 4; li.data[o] = LUT[i * 4]; li.data[o + 1] = LUT[i * 4 + 1]; li.data[o + 2] = LUT[i * 4 + 2]; li.data[o + 3] = 255; }
    lg.putImageData(li, 0, 0);
    state.geom = { pl, pt, pw, ph, plo, phi, dpr };
  }

  function paintMap() {
    const cv = $("map"), dpr = fit(cv), g = cv.getContext("2d");
    const W = cv.width, H = cv.height;
    g.fillStyle = "#05070d"; g.fillRect(0, 0, W, H);
    const m = state.map;
    if (!m || !m.long || !m.long.length) return;
    const pt = PAD.t * dpr, ph = H - pt - PAD.b * dpr;
    const [plo, phi] = priceRange();
    const yOf = (p) => pt + ph * (1 - (p - plo) / (phi - plo));
    let max = 0;
    for (let i = 0; i < m.long.length; i++) max = Math.max(max, m.long[i], m.short[i]);
    if (max <= 0) return;
    const w = W - 8 * dpr;
    for (let i = 0; i < m.long.length; i++) {
      const p0 = m.yLo + i * m.yStep, y0 = yOf(p0 + m.yStep), y1 = yOf(p0);
      if (y1 < pt || y0 > pt + ph) continue;
      const bh = Math.max(1, y1 - y0);
      if (m.long[i] > 0) { g.fillStyle = "#ff5a6e"; g.fillRect(0, y0, w * m.long[i] / max, bh); }
      if (m.short[i] > 0) { g.fillStyle = "#39d98a"; g.fillRect(0, y0, w * m.short[i] / max, bh); }
    }
    let cmax = 0;
    for (let i = 0; i < m.lc.length; i++) cmax = Math.max(cmax, m.lc[i], m.sc[i]);
    if (cmax > 0) {
      g.strokeStyle = "#ffd24a"; g.lineWidth = 1.5 * dpr;
      for (const arr of [m.lc, m.sc]) {
        g.beginPath(); let s = false;
        for (let i = 0; i < arr.length; i++) {
          if (!arr[i]) { s = false; continue; }
          const x = w * arr[i] / cmax, y = yOf(m.yLo + (i + 0.5) * m.yStep);
          if (!s) { g.moveTo(x, y); s = true; } else g.lineTo(x, y);
        }
        g.stroke();
      }
    }
    if (m.price) { g.fillStyle = "#ffffff"; g.fillRect(0, yOf(m.price), W, Math.max(1, dpr)); }
    g.fillStyle = "#8a93a8"; g.font = 11 * dpr + "px sans-serif"; g.textBaseline = "top";
    g.fillText("max " + fmtUsd(max) + " / bucket", 4 * dpr, pt + 2 * dpr);
  }

  function niceTicks(lo, hi, n) {
    const raw = (hi - lo) / n, e = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * e).find((s) => s >= raw) || raw;
    const out = [];
    for (let p = Math.ceil(lo / step) * step; p <= hi; p += step) out.push(p);
    return out;
  }

  // -- hover ---------------------------------------------------------------------------------
  function tip(ev, text) {
    const t = $("tip");
    if (!text) { t.hidden = true; return; }
    t.textContent = text; t.hidden = false;
    const x = Math.min(window.innerWidth - t.offsetWidth - 8, ev.clientX + 14);
    t.style.left = x + "px"; t.style.top = (ev.clientY + 14) + "px";
  }
  $("heatmap").addEventListener("mousemove", (ev) => {
    const h = state.heat, gm = state.geom;
    if (!h || !gm) return tip(ev, null);
    const r = ev.target.getBoundingClientRect();
    const x = (ev.clientX - r.left) * gm.dpr, y = (ev.clientY - r.top) * gm.dpr;
    if (x < gm.pl || x > gm.pl + gm.pw || y < gm.pt || y > gm.pt + gm.ph) return tip(ev, null);
    const t = Math.min(h.T - 1, Math.floor((x - gm.pl) / gm.pw * h.T));
    const k = Math.min(h.K - 1, Math.floor((1 - (y - gm.pt) / gm.ph) * h.K));
    const p = h.yLo + k * h.yStep, v = h.data[t * h.K + k], c = h.candles[t];
    tip(ev, fmtTime(h.x[t]) + "\nprice " + fmtPrice(p) + " – " + fmtPrice(p + h.yStep) + "\nliquidation level " + fmtUsd(v) +
      (c ? "\nclose " + fmtPrice(c[3]) : "") + ((h.liqL[t] || h.liqS[t]) ? "\nrealized L " + fmtUsd(h.liqL[t] || 0) + " / S " + fmtUsd(h.liqS[t] || 0) : ""));
  });
  $("map").addEventListener("mousemove", (ev) => {
    const m = state.map, gm = state.geom;
    if (!m || !gm) return tip(ev, null);
    const r = ev.target.getBoundingClientRect(), dpr = gm.dpr;
    const y = (ev.clientY - r.top) * dpr;
    const p = gm.plo + (1 - (y - gm.pt) / gm.ph) * (gm.phi - gm.plo);
    const i = Math.floor((p - m.yLo) / m.yStep);
    if (i < 0 || i >= m.long.length) return tip(ev, "price " + fmtPrice(p));
    tip(ev, "price " + fmtPrice(m.yLo + i * m.yStep) + "\nlongs " + fmtUsd(m.long[i]) + "  shorts " + fmtUsd(m.short[i]) +
      "\ncumulative L " + fmtUsd(m.lc[i] || 0) + "  S " + fmtUsd(m.sc[i] || 0));
  });
  for (const id of ["heatmap", "map"]) $(id).addEventListener("mouseleave", (ev) => tip(ev, null));

  // -- wiring --------------------------------------------------------------------------------
  for (const id of ["symbol", "venue", "window", "side", "leverage"]) $(id).addEventListener("change", loadAll);
  $("scale").addEventListener("change", () => { history.replaceState(null, "", "?" + params({ scale: $("scale").value }).toString()); paint(); });
  let rt = null;
  window.addEventListener("resize", () => { clearTimeout(rt); rt = setTimeout(paint, 100); });
  loadOptions().then(loadAll).catch((e) => { debug.errors.push(String(e)); setStatus("error: " + e.message, "down"); });
})();
