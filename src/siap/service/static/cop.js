// siap web COP: one partner's live picture on a MapLibre map (no internet needed).
//
// Data: GET /api/v1/whoami, /partners/{p}/sensors, /partners/{p}/trails, /clock; the
// WebSocket /api/v1/partners/{p}/stream sends a "full" frame, then "delta" frames
// (added / changed / removed tracks). Tracks are drawn from GeoJSON sources updated with
// setData once per animation frame; symbols (MIL-STD-2525 air tracks by affiliation, made
// with milsymbol) are map images rendered once per affiliation, not DOM elements.
"use strict";

const API = "/api/v1";
const AFFILIATION_CODE = { friend: "F", neutral: "N", unknown: "U", hostile: "H" };
const PARTNER_COLOUR = { JPN: "#c0392b", USA: "#2c3e8f", AUS: "#1e8449", KOR: "#8e44ad", PHL: "#d68910" };
const LEADER_S = 120;         // speed leader: where the track will be in 2 min
const TRAIL_POINTS = 30;      // positions kept per track for its trail
const M_PER_DEG = 111320.0;
const FT_PER_M = 1 / 0.3048;

const cop = {
  token: null, who: null, partner: null, ws: null, map: null,
  tracks: new Map(),          // id -> encoded track (see siap.service.tracks)
  trails: new Map(),          // id -> [[t, lat, lon], ...]
  sensors: [], clock: null, selected: null, seq: 0, dirty: false, styleReady: false,
  stats: { frames: 0, applyMs: [], renderMs: [], rafMs: [], lastRaf: null },
  filter: { aff: new Set(["friend", "neutral", "unknown", "hostile"]), flMin: 0, flMax: 600, source: "" },
  trackCount() { return this.tracks.size; },
  shownCount() { return this._shown || 0; },
};
window.cop = cop;

// ---------------------------------------------------------------------------------- access
function headers() { return { Authorization: "Bearer " + cop.token }; }

async function api(path, options = {}) {
  const r = await fetch(API + path, { ...options, headers: { ...headers(), "Content-Type": "application/json" } });
  if (!r.ok) {
    let detail = r.statusText;
    try { detail = (await r.json()).detail; } catch (e) { /* not JSON */ }
    const err = new Error(`${r.status}: ${detail}`);
    err.status = r.status;
    throw err;
  }
  return r.json();
}

function readToken() {
  const frag = new URLSearchParams(location.hash.slice(1));
  const t = frag.get("token");
  if (t) {
    sessionStorage.setItem("siap-token", t);
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem("siap-token");
}

function showLogin(message) {
  document.getElementById("login").hidden = false;
  document.getElementById("login-error").textContent = message || "";
}

document.getElementById("login-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem("siap-token", document.getElementById("login-token").value.trim());
  location.reload();
});

// ------------------------------------------------------------------------------------- map
function worldLayers(land, countries) {
  const landGeo = topojson.feature(land, land.objects.land);
  const borders = topojson.mesh(countries, countries.objects.countries, (a, b) => a !== b);
  const coast = topojson.mesh(land, land.objects.land);
  return {
    version: 8,
    // no "glyphs": MapLibre renders label text locally (no glyph server, no internet)
    sources: {
      land: { type: "geojson", data: landGeo },
      borders: { type: "geojson", data: borders },
      coast: { type: "geojson", data: coast },
    },
    layers: [
      { id: "sea", type: "background", paint: { "background-color": "#cfdde9" } },
      { id: "land", type: "fill", source: "land", paint: { "fill-color": "#f2efe6" } },
      { id: "coast", type: "line", source: "coast", paint: { "line-color": "#6f8597", "line-width": 0.9 } },
      { id: "borders", type: "line", source: "borders",
        paint: { "line-color": "#8a7f96", "line-width": 0.8, "line-dasharray": [3, 2] } },
    ],
  };
}

function symbolImage(affiliation, coasting) {
  const sidc = "S" + AFFILIATION_CODE[affiliation] + "AP------*****";
  const sym = new ms.Symbol(sidc, { size: 15, fillOpacity: coasting ? 0.35 : 1, outlineWidth: 2, outlineColor: "white" });
  const canvas = sym.asCanvas(2);
  const ctx = canvas.getContext("2d");
  return { image: ctx.getImageData(0, 0, canvas.width, canvas.height), anchor: sym.getAnchor() };
}

