// SAM prompt explorer (chapter 1 of the HTML book). The split of SAM's own web demo: image
// embeddings were computed ahead of time by the package (analysis/sam/explorer.py) and are fetched
// as float16; the prompt encoder + mask decoder run here, exported to ONNX with segment_anything's
// SamOnnxModel, in onnxruntime-web (WebAssembly, one thread: no cross-origin isolation needed).
// Everything is served with the site (scripts/lab_assets.py); nothing comes from a CDN.
//
// Inputs are built exactly as analysis.sam.explorer.onnx_inputs builds them in Python (the browser
// test compares the masks for the book's reference prompts with the package's masks).

const HERE = new URL(".", import.meta.url); // .../lab/
const ORT_FILES = ["ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"]; // scripts/lab_assets.py
const COLORS = { mask: [220, 40, 60], gt: [40, 170, 80], box: [30, 100, 230] };

function addStyle() {
  if (document.querySelector("link[data-lab-sam-css]")) return;
  const link = Object.assign(document.createElement("link"), { rel: "stylesheet", href: new URL("sam.css", HERE).href });
  link.dataset.labSamCss = "1";
  document.head.appendChild(link);
}

// float16 -> float32 through a 65,536-entry table (Float16Array is not in every browser yet)
let HALF = null;
function halfTable() {
  if (HALF) return HALF;
  HALF = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, f = h & 0x3ff;
    HALF[h] = e === 0 ? s * f * 2 ** -24 : e === 31 ? (f ? NaN : s * Infinity) : s * (1 + f / 1024) * 2 ** (e - 15);
  }
  return HALF;
}
function halfToFloat(buf) {
  const u16 = new Uint16Array(buf), out = new Float32Array(u16.length), t = halfTable();
  for (let i = 0; i < u16.length; i++) out[i] = t[u16[i]];
  return out;
}
function unpackBits(buf, n) {
  const bytes = new Uint8Array(buf), out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (bytes[i >> 3] >> (7 - (i & 7))) & 1;
  return out;
}
function packBase64(bits) { // np.packbits order (most significant bit first), then base64
  const bytes = new Uint8Array(Math.ceil(bits.length / 8));
  for (let i = 0; i < bits.length; i++) if (bits[i]) bytes[i >> 3] |= 1 << (7 - (i & 7));
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(s);
}
function f1Score(mask, gt) {
  let tp = 0, fp = 0, fn = 0;
  for (let i = 0; i < mask.length; i++) {
    if (mask[i] && gt[i]) tp++; else if (mask[i]) fp++; else if (gt[i]) fn++;
  }
  const d = 2 * tp + fp + fn;
  return d === 0 ? 1 : (2 * tp) / d;
}
async function fetchBytes(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r.arrayBuffer();
}
const el = (tag, props = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) if (k.includes("-")) e.setAttribute(k, v); else e[k] = v; // aria-*: attributes
  for (const k of kids) e.append(k);
  return e;
};

class Explorer {
  constructor(root) {
    this.root = root;
    this.data = JSON.parse(root.querySelector("script.lab-data").textContent);
    this.base = new URL(this.data.assets, HERE);
    this.cache = new Map(); // image n -> {emb, gt, auto, img, outline}
    this.points = []; this.labels = []; this.box = null;
    this.output = "auto"; this.showAuto = false; this.result = null;
    this.build();
  }

