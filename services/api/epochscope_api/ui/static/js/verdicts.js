// Your verdict on one prediction: good or bad, a note and a corrected answer. Saved verdicts read as the `human`
// grader in the rounds, the timeline and the comparisons, and feed the preference pairs.

import { api, ApiError } from "./api.js";
import { h } from "./dom.js";

// The verdicts on one sample's predictions, by step.
export async function sampleVerdicts(jobId, sampleId) {
  const page = await api(`/v1/jobs/${jobId}/verdicts`, { query: { sample_id: sampleId, limit: 500 } });
  return new Map(page.items.map((verdict) => [verdict.step, verdict]));
}

export function verdictControls(jobId, round, verdict) {
  const path = `/v1/jobs/${jobId}/predictions/${round.step}/${encodeURIComponent(round.sample_id)}/verdict`;
  let good = verdict ? verdict.good : null;
  const status = h("span", { class: "muted verdict-status", role: "status" }, verdict ? "saved" : "");
  const note = h("input", { type: "text", class: "verdict-note", placeholder: "Note (optional)", "aria-label": `Note on round ${round.round_index}`, value: verdict?.note ?? "" });
  const correction = h("textarea", { class: "verdict-correction", rows: "2", placeholder: "Corrected answer (optional)", "aria-label": `Corrected answer for round ${round.round_index}` });
  correction.value = verdict?.correction ?? "";
  const goodButton = h("button", { type: "button", class: "verdict-good", onclick: () => save(true) }, "👍 Good");
  const badButton = h("button", { type: "button", class: "verdict-bad", onclick: () => save(false) }, "👎 Bad");
  const removeButton = h("button", { type: "button", class: "verdict-remove", onclick: remove }, "Clear");

  function show() {
    goodButton.setAttribute("aria-pressed", String(good === true));
    badButton.setAttribute("aria-pressed", String(good === false));
    removeButton.disabled = good === null;
  }

  async function save(value) {
    status.textContent = "saving…";
    try {
      const body = { good: value, note: note.value.trim() || null, correction: correction.value.trim() || null };
      await api(path, { method: "PUT", body });
      good = value;
      status.textContent = "saved";
    } catch (exc) {
      status.textContent = exc instanceof ApiError ? exc.message : `not saved: ${exc.message}`;
    }
    show();
  }

  async function remove() {
    try {
      await api(path, { method: "DELETE" });
      good = null;
      note.value = correction.value = "";
      status.textContent = "cleared";
    } catch (exc) {
      status.textContent = exc.message;
    }
    show();
  }

  show();
  return h(
    "div",
    { class: "verdict", dataset: { step: round.step } },
    h("h4", {}, "Your verdict"),
    h("div", { class: "actions" }, goodButton, badButton, removeButton, status),
    note,
    correction,
  );
}