function addSymbols(map) {
  for (const aff of Object.keys(AFFILIATION_CODE)) {
    for (const coasting of [false, true]) {
      const { image } = symbolImage(aff, coasting);
      map.addImage(`air-${aff}${coasting ? "-coast" : ""}`, image, { pixelRatio: 2 });
    }
  }
}

function addDataLayers(map) {
  const empty = { type: "FeatureCollection", features: [] };
  // tracks change every second: tile them only up to zoom 8 and skip simplification work
  for (const id of ["coverage", "sensors", "trails", "leaders", "tracks", "selected"]) {
    map.addSource(id, { type: "geojson", data: empty, maxzoom: 8, buffer: 32, tolerance: 0 });
  }
  map.addLayer({ id: "coverage", type: "line", source: "coverage",
    paint: { "line-color": ["get", "colour"], "line-width": 1.2, "line-dasharray": [4, 3], "line-opacity": 0.8 } });
  map.addLayer({ id: "sensors", type: "circle", source: "sensors",
    paint: { "circle-radius": 5, "circle-color": ["get", "colour"], "circle-stroke-color": "#fff", "circle-stroke-width": 1.5 } });
  map.addLayer({ id: "sensor-labels", type: "symbol", source: "sensors",
    layout: { "text-field": ["get", "id"], "text-font": ["DejaVu Sans", "sans-serif"], "text-size": 10,
      "text-offset": [0, 1.1], "text-anchor": "top" },
    paint: { "text-color": ["get", "colour"], "text-halo-color": "#fff", "text-halo-width": 1.2 } });
  map.addLayer({ id: "trails", type: "line", source: "trails",
    paint: { "line-color": "#44505c", "line-width": 1, "line-opacity": 0.45 } });
  map.addLayer({ id: "leaders", type: "line", source: "leaders",
    paint: { "line-color": "#1d2733", "line-width": 1.1 } });
  map.addLayer({ id: "selected", type: "circle", source: "selected",
    paint: { "circle-radius": 14, "circle-color": "rgba(0,0,0,0)", "circle-stroke-color": "#ff6f00", "circle-stroke-width": 2.5 } });
  map.addLayer({ id: "tracks", type: "symbol", source: "tracks",
    layout: {
      "icon-image": ["get", "icon"], "icon-allow-overlap": true, "icon-ignore-placement": true,
      "text-field": ["get", "text"], "text-font": ["DejaVu Sans", "sans-serif"], "text-size": 10.5,
      "text-anchor": "left", "text-offset": [1.3, 0], "text-justify": "left", "text-optional": true,
    },
    paint: { "text-color": "#13202c", "text-halo-color": "rgba(255,255,255,0.9)", "text-halo-width": 1.3 } });
  map.on("click", "tracks", (e) => { if (e.features.length) select(e.features[0].properties.id); });
  map.on("mouseenter", "tracks", () => { map.getCanvas().style.cursor = "pointer"; });
  map.on("mouseleave", "tracks", () => { map.getCanvas().style.cursor = ""; });
}

async function makeMap() {
  const [land, countries] = await Promise.all([
    fetch("/static/vendor/world-atlas/land-50m.json").then((r) => r.json()),
    fetch("/static/vendor/world-atlas/countries-50m.json").then((r) => r.json()),
  ]);
  const map = new maplibregl.Map({
    container: "map", style: worldLayers(land, countries), center: [131, 31], zoom: 4.3,
    attributionControl: { customAttribution: "Natural Earth (public domain)" }, fadeDuration: 0,
  });
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-right");
  map.addControl(new maplibregl.ScaleControl({ unit: "nautical" }), "bottom-right");
  await new Promise((resolve) => map.on("load", resolve));
  addSymbols(map);
  addDataLayers(map);
  cop.map = map;
  cop.styleReady = true;
  map.on("render", () => {
    const now = performance.now();
    if (cop.stats.lastRaf !== null) cop.stats.rafMs.push(now - cop.stats.lastRaf);
    cop.stats.lastRaf = now;
    if (cop.stats.rafMs.length > 5000) cop.stats.rafMs.splice(0, 2500);
  });
}

// ------------------------------------------------------------------------------ geometry
function ahead(lat, lon, ve, vn, s) {
  return [lon + (ve * s) / (M_PER_DEG * Math.cos((lat * Math.PI) / 180)), lat + (vn * s) / M_PER_DEG];
}

