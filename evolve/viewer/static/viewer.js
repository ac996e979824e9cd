// The run viewer's page: the lineage graph (sigma.js over graphology, WebGL), one
// candidate's record in the pane, the run's panels; updated live by polling the archive's
// change counter. Every text from the archive is put in with textContent, never parsed
// as HTML.
/* global graphology, Sigma */
"use strict";

const STATUS_COLOURS = { evaluated: "#2e7d32", failed: "#d9534f", invalid: "#b0b0b0",
                         pending: "#f0ad4e" };
const state = { version: null, columns: null, rowOf: new Map(), root: [], children: [],
                graph: null, renderer: null, selected: null, visible: null, run: null };

// -- small helpers ---------------------------------------------------------------------
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  return node;
}

async function getJSON(path) {
  const response = await fetch(path, { credentials: "same-origin" });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

function fmt(value) {
  return value === null || value === undefined ? "-" : Number(value).toFixed(3);
}

function hex(h, s, l) {  // HSL (degrees, 0-1, 0-1) as #rrggbb: sigma reads hex colours
  const k = (n) => (n + h / 30) % 12;
  const a = s * Math.min(l, 1 - l);
  const f = (n) => l - a * Math.max(-1, Math.min(k(n) - 3, Math.min(9 - k(n), 1)));
  return "#" + [f(0), f(8), f(4)].map((x) => Math.round(x * 255).toString(16).padStart(2, "0")).join("");
}

function hue(key) {  // a stable colour per text
  let h = 0;
  for (const ch of String(key)) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return hex(h % 360, 0.6, 0.5);
}

function lighter(colour) {  // halfway to white: a retired candidate
  const n = parseInt(colour.slice(1), 16);
  const mix = (v) => Math.round(v + (255 - v) / 2);
  return "#" + [n >> 16, (n >> 8) & 255, n & 255].map((v) => mix(v).toString(16).padStart(2, "0")).join("");
}

// -- the graph -------------------------------------------------------------------------
function index(columns) {
  const rowOf = new Map(), root = [], children = [];
  columns.id.forEach((id, i) => { rowOf.set(id, i); children.push(0); });
  columns.id.forEach((id, i) => {
    const parents = columns.parents[i];
    for (const p of parents) if (rowOf.has(p)) children[rowOf.get(p)] += 1;
    const first = parents.length ? rowOf.get(parents[0]) : undefined;
    root.push(first === undefined ? id : root[first]);  // parents come before children
  });
  Object.assign(state, { columns, rowOf, root, children });
}

function layout(columns) {
  // x: the generation; y: the rank within it, ordered by the first parent's rank, so a
  // lineage stays together
  const rank = new Map(), byGeneration = new Map();
  columns.id.forEach((id, i) => {
    const g = columns.generation[i];
    if (!byGeneration.has(g)) byGeneration.set(g, []);
    byGeneration.get(g).push(i);
  });
  const position = new Map();
  for (const g of [...byGeneration.keys()].sort((a, b) => a - b)) {
    const rows = byGeneration.get(g);
    const key = (i) => { const p = columns.parents[i][0]; return rank.has(p) ? rank.get(p) : -1; };
    rows.sort((a, b) => key(a) - key(b) || columns.id[a] - columns.id[b]);
    rows.forEach((i, k) => {
      rank.set(columns.id[i], k);
      position.set(columns.id[i], { x: g * 10, y: (k - (rows.length - 1) / 2) * 4 });
    });
  }
  return position;
}

function colourOf(i, by) {  // by: the "colour" menu's value
  const c = state.columns;
  let colour;
  if (by === "status" || c.status[i] !== "evaluated") colour = STATUS_COLOURS[c.status[i]] || "#888888";
  else if (by === "score") colour = c.train[i] === null ? "#888888" : hex(120 * c.train[i], 0.7, 0.45);
  else if (by === "operator") colour = hue(c.operator[i]);
  else if (by === "island") colour = c.island[i] === null ? "#888888" : hue(`island ${c.island[i]}`);
  else colour = hue(`clade ${state.root[i]}`);
  return c.retired_by[i] !== null ? lighter(colour) : colour;
}

function nodeAttributes(i, position, by) {
  const c = state.columns;
  return { x: position.x, y: position.y, size: 4 + 2 * Math.sqrt(state.children[i]),
           color: colourOf(i, by), label: `#${c.id[i]} ${c.operator[i]} ${fmt(c.train[i])}` };
}

function drawGraph() {
  const c = state.columns, positions = layout(c), by = colourMode();
  if (!state.graph) {
    state.graph = new graphology.Graph({ multi: false, type: "directed" });
  }
  const graph = state.graph;
  // the candidates already drawn move and recolour in one update (one event for sigma,
  // not one per node); the new ones are added with their edges (parents never change and
  // come before their children)
  graph.updateEachNodeAttributes((node, attributes) => {
    const i = state.rowOf.get(Number(node));
    return i === undefined ? attributes : nodeAttributes(i, positions.get(Number(node)), by);
  });
  const added = [];
  c.id.forEach((id, i) => {
    if (graph.hasNode(String(id))) return;
    graph.addNode(String(id), nodeAttributes(i, positions.get(id), by));
    added.push(i);
  });
  for (const i of added) {
    c.parents[i].forEach((p, k) => {
      if (graph.hasNode(String(p))) {
        graph.addDirectedEdgeWithKey(`${p}>${c.id[i]}`, String(p), String(c.id[i]),
          { color: k === 0 ? "#9a9a9a" : "#6a5acd", size: k === 0 ? 0.5 : 1 });
      }
    });
  }
  if (!state.renderer) {
    state.renderer = new Sigma(graph, document.getElementById("graph"), {
      renderLabels: true, labelRenderedSizeThreshold: 8, zIndex: true,
      nodeReducer: (node, data) => {
        const id = Number(node);
        if (state.visible && !state.visible.has(id)) return { ...data, hidden: true };
        if (id === state.selected) return { ...data, highlighted: true, zIndex: 1, size: data.size + 3 };
        return data;
      },
      edgeReducer: (edge, data) => {
        if (!state.visible) return data;
        const [from, to] = state.graph.extremities(edge).map(Number);
        return state.visible.has(from) && state.visible.has(to) ? data : { ...data, hidden: true };
      },
    });
    state.renderer.on("clickNode", ({ node }) => select(Number(node), { move: false }));
  } else {
    state.renderer.refresh();
  }
  document.getElementById("counts").textContent = `${c.id.length} candidates`;
}

function colourMode() {
  return document.getElementById("colour-by").value;
}

function recolour() {
  if (!state.graph) return;
  const by = colourMode();
  state.graph.updateEachNodeAttributes(
    (node, attributes) => ({ ...attributes, color: colourOf(state.rowOf.get(Number(node)), by) }),
    { attributes: ["color"] });
}

function visibleSet() {  // the ids the "show" menu keeps (null: all)
  const mode = document.getElementById("filter").value, c = state.columns;
  if (mode === "all" || state.selected === null || !state.rowOf.has(state.selected)) return null;
  if (mode === "clade") {
    const root = state.root[state.rowOf.get(state.selected)];
    return new Set(c.id.filter((id, i) => state.root[i] === root));
  }
  const seen = new Set([state.selected]), todo = [state.selected];  // ancestry: every parent
  while (todo.length) {
    for (const p of c.parents[state.rowOf.get(todo.pop())] || []) {
      if (!seen.has(p) && state.rowOf.has(p)) { seen.add(p); todo.push(p); }
    }
  }
  return seen;
}

function applyFilter() {
  state.visible = visibleSet();
  if (state.renderer) state.renderer.refresh();
}

// -- the candidate pane -------------------------------------------------------------------
function section(title, ...content) {
  return el("section", {}, el("h3", { text: title }), ...content);
}

function linkTo(id) {
  const a = el("a", { href: `#${id}`, class: "link", "data-id": String(id), text: `#${id}` });
  a.addEventListener("click", (event) => { event.preventDefault(); select(id); });
  return a;
}

function idList(ids) {
  const span = el("span");
  ids.forEach((id, k) => { if (k) span.append(", "); span.append(linkTo(id)); });
  if (!ids.length) span.append("none");
  return span;
}

function drawCandidate(data) {
  const parts = [
    el("h2", { id: "pane-title", text: `#${data.id} ${data.operator} (${data.status})` }),
    el("p", {}, "parents: ", idList(data.parents), "; children: ", idList(data.children)),
  ];
  if (data.reason) parts.push(el("p", { class: "reason", text: `${data.failure || data.status}: ${data.reason}` }));
  if (data.retired_by) parts.push(el("p", {}, "retired by ", linkTo(data.retired_by)));
  const prompts = data.genome && data.genome.task_prompts;
  if (prompts) parts.push(section("Task prompts", ...prompts.map((p) => el("pre", { class: "prompt", text: p }))));
  parts.push(section("Genome", el("pre", { class: "genome", text: JSON.stringify(data.genome, null, 2) })));
  for (const [parent, diff] of Object.entries(data.diffs || {})) {
    parts.push(section(`Diff against parent #${parent}`, el("pre", { class: "diff", text: diff })));
  }
  for (const [where, error] of Object.entries(data.repo_errors || {})) {
    parts.push(el("p", { class: "reason", text: `git (${where}): ${error}` }));
  }
  const program = Object.entries(data.program || {});
  if (program.length) {
    // a founder's files are open; a child's are folded below its diffs
    const open = !(data.parents && data.parents.length);
    parts.push(section("Program", ...program.map(([path, text]) => el("details",
      open ? { class: "file", open: "" } : { class: "file" },
      el("summary", { text: path }), el("pre", { class: "program", text })))));
  }
  const rows = [el("tr", {}, el("th", { text: "split" }), el("th", { text: "mean" }),
    el("th", { text: "examples (id: score, answer)" }))];
  for (const [split, score] of Object.entries(data.scores || {})) {
    const examples = (score.examples || []).map((e) => `${e[0]}: ${e[1]} ${e[2] ?? ""}`).join("\n");
    rows.push(el("tr", {}, el("td", { text: split }), el("td", { text: fmt(score.mean) }),
      el("td", {}, el("pre", { text: examples }))));
  }
  parts.push(section("Scores", el("table", {}, ...rows)));
  for (const exchange of (data.mutation && data.mutation.exchanges) || []) {
    parts.push(section("Mutation request and response",
      el("pre", { class: "exchange", text: JSON.stringify(exchange, null, 2) })));
  }
  parts.push(section("Usage and timings", el("pre", {
    text: JSON.stringify({ usage: data.usage, timings: data.timings }, null, 2) })));
  document.getElementById("pane").replaceChildren(...parts);
}

function focus(id) {  // move the camera to a candidate
  if (!state.renderer || !state.graph.hasNode(String(id))) return;
  const shown = state.renderer.getNodeDisplayData(String(id));
  if (shown) state.renderer.getCamera().animate({ x: shown.x, y: shown.y }, { duration: 300 });
}

async function select(id, { move = true } = {}) {
  // move: bring it into view (a search, a link in the pane); a click on a node does not
  state.selected = id;
  applyFilter();
  try {
    drawCandidate(await getJSON(`/api/candidate/${id}`));
  } catch (error) {
    document.getElementById("pane").replaceChildren(el("p", { class: "error", text: String(error) }));
  }
  if (move) focus(id);
}

// -- the run panels ---------------------------------------------------------------------------
function extent(points, axis, from, to) {  // a loop: spreading 100k values into Math.min overflows the stack
  let low = from, high = to;
  for (const p of points) { if (p[axis] < low) low = p[axis]; if (p[axis] > high) high = p[axis]; }
  return [low, high];
}

function envelope(points, x0, x1, columns) {
  // points sorted by x, thinned to the lowest and the highest of each of the chart's
  // columns: the line looks the same and a run of 100k candidates costs no more to draw
  if (points.length <= 2 * columns) return points;
  const kept = [];
  let column = -1, low = null, high = null;
  const flush = () => { if (low) kept.push(...(low === high ? [low] : low[0] <= high[0] ? [low, high] : [high, low])); };
  for (const p of points) {
    const c = Math.floor(columns * (p[0] - x0) / ((x1 - x0) || 1));
    if (c !== column) { flush(); column = c; low = high = p; continue; }
    if (p[1] < low[1]) low = p;
    if (p[1] > high[1]) high = p;
  }
  flush();
  return kept;
}

function chart(title, series, legend) {
  // series: [{points: [[x, y]] sorted by x, colour}]
  const all = series.flatMap((s) => s.points);
  const box = el("div", {}, el("h3", { text: title }));
  if (!all.length) { box.append(el("p", { class: "legend", text: "nothing recorded yet" })); return box; }
  const [x0, x1] = extent(all, 0, Infinity, -Infinity), [y0, y1] = extent(all, 1, 0, 1);
  const sx = (x) => 10 + 380 * (x - x0) / ((x1 - x0) || 1), sy = (y) => 150 - 140 * (y - y0) / ((y1 - y0) || 1);
  const plot = svg("svg", { class: "chart", viewBox: "0 0 400 160", preserveAspectRatio: "none" });
  for (const s of series) {
    plot.append(svg("polyline", { fill: "none", stroke: s.colour, "stroke-width": 1.5,
      points: envelope(s.points, x0, x1, 380).map(([x, y]) => `${sx(x)},${sy(y)}`).join(" ") }));
  }
  box.append(plot, el("p", { class: "legend", text: legend }));
  return box;
}

function drawPanels() {
  const c = state.columns, run = state.run || {};
  let best = -Infinity;
  const train = [], bestTrain = [], validation = [];
  c.id.forEach((id, i) => {
    if (c.train[i] !== null) { train.push([id, c.train[i]]); best = Math.max(best, c.train[i]); bestTrain.push([id, best]); }
    if (c.validation[i] !== null) validation.push([id, c.validation[i]]);
  });
  const operators = new Map();
  c.id.forEach((id, i) => {
    if (!c.parents[i].length) return;
    const o = operators.get(c.operator[i]) || { made: 0, valid: 0 };
    o.made += 1; o.valid += c.status[i] === "evaluated" ? 1 : 0;
    operators.set(c.operator[i], o);
  });
  const table = el("table", { id: "operators" }, el("tr", {}, el("th", { text: "operator" }),
    el("th", { text: "children" }), el("th", { text: "valid" }), el("th", { text: "valid rate" })));
  for (const [name, o] of [...operators.entries()].sort()) {
    table.append(el("tr", {}, el("td", { text: name }), el("td", { text: String(o.made) }),
      el("td", { text: String(o.valid) }), el("td", { text: fmt(o.valid / o.made) })));
  }
  const budget = run.budget || {};
  const usage = run.tokens === undefined ? "" : `, ${run.tokens} LLM tokens` + (budget.tokens ? ` of ${budget.tokens}` : "");
  const parts = [
    chart("Score over candidates", [{ points: train, colour: "#9ccc9c" }, { points: bestTrain, colour: "#2e7d32" },
      { points: validation, colour: "#1f5fbf" }], "train (light), best train so far (dark), validation (blue)"),
    el("h3", { text: "Operators" }), table,
    el("h3", { text: "Budget" }), el("p", { id: "budget", text:
      `${c.id.length} candidates` + (budget.candidates ? ` of ${budget.candidates}` : "") + usage }),
  ];
  const readings = run.collapse || [];
  if (readings.length) {
    const ks = Object.keys(readings[readings.length - 1].pass_at_k || {});
    parts.push(chart("pass@k of the living population (probe set)", ks.map((k) => ({
      colour: hue(`k${k}`), points: readings.filter((r) => r.pass_at_k[k] !== null && r.pass_at_k[k] !== undefined)
        .map((r) => [r.generation, r.pass_at_k[k]]) })), `k = ${ks.join(", ")} by generation`));
    parts.push(chart("Live clades", [{ colour: "#8e44ad", points: readings.map((r) => [r.generation, r.live_clades]) }],
      "founders' subtrees with a living member, by generation"));
  }
  document.getElementById("panels").replaceChildren(...parts);
}

// -- keeping up with the run ------------------------------------------------------------------
async function refresh() {
  // after the first load, the cheap change counter first: the run and its graph are read
  // again only on a change
  if (state.columns && (await getJSON("/api/version")).version === state.version) return;
  const stages = { version: performance.now() };
  const [run, graph] = await Promise.all([getJSON("/api/run"), getJSON("/api/graph")]);
  stages.fetch = performance.now();
  state.run = run;
  document.getElementById("run-name").textContent = run.name;
  document.getElementById("run-state").textContent = run.state + (run.stop_reason ? ` (${run.stop_reason})` : "");
  state.version = graph.version;
  index(graph.columns);
  state.visible = visibleSet();
  stages.index = performance.now();
  drawGraph();  // draws once, with the filter applied
  stages.graph = performance.now();
  drawPanels();
  stages.panels = performance.now();
  if (!window.cladeforgeViewer.ready) {  // the first draw: stamp it once it is on screen
    window.cladeforgeViewer.stages = stages;
    requestAnimationFrame(() => { window.cladeforgeViewer.readyAt = performance.now(); });
  }
  window.cladeforgeViewer.ready = true;
}

// for tests and scripts: where a node is drawn, in page coordinates
window.cladeforgeViewer = {
  ready: false,
  readyAt: 0,  // ms from navigation start to the first drawn graph
  stages: null,  // ms from navigation start to the end of each step of the first load
  nodePosition(id) {
    if (!state.renderer || !state.graph.hasNode(String(id))) return null;
    const p = state.renderer.graphToViewport(state.graph.getNodeAttributes(String(id)));
    const box = document.getElementById("graph").getBoundingClientRect();
    return { x: box.left + p.x, y: box.top + p.y };
  },
  nodes() { return state.graph ? state.graph.nodes().map(Number) : []; },
  colour(id) { return state.graph && state.graph.hasNode(String(id)) ? state.graph.getNodeAttribute(String(id), "color") : null; },
  focus,
  moving() { return Boolean(state.renderer && state.renderer.getCamera().isAnimated()); },
  hidden(id) { return Boolean(state.visible && !state.visible.has(id)); },
};

document.getElementById("search").addEventListener("submit", (event) => {
  event.preventDefault();
  const id = Number(document.getElementById("search-id").value);
  if (id > 0) select(id);
});
document.getElementById("colour-by").addEventListener("change", recolour);
document.getElementById("filter").addEventListener("change", applyFilter);

async function poll() {
  const started = performance.now(), problem = document.getElementById("problem");
  try {
    await refresh();
    problem.textContent = "";
  } catch (error) {  // shown, and tried again: the server may be restarting
    problem.textContent = `cannot update: ${error.message}`;
    console.error(error);
  }
  // a large run takes a while to read and draw: wait at least as long again before the
  // next look, so the page stays free for the user
  setTimeout(poll, Math.max(1000, 2 * (performance.now() - started)));
}
poll();
