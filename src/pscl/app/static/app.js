// pscl app: annotate micrographs with strokes, train, inspect, correct, export. Plain JS, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const S = {
  state: null, stem: null, info: null, label: 0, tool: "brush", radius: 6,
  scale: 1, ox: 0, oy: 0, opacity: 0.5, show: { mask: true, pred: true, unsure: false },
  tiles: new Map(), stroke: null, panning: null, space: false, jobKey: "", pending: 0, chosen: new Set(),
};
const MAX_TILES = 800;

// ---------------------------------------------------------------- server
async function api(path, options = {}) {
  const init = { method: options.method || "GET", headers: {} };
  if (init.method !== "GET") init.headers["X-Pscl"] = "1";
  if (options.json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.json);
  } else if (options.body !== undefined) init.body = options.body;
  const response = await fetch(path, init);
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = { error: text }; }
  if (!response.ok) throw new Error((data && data.error) || `${response.status} ${response.statusText}`);
  return data;
}

function say(text, error = false) {
  const box = $("msg");
  box.textContent = text;
  box.className = "show" + (error ? " error" : "");
  clearTimeout(say.timer);
  say.timer = setTimeout(() => (box.className = error ? "error" : ""), error ? 8000 : 3000);
}

const enc = encodeURIComponent;

// ---------------------------------------------------------------- folder, classes, thumbnails
async function loadState() {
  S.state = await api("/api/state");
  $("name").textContent = S.state.name;
  renderClasses();
  renderList();
  renderJob(S.state.job);
  if (!S.state.classes.length) return askClasses();
  if (!S.stem && S.state.micrographs.length) await open(S.state.micrographs[0].stem);
  else renderSide();
}

function askClasses() {
  $("init-text").textContent = `${S.state.micrographs.length} micrograph(s) in ${S.state.folder}. ` +
    "Name the classes (phases, defects, boundaries) you will stroke, separated by commas; at least two.";
  $("init-dialog").showModal();
}

$("init-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const classes = $("init-classes").value.split(",").map((c) => c.trim()).filter(Boolean);
  try {
    await api("/api/init", { method: "POST", json: { classes } });
    $("init-dialog").close();
    await loadState();
  } catch (e) { say(e.message, true); }
});

function renderClasses() {
  const box = $("classes");
  box.innerHTML = "";
  S.state.classes.forEach((name, index) => {
    const item = document.createElement("div");
    item.className = "cls" + (index === S.label && S.tool === "brush" ? " active" : "");
    item.dataset.index = index;
    item.title = `${index + 1}: draw ${name} (double-click to rename)`;
    item.innerHTML = `<span class="swatch" style="background:${S.state.colours[index]}"></span><span class="cname"></span>` +
      `<input type="color" value="${S.state.colours[index]}" title="colour of ${name}">`;
    item.querySelector(".cname").textContent = name;
    item.addEventListener("click", (e) => { if (e.target.type !== "color") { S.label = index; setTool("brush"); } });
    item.addEventListener("dblclick", () => {
      const renamed = prompt(`Rename class ${name}`, name);
      if (renamed && renamed.trim()) saveClasses(S.state.classes.map((c, i) => (i === index ? renamed.trim() : c)), S.state.colours);
    });
    item.querySelector("input").addEventListener("change", (e) =>
      saveClasses(S.state.classes, S.state.colours.map((c, i) => (i === index ? e.target.value : c))));
    box.appendChild(item);
  });
}

async function saveClasses(classes, colours) {
  try {
    S.state = await api("/api/classes", { method: "POST", json: { classes, colours } });
    renderClasses(); renderSide(); dropTiles("mask"); dropTiles("pred"); draw();
  } catch (e) { say(e.message, true); }
}

$("add-class").addEventListener("click", () => {
  if (!S.state.classes.length) return askClasses();
  const name = prompt("Name of the new class");
  if (!name || !name.trim()) return;
  const palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  saveClasses([...S.state.classes, name.trim()], [...S.state.colours, palette[S.state.classes.length % palette.length]]);
});

