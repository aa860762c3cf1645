// One job: header with status and progress, tabs (overview, predictions, compare), live over SSE.

import { api, ApiError, getLimits, streamUrl } from "./api.js";
import { compareTab } from "./compare.js";
import { clear, debounce, fmtDate, fmtEpoch, fmtNum, h, queuePlace, shortId, statusBadge } from "./dom.js";
import { downloadExport, exportButtons } from "./export.js";
import { sourceFacts } from "./job_sources.js";
import { overviewTab } from "./overview.js";
import { pairsButton } from "./pairs.js";
import { predictionsTab } from "./predictions.js";
import { rolloutsTab } from "./rollouts.js";
import { timelineTab } from "./timeline.js";

const FINAL = new Set(["completed", "failed", "cancelled"]);
const REOPEN_MS = 3000;
const SAFETY_POLL_MS = 15000;
const MAX_PROGRESS_PAGES = 20;

function items(response) {
  if (Array.isArray(response)) return response;
  return response?.items ?? [];
}

export function jobView(root, route, { navigate }) {
  const jobId = route.parts[1];
  const state = { job: null, rounds: [], progress: [], limits: null };
  const predictionListeners = new Set();
  const refreshListeners = new Set();
  let source = null;
  let reopenTimer = null;
  let opening = false; // a ticket is being fetched
  let lastEventId = null; // the stream position after the last data event
  let pollTimer = null;
  let destroyed = false;
  let tab = null;
  let tabView = null;

  const header = h("div", { class: "job-head" });
  const progressBox = h("div", { class: "progress-box", id: "job-progress" });
  const live = h("p", { class: "live", id: "live-status", role: "status" });
  const tabs = h("nav", { class: "tabs", "aria-label": "Job sections" });
  const panel = h("section", { class: "tab-panel", id: "tab-panel", tabindex: "-1" });
  const error = h("p", { class: "error", role: "alert", hidden: true });
  root.append(
    h("p", { class: "breadcrumb" }, h("a", { href: "#/jobs" }, "← Jobs")),
    error,
    header,
    progressBox,
    live,
    tabs,
    panel,
  );

  const predictionsEnabled = () => Boolean(state.job?.config?.predictions?.enabled);
  const isGrpo = () => state.job?.config?.method?.type === "grpo";

  function latestProgress() {
    const fromJob = state.job?.progress;
    if (fromJob && fromJob.max_steps != null) return fromJob;
    return state.progress[state.progress.length - 1] ?? null;
  }

  function renderHeader() {
    const job = state.job;
    const config = job.config;
    const predictions = config.predictions;
    const actions = [h("a", { href: `#/new?from=${encodeURIComponent(jobId)}`, class: "button", id: "clone-job" }, "New job from this one")];
    if (!FINAL.has(job.status)) {
      actions.push(h("button", { type: "button", onclick: cancelJob }, "Cancel job"));
    }
    actions.push(h("button", { type: "button", class: "danger", onclick: deleteJob }, "Delete job"));
    const metrics = Object.entries(job.metrics || {});
    const warningsOpen = header.querySelector("#job-warnings")?.open;
    clear(
      header,
      h(
        "div",
        { class: "page-head" },
        h("h1", {}, job.name ? h("span", { id: "job-name", title: job.job_id }, job.name) : ["Job ", h("code", { title: job.job_id }, shortId(job.job_id))], " ", statusBadge(job.status)),
        h("div", { class: "actions" }, actions),
      ),
      h("div", { class: "toolbar" },
        exportButtons((format) => downloadExport(`/v1/jobs/${jobId}/predictions/export`, { format }, `${job.name || jobId}.${format}`)),
        pairsButton(job),
        Object.entries(job.metadata || {}).map(([key, value]) => h("span", { class: "badge tag", dataset: { key } }, `${key}: ${value}`)),
      ),
      job.status_message ? h("p", { class: job.status === "failed" ? "error" : "muted", id: "status-message" }, job.status_message) : null,
      job.warnings?.length
        ? h("details", { class: "warnings", id: "job-warnings", open: warningsOpen },
            h("summary", {}, `⚠ ${job.warnings.length} warning${job.warnings.length === 1 ? "" : "s"} from the trainer`),
            h("ul", {}, job.warnings.map((w) => h("li", {}, h("code", {}, w.code), " ", w.message, h("span", { class: "muted" }, ` (${fmtDate(w.occurred_at)})`)))))
        : null,
      h(
        "dl",
        { class: "facts" },
        [
          ...sourceFacts(config),
          ["Epochs", config.num_epochs],
          ["Batch size", config.batch_size],
          ["Learning rate", config.learning_rate],
          ["LoRA", config.lora ? `r ${config.lora.r}, alpha ${config.lora.alpha}` : "off"],
          [
            "Predictions",
            predictions.enabled
              ? `${predictions.sample_count} samples ${predictions.sample_frequency === "steps" ? `every ${predictions.step_interval} steps` : `per ${predictions.sample_frequency}`}, ≤ ${predictions.max_new_tokens} new tokens${predictions.validators?.length ? `, validators: ${predictions.validators.map((v) => v.kind).join(", ")}` : ""}${predictions.graders?.length ? `, graders: ${predictions.graders.map((g) => `${g.name} (${g.type})`).join(", ")}` : ""}`
              : "off",
          ],
          ["Created", fmtDate(job.created_at)],
          ["Started", fmtDate(job.started_at)],
          ["Finished", fmtDate(job.finished_at)],
          ...metrics.map(([name, value]) => [name.replace(/_/g, " "), fmtNum(value, 4)]),
        ].map(([term, value]) => h("div", {}, h("dt", {}, term), h("dd", {}, value ?? "—"))),
      ),
    );
    renderProgress();
  }

  function renderProgress() {
    const progress = latestProgress();
    const job = state.job;
    if (!progress || !progress.max_steps) {
      clear(
        progressBox,
        h("p", { class: "muted" }, job.status === "queued" ? (queuePlace(job) ? `Queued: ${queuePlace(job)}.` : "Waiting for a trainer to pick this job up.") : job.status === "running" ? "Training has started; no progress reported yet." : "No training progress was reported."),
      );
      return;
    }
    const epochs = progress.num_epochs ?? job.config.num_epochs;
    const text = `Step ${progress.step} / ${progress.max_steps} · epoch ${fmtEpoch(progress.epoch)} / ${epochs}`;
    clear(
      progressBox,
      h("label", { for: "progress-bar", id: "progress-text" }, text, progress.loss != null ? ` · loss ${fmtNum(progress.loss, 4)}` : ""),
      h("progress", { id: "progress-bar", max: progress.max_steps, value: Math.min(progress.step, progress.max_steps), "aria-valuetext": text }),
      job.status === "running" && job.estimated_finish
        ? h("p", { class: "muted", id: "estimated-finish" }, `Estimated finish: ${fmtDate(job.estimated_finish)} (at its pace so far).`)
        : null,
    );
  }

  function renderTabs() {
    const names = [["overview", "Overview"]];
    if (predictionsEnabled()) names.push(["predictions", "Predictions"], ["timeline", "Timeline"], ["compare", "Compare"]);
    if (isGrpo()) names.push(["rollouts", "Rollouts"]);
    clear(
      tabs,
      names.map(([name, label]) =>
        h("a", { href: `#/jobs/${jobId}/${name}`, class: "tab", id: `tab-${name}`, "aria-current": name === tab ? "page" : null }, label),
      ),
    );
  }

  const context = {
    jobId,
    navigate,
    state,
    onPrediction(listener) {
      predictionListeners.add(listener);
      return () => predictionListeners.delete(listener);
    },
    onRefresh(listener) {
      refreshListeners.add(listener);
      return () => refreshListeners.delete(listener);
    },
  };

  function showTab(name, query) {
    if (!predictionsEnabled() && name !== "overview" && !(name === "rollouts" && isGrpo())) name = "overview";
    if (tab === name && tabView?.update) {
      tabView.update(query);
      return;
    }
    tabView?.destroy?.();
    predictionListeners.clear();
    refreshListeners.clear();
    tab = name;
    renderTabs();
    clear(panel);
    const factory = { overview: overviewTab, predictions: predictionsTab, timeline: timelineTab, compare: compareTab, rollouts: rolloutsTab }[name];
    tabView = factory(panel, context, query);
  }

  // The loss history: fetched once, then only the points after the last one held (the stream adds more).
  function addProgress(point) {
    const last = state.progress[state.progress.length - 1];
    if (!last || point.step > last.step) state.progress.push(point);
  }

  async function loadProgress() {
    for (let page = 0; page < MAX_PROGRESS_PAGES; page++) {
      const last = state.progress[state.progress.length - 1];
      let response;
      try {
        response = await api(`/v1/jobs/${jobId}/progress`, { query: { after_step: last?.step } });
      } catch (exc) {
        if (exc instanceof ApiError && exc.status === 404) return; // a server without the endpoint
        throw exc;
      }
      items(response).forEach(addProgress);
      if (!response?.has_more) return;
    }
  }

  async function refresh() {
    try {
      const [job] = await Promise.all([api(`/v1/jobs/${jobId}`), loadProgress()]);
      const rounds = job.rounds ?? (job.config.predictions?.enabled ? items(await api(`/v1/jobs/${jobId}/rounds`)) : []);
      if (destroyed) return;
      const hadPredictions = predictionsEnabled();
      state.job = job;
      state.rounds = rounds;
      renderHeader();
      if (!hadPredictions && predictionsEnabled() && tab === "overview") renderTabs();
      refreshListeners.forEach((listener) => listener());
    } catch (exc) {
      if (destroyed) return;
      if (exc instanceof ApiError && exc.status === 404) {
        clear(root, h("h1", {}, "Job not found"), h("p", {}, "There is no such job among yours. ", h("a", { href: "#/jobs" }, "Back to your jobs")));
        destroy();
        return;
      }
      error.textContent = `Could not refresh the job: ${exc.message}`;
      error.hidden = false;
    }
  }
  const scheduleRefresh = debounce(refresh, 400);
  const scheduleRender = debounce(() => {
    if (destroyed || !state.job) return;
    renderHeader();
    refreshListeners.forEach((listener) => listener());
  }, 250);

  function setLive(text, kind) {
    live.textContent = text;
    live.dataset.state = kind;
  }

  async function openStream() {
    if (destroyed || source || opening || FINAL.has(state.job?.status)) return;
    opening = true;
    setLive("Connecting to the live stream…", "connecting");
    let url;
    try {
      url = await streamUrl(jobId, lastEventId);
    } catch {
      setLive("Live stream unavailable; retrying…", "reconnecting");
      if (!destroyed) reopenTimer = setTimeout(openStream, REOPEN_MS);
      return;
    } finally {
      opening = false;
    }
    if (destroyed || source) return;
    source = new EventSource(url);
    for (const name of ["prediction", "round", "progress", "warning", "rollout"]) {
      source.addEventListener(name, (event) => {
        if (event.lastEventId) lastEventId = event.lastEventId;
      });
    }
    source.addEventListener("open", () => setLive("● Live: new rounds and status changes appear as they happen.", "open"));
    source.addEventListener("status", (event) => {
      const update = JSON.parse(event.data);
      state.job = { ...state.job, ...update, config: state.job.config };
      renderHeader();
      scheduleRefresh();
    });
    source.addEventListener("prediction", (event) => {
      const prediction = JSON.parse(event.data);
      predictionListeners.forEach((listener) => listener(prediction));
      scheduleRefresh(); // its round's prediction count grows until the trainer's summary arrives
    });
    source.addEventListener("round", (event) => {
      const round = JSON.parse(event.data);
      state.rounds = state.rounds.filter((r) => r.round_index !== round.round_index).concat([round]);
      state.rounds.sort((a, b) => a.round_index - b.round_index);
      scheduleRender();
    });
    source.addEventListener("progress", (event) => {
      const point = JSON.parse(event.data);
      addProgress(point);
      if (!state.job.progress || point.step >= state.job.progress.step) state.job.progress = point;
      scheduleRender();
    });
    source.addEventListener("warning", () => scheduleRefresh());
    source.addEventListener("rollout", () => scheduleRender()); // the rollouts tab follows the newest step
    source.addEventListener("expired", () => {
      // The ticket's time is up: open the stream again with a fresh one, from the last event received.
      closeStream();
      openStream();
    });
    source.addEventListener("end", () => {
      closeStream();
      setLive(`The job is ${state.job?.status ?? "over"}; the live stream has ended.`, "ended");
      refresh();
    });
    source.addEventListener("error", () => {
      if (!source || source.readyState !== EventSource.CLOSED) {
        setLive("Live stream interrupted; reconnecting…", "reconnecting");
        return;
      }
      closeStream();
      setLive("Live stream closed; retrying…", "reconnecting");
      reopenTimer = setTimeout(async () => {
        await refresh();
        openStream();
      }, REOPEN_MS);
    });
  }

  function closeStream() {
    source?.close();
    source = null;
  }

  async function cancelJob() {
    try {
      await api(`/v1/jobs/${jobId}/cancel`, { method: "POST" });
      setLive("Cancel requested; the trainer stops at its next step.", live.dataset.state);
      refresh();
    } catch (exc) {
      error.textContent = `Could not cancel: ${exc.message}`;
      error.hidden = false;
    }
  }

  async function deleteJob() {
    if (!window.confirm("Delete this job and all its predictions? This cannot be undone.")) return;
    try {
      await api(`/v1/jobs/${jobId}`, { method: "DELETE" });
      navigate("#/jobs");
    } catch (exc) {
      error.textContent = `Could not delete: ${exc.message}`;
      error.hidden = false;
    }
  }

  function safetyPoll() {
    // The stream is the live path; this only catches what it cannot carry (for example round summaries
    // written after the last prediction of a round).
    pollTimer = setTimeout(async () => {
      if (destroyed) return;
      if (!FINAL.has(state.job?.status)) await refresh();
      safetyPoll();
    }, SAFETY_POLL_MS);
  }

  function destroy() {
    destroyed = true;
    closeStream();
    clearTimeout(reopenTimer);
    clearTimeout(pollTimer);
    scheduleRefresh.cancel();
    scheduleRender.cancel();
    tabView?.destroy?.();
  }

  (async () => {
    clear(panel, h("p", { class: "muted" }, "Loading…"));
    state.limits = await getLimits().catch(() => null);
    await refresh();
    if (destroyed || !state.job) return;
    showTab(route.parts[2] || "overview", route.query);
    if (FINAL.has(state.job.status)) setLive(`This job is ${state.job.status}.`, "ended");
    else openStream();
    safetyPoll();
  })();

  return {
    update(next) {
      if (!state.job) return;
      showTab(next.parts[2] || "overview", next.query);
    },
    destroy,
  };
}
