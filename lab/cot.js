// Chapter 4's chain-of-thought browser (analysis.cot.chapter.cot_browser writes the data; the
// fields are documented in cot_browser_data). Plain ES module, nothing fetched: the data is the
// inline JSON of the widget's div, this script only filters and lays it out. Every number shown is
// a count of those rows or a stored value; nothing is recomputed.

const SHORT = {  // the category titles without their parenthesised gloss, as the chapter's tables
  flip_to_correct: "flip to correct",
  flip_to_incorrect: "flip to incorrect",
  correct_correct: "correct both",
  incorrect_incorrect: "incorrect both",
};
// the chapter's abbreviations (its table of groups), for a narrow column (see cot.css)
const CODE = { flip_to_correct: "FC", flip_to_incorrect: "FI", correct_correct: "CC", incorrect_incorrect: "II" };
const INVALID = "INVALID";
const DASH = "–";  // shown for a missing value (never "null"/"None": the book check forbids it)

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function loadStyle() {
  // one stylesheet per page, next to this script (the site copies lab/ as a folder)
  const href = new URL("./cot.css", import.meta.url).href;
  if (![...document.querySelectorAll("link[rel=stylesheet]")].some((l) => l.href === href)) {
    document.head.append(el("link", { rel: "stylesheet", href }));
  }
}

const letterOf = (i) => "ABCD"[i];
const mark = (ok) => (ok ? "✓" : "✗");  // a glyph as well as the colour, for readers without colour

// A letter cell: the letter, and whether it is right (INVALID counts as wrong, as in the chapter).
function letterCell(letter, ok, testid, label) {
  const cls = letter === INVALID ? "cot-invalid" : ok ? "cot-ok" : "cot-bad";
  return el("td", { class: `cot-letter ${cls}`, "data-testid": testid, "data-label": label }, letter, " ", el("span", { class: "cot-mark", "aria-hidden": "true" }, mark(ok)));
}

function optionName(row, letter) {
  const i = "ABCD".indexOf(letter);
  return i >= 0 && row.choices[i] !== undefined ? `${letter}. ${row.choices[i]}` : letter;
}

