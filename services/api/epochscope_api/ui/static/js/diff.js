// Word-level diff (longest common subsequence over whitespace-separated words).

import { h } from "./dom.js";

const MAX_CELLS = 4_000_000;

export function words(text) {
  return (text || "").split(/\s+/).filter(Boolean);
}

// [{ op: "eq" | "del" | "ins", text }] turning `before` into `after`, adjacent ops merged.
export function diffWords(before, after) {
  const a = words(before);
  const b = words(after);
  const ops = [];
  const push = (op, text) => {
    const last = ops[ops.length - 1];
    if (last && last.op === op) last.text += ` ${text}`;
    else ops.push({ op, text });
  };
  if ((a.length + 1) * (b.length + 1) > MAX_CELLS) {
    if (a.length) push("del", a.join(" "));
    if (b.length) push("ins", b.join(" "));
    return ops;
  }
  const width = b.length + 1;
  const table = new Uint32Array((a.length + 1) * width);
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      table[i * width + j] =
        a[i] === b[j] ? table[(i + 1) * width + j + 1] + 1 : Math.max(table[(i + 1) * width + j], table[i * width + j + 1]);
    }
  }
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    if (a[i] === b[j]) {
      push("eq", a[i]);
      i++;
      j++;
    } else if (table[(i + 1) * width + j] >= table[i * width + j + 1]) {
      push("del", a[i++]);
    } else {
      push("ins", b[j++]);
    }
  }
  while (i < a.length) push("del", a[i++]);
  while (j < b.length) push("ins", b[j++]);
  return ops;
}

// The diff as inline <del>/<ins>, with counts for a caption.
export function renderDiff(before, after, { insTitle = "added", delTitle = "removed" } = {}) {
  const ops = diffWords(before, after);
  const out = h("div", { class: "diff" });
  let added = 0;
  let removed = 0;
  ops.forEach((op, index) => {
    if (index) out.append(" ");
    const count = words(op.text).length;
    if (op.op === "eq") out.append(op.text);
    else if (op.op === "ins") {
      added += count;
      out.append(h("ins", { title: insTitle }, op.text));
    } else {
      removed += count;
      out.append(h("del", { title: delTitle }, op.text));
    }
  });
  if (!ops.length) out.append(h("span", { class: "muted" }, "(empty)"));
  return { element: out, added, removed, same: added === 0 && removed === 0 };
}
