// Signed-in page: the session, WebAuthn credentials (add, rename, remove), other factors,
// live sessions, sign-out, and the step-up prompt for sensitive calls (RFC 9470).

import {
  AMR_LABELS,
  ApiError,
  api,
  busy,
  clearStatus,
  createCredential,
  el,
  getAssertion,
  setStatus,
  showError,
  showFlash,
  timeElement,
} from "/app.js";

const $ = (id) => document.getElementById(id);
const KIND_LABELS = { passkey: "Passkey", "security-key": "Security key" };

// ---- step-up ---------------------------------------------------------------------------------

class StepUpCancelled extends Error {
  constructor() {
    super("Cancelled: the change was not made.");
    this.name = "StepUpCancelled";
  }
}

let pendingStepUp = null; // {resolve, reject} while the dialog is open

function dialogStatus(message, kind = "error", code = null) {
  const box = $("step-up-status");
  box.replaceChildren();
  box.dataset.kind = kind;
  if (message) box.append(message);
  if (code) box.append(" (", el("code", {}, code), ")");
}

/** Show the step-up dialog for a step_up_required problem; resolves once a factor is fresh. */
function stepUp(problem) {
  const methods = Array.isArray(problem.methods) ? problem.methods : [];
  const dialog = $("step-up");
  dialog.dataset.methods = methods.join(" ");
  for (const choice of dialog.querySelectorAll("[data-method]")) {
    choice.hidden = !methods.includes(choice.dataset.method);
  }
  $("step-up-sms-form").hidden = true;
  dialogStatus("");
  if (!dialog.open) dialog.showModal();
  return new Promise((resolve, reject) => {
    pendingStepUp = { resolve, reject };
  });
}

function closeStepUp(ok) {
  const dialog = $("step-up");
  for (const input of dialog.querySelectorAll("input")) input.value = "";
  if (dialog.open) dialog.close();
  const pending = pendingStepUp;
  pendingStepUp = null;
  if (!pending) return;
  if (ok) pending.resolve();
  else pending.reject(new StepUpCancelled());
}

async function stepUpAction(button, action) {
  dialogStatus("");
  button.disabled = true;
  try {
    await action();
    closeStepUp(true);
  } catch (error) {
    if (error instanceof ApiError) dialogStatus(error.title, "error", error.code);
    else dialogStatus(error.message || String(error), "error", error.name);
  } finally {
    button.disabled = false;
  }
}

function stepUpCode(id) {
  const code = $(id).value.replace(/\s+/g, "");
  if (!code) {
    $(id).focus();
    throw new Error("Enter the code.");
  }
  return code;
}

$("step-up-webauthn").addEventListener("click", () =>
  stepUpAction($("step-up-webauthn"), async () => {
    const { flow_token: flow, options } = await api("/session/step-up/webauthn/options", { method: "POST", body: {} });
    dialogStatus("Touch your security key or confirm on your device…", "info");
    const credential = await getAssertion(options);
    await api("/session/step-up/webauthn/verify", { method: "POST", body: { flow_token: flow, credential } });
  }));
$("step-up-totp-form").addEventListener("submit", (event) => {
  event.preventDefault();
  stepUpAction($("step-up-totp-submit"), () =>
    api("/session/step-up/totp", { method: "POST", body: { code: stepUpCode("step-up-totp-code") } }));
});
$("step-up-recovery-form").addEventListener("submit", (event) => {
  event.preventDefault();
  stepUpAction($("step-up-recovery-submit"), () =>
    api("/session/step-up/recovery-code", { method: "POST", body: { code: stepUpCode("step-up-recovery-code") } }));
});
$("step-up-sms-send").addEventListener("click", async () => {
  dialogStatus("");
  try {
    const sent = await api("/session/step-up/sms/send", { method: "POST", body: {} });
    $("step-up-sms-form").hidden = false;
    dialogStatus(`We sent a code to ${(sent && sent.phone_masked) || "your phone"}.`, "info");
    $("step-up-sms-code").focus();
  } catch (error) {
    dialogStatus(error.title || error.message, "error", error.code);
  }
});
$("step-up-sms-form").addEventListener("submit", (event) => {
  event.preventDefault();
  stepUpAction($("step-up-sms-submit"), () =>
    api("/session/step-up/sms/verify", { method: "POST", body: { code: stepUpCode("step-up-sms-code") } }));
});
$("step-up-cancel").addEventListener("click", () => closeStepUp(false));
$("step-up").addEventListener("cancel", (event) => {
  event.preventDefault(); // Escape: settle the promise through closeStepUp
  closeStepUp(false);
});