function details(row, data) {
  const box = el("div", { class: "cot-details" });
  box.append(el("p", { class: "cot-question" }, el("strong", {}, "Question "), row.question));
  if (row.hint) box.append(el("p", { class: "cot-context" }, el("strong", {}, "Context "), row.hint));
  const where = [row.subject, row.topic, row.category].filter((x) => x).join(" · ");
  if (where) box.append(el("p", { class: "cot-meta" }, `ScienceQA: ${where}`));

  const opts = el("ol", { class: "cot-options", type: "A" });
  row.choices.forEach((text, i) => {
    const L = letterOf(i);
    const tags = [];
    if (L === row.gold) tags.push("gold");
    if (L === row.direct) tags.push("without CoT");
    if (L === row.cot) tags.push("with CoT");
    opts.append(el("li", { class: L === row.gold ? "cot-gold" : "" }, text,
      tags.length ? el("span", { class: "cot-tags" }, ` ← ${tags.join(", ")}`) : null));
  });
  box.append(opts);

  const scores = row.direct_scores.map((s, i) => `${letterOf(i)} ${s.toFixed(2)}`).join(" · ");
  box.append(el("p", { "data-testid": "direct" }, el("strong", {}, "Without CoT "),
    el("span", { class: row.direct_ok ? "cot-ok" : "cot-bad", "data-testid": "direct-answer" },
      `${optionName(row, row.direct)} ${mark(row.direct_ok)}`), " ",
    el("span", { class: "cot-meta" }, `(highest next-token log-probability: ${scores})`)));

  const head = `Reasoning steps (${row.steps.length})`;
  if (row.steps.length) {
    const ol = el("ol", { class: "cot-steps", "data-testid": "steps" });
    for (const step of row.steps) ol.append(el("li", {}, step));
    box.append(el("p", { class: "cot-sub" }, el("strong", {}, head)), ol);
  } else {
    box.append(el("p", { class: "cot-sub", "data-testid": "steps" }, el("strong", {}, head),
      " — the output has no “Reasoning:” line (its raw text is below)."));
  }

  const flags = [`${row.rule} rule`, row.format_ok ? "format followed exactly" : "format not followed exactly",
    `${row.tokens} tokens`];
  if (row.hit_max) flags.push("stopped by the token budget");
  box.append(el("p", { "data-testid": "extracted" }, el("strong", {}, "Letter read from the chain "),
    el("span", { class: row.valid ? (row.cot_ok ? "cot-ok" : "cot-bad") : "cot-invalid", "data-testid": "extracted-letter" },
      `${row.valid ? optionName(row, row.cot) : INVALID} ${mark(row.cot_ok)}`), " ", el("span", { class: "cot-meta" }, `(${flags.join("; ")})`)));

  // early answering: the answer after k steps of this chain, and whether it is already the final one
  const early = el("table", { class: "cot-early", "data-testid": "early" });
  const ks = row.early.map((_, k) => k);
  early.append(el("tr", {}, el("th", { scope: "row" }, "steps kept"), ...ks.map((k) => el("th", { scope: "col" }, String(k)))));
  early.append(el("tr", {}, el("th", { scope: "row" }, "early answer"), ...row.early.map((x) => el("td", {}, x ?? DASH))));
  early.append(el("tr", {}, el("th", { scope: "row" }, "= final letter"),
    ...row.early_agree.map((x) => el("td", { class: x === null ? "" : x ? "cot-ok" : "cot-bad" }, x === null ? DASH : x ? "yes" : "no"))));
  box.append(el("p", { class: "cot-sub" }, el("strong", {}, "Early answering"),
    el("span", { class: "cot-meta" }, ` (chain cut after k steps, then “Answer:”; ${DASH}: no such cut)`)),
  el("div", { class: "cot-early-wrap" }, early));

  if (row.label) {
    const meaning = (data.labels[row.flip] || {})[row.label] || "";
    box.append(el("p", { class: "cot-label", "data-testid": "label" }, el("strong", {}, "Our reading "),
      el("em", {}, row.label.replaceAll("_", " ")), meaning ? ` (${meaning})` : "", row.note ? `: ${row.note}` : ""));
  } else if (row.sampled) {
    box.append(el("p", { class: "cot-meta", "data-testid": "label" }, "Sampled for reading, not labelled yet."));
  }
  box.append(el("details", { class: "cot-raw" }, el("summary", {}, "Raw output with CoT"), el("pre", {}, row.raw)));
  return box;
}

