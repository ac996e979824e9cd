// The run viewer's page: candidates by generation, one candidate's record in the pane,
// updated live by polling the archive's change counter. Every text from the archive is
// put in with textContent, never parsed as HTML.
"use strict";

const state = { version: null, columns: null, selected: null };

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

async function getJSON(path) {
  const response = await fetch(path, { credentials: "same-origin" });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

function fmt(value) {
  return value === null || value === undefined ? "-" : Number(value).toFixed(3);
}

function drawLineage() {
  const c = state.columns;
  const root = document.getElementById("lineage");
  const byGeneration = new Map();
  for (let i = 0; i < c.id.length; i++) {
    if (!byGeneration.has(c.generation[i])) byGeneration.set(c.generation[i], []);
    byGeneration.get(c.generation[i]).push(i);
  }
  const sections = [];
  for (const [generation, rows] of [...byGeneration.entries()].sort((a, b) => a[0] - b[0])) {
    const section = el("div", { class: "generation" },
      el("h2", { text: `generation ${generation}` }));
    for (const i of rows) {
      const id = c.id[i];
      const classes = ["node", c.status[i]];
      if (c.retired_by[i] !== null) classes.push("retired");
      if (id === state.selected) classes.push("selected");
      const button = el("button", {
        class: classes.join(" "), "data-id": String(id),
        title: `#${id} ${c.operator[i]} ${c.status[i]} train ${fmt(c.train[i])}`,
        text: `#${id}` });
      if (c.train[i] !== null) button.style.setProperty("--hue", String(Math.round(120 * c.train[i])));
      button.addEventListener("click", () => select(id));
      section.append(button);
    }
    sections.push(section);
  }
  root.replaceChildren(...sections);
}

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
  const pane = document.getElementById("pane");
  const parts = [
    el("h2", { text: `#${data.id} ${data.operator} (${data.status})` }),
    el("p", {}, "parents: ", idList(data.parents), "; children: ", idList(data.children)),
  ];
  if (data.reason) parts.push(el("p", { class: "reason", text: `${data.failure || data.status}: ${data.reason}` }));
  if (data.retired_by) parts.push(el("p", {}, "retired by ", linkTo(data.retired_by)));
  parts.push(section("Genome", el("pre", { class: "genome", text: JSON.stringify(data.genome, null, 2) })));
  for (const [path, diff] of Object.entries(data.diffs || {})) {
    parts.push(section(`Diff against parent #${path}`, el("pre", { class: "diff", text: diff })));
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
  pane.replaceChildren(...parts);
}

async function select(id) {
  state.selected = id;
  try {
    drawCandidate(await getJSON(`/api/candidate/${id}`));
  } catch (error) {
    document.getElementById("pane").replaceChildren(el("p", { class: "error", text: String(error) }));
  }
  if (state.columns) drawLineage();
}

async function refresh() {
  const run = await getJSON("/api/run");
  document.getElementById("run-name").textContent = run.name;
  document.getElementById("run-state").textContent =
    run.state + (run.stop_reason ? ` (${run.stop_reason})` : "");
  if (run.version === state.version && state.columns) return;
  const graph = await getJSON("/api/graph");
  state.version = graph.version;
  state.columns = graph.columns;
  drawLineage();
}

document.getElementById("search").addEventListener("submit", (event) => {
  event.preventDefault();
  const id = Number(document.getElementById("search-id").value);
  if (id > 0) select(id);
});

async function poll() {
  try { await refresh(); } catch (error) { console.error(error); }
  setTimeout(poll, 1000);
}
poll();