function circle(lat, lon, radiusM, n = 96) {
  // destination points on a sphere (Vincenty-free small-circle: fine for a display)
  const R = 6371008.8, d = radiusM / R, la = (lat * Math.PI) / 180, lo = (lon * Math.PI) / 180;
  const ring = [];
  for (let i = 0; i <= n; i++) {
    const b = (2 * Math.PI * i) / n;
    const la2 = Math.asin(Math.sin(la) * Math.cos(d) + Math.cos(la) * Math.sin(d) * Math.cos(b));
    const lo2 = lo + Math.atan2(Math.sin(b) * Math.sin(d) * Math.cos(la), Math.cos(d) - Math.sin(la) * Math.sin(la2));
    ring.push([(lo2 * 180) / Math.PI, (la2 * 180) / Math.PI]);
  }
  return ring;
}

// ------------------------------------------------------------------------------ drawing
function passes(t) {
  const f = cop.filter;
  if (!f.aff.has(t.affiliation)) return false;
  const fl = t.fl === null ? 0 : t.fl;
  if (fl < f.flMin || fl > f.flMax) return false;
  if (f.source && !t.sensors.split(",").includes(f.source)) return false;
  return true;
}

function labelText(t) {
  const fl = t.fl === null ? "FL---" : "FL" + String(Math.max(t.fl, 0)).padStart(3, "0");
  return `${t.tn}\n${t.callsign || (t.mode_3a ? "A" + t.mode_3a : "")} ${fl}`.trim();
}

function render() {
  if (!cop.styleReady || !cop.dirty) return;
  cop.dirty = false;
  const t0 = performance.now();
  const showLabels = document.getElementById("show-labels").checked;
  const showTrails = document.getElementById("show-trails").checked;
  const points = [], leaders = [], trails = [];
  for (const t of cop.tracks.values()) {
    if (!passes(t)) continue;
    const coasting = t.status === "coasting";
    points.push({ type: "Feature", geometry: { type: "Point", coordinates: [t.lon, t.lat] },
      properties: { id: t.id, icon: `air-${t.affiliation}${coasting ? "-coast" : ""}`, text: showLabels ? labelText(t) : "" } });
    leaders.push({ type: "Feature", geometry: { type: "LineString",
      coordinates: [[t.lon, t.lat], ahead(t.lat, t.lon, t.ve_mps || 0, t.vn_mps || 0, LEADER_S)] }, properties: {} });
    const tr = cop.trails.get(t.id);
    if (showTrails && tr && tr.length > 1) {
      trails.push({ type: "Feature", geometry: { type: "LineString", coordinates: tr.map((p) => [p[2], p[1]]) }, properties: {} });
    }
  }
  cop._shown = points.length;
  cop.drawn = { tracks: points.length, leaders: leaders.length, trails: trails.length };
  const m = cop.map;
  m.getSource("tracks").setData({ type: "FeatureCollection", features: points });
  m.getSource("leaders").setData({ type: "FeatureCollection", features: leaders });
  m.getSource("trails").setData({ type: "FeatureCollection", features: trails });
  const sel = cop.selected && cop.tracks.get(cop.selected);
  m.getSource("selected").setData({ type: "FeatureCollection", features: sel ?
    [{ type: "Feature", geometry: { type: "Point", coordinates: [sel.lon, sel.lat] }, properties: {} }] : [] });
  document.getElementById("count").textContent = `${cop.tracks.size} tracks`;
  document.getElementById("shown").textContent = `${points.length} of ${cop.tracks.size} tracks shown`;
  cop.stats.renderMs.push(performance.now() - t0);
  if (cop.selected) showPanel(cop.selected, false);
}

function scheduleRender() {
  cop.dirty = true;
  requestAnimationFrame(render);
}

function drawSensors() {
  const showCov = document.getElementById("show-coverage").checked;
  const sites = [], rings = [];
  for (const s of cop.sensors) {
    const colour = PARTNER_COLOUR[s.partner] || "#333";
    sites.push({ type: "Feature", geometry: { type: "Point", coordinates: [s.lon, s.lat] }, properties: { id: s.id, colour } });
    if (showCov && s.coverage_radius_m) {
      rings.push({ type: "Feature", geometry: { type: "LineString", coordinates: circle(s.lat, s.lon, s.coverage_radius_m) },
        properties: { colour } });
    }
  }
  cop.map.getSource("sensors").setData({ type: "FeatureCollection", features: sites });
  cop.map.getSource("coverage").setData({ type: "FeatureCollection", features: rings });
  const sel = document.getElementById("source");
  const keep = sel.value;
  sel.innerHTML = '<option value="">any sensor</option>' + cop.sensors.map((s) => `<option>${s.id}</option>`).join("");
  sel.value = keep;
}

