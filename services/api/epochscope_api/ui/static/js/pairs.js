// "Build preference pairs": a new dataset from this job's answers (rejected: those that failed a grader or your
// verdict; chosen: the earlier right answer of a regression, your correction, the ground truth), ready for DPO.

import { api } from "./api.js";
import { h } from "./dom.js";

export function pairsButton(job) {
  const graders = ["human", ...(job.config?.predictions?.graders ?? []).map((grader) => grader.name)];
  const picker = h("select", { id: "pairs-grader", "aria-label": "Judged by" }, graders.map((name) => h("option", { value: name }, name === "human" ? "your verdicts" : name)));
  const status = h("span", { class: "muted", role: "status", id: "pairs-status" });
  const button = h("button", { type: "button", id: "build-pairs", onclick: build }, "Build preference pairs");

  async function build() {
    button.disabled = true;
    status.textContent = "building…";
    try {
      const dataset = await api(`/v1/jobs/${job.job_id}/preference-pairs`, { method: "POST", body: { grader: picker.value } });
      status.replaceChildren(
        `${dataset.provenance.pairs} pairs (${dataset.provenance.regressions} regressions): `,
        h("a", { href: `#/datasets/${dataset.dataset_id}`, id: "pairs-dataset" }, dataset.filename),
      );
    } catch (exc) {
      status.textContent = exc.message;
    }
    button.disabled = false;
  }

  return h("div", { class: "actions pairs" }, h("label", { for: "pairs-grader" }, "Pairs judged by"), picker, button, status);
}