function renderList() {
  const box = $("list");
  const next = S.state.model && S.state.model.next;
  box.innerHTML = "";
  for (const m of S.state.micrographs) {
    const item = document.createElement("button");
    item.className = "thumb" + (m.stem === S.stem ? " active" : "");
    item.dataset.stem = m.stem;
    const badge = m.stem === next && !m.split ? `<span class="badge next">stroke next</span>` :
      `<span class="badge ${m.split || ""}">${m.split === "train" ? "stroked" : (m.split || "not annotated")}</span>`;
    item.innerHTML = `<img loading="lazy" alt=""><span class="label"><span class="sname"></span>${badge}</span>`;
    item.querySelector("img").src = `/api/thumb/${enc(m.stem)}`;
    item.querySelector(".sname").textContent = m.stem;
    item.classList.toggle("chosen", S.chosen.has(m.stem));
    item.addEventListener("click", (event) => {
      if (!(event.ctrlKey || event.metaKey || event.shiftKey)) return open(m.stem);
      if (S.chosen.has(m.stem)) S.chosen.delete(m.stem); else S.chosen.add(m.stem);  // chosen for the export
      item.classList.toggle("chosen", S.chosen.has(m.stem));
    });
    box.appendChild(item);
  }
}

// ---------------------------------------------------------------- one micrograph
async function open(stem, where = null) {
  try {
    S.info = await api(`/api/micrographs/${enc(stem)}`);
  } catch (e) { return say(e.message, true); }
  S.stem = stem;
  document.querySelectorAll(".thumb").forEach((t) => t.classList.toggle("active", t.dataset.stem === stem));
  api(`/api/focus/${enc(stem)}`, { method: "POST" }).catch(() => {});
  fit();
  if (where && where.image === stem) {  // zoom to the place to stroke, with some context around it
    const span = where.window * 3;
    S.scale = Math.min(canvas.width, canvas.height) / span;
    S.ox = where.x + where.window / 2 - canvas.width / S.scale / 2;
    S.oy = where.y + where.window / 2 - canvas.height / S.scale / 2;
    draw();
  }
  renderSide();
}

