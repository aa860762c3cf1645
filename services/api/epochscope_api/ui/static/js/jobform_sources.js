// What a job trains: the catalog model (GET /v1/models) and the user's uploaded datasets (GET /v1/datasets).

import { api } from "./api.js";
import { clear, fmtDate, fmtInt, h } from "./dom.js";
import { getModels } from "./dataset_report.js";
import { fmtParameters } from "./jobform_fields.js";

const DEFAULT_MODEL = "smollm2-135m-instruct";
const DATASET_PAGES_MAX = 10;

export function modelLabel(model) {
  return `${model.display_name} · ${fmtParameters(model.parameters)} parameters`;
}

export function datasetLabel(dataset) {
  return `${dataset.filename} · ${fmtInt(dataset.usable_rows)} rows · ${fmtDate(dataset.created_at)}`;
}

// Every dataset of the user, newest first (a few pages at most).
async function loadAllDatasets() {
  const items = [];
  let cursor = null;
  for (let page = 0; page < DATASET_PAGES_MAX; page += 1) {
    const result = await api("/v1/datasets", { query: { limit: 100, cursor } });
    items.push(...result.items);
    cursor = result.next_cursor;
    if (!cursor) break;
  }
  return items;
}

// The pickers. `initialDataset` preselects a training dataset (the "Use in a new job" links pass it).
export function sourcePickers({ initialDataset = null } = {}) {
  let models = [];
  let datasets = [];

  const model = h("select", { required: true }, h("option", { value: "" }, "Loading the catalog…"));
  const modelDetails = h("p", { class: "help", id: "model-details" });
  const dataset = h("select", { required: true }, h("option", { value: "" }, "Loading your datasets…"));
  const evalDataset = h("select", {}, h("option", { value: "" }, "None"));
  const samplesDataset = h("select", {}, h("option", { value: "" }, "The training data"));
  const datasetNote = h(
    "p",
    { class: "help", id: "dataset-note" },
    h("a", { href: "#/datasets", id: "upload-dataset-link" }, "Upload a dataset"),
    " to train on your own data.",
  );

  function renderModelDetails() {
    const chosen = models.find((item) => item.id === model.value);
    clear(
      modelDetails,
      chosen
        ? [
            h("code", {}, chosen.id),
            ` · ${fmtInt(chosen.parameters)} parameters · context ${fmtInt(chosen.context_length)} tokens`,
            chosen.chat_template ? " · chat template" : "",
            ` · about ${fmtInt(Math.round(chosen.tokens_per_second))} generated tokens/s`,
          ]
        : "",
    );
  }

  function fillModels(items) {
    models = items;
    const wanted = model.value || DEFAULT_MODEL;
    clear(
      model,
      items.length ? null : h("option", { value: "" }, "The server's catalog is empty"),
      items.map((item) => h("option", { value: item.id, dataset: { params: item.parameters } }, modelLabel(item))),
    );
    if (items.some((item) => item.id === wanted)) model.value = wanted;
    renderModelDetails();
  }

  function fillSelect(select, items, emptyLabel, keep) {
    const previous = keep ?? select.value;
    clear(select, h("option", { value: "" }, emptyLabel), items.map((item) => h("option", { value: item.dataset_id }, datasetLabel(item))));
    if (items.some((item) => item.dataset_id === previous)) select.value = previous;
  }

  function fillDatasets(items, preferred) {
    datasets = items;
    fillSelect(dataset, items, items.length ? "Choose a dataset…" : "No datasets yet: upload one first", preferred ?? dataset.value);
    fillSelect(evalDataset, items, "None");
    fillSelect(samplesDataset, items, "The training data");
    // A single dataset is the obvious choice.
    if (!dataset.value && items.length === 1) dataset.value = items[0].dataset_id;
    clear(
      datasetNote,
      items.length ? "Or " : "You have no datasets yet. ",
      h("a", { href: "#/datasets", id: "upload-dataset-link" }, items.length ? "upload another dataset" : "Upload a dataset"),
      items.length ? "." : " (JSONL, CSV or Parquet), then come back here.",
    );
  }

  model.addEventListener("change", renderModelDetails);

  // Fetch both lists; resolves once the selects are filled (errors are shown in the help lines).
  async function load() {
    const [modelsResult, datasetsResult] = await Promise.allSettled([getModels(), loadAllDatasets()]);
    if (modelsResult.status === "fulfilled") fillModels(modelsResult.value);
    else {
      clear(model, h("option", { value: "" }, "Could not load the catalog"));
      modelDetails.textContent = `Could not load the model catalog: ${modelsResult.reason.message}`;
    }
    if (datasetsResult.status === "fulfilled") fillDatasets(datasetsResult.value, initialDataset);
    else {
      clear(dataset, h("option", { value: "" }, "Could not load your datasets"));
      datasetNote.textContent = `Could not load your datasets: ${datasetsResult.reason.message}`;
    }
  }

  return {
    model,
    modelDetails,
    dataset,
    datasetNote,
    evalDataset,
    samplesDataset,
    load,
    selectedModel: () => models.find((item) => item.id === model.value) ?? null,
    datasetName: (id) => datasets.find((item) => item.dataset_id === id)?.filename ?? null,
  };
}
