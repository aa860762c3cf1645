// A job's model and datasets, by name: the catalog's display name, and each dataset's filename (linked to its page).

import { api } from "./api.js";
import { h, shortId } from "./dom.js";
import { getModels } from "./dataset_report.js";

const datasets = new Map(); // dataset_id -> Promise<Dataset | null>

function lookup(datasetId) {
  if (!datasets.has(datasetId)) {
    datasets.set(
      datasetId,
      api(`/v1/datasets/${encodeURIComponent(datasetId)}`).catch((exc) => {
        if (exc.status !== 404) datasets.delete(datasetId); // retry later; a 404 stays gone
        return null;
      }),
    );
  }
  return datasets.get(datasetId);
}

function datasetFact(datasetId) {
  const link = h("a", { href: `#/datasets/${datasetId}`, class: "dataset-link", title: datasetId }, h("code", {}, shortId(datasetId)));
  lookup(datasetId).then((dataset) => {
    if (dataset) link.replaceChildren(dataset.filename);
    else link.replaceWith(h("span", { class: "muted", title: datasetId }, `deleted dataset ${shortId(datasetId)}`));
  });
  return link;
}

function modelFact(modelId) {
  const holder = h("span", { class: "model-name" }, h("code", {}, modelId ?? "—"));
  if (modelId) {
    getModels()
      .then((models) => {
        const model = models.find((item) => item.id === modelId);
        if (model) holder.replaceChildren(model.display_name, " ", h("code", { class: "muted" }, `(${modelId})`));
      })
      .catch(() => {});
  }
  return holder;
}

// [term, node] pairs for the job's facts list.
export function sourceFacts(config) {
  const facts = [
    ["Model", modelFact(config.model)],
    ["Dataset", config.dataset_id ? datasetFact(config.dataset_id) : null],
  ];
  if (config.eval_dataset_id) facts.push(["Eval dataset", datasetFact(config.eval_dataset_id)]);
  else if (config.eval_fraction != null) facts.push(["Eval split", `${config.eval_fraction * 100}% of the training data`]);
  if (config.predictions?.samples_dataset_id) facts.push(["Prediction set", datasetFact(config.predictions.samples_dataset_id)]);
  return facts;
}
