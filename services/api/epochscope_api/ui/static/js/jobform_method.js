// The job form's training method: SFT (what the loss covers), GRPO (rewards as weighted graders, the group, the
// generation) or DPO (beta). Each setting carries its config path (method.<field>) for the server's 422s.

import { clear, h } from "./dom.js";
import { field, num, numberInput } from "./jobform_fields.js";

const METHODS = { sft: "Supervised fine-tuning (SFT)", grpo: "Reinforcement learning on graded answers (GRPO)", dpo: "Preference pairs (DPO)" };

function choice(options, value) {
  return h("select", {}, Object.entries(options).map(([key, label]) => h("option", { value: key, selected: key === value }, label)));
}

// `graderNames()` lists the form's graders: a GRPO reward names one of them.
export function methodPanel({ graderNames }) {
  const type = choice(METHODS, "sft");
  const trainOn = choice({ answers: "The answers only", all: "Every token" }, "answers");
  const assistantTurns = choice({ all: "Every assistant turn", last: "The last assistant turn" }, "all");
  const grpo = {
    numGenerations: numberInput({ min: 2, step: 1, value: 4, inputmode: "numeric" }),
    maxCompletionLength: numberInput({ min: 1, step: 1, value: 64, inputmode: "numeric" }),
    temperature: numberInput({ min: 0.01, max: 5, step: 0.05, value: 1 }),
    beta: numberInput({ min: 0, max: 10, step: "any", value: 0 }),
    maxSteps: numberInput({ min: 1, step: 1, placeholder: "the epochs decide", inputmode: "numeric" }),
    rolloutsLog: choice({ sample: "A seeded sample", all: "All" }, "sample"),
    rolloutsPerStep: numberInput({ min: 1, step: 1, value: 8, inputmode: "numeric" }),
    rolloutsSeed: numberInput({ step: 1, value: 0, inputmode: "numeric" }),
    divergenceWindow: numberInput({ min: 2, max: 1000, step: 1, value: 5, inputmode: "numeric" }),
    divergenceChange: numberInput({ min: 0.01, max: 1, step: 0.01, value: 0.2 }),
  };
  const dpoBeta = numberInput({ min: 0, max: 10, step: "any", value: 0.1 });
  const dpoMaxSteps = numberInput({ min: 1, step: 1, placeholder: "the epochs decide", inputmode: "numeric" });
  const rewardList = h("div", { class: "rewards-list", id: "rewards-list" });
  let rewards = []; // { element, read(), sync() }
  let rewardCounter = 0;

  // One reward: a grader of the form by name (or an inline grader kept as it came from a cloned job), its weight.
  function addReward(initial = {}) {
    rewardCounter += 1;
    const id = `reward-${rewardCounter}`;
    const inline = initial.grader && typeof initial.grader === "object" ? initial.grader : null;
    const grader = h("select", {});
    const weight = numberInput({ min: 0, max: 1000, step: "any", value: initial.weight ?? 1 });
    const remove = h("button", { type: "button", class: "link", "aria-label": "Remove this reward" }, "Remove");
    const element = h(
      "div",
      { class: "grid-3 reward", id },
      inline ? h("p", { class: "help" }, `Inline grader ${inline.name} (${inline.type})`) : field({ id: `${id}-grader`, label: "Reward grader", control: grader }),
      field({ id: `${id}-weight`, label: "Weight", control: weight }),
      remove,
    );
    const reward = {
      element,
      read: () => ({ grader: inline ?? grader.value, weight: num(weight) }),
      sync() {
        const chosen = grader.value || (typeof initial.grader === "string" ? initial.grader : "");
        const names = graderNames();
        clear(grader, names.map((name) => h("option", { value: name }, name)), names.includes(chosen) || !chosen ? null : h("option", { value: chosen }, chosen));
        grader.value = chosen || names[0] || "";
      },
      renumber(index) {
        for (const [key, holder] of [["grader", grader], ["weight", weight]]) holder.closest(".field")?.setAttribute("data-loc", `method.rewards.${index}.${key}`);
      },
    };
    remove.addEventListener("click", () => {
      rewards = rewards.filter((item) => item !== reward);
      element.remove();
      renumber();
    });
    rewards.push(reward);
    rewardList.append(element);
    reward.sync();
    renumber();
  }

  function renumber() {
    rewards.forEach((reward, index) => reward.renumber(index));
  }

  const addRewardButton = h("button", { type: "button", id: "add-reward", onclick: () => addReward() }, "Add reward");
  const sftSettings = h(
    "div",
    { class: "grid-2 method-settings", id: "sft-settings" },
    field({ id: "train-on", loc: "method.train_on", label: "Train on", control: trainOn }),
    field({ id: "assistant-turns", loc: "method.assistant_turns", label: "Assistant turns (with answers only)", control: assistantTurns }),
  );
  const grpoSettings = h(
    "div",
    { class: "method-settings", id: "grpo-settings" },
    h("fieldset", { class: "rewards", dataset: { loc: "method.rewards" } }, h("legend", {}, "Rewards"), h("p", { class: "help" }, "A completion's reward is the weighted mean of these graders' scores."), rewardList, addRewardButton, h("p", { class: "field-error", id: "rewards-error", hidden: true })),
    h(
      "div",
      { class: "grid-2" },
      field({ id: "num-generations", loc: "method.num_generations", label: "Generations per prompt", control: grpo.numGenerations, help: "The batch size must be a multiple." }),
      field({ id: "max-completion-length", loc: "method.max_completion_length", label: "Max completion tokens", control: grpo.maxCompletionLength }),
      field({ id: "grpo-temperature", loc: "method.temperature", label: "Sampling temperature", control: grpo.temperature }),
      field({ id: "grpo-beta", loc: "method.beta", label: "KL penalty (beta)", control: grpo.beta }),
      field({ id: "grpo-max-steps", loc: "method.max_steps", label: "Max steps (optional)", control: grpo.maxSteps }),
      field({ id: "rollouts-log", loc: "method.rollouts.log", label: "Rollouts kept", control: grpo.rolloutsLog }),
      field({ id: "rollouts-per-step", loc: "method.rollouts.per_step", label: "Rollouts per step (sample)", control: grpo.rolloutsPerStep }),
      field({ id: "rollouts-seed", loc: "method.rollouts.seed", label: "Rollout sample seed", control: grpo.rolloutsSeed }),
      field({ id: "divergence-window", loc: "method.reward_divergence.window", label: "Divergence window (steps)", control: grpo.divergenceWindow }),
      field({ id: "divergence-change", loc: "method.reward_divergence.min_change", label: "Divergence min change", control: grpo.divergenceChange }),
    ),
  );
  const dpoSettings = h(
    "div",
    { class: "grid-2 method-settings", id: "dpo-settings" },
    field({ id: "dpo-beta", loc: "method.beta", label: "DPO beta", control: dpoBeta, help: "How far from the reference model the policy may move." }),
    field({ id: "dpo-max-steps", loc: "method.max_steps", label: "Max steps (optional)", control: dpoMaxSteps }),
  );
  const panels = { sft: sftSettings, grpo: grpoSettings, dpo: dpoSettings };
  const element = h("fieldset", { class: "method", dataset: { loc: "method" } }, h("legend", {}, "Method"), field({ id: "method-type", loc: "method.type", label: "Training method", control: type }), sftSettings, grpoSettings, dpoSettings, h("p", { class: "field-error", id: "method-error", hidden: true }));

  function sync() {
    for (const [name, panel] of Object.entries(panels)) {
      panel.hidden = type.value !== name;
      panel.querySelectorAll("input, select, textarea").forEach((control) => (control.disabled = type.value !== name));
    }
    assistantTurns.disabled = type.value !== "sft" || trainOn.value !== "answers";
    rewards.forEach((reward) => reward.sync());
  }

  function config() {
    if (type.value === "dpo") return { type: "dpo", beta: num(dpoBeta), max_steps: num(dpoMaxSteps) };
    if (type.value === "sft") return { type: "sft", train_on: trainOn.value, assistant_turns: assistantTurns.value };
    return {
      type: "grpo",
      rewards: rewards.map((reward) => reward.read()),
      num_generations: num(grpo.numGenerations),
      max_completion_length: num(grpo.maxCompletionLength),
      temperature: num(grpo.temperature),
      beta: num(grpo.beta),
      max_steps: num(grpo.maxSteps),
      rollouts: { log: grpo.rolloutsLog.value, per_step: num(grpo.rolloutsPerStep), seed: num(grpo.rolloutsSeed) },
      reward_divergence: { window: num(grpo.divergenceWindow), min_change: num(grpo.divergenceChange) },
    };
  }

  function fill(method = { type: "sft" }) {
    type.value = method.type;
    const set = (input, value) => (input.value = value == null ? "" : String(value));
    if (method.type === "sft") {
      trainOn.value = method.train_on ?? "answers";
      assistantTurns.value = method.assistant_turns ?? "all";
    } else if (method.type === "dpo") {
      set(dpoBeta, method.beta);
      set(dpoMaxSteps, method.max_steps);
    } else {
      rewards = [];
      rewardList.replaceChildren();
      for (const reward of method.rewards ?? []) addReward(reward);
      set(grpo.numGenerations, method.num_generations);
      set(grpo.maxCompletionLength, method.max_completion_length);
      set(grpo.temperature, method.temperature);
      set(grpo.beta, method.beta);
      set(grpo.maxSteps, method.max_steps);
      grpo.rolloutsLog.value = method.rollouts?.log ?? "sample";
      set(grpo.rolloutsPerStep, method.rollouts?.per_step ?? 8);
      set(grpo.rolloutsSeed, method.rollouts?.seed ?? 0);
      set(grpo.divergenceWindow, method.reward_divergence?.window ?? 5);
      set(grpo.divergenceChange, method.reward_divergence?.min_change ?? 0.2);
    }
    sync();
  }

  // The server's GRPO bounds (GET /v1/limits).
  function applyLimits(limits) {
    if (limits.grpo_max_num_generations) grpo.numGenerations.max = String(limits.grpo_max_num_generations);
    if (limits.grpo_max_completion_length) grpo.maxCompletionLength.max = String(limits.grpo_max_completion_length);
    if (limits.grpo_max_rollouts_per_step) grpo.rolloutsPerStep.max = String(limits.grpo_max_rollouts_per_step);
  }

  type.addEventListener("change", () => {
    if (type.value === "grpo" && !rewards.length) addReward();
  });
  sync();
  return { element, sync, config, fill, applyLimits };
}
