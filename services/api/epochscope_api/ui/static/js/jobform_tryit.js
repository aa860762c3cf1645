// "Try it": one of the form's graders scores a sample answer against a reference, through POST /v1/graders/run
// (the trainer's own grading code), before the job is paid for.

import { api, ApiError } from "./api.js";
import { clear, fmtNum, h } from "./dom.js";
import { field } from "./jobform_fields.js";

// `graders` is the graders editor (its configs and names); `describeErrors(list)` turns a 422's detail into one line.
export function tryItBox({ graders, describeErrors }) {
  const grader = h("select", {});
  const answer = h("textarea", { rows: 3, spellcheck: "false", placeholder: "An answer the model might give" });
  const reference = h("textarea", { rows: 2, spellcheck: "false", placeholder: "The reference (ground truth) it is compared with" });
  const run = h("button", { type: "button", id: "try-grader" }, "Score it");
  const result = h("p", { class: "try-result", id: "try-result", role: "status" });

  const element = h(
    "fieldset",
    { class: "try-it", id: "try-it" },
    h("legend", {}, "Try a grader"),
    field({ id: "try-grader-name", label: "Grader", control: grader }),
    field({ id: "try-answer", label: "Sample answer", control: answer }),
    field({ id: "try-reference", label: "Reference", control: reference }),
    h("div", { class: "actions" }, run),
    result,
  );

  // The select follows the editor's graders, keeping the chosen one while it exists.
  function sync() {
    const chosen = grader.value;
    const names = graders.names();
    clear(grader, names.length ? names.map((name) => h("option", { value: name }, name)) : h("option", { value: "" }, "Add a grader first"));
    if (names.includes(chosen)) grader.value = chosen;
    run.disabled = !names.length;
  }

  run.addEventListener("click", async () => {
    const config = graders.configs().find((item) => item.name === grader.value);
    if (!config) return;
    clear(result, "Scoring…");
    delete result.dataset.passed;
    try {
      const verdict = await api("/v1/graders/run", {
        method: "POST",
        body: { grader: config, answer: answer.value, references: { [config.reference_field || "ground_truth"]: reference.value } },
      });
      if (!verdict.graded) {
        clear(result, "Not graded: this grader needs a reference to compare with.");
        return;
      }
      result.dataset.passed = String(verdict.passed);
      clear(
        result,
        h("strong", { id: "try-verdict" }, verdict.passed ? "Passes" : "Fails"),
        ` · score `,
        h("span", { id: "try-score" }, fmtNum(verdict.score, 3)),
        verdict.reason ? h("span", { class: "muted" }, ` · ${verdict.reason}`) : null,
      );
    } catch (exc) {
      const detail = exc instanceof ApiError && exc.fieldErrors.length ? describeErrors(exc.fieldErrors) : exc.message;
      clear(result, h("span", { class: "error" }, `Could not score it: ${detail}`));
    }
  });

  sync();
  return { element, sync };
}
