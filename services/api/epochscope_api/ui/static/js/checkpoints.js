// Checkpoints on the job page: the rounds table's checkpoint column and the best round's mark on the quality chart.

import { api } from "./api.js";
import { h } from "./dom.js";
import { downloadExport } from "./export.js";

// A round's value of a checkpoint metric, read from its summary as the API reports it: null where it has none.
export function metricValue(round, metric) {
  if (["validator_pass_rate", "mean_exact_match", "mean_f1", "mean_rouge_l"].includes(metric)) return round[metric] ?? null;
  const match = /^grader_(pass_rate|mean):(.+)$/.exec(metric || "");
  const grader = match ? round.graders?.[match[2]] : null;
  if (!grader) return null;
  return (match[1] === "mean" ? grader.mean_score : grader.pass_rate) ?? null;
}

export function fmtBytes(bytes) {
  if (bytes == null) return "—";
  const units = ["B", "KiB", "MiB", "GiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

// The job's kept checkpoints by round index ("final" for the final weights); empty when it keeps none.
export async function loadCheckpoints(job) {
  const mode = job.config?.predictions?.checkpoints?.mode;
  if (!mode || mode === "none") return new Map();
  const listed = await api(`/v1/jobs/${job.job_id}/checkpoints`);
  return new Map((listed?.items ?? []).map((c) => [c.final ? "final" : c.round_index, c]));
}

// A download button with the checkpoint's size, or a dash.
export function checkpointCell(jobId, checkpoint, name) {
  if (!checkpoint) return h("td", { dataset: { col: "checkpoint" } }, "—");
  const status = h("span", { class: "muted", role: "status" });
  const download = async () => {
    status.textContent = " downloading…";
    try {
      await downloadExport(`/v1/jobs/${jobId}/checkpoints/${checkpoint.checkpoint_id}/download`, {}, `checkpoint-${jobId}-${name}.tar`);
      status.textContent = "";
    } catch (exc) {
      status.textContent = ` ${exc.message}`;
    }
  };
  return h(
    "td",
    { dataset: { col: "checkpoint" } },
    h("button", { type: "button", onclick: download, title: `SHA-256 of its files: ${checkpoint.sha256}` }, `Download (${fmtBytes(checkpoint.bytes)})`),
    status,
  );
}