// ------------------------------------------------------------------------------ the panel
function fmt(v, digits = 0, unit = "") {
  return v === null || v === undefined ? "-" : `${Number(v).toFixed(digits)}${unit}`;
}

function utc(t) { return new Date(t * 1000).toISOString().slice(11, 19) + "Z"; }

function showPanel(id, fetchHistory = true) {
  const t = cop.tracks.get(id);
  const panel = document.getElementById("panel");
  if (!t) {
    document.getElementById("panel-title").textContent = `track ${id}: dropped`;
    return;
  }
  panel.hidden = false;
  document.getElementById("panel-title").textContent = `${t.tn} ${t.callsign || ""}`.trim();
  const rows = [
    ["track number", t.tn], ["track id", t.id], ["affiliation", `${t.affiliation} (${t.identified_by})`],
    ["status", `${t.status}, ${t.n_updates} updates`], ["time", utc(t.t)],
    ["position", `${t.lat.toFixed(4)}, ${t.lon.toFixed(4)}`],
    ["altitude", `${t.fl === null ? "-" : "FL" + t.fl} (${fmt(t.alt_m, 0, " m")})`],
    ["speed", `${fmt(t.speed_mps * 3600 / 1852, 0, " kt")} (${fmt(t.speed_mps, 0, " m/s")})`],
    ["course", fmt(t.course_deg, 0, "°")], ["vertical rate", fmt(t.vu_mps * FT_PER_M * 60, 0, " ft/min")],
    ["position σ", fmt(t.pos_sigma_m, 0, " m")], ["velocity σ", fmt(t.vel_sigma_mps, 1, " m/s")],
    ["Mode S", t.mode_s || "-"], ["Mode 3/A", t.mode_3a || "-"], ["callsign", t.callsign || "-"],
    ["sources", t.sources.split(",").join(", ")], ["sensors", t.sensors.split(",").join(", ")],
    ["label / releasability", t.label],
  ];
  const table = document.getElementById("panel-table");
  table.innerHTML = "";
  for (const [k, v] of rows) {
    const tr = table.insertRow();
    const th = document.createElement("th");
    th.textContent = k;
    tr.appendChild(th);
    tr.insertCell().textContent = v;
    tr.dataset.field = k;
  }
  if (fetchHistory) {
    api(`/partners/${cop.partner}/tracks/${id}/history`).then((h) => {
      cop.trails.set(id, h.points.map((p) => [p.t, p.lat, p.lon]));
      scheduleRender();
    }).catch(() => {});
  }
}

function select(id) {
  cop.selected = id;
  showPanel(id, true);
  scheduleRender();
}

document.getElementById("panel-close").addEventListener("click", () => {
  cop.selected = null;
  document.getElementById("panel").hidden = true;
  scheduleRender();
});

// ------------------------------------------------------------------------------ the stream
function applyTrack(t) {
  cop.tracks.set(t.id, t);
  let tr = cop.trails.get(t.id);
  if (!tr) { tr = []; cop.trails.set(t.id, tr); }
  if (!tr.length || tr[tr.length - 1][0] < t.t) tr.push([t.t, t.lat, t.lon]);
  if (tr.length > TRAIL_POINTS) tr.splice(0, tr.length - TRAIL_POINTS);
}

function onFrame(text) {
  const t0 = performance.now();
  const msg = JSON.parse(text);
  if (msg.type === "full") {
    cop.tracks.clear();
    const keep = new Map();
    for (const t of msg.tracks) { if (cop.trails.has(t.id)) keep.set(t.id, cop.trails.get(t.id)); }
    cop.trails = keep;
    for (const t of msg.tracks) applyTrack(t);
  } else if (msg.type === "delta") {
    if (msg.base_seq !== cop.seq) { cop.ws.send(JSON.stringify({ type: "full" })); return; }
    for (const t of msg.added) applyTrack(t);
    for (const t of msg.changed) applyTrack(t);
    for (const id of msg.removed) { cop.tracks.delete(id); cop.trails.delete(id); }
  } else if (msg.type === "error") {
    console.warn("server:", msg.error, msg.detail);
    return;
  } else {
    return;
  }
  cop.seq = msg.seq;
  cop.pictureTime = msg.time_s;
  cop.stats.frames += 1;
  cop.stats.applyMs.push(performance.now() - t0);
  scheduleRender();
}