  build() {
    const d = this.data;
    this.imageSel = el("select", { "aria-label": "X-ray" });
    d.images.forEach((im) => this.imageSel.append(el("option", { value: im.n, textContent: im.label })));
    this.modeSel = el("select", { "aria-label": "what a click or drag adds" });
    for (const [v, t] of [["box", "drag: box"], ["pos", "click: positive point"], ["neg", "click: negative point"]])
      this.modeSel.append(el("option", { value: v, textContent: t }));
    this.refSel = el("select", { "aria-label": "the book's prompts", "data-testid": "refs" });
    this.clearBtn = el("button", { type: "button", textContent: "Clear" });
    this.autoBtn = el("button", { type: "button", textContent: "Everything", title: "the automatic mode's stored masks" });
    this.autoBtn.setAttribute("aria-pressed", "false");
    // a toolbar: one Tab stop (the pressed button), the arrow keys move between its buttons
    this.outBtns = el("span", { className: "sam-outputs", role: "toolbar", "aria-label": "mask output" });
    for (const [v, t, title] of [["auto", "SAM's pick", "box: single-mask output; points only: the highest predicted IoU of the three"],
                                 ["0", "single", "output 0: the single-mask token"], ["1", "1", "multimask output 1"],
                                 ["2", "2", "multimask output 2"], ["3", "3", "multimask output 3"]]) {
      const b = el("button", { type: "button", textContent: t, title });
      b.dataset.output = v;
      b.dataset.testid = `output-${v}`;
      b.tabIndex = v === this.output ? 0 : -1;
      this.outBtns.append(b);
    }
    const helpId = `${this.root.id}-keys`;
    this.canvas = el("canvas", { className: "sam-canvas", tabIndex: 0, role: "application",
      "aria-label": "X-ray: place points and boxes", "aria-describedby": helpId });
    this.canvas.dataset.testid = "canvas";
    this.help = el("p", { className: "lab-status sam-keys", id: helpId, textContent:
      "Keyboard: Tab to the X-ray; the arrow keys move a cross-hair (Shift: faster), P adds a positive point, " +
      "N a negative one, B starts and then ends a box, Delete clears." });
    this.cursorText = el("span", { className: "sam-cursor" });
    this.cursorText.dataset.testid = "cursor";
    this.help.append(" ", this.cursorText);
    // what a prompt gave, said by screen readers (the readout below is rebuilt on each answer)
    this.live = el("p", { className: "visually-hidden", "aria-live": "polite" });
    this.live.dataset.testid = "live";
    this.readout = el("div", { className: "sam-readout" });
    this.readout.dataset.testid = "readout";
    this.status = el("div", { className: "lab-status", textContent: "The model loads when this figure comes into view." });
    this.root.append(
      el("div", { className: "lab-controls" },
        el("label", {}, "X-ray ", this.imageSel), el("label", {}, "Mode ", this.modeSel),
        this.clearBtn, this.autoBtn),
      el("div", { className: "lab-controls" }, el("label", {}, "Book prompt ", this.refSel), el("span", {}, "Output "), this.outBtns),
      el("div", { className: "sam-stage" }, this.canvas, this.readout), this.help, this.live, this.status);
    this.imageSel.addEventListener("change", () => this.selectImage(+this.imageSel.value)
      .catch((e) => this.fail(`X-ray ${this.imageSel.value} could not be shown`, e)));
    this.refSel.addEventListener("change", () => this.useReference(this.refSel.value));
    this.clearBtn.addEventListener("click", () => { this.clearPrompt(); this.draw(); });
    this.autoBtn.addEventListener("click", () => {
      this.showAuto = !this.showAuto;
      this.autoBtn.setAttribute("aria-pressed", String(this.showAuto));
      if (this.showAuto) this.draw(); else this.showResult();
    });
    this.outBtns.addEventListener("keydown", (ev) => {
      const all = [...this.outBtns.children], i = all.indexOf(ev.target);
      const j = { ArrowLeft: i - 1, ArrowRight: i + 1, Home: 0, End: all.length - 1 }[ev.key];
      if (i < 0 || j === undefined) return;
      ev.preventDefault();
      const next = all[(j + all.length) % all.length];
      for (const b of all) b.tabIndex = b === next ? 0 : -1;
      next.focus();
    });
    this.outBtns.addEventListener("click", (ev) => {
      const v = ev.target.dataset && ev.target.dataset.output;
      if (v) { this.output = v; this.showResult(); }
    });
    this.bindPointer();
    this.bindKeys();
  }