function build(root) {
  const data = JSON.parse(root.querySelector("script.lab-data").textContent);
  const rows = data.rows;
  const state = { flip: "", group: "", valid: "", labelled: false, text: "", open: new Set() };

  // --- controls
  const flipSel = el("select", { "data-testid": "filter-flip" }, el("option", { value: "" }, `all (${data.n})`),
    ...data.categories.map((c) => el("option", { value: c.key }, `${SHORT[c.key] || c.key} (${c.n})`)));
  // groups as the chapter forms them: topics first, then question stems, each by size
  const sizes = new Map();
  for (const r of rows) {
    const key = `${r.group_kind}\u0000${r.group}`;
    sizes.set(key, (sizes.get(key) || 0) + 1);
  }
  const groupSel = el("select", { "data-testid": "filter-group" }, el("option", { value: "" }, "all"));
  for (const kind of ["topic", "stem"]) {
    const entries = [...sizes].filter(([k]) => k.startsWith(kind + "\u0000"))
      .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    if (!entries.length) continue;
    const og = el("optgroup", { label: kind === "topic" ? "topics" : "question stems" });
    for (const [key, n] of entries) og.append(el("option", { value: key }, `${key.split("\u0000")[1]} (${n})`));
    groupSel.append(og);
  }
  const nValid = rows.filter((r) => r.valid).length;
  const validSel = el("select", { "data-testid": "filter-valid" }, el("option", { value: "" }, "any"),
    el("option", { value: "valid" }, `valid letter (${nValid})`),
    el("option", { value: "invalid" }, `INVALID (${rows.length - nValid})`));
  const nLabelled = rows.filter((r) => r.label).length;
  const labelBox = el("input", { type: "checkbox", "data-testid": "filter-labelled" });
  const search = el("input", { type: "search", placeholder: "words or id", "data-testid": "search", size: "18" });
  const controls = el("div", { class: "lab-controls" },
    el("label", {}, "Category", flipSel), el("label", {}, "Topic / stem", groupSel),
    el("label", {}, "CoT answer", validSel), el("label", {}, "Search", search),
    el("label", {}, labelBox, `labelled by us only (${nLabelled})`));

  // --- count line and list
  const count = el("span", { "data-testid": "count" });
  const byFlip = el("span", { class: "cot-byflip", "data-testid": "count-by-flip" });
  const status = el("p", { class: "cot-count", "aria-live": "polite" }, count, byFlip);
  const tbody = el("tbody");
  const table = el("table", { class: "cot-table" },
    el("colgroup", {}, el("col", { class: "c-id" }), el("col", { class: "c-group" }), el("col", { class: "c-l c-gold" }),
      el("col", { class: "c-l" }), el("col", { class: "c-l2" }), el("col", { class: "c-flip" })),
    el("thead", {}, el("tr", {}, ...["id", "topic / question stem", "gold", "without CoT", "with CoT"]
      .map((h) => el("th", { scope: "col" }, h)),
    el("th", { scope: "col" }, el("span", { class: "cot-long" }, "category"), el("span", { class: "cot-short", title: "category" }, "cat.")))), tbody);
  const scroll = el("div", { class: "cot-scroll" }, table);
  const hint = el("p", { class: "lab-status" }, "Click a question to show its chain. Keyboard: Tab into the list, " +
    "arrow keys (Home, End, Page Up/Down) move between questions, Enter or Space shows a chain; the list scrolls.");

  const haystack = rows.map((r) => [r.id, r.group, r.question, r.hint, ...r.choices, ...r.steps, r.raw, r.note || ""]
    .join("\n").toLowerCase());

  function matches(r, i) {
    if (state.flip && r.flip !== state.flip) return false;
    if (state.group && `${r.group_kind}\u0000${r.group}` !== state.group) return false;
    if (state.valid === "valid" && !r.valid) return false;
    if (state.valid === "invalid" && r.valid) return false;
    if (state.labelled && !r.label) return false;
    return !state.text || haystack[i].includes(state.text);
  }

  // one Tab stop for the whole list: the current row's button (a roving tabindex); arrow keys,
  // Home and End move between rows, Enter or Space shows the question's chain
  let current = null;  // id of the row whose button takes the Tab stop
  const buttons = () => [...tbody.querySelectorAll("button.cot-expand")];

  function setCurrent(btn, focus) {
    for (const x of buttons()) x.tabIndex = x === btn ? 0 : -1;
    current = btn ? btn.dataset.id : null;
    if (btn && focus) btn.focus();
  }

  function toggle(tr, r) {
    const open = !state.open.has(r.id);
    if (open) state.open.add(r.id); else state.open.delete(r.id);
    tr.querySelector("button.cot-expand").setAttribute("aria-expanded", String(open));
    tr.classList.toggle("cot-open", open);
    const next = tr.nextElementSibling;
    if (next && next.classList.contains("cot-detail")) next.remove();
    if (open) tr.after(detailRow(r));
  }

  const detailId = (r) => `${root.id}-chain-${r.id}`;

  function detailRow(r) {
    return el("tr", { class: "cot-detail", "data-testid": "detail", "data-id": r.id, id: detailId(r) },
      el("td", { colspan: "6" }, details(r, data)));
  }

  function render() {
    const shown = rows.filter(matches);
    count.textContent = `${shown.length} of ${data.n} questions`;
    const per = data.categories.map((c) => `${SHORT[c.key] || c.key} ${shown.filter((r) => r.flip === c.key).length}`);
    const nInvalid = shown.filter((r) => !r.valid).length;
    byFlip.textContent = ` — ${per.join(" · ")} · INVALID ${nInvalid}`;
    tbody.replaceChildren();
    for (const r of shown) {
      const open = state.open.has(r.id);
      const btn = el("button", { type: "button", class: "cot-expand", "data-id": r.id, "aria-expanded": String(open),
        "aria-controls": detailId(r), tabindex: "-1" }, el("span", { class: "visually-hidden" }, "Chain of question "), r.id);
      // data-label: the column's name, shown before the value when the table is laid out as cards (cot.css)
      const tr = el("tr", { class: "cot-row", "data-testid": "row", "data-flip": r.flip, "data-id": r.id,
        "data-valid": r.valid ? "1" : "0" },
      el("td", { class: "cot-id" }, btn),
      el("td", { class: "cot-group", title: `${r.group_kind}: ${r.group}`, "data-label": r.group_kind }, r.group),
      el("td", { class: "cot-letter", "data-label": "gold" }, r.gold),
      letterCell(r.direct, r.direct_ok, "direct-letter", "without CoT"),
      letterCell(r.cot, r.cot_ok, "cot-letter", "with CoT"),
      el("td", { class: "cot-cat" }, el("span", { class: `cot-flip cot-${r.flip}`, title: SHORT[r.flip] || r.flip },
        el("span", { class: "cot-long" }, SHORT[r.flip] || r.flip), el("span", { class: "cot-short" }, CODE[r.flip] || r.flip))));
      // the whole row answers a click (a large target); the keyboard uses its button
      tr.addEventListener("click", () => toggle(tr, r));
      if (state.open.has(r.id)) tr.classList.add("cot-open");
      tbody.append(tr);
      if (state.open.has(r.id)) tbody.append(detailRow(r));
    }
    if (!shown.length) tbody.append(el("tr", {}, el("td", { colspan: "6", class: "lab-status" }, "No question matches these filters.")));
    const all = buttons();
    setCurrent(all.find((x) => x.dataset.id === current) || all[0] || null, false);
  }

  tbody.addEventListener("keydown", (e) => {
    const btn = e.target.closest && e.target.closest("button.cot-expand");
    if (!btn) return;
    const all = buttons(), i = all.indexOf(btn);
    const j = { ArrowDown: i + 1, ArrowUp: i - 1, Home: 0, End: all.length - 1, PageDown: i + 10, PageUp: i - 10 }[e.key];
    if (j === undefined) return;
    e.preventDefault();
    setCurrent(all[Math.max(0, Math.min(all.length - 1, j))], true);
  });
  tbody.addEventListener("focusin", (e) => {
    if (e.target.matches && e.target.matches("button.cot-expand")) setCurrent(e.target, false);
  });

  flipSel.addEventListener("change", () => { state.flip = flipSel.value; render(); });
  groupSel.addEventListener("change", () => { state.group = groupSel.value; render(); });
  validSel.addEventListener("change", () => { state.valid = validSel.value; render(); });
  labelBox.addEventListener("change", () => { state.labelled = labelBox.checked; render(); });
  search.addEventListener("input", () => { state.text = search.value.trim().toLowerCase(); render(); });

  root.querySelector("noscript")?.remove();
  root.append(controls, status, scroll, hint);
  render();
  root.dataset.ready = "1";
}

loadStyle();
for (const root of document.querySelectorAll('div.lab[data-lab="cot"]')) {
  try {
    build(root);
  } catch (err) {  // say so in the widget rather than leave an empty box
    root.append(el("p", { class: "lab-error" }, `The browser could not be built: ${err.message}`));
    console.error(err);
  }
}
