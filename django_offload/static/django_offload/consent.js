/**
 * @file Consent widget: asks the user once whether AI features may run on
 * this device, shown only when the device fits a model. The answer is
 * remembered by the runtime (localStorage). After an opt-in it shows the
 * download progress, then a way to opt out again. All text comes from the
 * config, so the server translates it.
 * @module django_offload/consent
 */

const ROOT_ID = "offload-consent";

function element(doc, tag, className, text) {
  const node = doc.createElement(tag);
  node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function fill(template, values) {
  return template.replace(/\{(\w+)\}/g, (match, name) => values[name] ?? match);
}

/**
 * Formats a byte count in megabytes for the user's language.
 * @param {number} bytes Byte count.
 * @param {string} [locale] BCP 47 language tag.
 * @returns {string} Such as "98 MB".
 */
export function formatSize(bytes, locale) {
  const format = new Intl.NumberFormat(locale, {
    style: "unit",
    unit: "megabyte",
    maximumFractionDigits: 0,
  });
  return format.format(Math.max(1, Math.round(bytes / 1e6)));
}

/** Bytes the fitting variant of a model downloads, shared files included. */
function downloadSize(runtime) {
  const fit = runtime.possibleFit();
  const model = runtime.model();
  if (!fit.variant || !model) return 0;
  const shared = Object.values(model.files).reduce((sum, file) => sum + file.bytes, 0);
  return shared + model.variants[fit.variant].bytes;
}

/**
 * The consent widget of one page.
 */
export class ConsentWidget {
  /**
   * @param {import("./runtime.js").Runtime} runtime Started runtime.
   * @param {Document} [doc] Document to render into.
   */
  constructor(runtime, doc = document) {
    this.runtime = runtime;
    this.doc = doc;
    this.text = runtime.config.text;
    this.root = null;
  }

  /**
   * Shows the widget when the device fits the page's model, and follows the
   * runtime's events from then on.
   * @returns {boolean} True when the device fits and the widget is active.
   */
  mount() {
    if (!this.runtime.possibleFit().variant) return false;
    this.root = element(this.doc, "aside", "offload-consent");
    this.root.id = ROOT_ID;
    this.root.setAttribute("aria-live", "polite");
    this.doc.body.append(this.root);
    this.listen();
    if (this.runtime.consent === null) this.showQuestion();
    else if (this.runtime.consent === true) this.showProgress(0, 1);
    else this.hide();
    return true;
  }

  listen() {
    const on = (name, handler) => {
      this.doc.addEventListener(name, (event) => handler(event.detail));
    };
    // The worker reports progress again while it reads a ready model from
    // the cache; the widget keeps showing "ready" for that model.
    const ready = new Set();
    on("offload:progress", ({ model, loaded, total }) => {
      if (ready.has(model)) return;
      if (this.runtime.consent === true) this.showProgress(loaded, total);
    });
    on("offload:ready", ({ model }) => {
      ready.add(model);
      if (this.runtime.consent === true) this.showReady();
    });
    on("offload:consent", ({ consent }) => {
      if (consent !== true) ready.clear();
    });
    on("offload:error", ({ message }) => {
      if (this.runtime.consent === true) this.showError(message);
    });
    on("offload:consent", ({ consent }) => {
      if (consent === false) this.hide();
      else if (consent === null) this.showQuestion();
    });
  }

  render(className, ...children) {
    this.root.hidden = false;
    this.root.dataset.state = className;
    this.root.replaceChildren(...children);
  }

  button(label, className, onClick) {
    const node = element(this.doc, "button", `offload-button ${className}`, label);
    node.type = "button";
    node.addEventListener("click", onClick);
    return node;
  }

  showQuestion() {
    const locale = this.doc.documentElement.lang || undefined;
    const size = formatSize(downloadSize(this.runtime), locale);
    const actions = element(this.doc, "div", "offload-consent__actions");
    actions.append(
      this.button(this.text.accept, "offload-consent__accept", () => {
        this.runtime.consent = true;
        this.showProgress(0, 1);
      }),
      this.button(this.text.decline, "offload-consent__decline", () => {
        this.runtime.consent = false;
      }),
    );
    this.render(
      "question",
      element(this.doc, "p", "offload-consent__title", this.text.title),
      element(this.doc, "p", "offload-consent__body", fill(this.text.body, { size })),
      actions,
    );
  }

  showProgress(loaded, total) {
    const percent = total > 0 ? Math.floor((loaded / total) * 100) : 0;
    const bar = element(this.doc, "progress", "offload-progress");
    bar.max = 100;
    bar.value = percent;
    const label = fill(this.text.downloading, { percent });
    bar.setAttribute("aria-label", label);
    this.render("progress", element(this.doc, "p", "offload-consent__status", label), bar);
  }

  showReady() {
    this.render(
      "ready",
      element(this.doc, "p", "offload-consent__status", this.text.ready),
      this.optOutButton(),
    );
  }

  showError(message) {
    this.render(
      "error",
      element(this.doc, "p", "offload-consent__error", fill(this.text.error, { message })),
      this.optOutButton(),
    );
  }

  optOutButton() {
    return this.button(this.text.optOut, "offload-consent__opt-out", () => {
      this.runtime.consent = false;
    });
  }

  hide() {
    this.root.hidden = true;
    this.root.dataset.state = "hidden";
    this.root.replaceChildren();
  }
}
