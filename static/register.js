// Sign-up page: a passkey-only account (WebAuthn registration ceremony) or a password account.

import { api, busy, clearStatus, createCredential, setFlash, setStatus, webauthnSupported } from "/app.js";

const AFTER_SIGN_UP = "/account.html";
const $ = (id) => document.getElementById(id);

function optional(id) {
  const value = $(id).value.trim();
  return value || undefined;
}

function required(id, what) {
  const value = $(id).value.trim();
  if (!value) {
    $(id).focus();
    throw new Error(`Enter ${what}.`);
  }
  return value;
}

function done(body, how) {
  const s = body.session;
  setStatus(`Account ${body.account.username} created (AAL ${s.aal}). Opening your account…`, "success");
  setFlash(`Welcome, ${body.account.display_name || body.account.username}: account created ${how}, signed in at AAL ${s.aal} (${s.amr.join(", ")}).`);
  location.assign(AFTER_SIGN_UP);
}

async function passkeySignUp(event) {
  event.preventDefault();
  clearStatus();
  await busy($("passkey-register"), async () => {
    const body = {
      username: required("reg-username", "a username"),
      display_name: optional("reg-display-name"),
      email: optional("reg-email"),
    };
    const { flow_token: flow, options } = await api("/registration/passkey/options", { method: "POST", body });
    setStatus("Follow your browser's prompt to create the passkey…");
    const credential = await createCredential(options);
    done(await api("/registration/passkey/verify", { method: "POST", body: { flow_token: flow, credential } }),
      "with a passkey");
  });
}

async function passwordSignUp(event) {
  event.preventDefault();
  clearStatus();
  await busy($("password-register"), async () => {
    const body = {
      username: required("pw-username", "a username"),
      display_name: optional("pw-display-name"),
      email: optional("pw-email"),
      password: $("pw-password").value,
    };
    if (!body.password) {
      $("pw-password").focus();
      throw new Error("Enter a password.");
    }
    done(await api("/accounts", { method: "POST", body }), "with a password");
  });
}

$("passkey-form").addEventListener("submit", passkeySignUp);
$("password-form").addEventListener("submit", passwordSignUp);
if (!webauthnSupported()) {
  $("passkey-register").disabled = true;
  setStatus("This browser cannot create passkeys here; create the account with a password.", "info");
}