/** Run a sensitive call; on 401 step_up_required prompt for a fresh factor and retry once. */
async function withStepUp(call) {
  try {
    return await call();
  } catch (error) {
    if (!(error instanceof ApiError && error.code === "step_up_required")) throw error;
    setStatus("Confirm it's you to continue.", "info", "step_up_required");
    await stepUp(error.problem);
    clearStatus();
    return await call();
  }
}

/** busy() for actions that may be cancelled at the step-up prompt. */
function action(button, run) {
  return busy(button, async () => {
    try {
      return await run();
    } catch (error) {
      if (error instanceof StepUpCancelled) {
        setStatus(error.message, "info");
        return undefined;
      }
      throw error;
    }
  });
}

// ---- session -----------------------------------------------------------------------------

function signedOut(message) {
  document.body.dataset.state = "signed-out";
  $("signed-in").hidden = true;
  $("logout").hidden = true;
  $("signed-out").hidden = false;
  if (message) setStatus(message, "info");
}

function amrText(amr) {
  return amr.map((v) => (AMR_LABELS[v] ? `${AMR_LABELS[v]} (${v})` : v)).join(", ") || "—";
}

async function loadSession() {
  let info;
  try {
    info = await api("/session");
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      signedOut();
      return false;
    }
    throw error;
  }
  const account = info.account;
  $("session-username").textContent = account.username;
  $("session-display-name").textContent = account.display_name || "—";
  $("session-aal").textContent = String(info.aal);
  $("session-amr").textContent = amrText(info.amr);
  $("session-amr").dataset.amr = info.amr.join(" ");
  $("session-auth-time").replaceChildren(timeElement(info.auth_time));
  $("session-expires").replaceChildren(timeElement(info.expires_at));
  $("factor-password").textContent = account.has_password ? "Set" : "None (passkey-only account)";
  $("signed-out").hidden = true;
  $("signed-in").hidden = false;
  $("logout").hidden = false;
  document.body.dataset.state = "signed-in";
  return true;
}

async function logout() {
  await busy($("logout"), async () => {
    await api("/session", { method: "DELETE" });
    signedOut("You are signed out.");
  });
}

// ---- credentials ---------------------------------------------------------------------------

function credentialRow(c) {
  const name = c.nickname || KIND_LABELS[c.kind] || "Credential";
  const badges = el("div");
  if (c.expires_soon) badges.append(el("span", { class: "badge warn", "data-testid": "expires-soon" }, "Expires soon"));
  if (c.at_risk) {
    badges.append(el("span", { class: "badge err", "data-testid": "at-risk", title: "The maker reported a problem with this authenticator model, or it may have been cloned. Replace it." }, "At risk"));
  }
  if (c.backup_eligible) badges.append(el("span", { class: "badge ok" }, c.backup_state ? "Synced" : "Can sync"));

  const nameCell = el("td", {}, el("span", { "data-field": "nickname" }, name), badges);
  const row = el("tr", { "data-testid": "credential-row", dataset: { credentialId: c.id, kind: c.kind } },
    nameCell,
    el("td", { "data-field": "authenticator" }, c.authenticator_name || "Unknown authenticator"),
    el("td", { "data-field": "kind" }, KIND_LABELS[c.kind] || c.kind),
    el("td", { "data-field": "created" }, timeElement(c.created_at, { dateOnly: true })),
    el("td", { "data-field": "last-used" }, timeElement(c.last_used_at, { empty: "Never" })),
    el("td", { "data-field": "expires" }, timeElement(c.expires_at, { dateOnly: true, empty: "Never" })));

  const actions = el("div", { class: "actions" });
  const renameButton = el("button", { type: "button", "data-testid": "rename", "aria-label": `Rename ${name}` }, "Rename");
  const removeButton = el("button", { type: "button", class: "danger", "data-testid": "remove", "aria-label": `Remove ${name}` }, "Remove");
  actions.append(renameButton, removeButton);
  row.append(el("td", {}, actions));

  renameButton.addEventListener("click", () => {
    const input = el("input", { type: "text", maxlength: "64", value: c.nickname || "", "aria-label": "New name", "data-testid": "rename-input" });
    const save = el("button", { type: "submit", class: "primary", "data-testid": "rename-save" }, "Save");
    const cancel = el("button", { type: "button", "data-testid": "rename-cancel" }, "Cancel");
    const form = el("form", { class: "rename" }, input, save, cancel);
    nameCell.replaceChildren(form);
    input.focus();
    cancel.addEventListener("click", () => loadCredentials());
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const nickname = input.value.trim();
      if (!nickname) {
        setStatus("Enter a name.", "error", "validation_error");
        input.focus();
        return;
      }
      action(save, async () => {
        await withStepUp(() => api(`/me/credentials/webauthn/${encodeURIComponent(c.id)}`, { method: "PATCH", body: { nickname } }));
        setStatus(`Renamed to “${nickname}”.`, "success");
        await loadCredentials();
      });
    });
  });

  removeButton.addEventListener("click", () => {
    const confirm = el("button", { type: "button", class: "danger", "data-testid": "remove-confirm", "aria-label": `Yes, remove ${name}` }, "Yes, remove");
    const keep = el("button", { type: "button", "data-testid": "remove-cancel" }, "Keep it");
    actions.replaceChildren(confirm, keep);
    confirm.focus();
    keep.addEventListener("click", () => loadCredentials());
    confirm.addEventListener("click", async () => {
      const removed = await action(confirm, async () => {
        await withStepUp(() => api(`/me/credentials/webauthn/${encodeURIComponent(c.id)}`, { method: "DELETE" }));
        return true;
      });
      if (removed) {
        await loadCredentials();
        setStatus(`Removed ${name}.`, "success");
      } else {
        actions.replaceChildren(renameButton, removeButton);
      }
    });
  });
  return row;
}

