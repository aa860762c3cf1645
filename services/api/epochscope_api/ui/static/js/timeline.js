// The answer timeline tab: a samples-by-rounds grid coloured by one grader's pass/fail, the regressions (each
// linked to the sample's diff view), and whether one round is really better than another (McNemar, bootstrap).

import { api, ApiError } from "./api.js";
import { clear, fmtNum, h } from "./dom.js";

const MAX_PAGES = 50; // a job predicts on a bounded sample set: this many pages hold every one of them

export function timelineTab(panel, context, query) {
  let grader = query.get("grader") ?? "";
  let samples = [];
  let destroyed = false;

  const graderPicker = h("select", { id: "timeline-grader", onchange: () => setGrader(graderPicker.value) });
  const grid = h("div", { id: "timeline-grid", class: "timeline-scroll" });
  const regressions = h("div", { id: "timeline-regressions" });
  const before = h("select", { id: "significance-a" });
  const after = h("select", { id: "significance-b" });
  const readout = h("div", { id: "significance", "aria-live": "polite" });

  panel.append(
    h("h2", {}, "Answer timeline"),
    h("div", { class: "toolbar" }, h("label", { for: "timeline-grader" }, "Grader"), graderPicker),
    h("p", { class: "legend" }, h("span", { class: "tl-cell pass" }, "✓"), " passed · ", h("span", { class: "tl-cell fail" }, "✗"), " failed · ", h("span", { class: "tl-cell none" }, "·"), " not graded"),
    grid,
    h("h3", {}, "Regressions (passed, then failed)"),
    regressions,
    h("h3", {}, "Is it really better?"),
    h(
      "div",
      { class: "toolbar" },
      h("label", { for: "significance-a" }, "From round"),
      before,
      h("label", { for: "significance-b" }, "to round"),
      after,
      h("button", { type: "button", id: "significance-run", onclick: () => compareRounds() }, "Compare"),
    ),
    readout,
  );

  async function load() {
    const limit = context.state.limits?.timeline_page_max ?? 100;
    const loaded = [];
    let cursor = null;
    for (let page = 0; page < MAX_PAGES; page += 1) {
      const body = await api(`/v1/jobs/${context.jobId}/timeline`, { query: { limit, cursor } });
      loaded.push(...body.items);
      cursor = body.next_cursor;
      if (!body.has_more) break;
    }
    if (destroyed) return;
    samples = loaded;
    const names = [...new Set(samples.flatMap((s) => s.graders.map((g) => g.grader)))].sort();
    if (!names.includes(grader)) grader = names[0] ?? "";
    clear(graderPicker, names.map((name) => h("option", { value: name }, name)));
    graderPicker.value = grader;
    renderRoundPickers();
    render();
  }

  function setGrader(name) {
    grader = name;
    render();
  }

  function rounds() {
    const indices = new Set(samples.flatMap((s) => s.graders.flatMap((g) => g.verdicts.map((v) => v.round_index))));
    return [...indices].sort((a, b) => a - b);
  }

  function render() {
    if (!samples.length || !grader) {
      clear(grid, h("p", { class: "muted" }, "No graded predictions yet."));
      clear(regressions);
      return;
    }
    const columns = rounds();
    const header = h("tr", {}, h("th", { scope: "col" }, "Sample"), columns.map((r) => h("th", { scope: "col" }, `R${r}`)));
    const rows = samples.map((sample) => {
      const timeline = sample.graders.find((g) => g.grader === grader);
      const verdicts = new Map((timeline?.verdicts ?? []).map((v) => [v.round_index, v.passed]));
      return h(
        "tr",
        { dataset: { sample: sample.sample_id } },
        h("th", { scope: "row" }, sampleLink(sample.sample_id)),
        columns.map((r) => {
          const passed = verdicts.get(r);
          const kind = passed == null ? "none" : passed ? "pass" : "fail";
          const label = passed == null ? "not graded" : passed ? "passed" : "failed";
          return h("td", { class: `tl-cell ${kind}`, title: `${sample.sample_id}, round ${r}: ${label}`, dataset: { round: r } }, { pass: "✓", fail: "✗", none: "·" }[kind]);
        }),
      );
    });
    clear(grid, h("table", { class: "timeline" }, h("caption", { class: "sr-only" }, `Pass or fail of ${grader} per sample and round`), h("thead", {}, header), h("tbody", {}, rows)));
    const found = samples.flatMap((sample) =>
      (sample.graders.find((g) => g.grader === grader)?.flips ?? [])
        .filter((flip) => flip.kind === "regression")
        .map((flip) => ({ sample, flip })),
    );
    clear(
      regressions,
      found.length
        ? h("ul", { id: "regression-list" }, found.map(({ sample, flip }) => h("li", {}, sampleLink(sample.sample_id), ` passed at round ${flip.from_round}, failed at round ${flip.to_round}`)))
        : h("p", { class: "muted" }, `No regressions under ${grader}.`),
    );
  }

  function sampleLink(sampleId) {
    return h("a", { href: `#/jobs/${context.jobId}/compare?sample=${encodeURIComponent(sampleId)}` }, sampleId);
  }

  function renderRoundPickers() {
    const columns = rounds();
    for (const [picker, value] of [[before, columns[0]], [after, columns[columns.length - 1]]]) {
      clear(picker, columns.map((r) => h("option", { value: r }, `round ${r}`)));
      if (value != null) picker.value = String(value);
    }
  }

  async function compareRounds() {
    clear(readout, h("p", { class: "muted" }, "Comparing…"));
    try {
      const result = await api(`/v1/jobs/${context.jobId}/rounds/compare`, { query: { a: before.value, b: after.value } });
      if (destroyed) return;
      clear(
        readout,
        h("p", { class: "muted" }, `${result.shared_samples} shared samples; ${Math.round(result.confidence * 100)}% paired bootstrap intervals over ${result.resamples} resamples.`),
        h("ul", { id: "significance-list" }, result.graders.map(changeLine)),
      );
    } catch (exc) {
      if (!(exc instanceof ApiError)) throw exc;
      clear(readout, h("p", { class: "error" }, exc.message));
    }
  }

  load().catch((exc) => clear(grid, h("p", { class: "error" }, exc.message)));

  return {
    update(next) {
      const name = next.get("grader");
      if (name && name !== grader) {
        graderPicker.value = name;
        setGrader(name);
      }
    },
    destroy() {
      destroyed = true;
    },
  };
}

// One grader's change in words, with the interval of the difference in mean score.
export function changeLine(change) {
  const interval = change.interval_difference;
  return h(
    "li",
    { class: change.significant ? "significant" : "not-significant", dataset: { grader: change.grader } },
    h("strong", {}, change.summary),
    interval ? ` · mean score ${fmtNum(change.mean_score_before)} → ${fmtNum(change.mean_score_after)}, difference in [${fmtNum(interval.low)}, ${fmtNum(interval.high)}]` : "",
  );
}