function renderSide() {
  const info = S.info, st = S.state;
  if (!info || !st) return;
  $("stem").textContent = info.stem;
  $("where").textContent = `${info.width} x ${info.height} px · ${info.split ? "split " + info.split : "not annotated"}`;
  $("source").textContent = info.prediction ? `segmentation: ${info.prediction}` : "no segmentation yet";
  const rows = (values, fmt) => st.classes.map((c, i) =>
    `<tr><td><span class="swatch" style="display:inline-block;width:10px;height:10px;background:${st.colours[i]}"></span> ${escapeHtml(c)}</td><td class="num">${fmt(values[i] || 0)}</td></tr>`).join("");
  const fractions = st.model && st.model.fractions[info.stem];
  $("fractions").innerHTML = fractions ? rows(fractions, (v) => (100 * v).toFixed(1) + " %") : "<tr><td>not segmented yet</td></tr>";
  $("labelled").innerHTML = rows(info.labelled, (v) => v.toLocaleString());
  const next = st.model && st.model.next;
  $("next").innerHTML = "";
  if (next) {
    const link = document.createElement("button");
    link.textContent = `${next} (unsure ${(100 * st.model.unsure[next]).toFixed(0)} %): show where`;
    link.title = "the micrograph the model is least sure of, zoomed to its most unsure place";
    link.addEventListener("click", () => open(next, st.model.where));
    $("next").appendChild(link);
  } else $("next").textContent = st.model ? "every micrograph is annotated" : "train a model first";
  $("undo").disabled = !info.undo; $("redo").disabled = !info.redo;
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

// ---------------------------------------------------------------- viewer: tiles at the level of the zoom
const canvas = $("view"), ctx = canvas.getContext("2d");

function resize() {
  const r = canvas.getBoundingClientRect(), dpr = window.devicePixelRatio || 1;
  canvas.width = Math.max(1, Math.round(r.width * dpr)); canvas.height = Math.max(1, Math.round(r.height * dpr));
  draw();
}
window.addEventListener("resize", resize);

function fit() {
  if (!S.info) return;
  const w = canvas.width, h = canvas.height;
  S.scale = Math.min(w / S.info.width, h / S.info.height) * 0.98;
  S.ox = (S.info.width - w / S.scale) / 2; S.oy = (S.info.height - h / S.scale) / 2;
  draw();
}

function version(layer) {
  if (layer === "mask") return S.info.version;
  if (layer === "pred" || layer === "unsure") return S.jobKey;
  return 0;
}

function tileImage(layer, level, tx, ty) {
  const key = `${layer}/${S.stem}/${level}/${tx}/${ty}/${version(layer)}`;
  let entry = S.tiles.get(key);
  if (!entry) {
    entry = { img: new Image(), ok: false };
    entry.img.onload = () => { entry.ok = true; schedule(); };
    entry.img.onerror = () => { entry.ok = false; };
    entry.img.src = `/api/tile/${layer}/${enc(S.stem)}/${level}/${tx}/${ty}?v=${enc(version(layer))}`;
    S.tiles.set(key, entry);
    if (S.tiles.size > MAX_TILES) S.tiles.delete(S.tiles.keys().next().value);
  } else { S.tiles.delete(key); S.tiles.set(key, entry); }
  return entry.ok ? entry.img : null;
}

function dropTiles(layer) {
  for (const key of [...S.tiles.keys()]) if (key.startsWith(layer + "/")) S.tiles.delete(key);
}

let frame = 0;
function schedule() { if (!frame) frame = requestAnimationFrame(() => { frame = 0; draw(); }); }

function drawLayer(layer, level, alpha) {
  const size = S.info.tile * 2 ** level;  // image pixels per tile
  const x0 = Math.max(0, Math.floor(S.ox / size)), y0 = Math.max(0, Math.floor(S.oy / size));
  const x1 = Math.min(Math.ceil(S.info.width / size), Math.ceil((S.ox + canvas.width / S.scale) / size));
  const y1 = Math.min(Math.ceil(S.info.height / size), Math.ceil((S.oy + canvas.height / S.scale) / size));
  ctx.globalAlpha = alpha;
  let missing = 0;
  for (let ty = y0; ty < y1; ty++) for (let tx = x0; tx < x1; tx++) {
    const img = tileImage(layer, level, tx, ty);
    if (!img) { missing++; continue; }
    const sx = (tx * size - S.ox) * S.scale, sy = (ty * size - S.oy) * S.scale;
    ctx.drawImage(img, sx, sy, img.width * 2 ** level * S.scale, img.height * 2 ** level * S.scale);
  }
  ctx.globalAlpha = 1;
  return missing;
}

function draw() {
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.fillStyle = "#333"; ctx.fillRect(0, 0, canvas.width, canvas.height);
  if (!S.info) return;
  const top = S.info.levels - 1;
  const level = Math.max(0, Math.min(top, Math.floor(Math.log2(1 / S.scale))));
  ctx.imageSmoothingEnabled = S.scale < 1;
  drawLayer("image", top, 1);  // one tile: shown at once while the finer ones load
  if (level !== top) drawLayer("image", level, 1);
  ctx.imageSmoothingEnabled = false;
  if (S.show.pred && S.info.prediction) drawLayer("pred", level, S.opacity);
  if (S.show.unsure && S.info.prediction) drawLayer("unsure", level, 0.8);
  if (S.show.mask) drawLayer("mask", level, Math.min(1, S.opacity + 0.3));
  if (S.stroke) drawStroke(S.stroke);
  $("hint").textContent = `${Math.round(S.scale * 100)} % · level ${level}` + (S.pending ? " · saving" : "");
}

function drawStroke(stroke) {
  ctx.strokeStyle = stroke.label === 255 ? "rgba(255,255,255,.8)" : S.state.colours[stroke.label];
  ctx.lineWidth = 2 * stroke.radius * S.scale; ctx.lineCap = "round"; ctx.lineJoin = "round";
  ctx.globalAlpha = 0.8;
  ctx.beginPath();
  stroke.points.forEach(([x, y], i) => {
    const sx = (x - S.ox) * S.scale, sy = (y - S.oy) * S.scale;
    if (i === 0) ctx.moveTo(sx, sy); else ctx.lineTo(sx, sy);
  });
  if (stroke.points.length === 1) ctx.lineTo((stroke.points[0][0] - S.ox) * S.scale + 0.01, (stroke.points[0][1] - S.oy) * S.scale);
  ctx.stroke(); ctx.globalAlpha = 1;
}

function imagePoint(event) {
  const r = canvas.getBoundingClientRect(), dpr = canvas.width / r.width;
  return [((event.clientX - r.left) * dpr) / S.scale + S.ox, ((event.clientY - r.top) * dpr) / S.scale + S.oy];
}

canvas.addEventListener("contextmenu", (e) => e.preventDefault());
canvas.addEventListener("pointerdown", (event) => {
  if (!S.info) return;
  canvas.setPointerCapture(event.pointerId);
  if (event.button !== 0 || S.tool === "pan" || S.space) {
    S.panning = { x: event.clientX, y: event.clientY, ox: S.ox, oy: S.oy };
    return;
  }
  if (!S.state.classes.length) return askClasses();
  S.stroke = { label: S.tool === "eraser" ? 255 : S.label, radius: S.radius, points: [imagePoint(event)] };
  draw();
});
canvas.addEventListener("pointermove", (event) => {
  if (S.panning) {
    const dpr = canvas.width / canvas.getBoundingClientRect().width;
    S.ox = S.panning.ox - ((event.clientX - S.panning.x) * dpr) / S.scale;
    S.oy = S.panning.oy - ((event.clientY - S.panning.y) * dpr) / S.scale;
    return schedule();
  }
  if (!S.stroke) return;
  const p = imagePoint(event), last = S.stroke.points[S.stroke.points.length - 1];
  if (Math.hypot(p[0] - last[0], p[1] - last[1]) >= Math.max(0.5, S.stroke.radius / 3)) { S.stroke.points.push(p); schedule(); }
});
canvas.addEventListener("pointerup", async () => {
  if (S.panning) { S.panning = null; return; }
  if (!S.stroke) return;
  const stroke = S.stroke, stem = S.stem;
  S.pending++;
  try {
    const status = await api(`/api/stroke/${enc(stem)}`, { method: "POST", json: stroke });
    if (stem === S.stem) Object.assign(S.info, status);
    updateSplit(stem, status.split);
  } catch (e) { say(e.message, true); }
  S.pending--;
  if (S.stroke === stroke) S.stroke = null;
  renderSide(); draw();
});
canvas.addEventListener("wheel", (event) => {
  event.preventDefault();
  if (!S.info) return;
  const [x, y] = imagePoint(event);
  const factor = Math.exp(-event.deltaY * 0.0015);
  S.scale = Math.max(0.01, Math.min(32, S.scale * factor));
  const r = canvas.getBoundingClientRect(), dpr = canvas.width / r.width;
  S.ox = x - ((event.clientX - r.left) * dpr) / S.scale; S.oy = y - ((event.clientY - r.top) * dpr) / S.scale;
  schedule();
}, { passive: false });

function updateSplit(stem, split) {
  const item = S.state.micrographs.find((m) => m.stem === stem);
  if (item && item.split !== split) { item.split = split; renderList(); }
}

// ---------------------------------------------------------------- tools, history, layers, keys
function setTool(tool) {
  S.tool = tool;
  for (const t of ["brush", "eraser", "pan"]) $("tool-" + t).classList.toggle("active", t === tool);
  renderClasses();
}
$("tool-brush").addEventListener("click", () => setTool("brush"));
$("tool-eraser").addEventListener("click", () => setTool("eraser"));
$("tool-pan").addEventListener("click", () => setTool("pan"));
function setRadius(value) {
  S.radius = Math.max(1, Math.min(64, value));
  $("size").value = S.radius; $("size-value").textContent = S.radius;
}
$("size").addEventListener("input", (e) => setRadius(+e.target.value));

async function history(action) {
  if (!S.stem) return;
  try {
    const status = await api(`/api/${action}/${enc(S.stem)}`, { method: "POST" });
    Object.assign(S.info, status); updateSplit(S.stem, status.split); renderSide(); draw();
  } catch (e) { say(e.message, true); }
}
$("undo").addEventListener("click", () => history("undo"));
$("redo").addEventListener("click", () => history("redo"));

function toggle(layer, box) { S.show[layer] = $(box).checked; draw(); }
$("show-mask").addEventListener("change", () => toggle("mask", "show-mask"));
$("show-pred").addEventListener("change", () => toggle("pred", "show-pred"));
$("show-unsure").addEventListener("change", () => toggle("unsure", "show-unsure"));
$("opacity").addEventListener("input", (e) => { S.opacity = e.target.value / 100; draw(); });
function flip(box) { $(box).checked = !$(box).checked; $(box).dispatchEvent(new Event("change")); }

document.addEventListener("keydown", (event) => {
  if (event.target.tagName === "INPUT" || document.querySelector("dialog[open]")) return;
  const key = event.key.toLowerCase();
  if ((event.ctrlKey || event.metaKey) && key === "z") { event.preventDefault(); return history(event.shiftKey ? "redo" : "undo"); }
  if ((event.ctrlKey || event.metaKey) && key === "y") { event.preventDefault(); return history("redo"); }
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (key === " ") { S.space = true; event.preventDefault(); }
  else if (/^[1-9]$/.test(key) && +key <= S.state.classes.length) { S.label = +key - 1; setTool("brush"); }
  else if (key === "b") setTool("brush");
  else if (key === "e") setTool("eraser");
  else if (key === "h") setTool("pan");
  else if (key === "[") setRadius(S.radius - 1);
  else if (key === "]") setRadius(S.radius + 1);
  else if (key === "o") flip("show-pred");
  else if (key === "u") flip("show-unsure");
  else if (key === "m") flip("show-mask");
  else if (key === "f") fit();
  else if (key === "t") train();
  else if (key === "n" && S.state.model && S.state.model.next) open(S.state.model.next, S.state.model.where);
});
document.addEventListener("keyup", (event) => { if (event.key === " ") S.space = false; });

// ---------------------------------------------------------------- training
async function train() {
  try {
    renderJob(await api("/api/train", { method: "POST", json: {} }));
    poll();
  } catch (e) { say(e.message, true); }
}
$("train").addEventListener("click", train);
$("cancel").addEventListener("click", async () => {
  try { await api("/api/cancel", { method: "POST" }); say("cancelling"); } catch (e) { say(e.message, true); }
});

function clock(seconds) {
  if (seconds == null) return "";
  const s = Math.max(0, Math.round(seconds));
  return s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s left` : `${s} s left`;
}

function renderJob(job) {
  const running = job && ["starting", "training", "predicting"].includes(job.state);
  $("train").disabled = !!running; $("cancel").hidden = !running; $("progress").hidden = !running;
  if (!job) { $("job-text").textContent = ""; return; }
  let text = job.state, share = 0;
  if (job.state === "training" && job.steps) {
    share = job.step / job.steps;
    text = `training ${job.step}/${job.steps} steps · ${clock(job.seconds_left)}`;
  } else if (job.state === "predicting") {
    share = (job.done || 0) / (job.total || 1);
    text = `segmenting ${job.done || 0}/${job.total} micrographs`;
  } else if (job.state === "done") text = `model of job ${job.id} ready`;
  else if (job.message) text = `${job.state}: ${job.message}`;
  $("bar").style.width = `${Math.round(100 * share)}%`;
  $("job-text").textContent = text;
  $("job-text").title = job.message || "";
  return running;
}

async function poll() {
  clearTimeout(poll.timer);
  let job;
  try { job = await api("/api/job"); } catch (e) { poll.timer = setTimeout(poll, 3000); return; }
  const running = renderJob(job);
  const key = job ? `${job.id}:${job.state}:${job.preview ? job.preview.step : ""}` : "";
  if (key !== S.jobKey) {
    S.jobKey = key;
    if (!running && job && job.state === "done") await loadState();
    if (!running && job && job.state !== "done" && job.message) say(job.message, job.state === "failed" || job.state === "interrupted");
    if (S.stem) { S.info = { ...S.info, ...(await api(`/api/micrographs/${enc(S.stem)}`)) }; renderSide(); draw(); }
  }
  if (running) poll.timer = setTimeout(poll, 1000);
}

// ---------------------------------------------------------------- export and upload
$("export").addEventListener("click", () => {
  $("export-result").textContent = "";
  $("chosen-count").textContent = S.chosen.size;
  $("export-chosen").disabled = !S.chosen.size;
  $("export-dialog").showModal();
});
$("export-go").addEventListener("click", async (event) => {
  event.preventDefault();
  const which = document.querySelector("input[name=which]:checked").value;
  $("export-result").textContent = "exporting...";
  try {
    const stems = which === "current" ? [S.stem] : which === "chosen" ? [...S.chosen] : null;
    const result = await api("/api/export", { method: "POST", json: { stems } });
    $("export-result").innerHTML = `Written to <code></code>. <a href="${result.download}" download>Download (zip)</a>`;
    $("export-result").querySelector("code").textContent = result.folder;
  } catch (e) { $("export-result").textContent = e.message; }
});

$("upload").addEventListener("change", async (event) => {
  for (const file of event.target.files) {
    try {
      await api(`/api/upload?name=${enc(file.name)}`, { method: "POST", body: file });
      say(`added ${file.name}`);
    } catch (e) { say(e.message, true); }
  }
  event.target.value = "";
  await loadState();
});

resize();
loadState().then(poll).catch((e) => say(e.message, true));