  // The keyboard's way to prompt: a cross-hair in image pixels, moved by the arrow keys; P / N place
  // positive / negative points, B anchors a box corner and B again closes the box (Escape drops it)
  bindKeys() {
    this.canvas.addEventListener("keydown", (ev) => {
      if (!this.ready || ev.altKey || ev.ctrlKey || ev.metaKey) return;
      const im = this.current, step = ev.shiftKey ? 16 : 4;
      this.cursor = this.cursor || [Math.round(im.width / 2), Math.round(im.height / 2)];
      const [x, y] = this.cursor;
      const move = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] }[ev.key];
      const key = ev.key.toLowerCase();
      if (move) {
        this.cursor = [Math.max(0, Math.min(im.width - 1, x + move[0])), Math.max(0, Math.min(im.height - 1, y + move[1]))];
      } else if (key === "p" || key === "n") {
        this.points.push([x, y]); this.labels.push(key === "p" ? 1 : 0);
        this.refSel.value = "";
        this.note = `${key === "p" ? "Positive" : "Negative"} point at ${x}, ${y}.`;
        this.run();
      } else if (key === "b" && !this.anchor) {
        this.anchor = [x, y];
        this.say(`Box corner at ${x}, ${y}: move to the opposite corner and press B.`);
      } else if (key === "b") {
        const a = this.anchor;
        this.anchor = null;
        this.box = [Math.min(a[0], x), Math.min(a[1], y), Math.max(a[0], x), Math.max(a[1], y)];
        this.refSel.value = "";
        this.note = `Box from ${this.box[0]}, ${this.box[1]} to ${this.box[2]}, ${this.box[3]}.`;
        this.run();
      } else if (ev.key === "Escape" && this.anchor) {
        this.anchor = null;
        this.say("Box dropped.");
      } else if (ev.key === "Delete" || ev.key === "Backspace") {
        this.anchor = null;
        this.clearPrompt();
        this.say("Prompt cleared.");
      } else {
        return;
      }
      ev.preventDefault();
      this.cursorText.textContent = `Cross-hair at ${this.cursor[0]}, ${this.cursor[1]} (of ${im.width} × ${im.height})` +
        (this.anchor ? `; box corner at ${this.anchor[0]}, ${this.anchor[1]}` : "") + ".";
      this.draw(this.anchor ? [Math.min(this.anchor[0], this.cursor[0]), Math.min(this.anchor[1], this.cursor[1]),
        Math.max(this.anchor[0], this.cursor[0]), Math.max(this.anchor[1], this.cursor[1])] : null);
    });
    this.canvas.addEventListener("blur", () => { if (this.entry) this.draw(); });
  }

  say(text) { this.live.textContent = text; }

  bindPointer() {
    let start = null;
    const toImage = (ev) => {
      const r = this.canvas.getBoundingClientRect(), im = this.current;
      // integer image pixels, like the book's prompts (a 2x display maps 2 CSS px to 1 pixel)
      return [Math.round(((ev.clientX - r.left) * im.width) / r.width), Math.round(((ev.clientY - r.top) * im.height) / r.height)];
    };
    this.canvas.addEventListener("pointerdown", (ev) => { if (this.ready) { start = toImage(ev); ev.preventDefault(); } });
    this.canvas.addEventListener("pointermove", (ev) => {
      if (!start || this.modeSel.value !== "box") return;
      const p = toImage(ev);
      this.draw([Math.min(start[0], p[0]), Math.min(start[1], p[1]), Math.max(start[0], p[0]), Math.max(start[1], p[1])]);
    });
    this.canvas.addEventListener("pointerup", (ev) => {
      if (!start) return;
      const p = toImage(ev), s = start;
      start = null;
      const dragged = Math.abs(p[0] - s[0]) > 2 || Math.abs(p[1] - s[1]) > 2;
      if (this.modeSel.value === "box" && dragged) {
        this.box = [Math.min(s[0], p[0]), Math.min(s[1], p[1]), Math.max(s[0], p[0]), Math.max(s[1], p[1])];
      } else if (this.modeSel.value === "box") {
        this.points.push(p); this.labels.push(1); // a plain click in box mode adds a positive point
      } else {
        this.points.push(p); this.labels.push(this.modeSel.value === "pos" ? 1 : 0);
      }
      this.refSel.value = "";
      this.run();
    });
  }

  // A phone-sized screen or the browser's data saver: the model and X-rays load on a tap, not on
  // their own as the figure comes near
  waitForTap() {
    return matchMedia("(max-width: 767.98px)").matches || !!(navigator.connection && navigator.connection.saveData);
  }

  // Bytes start() downloads (onnxruntime-web, the decoder, the first X-ray's files), from the
  // server's Content-Length answers to HEAD requests; null when the server does not say
  async downloadBytes() {
    const n = +this.imageSel.value;
    const urls = [...ORT_FILES.map((f) => new URL(`ort/${f}`, HERE)), new URL("decoder.onnx", this.base),
      ...["png", "emb.f16", "gt.bits", "auto.u8"].map((x) => new URL(`${n}.${x}`, this.base))];
    const sizes = await Promise.all(urls.map((u) => fetch(u, { method: "HEAD" })
      .then((r) => (r.ok ? Number(r.headers.get("content-length")) : NaN)).catch(() => NaN)));
    return sizes.every((b) => b > 0) ? sizes.reduce((a, b) => a + b, 0) : null;
  }

  offerLoad(go) {
    const button = el("button", { type: "button", className: "sam-load", textContent: "Load the explorer" });
    button.dataset.testid = "load";
    this.status.replaceChildren(button, " ", el("span", { textContent:
      "On a small screen or with data saver on, the model loads only when you ask." }));
    this.downloadBytes().then((bytes) => {
      if (bytes === null || !button.isConnected) return;
      const mb = (bytes / 1e6).toFixed(1);
      button.textContent = `Load the explorer (${mb} MB)`;
      this.root.dataset.downloadBytes = String(bytes);
    });
    button.addEventListener("click", () => {
      this.focusWhenReady = true;  // the button goes away: keep the keyboard's place in the figure
      this.status.textContent = "Loading…";
      go();
    });
  }

  async start() {
    if (this.loading) return;
    this.loading = true;
    const t0 = performance.now();
    this.status.textContent = `Loading onnxruntime-web and the ${this.data.model} decoder (${(this.data.decoder_mb).toFixed(1)} MB)…`;
    // the decoder's bytes and the first image download while onnxruntime-web loads and compiles
    const modelBytes = fetchBytes(new URL("decoder.onnx", this.base).href).catch((e) => {
      throw new Error(`${e.message}: the decoder was not exported into this site; render it in the project's environment (make setup, make render)`);
    });
    const firstImage = this.loadImage(+this.imageSel.value);
    modelBytes.catch(() => {}); firstImage.catch(() => {}); // awaited below; no unhandled rejection meanwhile
    try {
      let ort;
      try {
        ort = await import(new URL("ort/ort.wasm.min.mjs", HERE).href);
      } catch (e) {
        throw new Error("onnxruntime-web is not part of this site: run `make setup` (npm ci) and render again");
      }
      ort.env.wasm.wasmPaths = new URL("ort/", HERE).href;
      ort.env.wasm.numThreads = 1;
      this.ort = ort;
      const phases = { import_ms: performance.now() - t0 };
      const [session] = await Promise.all([
        modelBytes.then((b) => { phases.model_fetched_ms = performance.now() - t0;
          // no graph optimisation pass at load: a third less time to a session (bench/bench_lab.py),
          // the same decode speed once warm, and masks as close to the package's (tests/test_lab_sam.py)
          return ort.InferenceSession.create(new Uint8Array(b), { executionProviders: ["wasm"], graphOptimizationLevel: "disabled" })
            .catch((e) => { throw new Error(`${new URL("decoder.onnx", this.base).href} (${(b.byteLength / 1e6).toFixed(1)} MB) ` +
              `is not a decoder onnxruntime-web can read (${e.message || e}): the file is damaged. ` +
              "Delete .cache/sam_onnx/ and render the book again (make render): the decoder is exported afresh and checked."); }); })
          .then((x) => { phases.session_ms = performance.now() - t0; return x; }),
        firstImage.then((x) => { phases.image_ms = performance.now() - t0; return x; }),
      ]);
      this.root.dataset.phases = JSON.stringify(phases);
      this.session = session;
      this.root.dataset.loadMs = (performance.now() - t0).toFixed(0);
      this.t0 = t0;
      await this.selectImage(+this.imageSel.value);
      this.ready = true;
      this.status.textContent = `Ready: ${this.data.model} decoder in your browser (loaded in ${this.root.dataset.loadMs} ms). ` +
        "Drag a box or click points on the X-ray.";
      this.root.dataset.readyAtMs = performance.now().toFixed(0); // since the page's navigation began
      this.root.dataset.ready = "1";
      if (this.focusWhenReady) this.canvas.focus();
    } catch (e) {
      this.fail("The explorer could not start", e);
    }
  }

  // A problem the reader can act on, in the status line (and for the tests, in data-error)
  fail(what, e) {
    const message = e && e.message ? e.message : String(e);
    this.status.textContent = `${what}: ${message}`;
    this.status.classList.add("lab-error");
    this.root.dataset.error = message;
  }

  async loadImage(n) {
    if (this.cache.has(n)) return this.cache.get(n);
    const im = this.data.images.find((x) => x.n === n);
    const url = (name) => new URL(`${n}.${name}`, this.base).href;
    const img = new Image();
    const loaded = new Promise((ok, fail) => { img.onload = ok; img.onerror = () => fail(new Error(`${url("png")} did not load`)); });
    img.src = url("png");
    const [emb, gt, auto] = await Promise.all([fetchBytes(url("emb.f16")), fetchBytes(url("gt.bits")), fetchBytes(url("auto.u8")), loaded]);
    const size = im.height * im.width;
    // a truncated or padded file would decode to nonsense without a word: its length is known
    const expected = { "emb.f16": 2 * im.embedding_shape.reduce((a, b) => a * b, 1), "gt.bits": Math.ceil(size / 8), "auto.u8": size };
    for (const [name, bytes] of [["emb.f16", emb], ["gt.bits", gt], ["auto.u8", auto]]) {
      if (bytes.byteLength !== expected[name]) {
        throw new Error(`${url(name)} has ${bytes.byteLength} bytes where ${expected[name]} belong (a truncated or damaged file). ` +
          "Render the book again (make render): the explorer's files are copied afresh from the result store, checked against its checksums.");
      }
    }
    const entry = { im, img, emb: halfToFloat(emb), gt: unpackBits(gt, size), auto: new Uint8Array(auto) };
    entry.outline = new Uint8Array(size); // ground-truth boundary pixels, drawn as the green outline
    for (let y = 0; y < im.height; y++) for (let x = 0; x < im.width; x++) {
      const i = y * im.width + x;
      if (entry.gt[i] && (x === 0 || y === 0 || x === im.width - 1 || y === im.height - 1 ||
          !entry.gt[i - 1] || !entry.gt[i + 1] || !entry.gt[i - im.width] || !entry.gt[i + im.width])) entry.outline[i] = 1;
    }
    this.cache.set(n, entry);
    return entry;
  }

  async selectImage(n) {
    const entry = await this.loadImage(n);
    this.entry = entry;
    this.current = entry.im;
    this.canvas.width = entry.im.width; this.canvas.height = entry.im.height;
    this.refSel.replaceChildren(el("option", { value: "", textContent: "— choose —" }));
    this.data.refs.filter((r) => r.n === n).forEach((r) => this.refSel.append(el("option", { value: r.prompt, textContent: r.label })));
    this.clearPrompt();
    this.draw();
  }

  clearPrompt() {
    this.points = []; this.labels = []; this.box = null; this.result = null;
    this.readout.replaceChildren(el("div", { textContent: "No prompt yet." }));
    delete this.root.dataset.f1;
  }

  useReference(name) {
    const r = this.data.refs.find((x) => x.n === this.current.n && x.prompt === name);
    if (!r) return;
    this.points = (r.points || []).map((p) => p.slice());
    this.labels = (r.labels || []).slice();
    this.box = r.box ? r.box.slice() : null;
    this.run(r);
  }

  // The decoder's inputs, as analysis.sam.explorer.onnx_inputs builds them.
  feeds(entry, points, labels, box) {
    const ort = this.ort, im = entry.im, [sx, sy] = im.scale_xy;
    const pts = points.map((p) => p.slice()), lab = labels.slice();
    if (box) { pts.push([box[0], box[1]], [box[2], box[3]]); lab.push(2, 3); } else { pts.push([0, 0]); lab.push(-1); }
    const coords = new Float32Array(pts.length * 2);
    pts.forEach((p, i) => { coords[2 * i] = p[0] * sx; coords[2 * i + 1] = p[1] * sy; });
    const side = 4 * im.embedding_shape[3];
    return {
      image_embeddings: new ort.Tensor("float32", entry.emb, im.embedding_shape),
      point_coords: new ort.Tensor("float32", coords, [1, pts.length, 2]),
      point_labels: new ort.Tensor("float32", Float32Array.from(lab), [1, lab.length]),
      mask_input: new ort.Tensor("float32", new Float32Array(side * side), [1, 1, side, side]),
      has_mask_input: new ort.Tensor("float32", new Float32Array([0]), [1]),
      orig_im_size: new ort.Tensor("float32", new Float32Array([im.height, im.width]), [2]),
    };
  }

  async decode(entry, points, labels, box) {
    const out = await this.session.run(this.feeds(entry, points, labels, box), ["masks", "iou_predictions"]);
    const size = entry.im.height * entry.im.width, logits = out.masks.data, masks = [];
    for (let k = 0; k < 4; k++) {
      const m = new Uint8Array(size);
      for (let i = 0; i < size; i++) m[i] = logits[k * size + i] > 0 ? 1 : 0;
      masks.push(m);
    }
    return { masks, iou: Array.from(out.iou_predictions.data) };
  }

  async run(ref = null) {
    if (!this.ready && !this.session) return;
    if (!this.points.length && !this.box) { this.clearPrompt(); this.draw(); return; }
    const t = performance.now();
    let res;
    try {
      res = await this.decode(this.entry, this.points, this.labels, this.box);
    } catch (e) {
      this.fail("The decoder failed on this prompt", e);
      return;
    }
    res.ms = performance.now() - t;
    res.hasBox = !!this.box;
    res.ref = ref;
    res.f1 = res.masks.map((m) => f1Score(m, this.entry.gt));
    this.result = res;
    this.root.dataset.decodeMs = res.ms.toFixed(1);
    if (!this.root.dataset.firstAnswerMs && this.t0 !== undefined) {
      this.root.dataset.firstAnswerMs = (performance.now() - this.t0).toFixed(0); // since loading began
      this.root.dataset.firstAnswerAtMs = performance.now().toFixed(0); // since the page's navigation began
    }
    this.root.dataset.prompt = JSON.stringify({ points: this.points, labels: this.labels, box: this.box });
    this.showResult();
  }

  chosenOutput() {
    const r = this.result;
    if (this.output !== "auto") return +this.output;
    if (r.hasBox) return 0; // a box is unambiguous: the single-mask output (as the book's box strategies)
    let best = 1;
    for (let k = 2; k <= 3; k++) if (r.iou[k] > r.iou[best]) best = k;
    return best; // points only: the best-scored of the three multimask outputs (as the book's demo)
  }

  showResult() {
    for (const b of this.outBtns.children) {
      b.setAttribute("aria-pressed", String(b.dataset.output === this.output));
      if (!this.outBtns.contains(document.activeElement)) b.tabIndex = b.dataset.output === this.output ? 0 : -1;
    }
    if (!this.result) { this.draw(); return; }
    const r = this.result, k = this.chosenOutput();
    this.root.dataset.output = k;
    this.root.dataset.f1 = r.f1[k];
    this.root.dataset.iou = r.iou[k];
    const fmt = (v) => v.toFixed(3);
    const rows = [el("div", {}, el("b", { textContent: `F1 ${fmt(r.f1[k])}` }), ` against the ground truth (output ${k}${k === 0 ? ", single mask" : ""})`),
      el("div", { textContent: `${this.data.model}'s predicted IoU: ${fmt(r.iou[k])}` }),
      el("div", { className: "lab-status", textContent: `all outputs, F1: ${r.f1.map(fmt).join(" / ")}; predicted IoU: ${r.iou.map(fmt).join(" / ")}` }),
      el("div", { className: "lab-status", textContent: `decoded in ${r.ms.toFixed(0)} ms in this browser` })];
    if (r.ref) {
      rows.push(el("div", { className: "lab-status", textContent:
        `The package, for this prompt (PyTorch, float32 embedding): F1 ${r.ref.f1.map(fmt).join(" / ")}` }));
    }
    const f1El = rows[0].firstChild;
    f1El.dataset.testid = "f1";
    this.say(`${this.note || ""} F1 ${fmt(r.f1[k])} against the ground truth, predicted IoU ${fmt(r.iou[k])} (output ${k}).`.trim());
    this.note = "";
    this.readout.replaceChildren(...rows);
    this.draw();
  }

  draw(rubber = null) {
    const e = this.entry;
    if (!e) return;
    const ctx = this.canvas.getContext("2d"), w = e.im.width, h = e.im.height;
    ctx.drawImage(e.img, 0, 0, w, h);
    const px = ctx.getImageData(0, 0, w, h), d = px.data;
    const paint = (i, [r, g, b], a) => { d[4 * i] = d[4 * i] * (1 - a) + r * a; d[4 * i + 1] = d[4 * i + 1] * (1 - a) + g * a; d[4 * i + 2] = d[4 * i + 2] * (1 - a) + b * a; };
    if (this.showAuto) {
      for (let i = 0; i < w * h; i++) {
        const lab = e.auto[i];
        if (lab) paint(i, [(lab * 97) % 256, (lab * 57 + 80) % 256, (lab * 151 + 40) % 256], 0.55);
      }
    }
    if (this.result && !this.showAuto) {
      const m = this.result.masks[this.chosenOutput()];
      for (let i = 0; i < w * h; i++) if (m[i]) paint(i, COLORS.mask, 0.45);
    }
    for (let i = 0; i < w * h; i++) if (e.outline[i]) paint(i, COLORS.gt, 0.9);
    ctx.putImageData(px, 0, 0);
    const box = rubber || this.box;
    if (box) {
      ctx.strokeStyle = `rgb(${COLORS.box})`; ctx.lineWidth = 1.5;
      ctx.strokeRect(box[0], box[1], box[2] - box[0], box[3] - box[1]);
    }
    this.points.forEach((p, i) => {
      ctx.beginPath(); ctx.arc(p[0], p[1], 3.5, 0, 2 * Math.PI);
      ctx.fillStyle = this.labels[i] === 1 ? "#19c24a" : "#e0243c"; ctx.fill();
      ctx.lineWidth = 1; ctx.strokeStyle = "#fff"; ctx.stroke();
    });
    if (this.cursor && document.activeElement === this.canvas) {
      const [cx, cy] = this.cursor;
      ctx.lineWidth = 1; ctx.strokeStyle = "#ffd400";
      ctx.beginPath(); ctx.moveTo(cx - 8, cy + 0.5); ctx.lineTo(cx + 9, cy + 0.5); ctx.moveTo(cx + 0.5, cy - 8); ctx.lineTo(cx + 0.5, cy + 9); ctx.stroke();
    }
    if (this.showAuto) {
      const im = e.im;
      this.readout.replaceChildren(el("div", { textContent: `Everything: ${im.n_auto_masks} masks from the automatic mode (${this.data.auto_grid}), stored by the package; unlabelled, as the demo shows them.` }));
      this.readout.firstChild.dataset.testid = "auto-count";
    } else if (!this.result) {
      this.readout.replaceChildren(el("div", { textContent: "No prompt yet." }));
    }
  }
}

addStyle();
for (const root of document.querySelectorAll('div.lab[data-lab="sam"]')) {
  const x = new Explorer(root);
  root.samLab = {
    // For the browser test: decode a prompt on image n with the page's own pipeline; the four masks
    // packed like np.packbits (row-major, most significant bit first), base64.
    decode: async (n, points, labels, box) => {
      const entry = await x.loadImage(n);
      const r = await x.decode(entry, points || [], labels || [], box);
      return { masks: r.masks.map(packBase64), iou: r.iou };
    },
  };
  const go = () => x.start();
  if (x.waitForTap()) {
    x.offerLoad(go);
  } else if ("IntersectionObserver" in window) {
    const io = new IntersectionObserver((items) => { if (items.some((i) => i.isIntersecting)) { io.disconnect(); go(); } }, { rootMargin: "1500px" }); // starts before the reader gets there
    io.observe(root);
  } else go();
}
