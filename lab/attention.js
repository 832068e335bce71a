// Attention explorer (chapter 3, HTML only): the chosen sentences' attention maps of the
// pre-trained and the fine-tuned encoder side by side, any layer and head or the head average.
// Data (analysis.bert.chapter.explorer_data, inline JSON): sentences[i].maps.{pre,ft}[layer][head]
// is a flat row-major T*T list of integers in units of 1/scale; head index n_heads is the average.
// Nothing is computed here beyond picking, colouring and sorting the stored values.

const MODELS = [["pre", "pre-trained"], ["ft", "fine-tuned"]];
// viridis stops (matplotlib's), so the maps read like the chapter's static figures
const VIRIDIS = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58", "#b5de2b", "#fde725"];
const TOP_K = 3; // tokens listed per model in the readout

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function hexToRgb(hex) {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}
const STOPS = VIRIDIS.map(hexToRgb);

// t in [0, 1] -> css colour, linear between the viridis stops
function colour(t) {
  const x = Math.min(Math.max(t, 0), 1) * (STOPS.length - 1);
  const i = Math.min(Math.floor(x), STOPS.length - 2);
  const f = x - i;
  const c = STOPS[i].map((a, k) => Math.round(a + (STOPS[i + 1][k] - a) * f));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

function option(value, text, selected) {
  const o = el("option", { value: String(value) }, text);
  if (selected) o.selected = true;
  return o;
}

function labelled(text, control) {
  const label = el("label", {}, text + " ");
  label.appendChild(control);
  return label;
}

function validate(data) {
  // a malformed payload should say what is wrong instead of drawing an empty widget
  if (!data || !Array.isArray(data.sentences) || data.sentences.length === 0) throw new Error("no sentences in the data");
  if (!(data.n_layers > 0 && data.n_heads > 0 && data.scale > 0)) throw new Error("n_layers, n_heads and scale must be positive");
  data.sentences.forEach((s, i) => {
    const n = s.tokens.length;
    for (const [m] of MODELS) {
      const maps = s.maps && s.maps[m];
      if (!maps || maps.length !== data.n_layers) throw new Error(`sentence ${i + 1}: ${m} maps need ${data.n_layers} layers`);
      maps.forEach((layer, l) => {
        if (layer.length !== data.n_heads + 1) throw new Error(`sentence ${i + 1}, ${m} layer ${l + 1}: need ${data.n_heads} heads + average`);
        layer.forEach((h) => { if (h.length !== n * n) throw new Error(`sentence ${i + 1}: a map is not ${n} x ${n}`); });
      });
    }
  });
}

function build(root) {
  const data = JSON.parse(root.querySelector("script.lab-data").textContent);
  validate(data);
  const fmt = (v) => (v / data.scale).toFixed(data.decimals);

  // ---- controls (native selects: keyboard and screen readers work as usual)
  const controls = el("div", { class: "lab-controls" });
  const sentenceSel = el("select", { "data-testid": "sentence" });
  data.sentences.forEach((s, i) => sentenceSel.appendChild(option(i, `${i + 1}: ${s.role}`, i === 0)));
  const layerSel = el("select", { "data-testid": "layer" });
  for (let l = 0; l < data.n_layers; l++) layerSel.appendChild(option(l, String(l + 1), l === data.n_layers - 1));
  const headSel = el("select", { "data-testid": "head" });
  headSel.appendChild(option(data.n_heads, "average of heads", true));
  for (let h = 0; h < data.n_heads; h++) headSel.appendChild(option(h, String(h + 1), false));
  controls.append(labelled("Sentence", sentenceSel), labelled("Layer", layerSel), labelled("Head", headSel));

  const caption = el("p", { class: "att-sentence", "data-testid": "sentence-text" });
  const mapsBox = el("div", { class: "att-maps" });
  const legend = el("div", { class: "att-legend", "aria-hidden": "true" });
  const readout = el("div", { class: "att-readout", "data-testid": "readout", "aria-live": "polite" });
  const help = el("p", { class: "lab-status" }, "Keyboard: Tab into a map, then the arrow keys move between cells " +
    "(Home / End: the row's first and last key); the text below says where the query attends.");
  root.querySelector("noscript")?.remove();
  root.append(controls, caption, mapsBox, legend, readout, help);

  let active = null; // {row, col}: the hovered/focused query token (col: hovered key, or null)
  let grids = {}; // model -> {cells: [T][T] elements, labels / colLabels: [T] token-label elements}

  const current = () => {
    const s = data.sentences[Number(sentenceSel.value)];
    const l = Number(layerSel.value), h = Number(headSel.value);
    return { s, l, h, maps: Object.fromEntries(MODELS.map(([m]) => [m, s.maps[m][l][h]])) };
  };

  function drawGrid(model, title, s, values, vmax) {
    // an ARIA grid: rows of a header (key tokens), then per query token its label and cells. The
    // rows are `display: contents`, so the cells lay out in one CSS grid; one cell is the map's Tab
    // stop (a roving tabindex) and the arrow keys move it (keydown below)
    const n = s.tokens.length;
    const panel = el("figure", { class: "att-panel", "data-testid": `map-${model}` });
    panel.appendChild(el("figcaption", {}, title));
    const grid = el("div", { class: "att-grid", role: "grid", "data-model": model,
                             "aria-label": `${title} attention: rows are queries, columns are keys; arrow keys move between cells` });
    grid.style.gridTemplateColumns = `max-content repeat(${n}, minmax(0, 1fr))`;
    const head = el("div", { class: "att-row", role: "row" });
    head.appendChild(el("div", { class: "att-corner", role: "columnheader" }, ""));
    head.firstChild.appendChild(el("span", { class: "visually-hidden" }, "query / key"));
    const colLabels = s.tokens.map((t, j) => el("div", { class: "att-col-label", role: "columnheader", "data-col": String(j), title: t }, t));
    head.append(...colLabels);
    grid.appendChild(head);
    const cells = [], labels = [];
    for (let i = 0; i < n; i++) {
      const rowEl = el("div", { class: "att-row", role: "row" });
      const lab = el("div", { class: "att-row-label", role: "rowheader", "data-testid": "row-label", "data-row": String(i),
                              "data-model": model, title: s.tokens[i] }, s.tokens[i]);
      labels.push(lab);
      rowEl.appendChild(lab);
      const row = [];
      for (let j = 0; j < n; j++) {
        const v = values[i * n + j];
        const cell = el("div", { class: "att-cell", role: "gridcell", tabindex: "-1", "data-testid": "cell", "data-model": model,
                                 "data-row": String(i), "data-col": String(j), "data-value": fmt(v),
                                 "aria-label": `${s.tokens[i]} to ${s.tokens[j]}: ${fmt(v)}`, title: `${s.tokens[i]} → ${s.tokens[j]}: ${fmt(v)}` });
        cell.style.background = colour(vmax > 0 ? v / vmax : 0);
        row.push(cell);
        rowEl.appendChild(cell);
      }
      cells.push(row);
      grid.appendChild(rowEl);
    }
    const [r0, c0] = active && active.row < n ? [active.row, active.col ?? 0] : [0, 0];
    cells[r0][Math.min(c0, n - 1)].tabIndex = 0;
    panel.appendChild(grid);
    grids[model] = { grid, n, cells, labels, colLabels };
    return panel;
  }

  function render() {
    const { s, l, h, maps } = current();
    const n = s.tokens.length;
    const what = h === data.n_heads ? "average of heads" : `head ${h + 1}`;
    caption.textContent = `“${s.text}” — true class ${s.label}, fine-tuned prediction ${s.pred}; layer ${l + 1}, ${what}.`;
    // one colour scale for both maps: 0 to the larger maximum of the two
    const vmax = Math.max(...MODELS.map(([m]) => Math.max(...maps[m])));
    grids = {};
    mapsBox.replaceChildren(...MODELS.map(([m, name]) => drawGrid(m, `${name} ${data.model}`.trim(), s, maps[m], vmax)));
    legend.replaceChildren(el("span", {}, "Colour scale (both maps):"), el("span", {}, fmt(0)), el("span", { class: "att-ramp" }), el("span", { "data-testid": "vmax" }, fmt(vmax)));
    legend.querySelector(".att-ramp").style.background = `linear-gradient(to right, ${VIRIDIS.join(",")})`;
    if (active && active.row >= n) active = null;
    fit();
    highlight();
  }

  let fittedWidth = -1;
  function fit() {
    // whole-pixel cells: fractional 1fr columns leave hairline gaps between some rows in Chrome
    fittedWidth = mapsBox.clientWidth;
    for (const g of Object.values(grids)) {
      const avail = g.grid.clientWidth - g.labels[0].offsetWidth;
      const size = Math.max(6, Math.floor(avail / g.n));
      g.grid.style.gridTemplateColumns = `max-content repeat(${g.n}, ${size}px)`;
      // rows exactly one cell high, labels no taller than a cell: no gaps between rows at small sizes
      g.grid.style.gridTemplateRows = `auto repeat(${g.n}, ${size}px)`;
      g.grid.style.fontSize = `${Math.min(11, Math.max(7, size))}px`;
    }
  }

  function topTokens(values, row, n) {
    const idx = Array.from({ length: n }, (_, j) => j);
    idx.sort((a, b) => values[row * n + b] - values[row * n + a] || a - b);
    return idx.slice(0, TOP_K);
  }

  function highlight() {
    const { s, maps } = current();
    const n = s.tokens.length;
    for (const [m] of MODELS) {
      const g = grids[m];
      g.cells.forEach((row, i) => row.forEach((c, j) => {
        c.classList.toggle("att-hl", active !== null && i === active.row);
        c.classList.toggle("att-hl-cell", active !== null && i === active.row && j === active.col);
        c.dataset.highlight = active !== null && i === active.row ? "1" : "0";
      }));
      g.labels.forEach((lab, i) => lab.classList.toggle("att-hl-label", active !== null && i === active.row));
      g.colLabels.forEach((lab, j) => lab.classList.toggle("att-hl-label", active !== null && j === active.col));
    }
    if (active === null) {
      readout.replaceChildren(el("span", { class: "lab-status" }, "Hover over a cell, or focus one with the keyboard, to see where its query token attends."));
      return;
    }
    const q = active.row;
    const head = el("div", {}, `Query “${s.tokens[q]}” (token ${q + 1} of ${n}) attends most to:`);
    const list = el("ul", { class: "att-top" });
    for (const [m, name] of MODELS) {
      const item = el("li", { "data-testid": `top-${m}` });
      item.appendChild(el("strong", {}, `${name}: `));
      item.append(topTokens(maps[m], q, n).map((j) => `${s.tokens[j]} ${fmt(maps[m][q * n + j])}`).join(", "));
      list.appendChild(item);
    }
    readout.replaceChildren(head, list);
    if (active.col !== null) {
      const k = active.col;
      readout.appendChild(el("div", { "data-testid": "readout-cell" },
        `“${s.tokens[q]}” → “${s.tokens[k]}”: pre-trained ${fmt(maps.pre[q * n + k])}, fine-tuned ${fmt(maps.ft[q * n + k])}`));
    }
  }

  function point(target) {
    // a cell or row label under the pointer/focus -> the active query row (and key column)
    const t = target.closest && target.closest(".att-cell, .att-row-label");
    if (!t) return;
    const row = Number(t.dataset.row), col = t.dataset.col === undefined ? null : Number(t.dataset.col);
    if (active && active.row === row && active.col === col) return;
    active = { row, col };
    highlight();
  }

  mapsBox.addEventListener("mouseover", (e) => point(e.target));
  mapsBox.addEventListener("focusin", (e) => point(e.target));
  mapsBox.addEventListener("keydown", (e) => {
    // the grid pattern: arrows move one cell, Home / End to the row's ends, Ctrl+Home / Ctrl+End to
    // the map's corners; the focused cell becomes the map's Tab stop
    const t = e.target;
    if (!t.classList.contains("att-cell")) return;
    const g = grids[t.dataset.model], r = Number(t.dataset.row), c = Number(t.dataset.col), last = g.n - 1;
    const to = {
      ArrowUp: [r - 1, c], ArrowDown: [r + 1, c], ArrowLeft: [r, c - 1], ArrowRight: [r, c + 1],
      Home: e.ctrlKey ? [0, 0] : [r, 0], End: e.ctrlKey ? [last, last] : [r, last],
    }[e.key];
    if (!to) return;
    e.preventDefault();
    const [r2, c2] = [Math.max(0, Math.min(last, to[0])), Math.max(0, Math.min(last, to[1]))];
    t.tabIndex = -1;
    g.cells[r2][c2].tabIndex = 0;
    g.cells[r2][c2].focus();
  });
  for (const sel of [sentenceSel, layerSel, headSel]) sel.addEventListener("change", render);
  render();
  // re-fit when the width changes (window resize, sidebar collapse), not when our own height does
  new ResizeObserver(() => { if (mapsBox.clientWidth !== fittedWidth) fit(); }).observe(mapsBox);
  root.dataset.ready = "1";
}

function loadCss() {
  // the widget's own rules, next to this script (lab.css holds the shared ones); resolves once
  // loaded (or failed), since fit() measures the styled layout
  const href = new URL("attention.css", import.meta.url).href;
  const link = el("link", { rel: "stylesheet", href, "data-lab-css": "attention" });
  const done = new Promise((resolve) => { link.onload = resolve; link.onerror = resolve; });
  document.head.appendChild(link);
  return done;
}

loadCss().then(() => {
  for (const root of document.querySelectorAll('div.lab[data-lab="attention"]')) {
    if (root.dataset.ready === "1") continue;
    try {
      build(root);
    } catch (err) {
      root.appendChild(el("p", { class: "lab-error" }, `The attention explorer could not be built: ${err.message}`));
      console.error(err);
    }
  }
});
