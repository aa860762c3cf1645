// Sign-in with a bearer token (JWT). Dev tokens come from `epochscope token --user <you>`.

import { api, ApiError, setToken, tokenUser } from "./api.js";
import { h } from "./dom.js";

export function signInView(root, _route, { navigate }) {
  const error = h("p", { class: "field-error", id: "token-error", role: "alert", hidden: true });
  const input = h("textarea", {
    id: "token",
    name: "token",
    rows: 4,
    required: true,
    spellcheck: "false",
    autocomplete: "off",
    "aria-describedby": "token-help token-error",
  });
  const button = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h(
    "form",
    {
      class: "card narrow",
      "aria-labelledby": "signin-title",
      onsubmit: async (event) => {
        event.preventDefault();
        const token = input.value.trim();
        error.hidden = true;
        input.removeAttribute("aria-invalid");
        if (!token) return fail("Paste a token first.");
        button.disabled = true;
        try {
          await api("/v1/jobs", { query: { limit: 1 }, token });
          setToken(token);
          navigate("#/jobs");
        } catch (exc) {
          fail(exc instanceof ApiError && exc.status === 401 ? `The server refused this token: ${exc.message}` : `Could not reach the API: ${exc.message}`);
        } finally {
          button.disabled = false;
        }
      },
    },
    h("h1", { id: "signin-title" }, "Sign in"),
    h("p", {}, "Epochscope shows how a model's answers change while it is fine-tuned. Each user sees only their own jobs."),
    h("div", { class: "field" }, h("label", { for: "token" }, "Bearer token"), input,
      h("p", { class: "help", id: "token-help" }, "A JWT whose ", h("code", {}, "sub"), " is your user id. On the local stack, print one with ",
        h("code", {}, "epochscope token --user alice"), ". It is kept in this browser's local storage until you sign out."),
      error),
    h("div", { class: "actions" }, button),
  );
  function fail(message) {
    error.textContent = message;
    error.hidden = false;
    input.setAttribute("aria-invalid", "true");
    input.focus();
  }
  root.append(form);
  input.focus();
  // Show whose token is being pasted, before it is checked.
  input.addEventListener("input", () => {
    const user = tokenUser(input.value.trim());
    button.textContent = user ? `Sign in as ${user}` : "Sign in";
  });
  return {};
}
