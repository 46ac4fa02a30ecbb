// streamlab live figure: every view draws the model's whole current figure with Plotly.react.
//
// The kernel sets one synced trait, `figure`, to the complete figure on every redraw (arrays travel as
// binary buffers). A view created at any time (first display, a second view, a page reload, Voila)
// starts from that state, and a redraw that a view missed is repaired by the next one: no update is a
// diff against something the view may not have. This module is a few kilobytes, so anywidget binds it
// long before its 2 s initialization deadline even on a busy machine; plotly.js itself is loaded once
// per page, from the kernel's `_PlotlyLibrary` model, when the first view renders.

const LIB = "__streamlabPlotly";

function loadPlotly(model) {
  if (!globalThis[LIB]) {
    globalThis[LIB] = (async () => {
      const ref = model.get("_lib");
      const lib = await model.widget_manager.get_model(ref.replace(/^IPY_MODEL_/, ""));
      const packed = lib.get("source");
      const stream = new Blob([packed]).stream().pipeThrough(new DecompressionStream("gzip"));
      const code = await new Response(stream).text();
      const url = URL.createObjectURL(new Blob([code], { type: "text/javascript" }));
      try {
        await import(/* webpackIgnore: true */ url);
      } finally {
        URL.revokeObjectURL(url);
      }
      if (!globalThis.Plotly || !globalThis.Plotly.react) {
        throw new Error("plotly.js did not load");
      }
      return globalThis.Plotly;
    })();
    globalThis[LIB].catch(() => {
      delete globalThis[LIB]; // let a later view try again
    });
  }
  return globalThis[LIB];
}

const DTYPES = {
  float64: Float64Array,
  float32: Float32Array,
  int32: Int32Array,
  int16: Int16Array,
  int8: Int8Array,
  uint32: Uint32Array,
  uint16: Uint16Array,
  uint8: Uint8Array,
};

// Arrays arrive as {__ndarray__: dtype, data: DataView}; everything else is plain JSON.
function decode(value) {
  if (Array.isArray(value)) return value.map(decode);
  if (value && typeof value === "object") {
    if (value.__ndarray__ && value.data instanceof DataView) {
      const Typed = DTYPES[value.__ndarray__];
      const dv = value.data;
      const buffer = dv.buffer.slice(dv.byteOffset, dv.byteOffset + dv.byteLength);
      return new Typed(buffer);
    }
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = decode(v);
    return out;
  }
  return value;
}

function render({ model, el }) {
  el.classList.add("streamlab-figure");
  const plot = document.createElement("div");
  el.appendChild(plot);
  let plotly = null;
  let drawing = false;
  let again = false;
  let closed = false;

  async function draw() {
    if (drawing) {
      again = true; // coalesce: draw the newest figure once the current draw is done
      return;
    }
    drawing = true;
    try {
      do {
        again = false;
        const figure = model.get("figure");
        if (!figure || !figure.data) continue;
        const data = decode(figure.data);
        const layout = decode(figure.layout || {});
        const template = model.get("template");
        if (template && Object.keys(template).length) layout.template = template;
        if (layout.uirevision === undefined) layout.uirevision = "streamlab"; // keep the reader's zoom
        await plotly.react(plot, data, layout, { responsive: true, displaylogo: false });
        plot.dataset.rev = String(figure.rev);
        if (plot.dataset.rendered !== "1") {
          plot.dataset.rendered = "1";
          model.send({ event: "rendered", rev: figure.rev });
        }
      } while (again && !closed);
    } finally {
      drawing = false;
    }
  }

  const onChange = () => {
    if (plotly && !closed) draw().catch((e) => console.warn("[streamlab] redraw failed", e));
  };
  model.on("change:figure", onChange);

  loadPlotly(model)
    .then((p) => {
      plotly = p;
      onChange();
    })
    .catch((e) => {
      plot.textContent = `streamlab: could not load plotly.js (${e})`;
      console.warn("[streamlab] could not load plotly.js", e);
    });

  const resize = new ResizeObserver(() => {
    if (plotly && plot.dataset.rendered === "1") plotly.Plots.resize(plot);
  });
  resize.observe(el);

  return () => {
    closed = true;
    resize.disconnect();
    model.off("change:figure", onChange);
    if (plotly) plotly.purge(plot);
  };
}

export default { render };