async function loadCredentials() {
  const data = await api("/me/credentials");
  const list = $("credentials-list");
  const webauthn = data.webauthn || [];
  list.replaceChildren(...webauthn.map(credentialRow));
  $("credentials-empty").hidden = webauthn.length > 0;
  $("credentials").hidden = webauthn.length === 0;

  const totp = data.totp;
  $("factor-totp").replaceChildren(totp && totp.enrolled
    ? el("span", {}, "Set up ", timeElement(totp.created_at, { dateOnly: true }))
    : el("span", { class: "empty" }, "Not set up"));
  const phones = data.phones || [];
  $("factor-phones").textContent = phones.length
    ? phones.map((p) => `${p.phone_masked}${p.verified ? "" : " (not verified)"}`).join(", ")
    : "None";
  const left = data.recovery_codes_left;
  $("factor-recovery").textContent = typeof left === "number" ? `${left} left` : "—";
}

async function addCredential(kind, button) {
  clearStatus();
  await action(button, async () => {
    const nickname = $("new-credential-nickname").value.trim() || undefined;
    const { flow_token: flow, options } = await withStepUp(() =>
      api("/me/credentials/webauthn/options", { method: "POST", body: { kind, nickname } }));
    setStatus(kind === "passkey"
      ? "Follow your browser's prompt to create the passkey…"
      : "Insert and touch your security key…");
    const credential = await createCredential(options);
    const added = await api("/me/credentials/webauthn/verify", { method: "POST", body: { flow_token: flow, credential } });
    $("new-credential-nickname").value = "";
    await loadCredentials();
    const label = (added && added.nickname) || KIND_LABELS[kind];
    setStatus(`Added ${KIND_LABELS[kind].toLowerCase()} “${label}”.`, "success");
  });
}

// ---- sessions ------------------------------------------------------------------------------

function sessionRow(s) {
  const actions = el("div", { class: "actions" });
  if (s.current) {
    actions.append(el("span", { class: "badge ok" }, "This session"));
  } else {
    const revoke = el("button", { type: "button", class: "danger", "data-testid": "revoke-session" }, "Sign out");
    revoke.addEventListener("click", () => busy(revoke, async () => {
      await api(`/sessions/${encodeURIComponent(s.id)}`, { method: "DELETE" });
      await loadSessions();
      setStatus("That session is signed out.", "success");
    }));
    actions.append(revoke);
  }
  return el("tr", { "data-testid": "session-row", dataset: { sessionId: s.id, current: String(Boolean(s.current)) } },
    el("td", {}, s.user_agent || "Unknown device"),
    el("td", {}, s.ip || "—"),
    el("td", { title: s.amr.join(", ") }, String(s.aal)),
    el("td", {}, timeElement(s.last_seen_at)),
    el("td", {}, timeElement(s.expires_at)),
    el("td", {}, actions));
}

async function loadSessions() {
  const data = await api("/sessions");
  $("sessions-list").replaceChildren(...(data.sessions || []).map(sessionRow));
}

// ---- start -----------------------------------------------------------------------------------

$("logout").addEventListener("click", logout);
$("add-passkey").addEventListener("click", () => addCredential("passkey", $("add-passkey")));
$("add-security-key").addEventListener("click", () => addCredential("security-key", $("add-security-key")));

async function start() {
  showFlash();
  try {
    if (!(await loadSession())) return;
    await Promise.all([loadCredentials(), loadSessions()]);
    document.body.dataset.state = "ready";
  } catch (error) {
    document.body.dataset.state = "error";
    showError(error);
  }
}

start();
