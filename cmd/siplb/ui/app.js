// siplb's status page: polls the control API (/api/v1) and draws what it
// answers. No framework and no build step; the admin listener serves this
// file as it is.
"use strict";

(() => {
  const API = "../api/v1/"; // relative to /ui/, so a path prefix in front of siplb still works
  const POLL_MS = refreshMs(); // ?refresh=SECONDS, 0.2 to 60; 1 by default
  const HIDDEN_POLL_MS = Math.max(POLL_MS, 5000); // a tab in the background polls less
  const TIMEOUT_MS = 5000;
  const SAMPLES = 60; // points in each chart
  const TOKEN_KEY = "siplb.admin-token";
  const SVG = "http://www.w3.org/2000/svg";

  // The rates drawn at the top: each from a counter of /api/v1/stats, or a
  // gauge drawn as it is.
  const METRICS = [
    { key: "requests_forwarded", label: "requests forwarded/s" },
    { key: "responses_forwarded", label: "responses forwarded/s" },
    { key: "replies", label: "replies/s", title: "stateless replies siplb made itself (503, 400, ...)" },
    { key: "drops", label: "drops/s", title: "messages neither forwarded nor answered" },
    { key: "connections", label: "connections", gauge: true, title: "TCP and TLS connections open" },
  ];

  const $ = (id) => document.getElementById(id);
  let token = sessionStorage.getItem(TOKEN_KEY) || "";
  let timer = 0;
  let inflight = false;
  let again = false; // a refresh was asked for during a poll
  let waitingToken = false;
  let lastStats = null; // {t, values} of the previous sample
  let clockSkew = 0; // server time minus ours, ms
  const rates = new Map(METRICS.map((m) => [m.key, []]));
  const rtts = new Map(); // row key -> last RTTs, seconds
  const beRates = new Map(); // row key -> {at, n, series}: requests forwarded to it per second
  let rows = new Map(); // row key -> {tr, cells}
  let layout = ""; // pools and members the table was built for

  class NeedToken extends Error {}

  function refreshMs() {
    const v = parseFloat(new URLSearchParams(location.search).get("refresh"));
    return v >= 0.2 && v <= 60 ? v * 1000 : 1000;
  }

  // api calls the control API with the token, if any; it throws NeedToken
  // on 401 and an Error carrying the API's message otherwise.
  async function api(method, path) {
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = "Bearer " + token;
    const ctl = new AbortController();
    const t = setTimeout(() => ctl.abort(), TIMEOUT_MS);
    let resp;
    try {
      resp = await fetch(API + path, { method, headers, signal: ctl.signal, cache: "no-store", credentials: "omit" });
    } catch (e) {
      throw new Error(e.name === "AbortError" ? "no answer in " + TIMEOUT_MS / 1000 + " s" : "unreachable (" + e.message + ")");
    } finally {
      clearTimeout(t);
    }
    if (resp.status === 401) throw new NeedToken();
    let body = null;
    try {
      body = await resp.json();
    } catch (e) {
      // not JSON: the status says enough
    }
    if (!resp.ok) throw new Error((body && body.error) || resp.status + " " + resp.statusText);
    return body;
  }

  async function poll() {
    clearTimeout(timer);
    timer = 0;
    if (waitingToken) return;
    if (inflight) {
      again = true;
      return;
    }
    inflight = true;
    try {
      const [pools, stats] = await Promise.all([api("GET", "pools"), api("GET", "stats")]);
      drawStats(stats);
      drawPools(pools);
      setConn("live", "updated " + new Date().toLocaleTimeString());
    } catch (e) {
      if (e instanceof NeedToken) {
        askToken();
      } else {
        setConn("down", "API: " + e.message);
      }
    } finally {
      inflight = false;
    }
    if (waitingToken) return;
    if (again) {
      again = false;
      poll();
      return;
    }
    timer = setTimeout(poll, document.hidden ? HIDDEN_POLL_MS : POLL_MS);
  }

  function setConn(kind, text) {
    const c = $("conn");
    c.className = "conn conn-" + kind;
    c.textContent = text;
  }

  // askToken shows the token form; polling waits for it.
  function askToken() {
    const refused = token !== "";
    token = "";
    sessionStorage.removeItem(TOKEN_KEY);
    waitingToken = true;
    $("forget").hidden = true;
    setConn("auth", "admin token needed");
    const err = $("token-error");
    err.textContent = refused ? "The API refused that token." : "";
    err.hidden = !refused;
    $("token-form").hidden = false;
    $("token").focus();
  }

  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = $("token").value.trim();
    if (!v) return;
    token = v;
    sessionStorage.setItem(TOKEN_KEY, v);
    $("token").value = "";
    $("token-form").hidden = true;
    $("forget").hidden = false;
    waitingToken = false;
    poll();
  });

  $("forget").addEventListener("click", () => {
    token = "";
    sessionStorage.removeItem(TOKEN_KEY);
    $("forget").hidden = true;
    poll();
  });
  $("forget").hidden = token === "";

  function showMessage(text) {
    const m = $("message");
    m.textContent = text;
    m.hidden = text === "";
  }

  // --- rates ---------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else if (k.startsWith("data-")) e.dataset[k.slice(5)] = v;
      else e.setAttribute(k, v);
    }
    e.append(...children);
    return e;
  }

  function svgEl(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  }

  // chart is an SVG sparkline of up to SAMPLES values, scaled to their
  // maximum; newest on the right.
  function chart(cls) {
    const s = svgEl("svg", { class: "chart " + cls, viewBox: "0 0 " + (SAMPLES - 1) + " 20", preserveAspectRatio: "none", "aria-hidden": "true" });
    s.append(svgEl("polygon", { class: "area" }), svgEl("polyline", { class: "line", "vector-effect": "non-scaling-stroke" }));
    return s;
  }

  function drawChart(s, values) {
    const max = Math.max(...values, 1e-9);
    const x0 = SAMPLES - values.length;
    const pts = values.map((v, i) => (x0 + i) + "," + (19.5 - (v / max) * 18.5).toFixed(2)).join(" ");
    s.querySelector(".line").setAttribute("points", pts);
    s.querySelector(".area").setAttribute("points", values.length ? x0 + ",20 " + pts + " " + (SAMPLES - 1) + ",20" : "");
  }

  function buildRates() {
    const box = $("rates");
    for (const m of METRICS) {
      box.append(el("div", { class: "rate", "data-metric": m.key, title: m.title || m.label },
        el("span", { class: "label" }, m.label),
        el("span", { class: "value" }, "–"),
        chart("rate-chart")));
    }
  }

  function drawStats(s) {
    const t = Date.parse(s.time);
    clockSkew = t - Date.now();
    const prev = lastStats;
    lastStats = { t, s };
    for (const m of METRICS) {
      const series = rates.get(m.key);
      let v = null;
      if (m.gauge) {
        v = s[m.key];
      } else if (prev && t > prev.t && s[m.key] >= prev.s[m.key]) {
        v = (s[m.key] - prev.s[m.key]) / ((t - prev.t) / 1000);
      } // else a first sample, or counters reset by a restart: no rate yet
      if (v === null) continue;
      series.push(v);
      if (series.length > SAMPLES) series.shift();
      const box = document.querySelector('.rate[data-metric="' + m.key + '"]');
      box.querySelector(".value").textContent = fmtNum(v);
      drawChart(box.querySelector("svg"), series);
    }
  }

  function fmtNum(v) {
    if (v !== 0 && Math.abs(v) < 10) return v.toFixed(1);
    return Math.round(v).toLocaleString("en-US");
  }

  // --- pools ---------------------------------------------------------------

  const COLUMNS = ["backend", "state", "health", "since", "requests/s", "probe RTT", "weight", "priority", ""];

  function drawPools(pools) {
    const sig = pools.map((p) => p.name + "=" + p.backends.map((b) => b.address + "/" + b.transport).join(",")).join(";");
    if (sig !== layout) buildPools(pools, sig);
    const seen = new Set();
    for (const p of pools) {
      const sec = document.querySelector('section.pool[data-pool="' + CSS.escape(p.name) + '"]');
      sec.querySelector(".pool-summary").textContent = p.algorithm + " · " + p.up + " of " + p.backends.length + " up";
      sec.classList.toggle("pool-empty", p.up === 0);
      for (const b of p.backends) {
        const key = p.name + " " + b.address;
        seen.add(key);
        drawRow(rows.get(key), key, b);
      }
    }
    for (const k of rtts.keys()) if (!seen.has(k)) rtts.delete(k);
    for (const k of beRates.keys()) if (!seen.has(k)) beRates.delete(k);
  }

  function buildPools(pools, sig) {
    const main = $("pools");
    main.replaceChildren();
    rows = new Map();
    if (pools.length === 0) main.append(el("p", { class: "note" }, "No pools are configured."));
    for (const p of pools) {
      const tbody = el("tbody");
      main.append(el("section", { class: "pool", "data-pool": p.name },
        el("h2", {}, p.name, " ", el("small", { class: "pool-summary" })),
        el("table", {}, el("thead", {}, el("tr", {}, ...COLUMNS.map((c) => el("th", {}, c)))), tbody)));
      for (const b of p.backends) {
        const cells = {
          state: el("span", { class: "state" }),
          note: el("small", { class: "state-note" }),
          health: el("td", { class: "health" }),
          since: el("td", { class: "since" }),
          rateText: el("span", { class: "be-rate" }),
          rateChart: chart("be-rate-chart"),
          rttText: el("span", { class: "rtt" }),
          rttChart: chart("rtt-chart"),
          weight: el("td", { class: "num" }),
          priority: el("td", { class: "num" }),
          drain: el("button", { type: "button", class: "act" }),
          disable: el("button", { type: "button", class: "act" }),
        };
        const tr = el("tr", { class: "backend", "data-pool": p.name, "data-address": b.address },
          el("td", { class: "addr" }, b.address, " ", el("small", {}, b.transport)),
          el("td", {}, cells.state, " ", cells.note),
          cells.health, cells.since,
          el("td", { class: "be-rate-cell" }, cells.rateText, cells.rateChart),
          el("td", { class: "rtt-cell" }, cells.rttText, cells.rttChart),
          cells.weight, cells.priority,
          el("td", { class: "actions" }, cells.drain, cells.disable));
        tbody.append(tr);
        rows.set(p.name + " " + b.address, { tr, cells });
      }
    }
    layout = sig;
  }

  const ACTION_TITLES = {
    drain: "No new calls; dialogs in progress go on",
    undrain: "Take new calls again",
    disable: "Stop all traffic to it, dialogs in progress included (click twice)",
    enable: "Take traffic again",
  };

  function setAction(btn, action) {
    if (btn.dataset.action === action) return; // keeps a pending confirmation
    btn.dataset.action = action;
    btn.textContent = action;
    btn.title = ACTION_TITLES[action];
    btn.classList.remove("confirm");
    delete btn.dataset.confirm;
  }

  function drawRow(row, key, b) {
    const c = row.cells;
    row.tr.dataset.state = b.state;
    c.state.textContent = b.state;
    c.state.className = "state state-" + b.state;
    const notes = [];
    // down is the health checks' verdict; an operator's drain or disable
    // under it is worth saying
    if (b.operator_state !== "up" && b.operator_state !== b.state) notes.push(b.operator_state + " by operator");
    if (b.runtime_override) notes.push("set at runtime");
    c.note.textContent = notes.join(", ");
    c.note.title = b.runtime_override ? "Set through the API; it outlives reloads until the configuration changes this backend" : "";
    if (b.probed) {
      c.health.textContent = b.health || (b.healthy ? "healthy" : "not healthy");
      c.health.title = (b.last_reply ? "last probe answer " + b.last_reply + "; " : "") +
        b.probe_successes + " answered, " + b.probe_failures + " failed in a row";
    } else {
      c.health.textContent = b.healthy ? "not probed" : "not healthy";
      c.health.title = "";
    }
    c.health.classList.toggle("bad", !b.healthy);
    c.since.textContent = b.since ? ago(b.since) : "";
    c.since.title = b.since || "";
    // Requests forwarded to it per second (new dialogs and in-dialog), from
    // the address's counters between two polls.
    const n = (b.new_dialogs || 0) + (b.in_dialog || 0);
    const now = Date.now() / 1000;
    let r = beRates.get(key);
    if (!r) beRates.set(key, (r = { at: now, n, series: [] }));
    else if (now > r.at) {
      r.series.push(Math.max(0, (n - r.n) / (now - r.at)));
      if (r.series.length > SAMPLES) r.series.shift();
      r.at = now;
      r.n = n;
    }
    const cur = r.series.length ? r.series[r.series.length - 1] : 0;
    c.rateText.textContent = r.series.length ? fmtRate(cur) : "";
    c.rateText.title = (b.new_dialogs || 0) + " new dialogs, " + (b.in_dialog || 0) + " in-dialog requests forwarded";
    c.rateChart.classList.toggle("empty", r.series.length === 0);
    drawChart(c.rateChart, r.series);
    let series = rtts.get(key);
    if (!series) rtts.set(key, (series = []));
    if (b.last_rtt_seconds) {
      series.push(b.last_rtt_seconds);
      if (series.length > SAMPLES) series.shift();
    }
    c.rttText.textContent = b.last_rtt_seconds ? fmtDuration(b.last_rtt_seconds) : b.probed ? "–" : "";
    c.rttChart.classList.toggle("empty", series.length === 0);
    drawChart(c.rttChart, series);
    c.weight.textContent = b.weight;
    c.priority.textContent = b.priority;
    setAction(c.drain, b.operator_state === "draining" ? "undrain" : "drain");
    setAction(c.disable, b.operator_state === "disabled" ? "enable" : "disable");
  }

  function fmtRate(v) {
    return v >= 100 ? Math.round(v).toLocaleString() : v.toFixed(1);
  }

  function fmtDuration(sec) {
    if (sec < 1e-3) return (sec * 1e6).toFixed(0) + " µs";
    if (sec < 1) return (sec * 1e3).toFixed(sec < 0.01 ? 2 : 1) + " ms";
    return sec.toFixed(2) + " s";
  }

  // ago says how long before the server's now iso was.
  function ago(iso) {
    let s = Math.max(0, Math.round((Date.now() + clockSkew - Date.parse(iso)) / 1000));
    if (s < 60) return s + " s ago";
    if (s < 3600) return Math.floor(s / 60) + " min ago";
    if (s < 86400) return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min ago";
    return Math.floor(s / 86400) + " d " + Math.floor((s % 86400) / 3600) + " h ago";
  }

  // --- actions ---------------------------------------------------------------

  $("pools").addEventListener("click", async (ev) => {
    const btn = ev.target.closest("button[data-action]");
    if (!btn || btn.disabled) return;
    const { pool, address } = btn.closest("tr").dataset;
    const action = btn.dataset.action;
    if (action === "disable" && !btn.dataset.confirm) {
      btn.dataset.confirm = "1";
      btn.textContent = "confirm disable";
      btn.classList.add("confirm");
      setTimeout(() => resetConfirm(btn), 4000);
      return;
    }
    btn.disabled = true;
    try {
      await api("POST", "backends/" + encodeURIComponent(pool) + "/" + encodeURIComponent(address) + "/" + action);
      showMessage("");
    } catch (e) {
      if (e instanceof NeedToken) askToken();
      else showMessage(action + " " + address + " in " + pool + ": " + e.message);
    } finally {
      btn.disabled = false;
      resetConfirm(btn);
    }
    poll();
  });

  function resetConfirm(btn) {
    if (!btn.dataset.confirm) return;
    delete btn.dataset.confirm;
    btn.classList.remove("confirm");
    btn.textContent = btn.dataset.action;
  }

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && !waitingToken) poll();
  });

  buildRates();
  poll();
})();