function connect() {
  if (cop.ws) { cop.ws.onclose = null; cop.ws.close(); }
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const url = `${proto}//${location.host}${API}/partners/${cop.partner}/stream?token=${encodeURIComponent(cop.token)}`;
  const ws = new WebSocket(url);
  cop.ws = ws;
  cop.seq = 0;
  const conn = document.getElementById("conn");
  ws.onopen = () => { conn.textContent = "live"; conn.className = "conn-ok"; };
  ws.onmessage = (ev) => onFrame(ev.data);
  ws.onclose = (ev) => {
    conn.textContent = ev.code >= 4400 ? `refused (${ev.reason})` : "reconnecting";
    conn.className = "conn-bad";
    if (ev.code === 4401) { showLogin("token refused"); return; }
    if (ev.code < 4400 || ev.code === 4408) setTimeout(connect, 1000);  // the server sends the latest state again
  };
}

async function switchPartner(p) {
  cop.partner = p;
  cop.tracks.clear();
  cop.trails.clear();
  cop.selected = null;
  document.getElementById("panel").hidden = true;
  const [sensors, trails] = await Promise.all([api(`/partners/${p}/sensors`), api(`/partners/${p}/trails`)]);
  cop.sensors = sensors.sensors;
  for (const [id, pts] of Object.entries(trails.trails)) cop.trails.set(id, pts);
  drawSensors();
  connect();
}

// ------------------------------------------------------------------------------ clock
async function pollClock() {
  try {
    cop.clock = await api("/clock");
    const c = cop.clock;
    document.getElementById("clock").textContent =
      new Date(c.now_s * 1000).toISOString().slice(0, 19).replace("T", " ") + "Z" + (c.paused ? " (paused)" : ` x${c.speed}`);
    const seek = document.getElementById("seek");
    seek.min = Math.floor(c.start_s); seek.max = Math.ceil(c.end_s);
    if (!seek.matches(":active")) seek.value = Math.round(c.now_s);
    document.getElementById("btn-pause").textContent = c.paused ? "resume" : "pause";
  } catch (e) { /* shown by the connection state */ }
}

async function control(path, body) {
  try { cop.clock = await api(`/clock/${path}`, { method: "POST", body: body ? JSON.stringify(body) : undefined }); }
  catch (e) { alert(`clock: ${e.message}`); }
  pollClock();
}

document.getElementById("btn-pause").addEventListener("click", () => control(cop.clock && cop.clock.paused ? "resume" : "pause"));
document.getElementById("speed").addEventListener("change", (e) => control("speed", { speed: Number(e.target.value) }));
document.getElementById("seek").addEventListener("change", (e) => control("seek", { time_s: Number(e.target.value) }));

// ------------------------------------------------------------------------------ filters
function readFilters() {
  cop.filter.aff = new Set([...document.querySelectorAll(".aff:checked")].map((x) => x.value));
  cop.filter.flMin = Number(document.getElementById("fl-min").value) || 0;
  cop.filter.flMax = Number(document.getElementById("fl-max").value) || 999;
  cop.filter.source = document.getElementById("source").value;
  scheduleRender();
}
for (const el of document.querySelectorAll("#filters input, #filters select")) el.addEventListener("change", readFilters);
document.getElementById("show-coverage").addEventListener("change", drawSensors);

// ------------------------------------------------------------------------------ start
async function main() {
  cop.token = readToken();
  if (!cop.token) { showLogin(); return; }
  try { cop.who = await api("/whoami"); }
  catch (e) { showLogin(e.status === 401 ? "token refused" : e.message); return; }
  document.getElementById("who").textContent = cop.who.role === "admin" ? "exercise control" : `partner ${cop.who.partner}`;
  for (const el of document.querySelectorAll(".admin-only")) el.classList.toggle("hidden", cop.who.role !== "admin");
  const sel = document.getElementById("partner");
  sel.innerHTML = cop.who.viewable.map((p) => `<option>${p}</option>`).join("");
  sel.disabled = cop.who.viewable.length < 2;
  sel.addEventListener("change", () => switchPartner(sel.value));
  await makeMap();
  const first = new URLSearchParams(location.search).get("partner");
  await switchPartner(first && cop.who.viewable.includes(first) ? first : cop.who.viewable[0]);
  sel.value = cop.partner;
  pollClock();
  setInterval(pollClock, 1000);
  cop.ready = true;
}

main();
