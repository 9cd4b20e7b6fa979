// Sign-in page: password (+ second step), passkey button, and passkey autofill (conditional UI).
//
// Conditional UI starts on load unless the address carries `?noconditional`. Real browsers
// only resolve a conditional request when the user picks a passkey from the autofill list,
// but Chromium's DevTools virtual authenticator resolves it at once by itself; tests load
// `/?noconditional` when they want the page to wait for them. The conditional request is
// aborted before any modal WebAuthn request (a page may have only one pending) and renewed
// before its challenge expires. <body data-conditional> tells its state:
// starting | disabled | unsupported | waiting | aborted | verifying | done | error.

import { ApiError, api, busy, clearStatus, getAssertion, setFlash, setStatus, showError, webauthnSupported } from "/app.js";

const AFTER_SIGN_IN = "/account.html";
const CONDITIONAL_RENEW_MS = 4 * 60 * 1000; // challenges live 5 min (DESIGN §5)

const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);

let flowToken = null; // the login flow of the second step
let conditional = null; // AbortController of the pending conditional request
let renewTimer = null;

function conditionalState(state) {
  document.body.dataset.conditional = state;
}

function signedIn(body, extra = "") {
  const s = body.session;
  if (document.body.dataset.conditional === "verifying") conditionalState("done");
  setStatus(`Signed in (AAL ${s.aal}).${extra} Opening your account…`, "success");
  setFlash(`Signed in at AAL ${s.aal} (${s.amr.join(", ")}).${extra}`);
  location.assign(AFTER_SIGN_IN);
}

// ---- first step: password --------------------------------------------------------------

async function passwordSignIn(event) {
  event.preventDefault();
  const username = $("username").value.trim();
  const password = $("password").value;
  if (!username || !password) {
    setStatus("Enter your username and password.", "error", "validation_error");
    (username ? $("password") : $("username")).focus();
    return;
  }
  abortConditional();
  clearStatus();
  await busy($("login-submit"), async () => {
    try {
      signedIn(await api("/login/password", { method: "POST", body: { username, password } }));
    } catch (error) {
      if (error instanceof ApiError && error.code === "mfa_required") {
        showSecondStep(error.problem);
        return;
      }
      $("password").value = "";
      restartConditional();
      throw error;
    }
  });
}

// ---- first step: passkey (modal and conditional) ----------------------------------------

async function finishPasskey(flow, credential) {
  try {
    signedIn(await api("/login/webauthn/verify", { method: "POST", body: { flow_token: flow, credential } }));
  } catch (error) {
    if (error instanceof ApiError && error.code === "mfa_required") {
      // e.g. an assertion without user verification: policy wants one more factor.
      showSecondStep(error.problem);
      return;
    }
    throw error;
  }
}

async function passkeySignIn() {
  abortConditional();
  clearStatus();
  await busy($("passkey-signin"), async () => {
    try {
      const { flow_token: flow, options } = await api("/login/webauthn/options", { method: "POST", body: {} });
      setStatus("Follow your browser's prompt to use your passkey…");
      const credential = await getAssertion(options);
      await finishPasskey(flow, credential);
    } catch (error) {
      restartConditional();
      throw error;
    }
  });
}

function abortConditional() {
  clearTimeout(renewTimer);
  if (conditional) {
    conditional.abort();
    conditional = null;
    conditionalState("aborted");
  }
}

/** After a modal attempt failed, offer the autofill again (if it was running before). */
function restartConditional() {
  if (["waiting", "aborted", "error"].includes(document.body.dataset.conditional)) startConditional();
}

async function startConditional() {
  if (params.has("noconditional")) return conditionalState("disabled");
  if (!webauthnSupported() || typeof PublicKeyCredential.isConditionalMediationAvailable !== "function") {
    return conditionalState("unsupported");
  }
  if (!(await PublicKeyCredential.isConditionalMediationAvailable())) return conditionalState("unsupported");
  abortConditional();
  const controller = new AbortController();
  conditional = controller;
  try {
    const { flow_token: flow, options } = await api("/login/webauthn/options", { method: "POST", body: {} });
    if (controller.signal.aborted) return;
    renewTimer = setTimeout(() => {
      if (conditional === controller) startConditional();
    }, CONDITIONAL_RENEW_MS);
    conditionalState("waiting");
    $("conditional-hint").hidden = false;
    const credential = await getAssertion(options, { mediation: "conditional", signal: controller.signal });
    if (conditional !== controller) return;
    clearTimeout(renewTimer);
    conditional = null;
    conditionalState("verifying");
    setStatus("Signing you in with your passkey…");
    await finishPasskey(flow, credential);
  } catch (error) {
    if (controller.signal.aborted) return; // replaced by a modal request or a renewal
    conditional = null;
    conditionalState("error");
    // No passkey picked (or none for this site): the page's buttons still work; stay quiet.
    if (error && error.name === "NotAllowedError") return;
    showError(error);
  }
}

// ---- second step ---------------------------------------------------------------------------

