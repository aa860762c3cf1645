// The job form's training settings: the catalog model and datasets (jobform_sources.js), the hyperparameters, the
// eval split and LoRA.

import { h } from "./dom.js";
import { field, num, numberInput } from "./jobform_fields.js";

// `sources` is the source pickers (model, training, eval and prediction-set datasets).
export function trainingPanel({ sources }) {
  const epochs = numberInput({ min: 1, max: 100, step: 1, value: 3, inputmode: "numeric" });
  const batchSize = numberInput({ min: 1, max: 1024, step: 1, value: 8, inputmode: "numeric" });
  const learningRate = numberInput({ min: 0, max: 1, step: "any", value: "0.0002" });
  const maxLength = numberInput({ min: 8, max: 32768, step: 1, value: 512, inputmode: "numeric" });
  const evalFraction = numberInput({ min: 0, max: 1, step: "any", placeholder: "none" });
  const loraOn = h("input", { type: "checkbox", role: "switch", checked: true, id: "lora-enabled" });
  const loraR = numberInput({ min: 1, max: 256, step: 1, value: 8, inputmode: "numeric" });
  const loraAlpha = numberInput({ min: 1, step: 1, value: 16, inputmode: "numeric" });
  const loraDropout = numberInput({ min: 0, max: 0.99, step: 0.05, value: 0 });
  const loraTargets = h("input", { type: "text", value: "all-linear", spellcheck: "false" });

  const element = h(
    "fieldset",
    { class: "card" },
    h("legend", {}, "Training"),
    field({ id: "model", label: "Model", loc: "model", control: sources.model, extra: sources.modelDetails }),
    field({ id: "dataset", label: "Training dataset", loc: "dataset_id", control: sources.dataset, extra: sources.datasetNote }),
    h(
      "div",
      { class: "grid-2" },
      field({ id: "num-epochs", label: "Epochs", loc: "num_epochs", control: epochs }),
      field({ id: "batch-size", label: "Batch size", loc: "batch_size", control: batchSize }),
      field({ id: "learning-rate", label: "Learning rate", loc: "learning_rate", control: learningRate }),
      field({ id: "max-length", label: "Max sequence length", loc: "max_length", control: maxLength }),
    ),
    h(
      "div",
      { class: "grid-2" },
      field({ id: "eval-dataset", label: "Eval dataset (optional)", loc: "eval_dataset_id", control: sources.evalDataset, help: "An uploaded eval split." }),
      field({ id: "eval-fraction", label: "Or eval fraction (optional)", loc: "eval_fraction", control: evalFraction, help: "Hold out this fraction of the training data." }),
    ),
    h(
      "div",
      { class: "field check", dataset: { loc: "lora" } },
      h("label", { for: "lora-enabled" }, loraOn, " LoRA"),
      h("p", { class: "field-error", id: "lora-enabled-error", hidden: true }),
    ),
    h(
      "div",
      { class: "grid-2", id: "lora-settings" },
      field({ id: "lora-r", label: "LoRA rank (r)", loc: "lora.r", control: loraR }),
      field({ id: "lora-alpha", label: "LoRA alpha", loc: "lora.alpha", control: loraAlpha }),
      field({ id: "lora-dropout", label: "LoRA dropout", loc: "lora.dropout", control: loraDropout }),
      field({ id: "lora-targets", label: "LoRA target modules", loc: "lora.target_modules", control: loraTargets, help: "all-linear, or module names separated by commas." }),
    ),
  );

  function sync() {
    for (const input of [loraR, loraAlpha, loraDropout, loraTargets]) input.disabled = !loraOn.checked;
  }

  function lora() {
    if (!loraOn.checked) return null;
    const targets = loraTargets.value.trim();
    const modules = targets === "all-linear" ? "all-linear" : targets.split(",").map((name) => name.trim()).filter(Boolean);
    return { r: num(loraR), alpha: num(loraAlpha), dropout: num(loraDropout), target_modules: modules };
  }

  // The training part of the config; the eval split only where one is given.
  function config() {
    const part = {
      model: sources.model.value,
      dataset_id: sources.dataset.value || null,
      num_epochs: num(epochs),
      batch_size: num(batchSize),
      learning_rate: num(learningRate),
      max_length: num(maxLength),
      lora: lora(),
    };
    if (sources.evalDataset.value) part.eval_dataset_id = sources.evalDataset.value;
    const fraction = num(evalFraction);
    if (fraction != null) part.eval_fraction = fraction;
    return part;
  }

  // A stored config's training settings (the sources' selects must be loaded first).
  function fill(config) {
    sources.model.value = config.model;
    sources.dataset.value = config.dataset_id;
    sources.evalDataset.value = config.eval_dataset_id ?? "";
    epochs.value = String(config.num_epochs);
    batchSize.value = String(config.batch_size);
    learningRate.value = String(config.learning_rate);
    maxLength.value = String(config.max_length);
    evalFraction.value = config.eval_fraction == null ? "" : String(config.eval_fraction);
    loraOn.checked = Boolean(config.lora);
    if (config.lora) {
      loraR.value = String(config.lora.r);
      loraAlpha.value = String(config.lora.alpha);
      loraDropout.value = String(config.lora.dropout ?? 0);
      const modules = config.lora.target_modules ?? "all-linear";
      loraTargets.value = Array.isArray(modules) ? modules.join(", ") : modules;
    }
    sources.model.dispatchEvent(new Event("change"));
    sync();
  }

  sync();
  return { element, sync, config, fill };
}
