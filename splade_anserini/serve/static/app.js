// The page of `splade-anserini serve`: one search request with explain=true, drawn as hits whose bars
// show what each matched term contributed (query weight x document impact) to the score.
"use strict";
const $ = (id) => document.getElementById(id);
let colours = new Map();

// One colour per term, the same in the query's list and in every bar: hues a golden angle apart.
function colour(term) {
  if (!colours.has(term)) colours.set(term, `hsl(${(colours.size * 137.508 + 220) % 360}, 62%, ${colours.size % 2 ? 42 : 52}%)`);
  return colours.get(term);
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "style") node.style.cssText = v; else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

function inQuery(term, text) {
  const words = text.toLowerCase().normalize("NFD").replace(/[\u0300-\u036f]/g, "").split(/[^a-z0-9]+/);
  const bare = term.replace(/^##/, "");
  return words.some((w) => w === term || (term.startsWith("##") && w.endsWith(bare)) || (w.startsWith(bare) && bare.length > 2));
}

function showExpansion(vector, text) {
  const list = $("expansion");
  list.replaceChildren();
  const top = vector.length ? vector[0].weight : 1;
  const expanded = vector.filter((t) => !inQuery(t.term, text)).length;
  $("expansion-note").textContent = `${vector.length} terms, ${expanded} added by the model`;
  for (const t of vector.slice(0, 40)) {
    const own = inQuery(t.term, text);
    list.append(el("li", {class: own ? "own" : "expanded", "data-term": t.term, title: own ? "in the query" : "expansion term"},
      el("span", {class: "term"}, t.term),
      el("span", {}, el("div", {class: "wbar", style: `width:${(100 * t.weight / top).toFixed(1)}%;background:${colour(t.term)}`})),
      el("span", {class: "w"}, String(t.weight))));
  }
  $("expansion-panel").hidden = false;
}

function showHit(c, doc) {
  const ex = c.explanation;
  const bar = el("div", {class: "bar", title: "contribution of each matched term to the score"});
  const legend = el("div", {class: "legend"});
  ex.terms.forEach((t, i) => {
    const pct = (100 * t.contribution / ex.sum).toFixed(2);
    bar.append(el("div", {class: "seg", "data-term": t.term, style: `width:${pct}%;background:${colour(t.term)}`,
                          title: `${t.term}: ${t.query_weight} x ${t.impact} = ${t.contribution}`}));
    if (i < 8) legend.append(el("span", {class: "term-contribution", "data-term": t.term}, el("i", {style: `background:${colour(t.term)}`}),
                                `${t.term} ${t.query_weight}\u00d7${t.impact}=${t.contribution}`));
  });
  if (ex.terms.length > 8) legend.append(el("span", {class: "more"}, `+${ex.terms.length - 8} more terms`));
  const title = doc && doc.title ? el("div", {class: "title"}, doc.title) : "";
  const body = doc ? doc.text : (c.document_txt || "");
  return el("li", {class: "hit", "data-docid": c.docid, "data-score": String(c.score)},
    el("div", {class: "hit-head"}, el("span", {class: "rank"}, `${c.rank}.`), el("span", {class: "docid"}, c.docid),
       el("span", {class: "score"}, `score ${c.score}`)),
    title, el("div", {class: "text"}, body), bar, legend);
}

async function getJSON(url) {
  const response = await fetch(url);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

async function search(event) {
  if (event) event.preventDefault();
  const index = $("index").value, text = $("query").value, hits = $("hits").value || "10";
  const status = $("status");
  status.className = "";
  status.textContent = "Searching\u2026";
  const params = new URLSearchParams({query: text, hits, explain: "true"});
  const started = performance.now();
  try {
    const result = await getJSON(`/indexes/${encodeURIComponent(index)}/search?${params}`);
    colours = new Map();
    showExpansion(result.query_vector, text);
    const list = $("hits-list");
    list.replaceChildren(...result.candidates.map((c) => showHit(c, c.document)));
    const ms = (performance.now() - started).toFixed(1);
    status.textContent = `${result.candidates.length} hits from ${index} in ${ms} ms`;
    document.body.dataset.searched = String(Number(document.body.dataset.searched || 0) + 1);
  } catch (err) {
    status.className = "error";
    status.textContent = `error: ${err.message}`;
    document.body.dataset.failed = "1";
  }
}

async function start() {
  const names = await getJSON("/indexes");
  $("index").replaceChildren(...names.map((n) => el("option", {value: n}, n)));
  const params = new URLSearchParams(location.search);
  if (params.get("index")) $("index").value = params.get("index");
  $("search-form").addEventListener("submit", search);
  if (params.get("q")) { $("query").value = params.get("q"); search(); }
  document.body.dataset.ready = "1";
}
start();
