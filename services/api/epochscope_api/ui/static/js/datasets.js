// The Datasets page: upload a file (with progress), then its report; the user's datasets, each with its page and delete.

import { api } from "./api.js";
import { clear, fmtDate, h } from "./dom.js";
import { datasetReport, formatLabel, getModels, rowsLabel } from "./dataset_report.js";
import { ACCEPTED_TYPES, fmtBytes, fmtMegabytes, uploadDataset, uploadErrorText } from "./upload.js";

export async function deleteDataset(dataset) {
  if (!window.confirm(`Delete the dataset ${dataset.filename}? Jobs that used it keep their predictions.`)) return false;
  await api(`/v1/datasets/${encodeURIComponent(dataset.dataset_id)}`, { method: "DELETE" });
  return true;
}

function uploadCard(onUploaded) {
  let abort = null;
  const input = h("input", { type: "file", id: "dataset-file", name: "file", accept: ACCEPTED_TYPES.join(","), "aria-describedby": "dataset-file-help upload-error" });
  const button = h("button", { type: "submit", class: "primary", id: "upload-button" }, "Upload");
  const cancel = h("button", { type: "button", id: "upload-cancel", hidden: true, onclick: () => abort?.abort() }, "Cancel");
  const bar = h("progress", { id: "upload-progress", max: 100, value: 0, "aria-labelledby": "upload-progress-label" });
  const barLabel = h("label", { id: "upload-progress-label", for: "upload-progress" }, "Upload");
  const progressBox = h("div", { class: "progress-box", hidden: true }, barLabel, bar);
  const status = h("p", { class: "muted", id: "upload-status", role: "status", "aria-live": "polite" });
  const error = h("p", { class: "error upload-error", id: "upload-error", role: "alert", hidden: true });
  const result = h("div", { id: "upload-result" });

  function setProgress(loaded, total) {
    const percent = total > 0 ? Math.min(100, Math.floor((loaded / total) * 100)) : 0;
    bar.value = percent;
    bar.setAttribute("aria-valuetext", `${percent}%`);
    status.textContent = `${percent}% · ${fmtMegabytes(loaded, total)}`;
  }

  const form = h(
    "form",
    {
      class: "card upload-card",
      "aria-labelledby": "upload-title",
      onsubmit: async (event) => {
        event.preventDefault();
        const file = input.files?.[0];
        error.hidden = true;
        clear(result);
        if (!file) {
          error.textContent = "Choose a file to upload first.";
          error.hidden = false;
          input.focus();
          return;
        }
        abort = new AbortController();
        button.disabled = true;
        input.disabled = true;
        cancel.hidden = false;
        progressBox.hidden = false;
        barLabel.textContent = `Uploading ${file.name}`;
        setProgress(0, file.size);
        try {
          const dataset = await uploadDataset(file, {
            signal: abort.signal,
            onProgress: ({ loaded, total }) => setProgress(loaded, total),
            onSent: () => {
              setProgress(file.size, file.size);
              cancel.hidden = true;
              status.textContent = `100% · ${fmtMegabytes(file.size, file.size)} · validating…`;
            },
          });
          setProgress(file.size, file.size);
          status.textContent = `Uploaded and validated: ${dataset.filename}, ${rowsLabel(dataset)}.`;
          input.value = "";
          const models = await getModels().catch(() => []);
          clear(
            result,
            h("h3", {}, "Report of ", dataset.filename),
            datasetReport(dataset, models),
            h("p", {}, h("a", { href: `#/datasets/${dataset.dataset_id}`, id: "open-uploaded" }, "Preview its rows"), " · ", h("a", { href: `#/new?dataset=${encodeURIComponent(dataset.dataset_id)}` }, "Use it in a new job")),
          );
          onUploaded(dataset);
        } catch (exc) {
          progressBox.hidden = true;
          status.textContent = "";
          error.textContent = uploadErrorText(exc);
          error.hidden = false;
        } finally {
          abort = null;
          button.disabled = false;
          input.disabled = false;
          cancel.hidden = true;
        }
      },
    },
    h("h2", { id: "upload-title" }, "Upload a dataset"),
    h(
      "div",
      { class: "field" },
      h("label", { for: "dataset-file" }, "Dataset file"),
      input,
      h(
        "p",
        { class: "help", id: "dataset-file-help" },
        "JSONL or NDJSON (chat `messages`, or `prompt` / `completion` rows), CSV or Parquet. Rows are checked on upload; malformed ones are reported and skipped.",
      ),
    ),
    h("div", { class: "actions" }, button, cancel),
    progressBox,
    status,
    error,
    result,
  );
  return { form, destroy: () => abort?.abort() };
}

export function datasetsView(root) {
  let datasets = [];
  let nextCursor = null;
  let destroyed = false;

  const body = h("tbody");
  const table = h(
    "table",
    { class: "data", id: "datasets-table" },
    h("caption", { class: "sr-only" }, "Your datasets, newest first"),
    h("thead", {}, h("tr", {}, ["File", "Format", "Rows", "Size", "Uploaded", ""].map((name) => h("th", { scope: "col" }, name)))),
    body,
  );
  const empty = h("p", { class: "muted", id: "datasets-empty", hidden: true }, "No datasets yet: upload one above.");
  const error = h("p", { class: "error", id: "datasets-error", role: "alert", hidden: true });
  const more = h("button", { type: "button", hidden: true, onclick: () => load(true) }, "Load more");
  const upload = uploadCard(() => load());

  root.append(
    h("div", { class: "page-head" }, h("h1", {}, "Datasets"), h("a", { class: "button", href: "#/new" }, "New job")),
    upload.form,
    h("h2", {}, "Your datasets"),
    error,
    h("div", { class: "table-wrap" }, table),
    empty,
    more,
  );

  async function remove(dataset) {
    error.hidden = true;
    try {
      if (!(await deleteDataset(dataset))) return;
      datasets = datasets.filter((item) => item.dataset_id !== dataset.dataset_id);
      render();
    } catch (exc) {
      error.textContent = `Could not delete ${dataset.filename}: ${exc.message}`;
      error.hidden = false;
    }
  }

  function render() {
    clear(
      body,
      datasets.map((dataset) =>
        h(
          "tr",
          { dataset: { datasetId: dataset.dataset_id } },
          h("td", { class: "text" }, h("a", { href: `#/datasets/${dataset.dataset_id}` }, dataset.filename)),
          h("td", { class: "nowrap" }, formatLabel(dataset)),
          h("td", { class: "nowrap", dataset: { col: "rows" } }, rowsLabel(dataset)),
          h("td", { class: "num" }, fmtBytes(dataset.bytes)),
          h("td", { class: "nowrap" }, fmtDate(dataset.created_at)),
          h("td", {}, h("button", { type: "button", class: "danger", "aria-label": `Delete ${dataset.filename}`, onclick: () => remove(dataset) }, "Delete")),
        ),
      ),
    );
    empty.hidden = datasets.length > 0;
    more.hidden = !nextCursor;
  }

  async function load(append = false) {
    try {
      const page = await api("/v1/datasets", { query: { limit: 50, cursor: append ? nextCursor : null } });
      if (destroyed) return;
      datasets = append ? datasets.concat(page.items) : page.items;
      nextCursor = page.next_cursor;
      error.hidden = true;
      render();
    } catch (exc) {
      if (destroyed) return;
      error.textContent = `Could not load your datasets: ${exc.message}`;
      error.hidden = false;
    }
  }

  load();
  return {
    destroy() {
      destroyed = true;
      upload.destroy();
    },
  };
}