function showSecondStep(problem) {
  flowToken = problem.flow_token;
  const methods = Array.isArray(problem.methods) ? problem.methods : [];
  $("first-step").hidden = true;
  $("conditional-hint").hidden = true;
  const section = $("mfa");
  section.hidden = false;
  section.dataset.methods = methods.join(" ");
  for (const choice of section.querySelectorAll("[data-method]")) {
    choice.hidden = !methods.includes(choice.dataset.method);
  }
  $("mfa-sms-form").hidden = true;
  $("mfa-email-form").hidden = true;
  const expires = problem.expires_at ? new Date(problem.expires_at) : null;
  $("mfa-expires").textContent = expires && !Number.isNaN(expires.getTime())
    ? ` before ${expires.toLocaleTimeString(undefined, { timeStyle: "short" })}`
    : "";
  if (!methods.length) {
    setStatus("No second step is available for this account; contact your administrator.", "error", "mfa_required");
  } else {
    setStatus("One more step: confirm it's you.", "info");
  }
  $("mfa-heading").focus();
}

function startOver(message) {
  flowToken = null;
  $("mfa").hidden = true;
  $("first-step").hidden = false;
  $("password").value = "";
  for (const input of $("mfa").querySelectorAll("input")) input.value = "";
  if (message) setStatus(message, "error", "flow_expired");
  else clearStatus();
  $("username").focus();
  restartConditional();
}

/** Second-step call; a dead flow sends the user back to the first step. */
async function secondStep(button, call) {
  clearStatus();
  await busy(button, async () => {
    try {
      await call();
    } catch (error) {
      if (error instanceof ApiError && error.code === "flow_expired") {
        startOver("This sign-in attempt has expired. Please start again.");
        return;
      }
      throw error;
    }
  });
}

function codeFrom(input) {
  const code = input.value.replace(/\s+/g, "");
  if (!code) {
    input.focus();
    throw new Error("Enter the code.");
  }
  return code;
}

async function mfaWebAuthn() {
  await secondStep($("mfa-webauthn"), async () => {
    const { options } = await api("/login/mfa/webauthn/options", { method: "POST", body: { flow_token: flowToken } });
    setStatus("Touch your security key or confirm on your device…");
    const credential = await getAssertion(options);
    signedIn(await api("/login/mfa/webauthn/verify", { method: "POST", body: { flow_token: flowToken, credential } }));
  });
}

async function mfaTotp(event) {
  event.preventDefault();
  await secondStep($("mfa-totp-submit"), async () => {
    const code = codeFrom($("mfa-totp-code"));
    try {
      signedIn(await api("/login/mfa/totp", { method: "POST", body: { flow_token: flowToken, code } }));
    } finally {
      $("mfa-totp-code").value = "";
    }
  });
}

async function mfaRecovery(event) {
  event.preventDefault();
  await secondStep($("mfa-recovery-submit"), async () => {
    const code = codeFrom($("mfa-recovery-code"));
    try {
      const body = await api("/login/mfa/recovery-code", { method: "POST", body: { flow_token: flowToken, code } });
      const left = body.recovery_codes_left;
      signedIn(body, typeof left === "number" ? ` You have ${left} recovery code${left === 1 ? "" : "s"} left.` : "");
    } finally {
      $("mfa-recovery-code").value = "";
    }
  });
}

/** SMS (a second factor) and email (only the extra check of a risky sign-in) work alike:
 *  send a code to the account's verified address, then verify it. */
function wireSentCode(channel, where) {
  const send = $(`mfa-${channel}-send`);
  const form = $(`mfa-${channel}-form`);
  const input = $(`mfa-${channel}-code`);
  send.addEventListener("click", () => secondStep(send, async () => {
    const sent = await api(`/login/mfa/${channel}/send`, { method: "POST", body: { flow_token: flowToken } });
    form.hidden = false;
    send.textContent = "Send a new code";
    const to = sent && (sent.phone_masked || sent.email_masked || sent.to_masked);
    setStatus(`We sent a code to ${to || where}.`, "info");
    input.focus();
  }));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    secondStep($(`mfa-${channel}-submit`), async () => {
      const code = codeFrom(input);
      try {
        signedIn(await api(`/login/mfa/${channel}/verify`, { method: "POST", body: { flow_token: flowToken, code } }));
      } finally {
        input.value = "";
      }
    });
  });
}

// ---- wiring --------------------------------------------------------------------------------

$("login-form").addEventListener("submit", passwordSignIn);
$("passkey-signin").addEventListener("click", passkeySignIn);
$("mfa-webauthn").addEventListener("click", mfaWebAuthn);
$("mfa-totp-form").addEventListener("submit", mfaTotp);
$("mfa-recovery-form").addEventListener("submit", mfaRecovery);
wireSentCode("sms", "your phone");
wireSentCode("email", "your email address");
$("mfa-cancel").addEventListener("click", () => startOver(null));

if (!webauthnSupported()) {
  $("passkey-signin").disabled = true;
  setStatus("This browser cannot use passkeys here; sign in with your password.", "info");
}
startConditional();
