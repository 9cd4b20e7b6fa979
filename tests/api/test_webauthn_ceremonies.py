"""WebAuthn ceremonies end to end through the API with a software authenticator: every
algorithm, attestation, discoverability, UV and BE combination registers and signs in, and
each session's AAL and amr are those of DESIGN §4."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import services_of
from tests.support.api import assert_problem, bearer, login, signup, uniq
from tests.support.softauthn import ALG_EDDSA, ALG_ES256, ALG_RS256, SoftAuthenticator, TestCA, b64url_decode
from tests.support.webauthn import (
    API,
    DEVICE,
    ORIGIN,
    add_credential,
    credential_rows,
    event_types,
    login_options,
    login_verify,
    mfa_webauthn,
    passkey_login,
    passkey_signup,
    register_options,
    step_up,
)

# alg, attestation, discoverable, UV, BE, BS -> AAL of a session from this key alone (§4)
MATRIX = [
    (ALG_ES256, "none", True, True, False, False, 3),
    (ALG_EDDSA, "packed-self", True, True, True, True, 2),
    (ALG_RS256, "packed-x5c", False, False, False, False, 1),
    (ALG_ES256, "packed-self", False, False, True, False, 1),
    (ALG_EDDSA, "none", False, True, False, False, 3),
    (ALG_RS256, "none", True, False, True, True, 1),
    (ALG_ES256, "packed-x5c", True, True, True, False, 2),
    (ALG_EDDSA, "packed-x5c", False, True, True, True, 2),
    (ALG_RS256, "packed-self", True, True, False, False, 3),
]


def expected_amr(uv: bool, be: bool) -> list[str]:
    return sorted({"swk" if be else "hwk"} | ({"user"} if uv else set()))


@pytest.mark.parametrize(("alg", "attestation", "discoverable", "uv", "be", "bs", "aal"), MATRIX)
async def test_key_registers_and_signs_in_with_the_aal_of_design_4(client, alg, attestation, discoverable, uv, be,
                                                                   bs, aal):
    # A passkey-only account (so one factor suffices) gets the key under test as a second credential.
    account = await passkey_signup(client, SoftAuthenticator())
    token = account["session"]["token"]
    ca = TestCA.create() if attestation == "packed-x5c" else None
    key = SoftAuthenticator(alg=alg, attestation=attestation, attestation_ca=ca, resident_keys=discoverable,
                            user_verification=uv, backup_eligible=be, backup_state=bs)
    kind = "passkey" if discoverable else "security-key"
    added = await add_credential(client, token, key, kind=kind, nickname=f"key {alg}")
    assert (added["kind"], added["discoverable"], added["backup_eligible"], added["backup_state"]) == (
        kind, discoverable, be, bs)
    assert added["attestation_format"] == ("none" if attestation == "none" else "packed")
    assert added["user_verified"] is (uv and discoverable)  # security-key options discourage UV
    assert added["nickname"] == f"key {alg}" and added["transports"] == ["usb"]
    [row] = [r for r in await credential_rows(client, account["account"]["id"]) if str(r["id"]) == added["id"]]
    assert row["credential_id"] == key.credentials[0].credential_id and row["sign_count"] == 0

    r = await passkey_login(client, key, account["account"]["username"])
    assert r.status_code == 200, r.text
    session = r.json()["session"]
    assert (session["aal"], session["amr"]) == (aal, expected_amr(uv, be))
    me = await client.get(f"{API}/session", headers=bearer(session["token"]))
    assert (me.json()["aal"], me.json()["amr"]) == (aal, expected_amr(uv, be))
    [row] = [r for r in await credential_rows(client, account["account"]["id"]) if str(r["id"]) == added["id"]]
    assert row["sign_count"] == 1 and row["last_used_at"] is not None

    if discoverable:  # usernameless: empty allowCredentials, the user handle names the account
        begun = await login_options(client)
        assert begun["options"]["allowCredentials"] == []
        credential = key.get(begun["options"], origin=ORIGIN)
        assert b64url_decode(credential["response"]["userHandle"])
        r = await login_verify(client, begun["flow_token"], credential)
        assert r.status_code == 200, r.text
        assert r.json()["session"]["aal"] == aal


@pytest.mark.parametrize(("be", "bs", "aal", "amr"), [(False, False, 3, ["hwk", "user"]),
                                                      (True, True, 2, ["swk", "user"])])
async def test_passkey_signup_issues_a_session_at_the_aal_of_the_registration(client, be, bs, aal, amr):
    key = SoftAuthenticator(attachment="platform", backup_eligible=be, backup_state=bs)
    name = uniq("Passkey.Person")
    body = await passkey_signup(client, key, name)
    assert body["account"]["username"] == name.casefold() and body["account"]["has_password"] is False
    assert (body["session"]["aal"], body["session"]["amr"]) == (aal, amr)
    assert body["credential"]["kind"] == "passkey" and body["credential"]["discoverable"] is True
    assert body["credential"]["transports"] == ["internal"]
    types = await event_types(client, body["account"]["id"])
    assert types[:1] == ["account_created"] and "webauthn_registered" in types and "login" in types


async def test_signup_options_are_passkey_options(client):
    r = await client.post(f"{API}/registration/passkey/options", json={"username": "opt-" + uniq(), "display_name": "Opt"},
                          headers=DEVICE)
    assert r.status_code == 200, r.text
    options = r.json()["options"]
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["userVerification"] == "preferred"
    assert options["user"]["name"].startswith("opt-") and options["user"]["displayName"] == "Opt"
    assert len(b64url_decode(options["user"]["id"])) == 32 and options["excludeCredentials"] == []
    assert [p["alg"] for p in options["pubKeyCredParams"]] == [-8, -7, -257]
    assert options["extensions"] == {"credProps": True} and options["rp"]["id"] == "localhost"


async def test_signup_with_a_taken_username_is_refused(client):
    account, _ = await signup(client)
    r = await client.post(f"{API}/registration/passkey/options", json={"username": account["username"]})
    assert_problem(r, 409, "username_taken")


async def test_security_key_options_exclude_the_accounts_credentials(client):
    body = await passkey_signup(client, SoftAuthenticator())
    key = SoftAuthenticator(resident_keys=False)
    added = await add_credential(client, body["session"]["token"], key)
    r = await register_options(client, body["session"]["token"], "security-key")
    options = r.json()["options"]
    assert options["hints"] == ["security-key"]
    assert options["authenticatorSelection"] == {"residentKey": "discouraged", "requireResidentKey": False,
                                                 "userVerification": "discouraged"}
    excluded = {e["id"] for e in options["excludeCredentials"]}
    assert len(excluded) == 2 and key.credentials[0].id_b64url in excluded
    assert options["user"]["id"] == (await register_options(client, body["session"]["token"]))\
        .json()["options"]["user"]["id"]  # one user handle per account
    assert added["kind"] == "security-key"


async def test_username_login_lists_only_that_accounts_credentials_and_decoys_unknown_names(client):
    key = SoftAuthenticator()
    body = await passkey_signup(client, key)
    begun = await login_options(client, body["account"]["username"].upper())
    assert [c["id"] for c in begun["options"]["allowCredentials"]] == [key.credentials[0].id_b64url]
    assert begun["options"]["userVerification"] == "preferred"
    first = (await login_options(client, "nobody-here"))["options"]["allowCredentials"]
    again = (await login_options(client, "nobody-here"))["options"]["allowCredentials"]
    other = (await login_options(client, "nobody-else"))["options"]["allowCredentials"]
    assert len(first) == 1 and first == again and first != other  # stable, indistinguishable shape


async def test_webauthn_as_the_second_step_of_a_password_login(client):
    account, token = await signup(client)
    key = SoftAuthenticator(resident_keys=False, user_verification=False)
    await add_credential(client, token, key)  # no second factor yet: a fresh login is enough
    r = await login(client, account["username"])
    body = assert_problem(r, 401, "mfa_required")
    assert body["methods"][0] == "webauthn"
    assert 'methods="webauthn' in r.headers["www-authenticate"]
    options = await client.post(f"{API}/login/mfa/webauthn/options", json={"flow_token": body["flow_token"]})
    assert options.status_code == 200, options.text
    request_options = options.json()["options"]
    assert request_options["userVerification"] == "discouraged"
    assert [c["id"] for c in request_options["allowCredentials"]] == [key.credentials[0].id_b64url]
    r = await mfa_webauthn(client, body["flow_token"], key)
    assert r.status_code == 200, r.text
    assert (r.json()["session"]["aal"], r.json()["session"]["amr"]) == (2, ["hwk", "pwd"])
    again = await client.post(f"{API}/login/mfa/webauthn/options", json={"flow_token": body["flow_token"]})
    assert_problem(again, 400, "flow_expired")


async def test_passkey_first_without_uv_asks_for_another_factor(client):
    """A passwordless account whose key does no user verification: the assertion is one
    factor, and the flow asks for another (a recovery code here)."""
    key = SoftAuthenticator(user_verification=False)
    signed = await passkey_signup(client, key)
    token = signed["session"]["token"]
    assert signed["session"]["aal"] == 1
    await step_up(client, token, key)  # adding a factor needs a fresh one: the same key again
    codes = await client.post(f"{API}/me/recovery-codes", headers=bearer(token))
    assert codes.status_code == 201, codes.text
    r = await passkey_login(client, key)
    body = assert_problem(r, 401, "mfa_required")
    assert body["methods"] == ["recovery_code"] and "webauthn" not in r.headers["www-authenticate"]
    r = await client.post(f"{API}/login/mfa/recovery-code",
                          json={"flow_token": body["flow_token"], "code": codes.json()["codes"][1]})
    assert r.status_code == 200, r.text
    assert (r.json()["session"]["aal"], r.json()["session"]["amr"]) == (2, ["hwk", "rc"])


async def test_passkey_first_without_uv_never_skips_the_password(client):
    """A key without UV plus a recovery code is not enough for an account that has a
    password: the answer sends the user to the password (with the MFA header)."""
    account, token = await signup(client)
    codes = await client.post(f"{API}/me/recovery-codes", headers=bearer(token))
    assert codes.status_code == 201, codes.text
    key = SoftAuthenticator(resident_keys=False, user_verification=False)
    r = await register_options(client, token, "security-key", **{"X-MFA-Code": codes.json()["codes"][0]})
    assert r.status_code == 200, r.text
    created = key.create(r.json()["options"], origin=ORIGIN)
    r = await client.post(f"{API}/me/credentials/webauthn/verify",
                          json={"flow_token": r.json()["flow_token"], "credential": created}, headers=bearer(token))
    assert r.status_code == 201, r.text
    r = await passkey_login(client, key, account["username"])
    body = assert_problem(r, 401, "mfa_required")
    assert body["methods"] == ["password"] and "flow_token" not in body
    assert r.headers["www-authenticate"] == 'MFA realm="authserver", methods="password"'  # DESIGN §6
    assert r.headers["www-authenticate"] == 'MFA realm="authserver", methods="password"'


async def test_passkey_first_without_uv_on_a_password_account_sends_to_the_password(client):
    account, token = await signup(client)
    key = SoftAuthenticator(resident_keys=False, user_verification=False)
    await add_credential(client, token, key)
    r = await passkey_login(client, key, account["username"])
    body = assert_problem(r, 401, "mfa_required")
    assert body["methods"] == ["password"] and "flow_token" not in body
    assert r.headers["www-authenticate"] == 'MFA realm="authserver", methods="password"'  # DESIGN §6
    # with UV the same account signs in with the key alone (AAL3 >= the AAL2 it needs)
    key.user_verification = True
    r = await passkey_login(client, key, account["username"])
    assert r.status_code == 200 and r.json()["session"]["aal"] == 3


async def test_step_up_with_webauthn_refreshes_the_same_session(client, clock):
    key = SoftAuthenticator(resident_keys=False, user_verification=False)
    account, token = await signup(client)
    await add_credential(client, token, key)  # the first second factor: a fresh login is enough
    r = await register_options(client, token)
    assert assert_problem(r, 401, "step_up_required")["methods"] == ["webauthn"]
    assert 'error="insufficient_user_authentication"' in r.headers["www-authenticate"]
    options, r = await step_up(client, token, key)
    assert [c["id"] for c in options["allowCredentials"]] == [key.credentials[0].id_b64url]
    assert r.status_code == 200, r.text
    assert (r.json()["aal"], r.json()["amr"]) == (2, ["hwk", "pwd"])
    me = (await client.get(f"{API}/session", headers=bearer(token))).json()
    assert me["aal"] == 2 and me["last_mfa_at"] is not None
    second = await add_credential(client, token, SoftAuthenticator(resident_keys=False))

    clock.advance(600)  # past the step-up window
    r = await client.delete(f"{API}/me/credentials/webauthn/{second['id']}", headers=bearer(token))
    assert_problem(r, 401, "step_up_required")
    options, r = await step_up(client, token, key)
    assert len(options["allowCredentials"]) == 2 and r.status_code == 200
    r = await client.delete(f"{API}/me/credentials/webauthn/{second['id']}", headers=bearer(token))
    assert r.status_code == 204, r.text
    assert (await event_types(client, account["id"])).count("step_up") == 2


async def test_step_up_flow_is_bound_to_its_session(client):
    key = SoftAuthenticator()
    body = await passkey_signup(client, key)
    token = body["session"]["token"]
    r = await passkey_login(client, key)
    other_token = r.json()["session"]["token"]
    begun = await client.post(f"{API}/session/step-up/webauthn/options", headers=bearer(token))
    credential = key.get(begun.json()["options"], origin=ORIGIN)
    r = await client.post(f"{API}/session/step-up/webauthn/verify",
                          json={"flow_token": begun.json()["flow_token"], "credential": credential},
                          headers=bearer(other_token))
    assert_problem(r, 400, "flow_expired")


async def test_ceremony_begun_on_one_replica_finishes_on_another(make_pg_client):
    a = await make_pg_client()
    b = await make_pg_client()
    key = SoftAuthenticator()
    r = await a.post(f"{API}/registration/passkey/options", json={"username": uniq("replica")})
    created = key.create(r.json()["options"], origin=ORIGIN)
    r = await b.post(f"{API}/registration/passkey/verify", json={"flow_token": r.json()["flow_token"],
                                                                 "credential": created})
    assert r.status_code == 201, r.text
    begun = await b.post(f"{API}/login/webauthn/options", json={})
    credential = key.get(begun.json()["options"], origin=ORIGIN)
    r = await a.post(f"{API}/login/webauthn/verify", json={"flow_token": begun.json()["flow_token"],
                                                           "credential": credential})
    assert r.status_code == 200 and r.json()["session"]["aal"] == 3
    again = await b.post(f"{API}/login/webauthn/verify", json={"flow_token": begun.json()["flow_token"],
                                                               "credential": credential})
    assert_problem(again, 400, "flow_expired")  # finished on a, dead on b
    assert services_of(a).ctx.db is not services_of(b).ctx.db


async def test_replicas_racing_with_one_response_issue_one_session(make_pg_client):
    a = await make_pg_client()
    b = await make_pg_client()
    key = SoftAuthenticator()
    await passkey_signup(a, key)
    begun = await login_options(a)
    credential = key.get(begun["options"], origin=ORIGIN)
    results = await asyncio.gather(login_verify(a, begun["flow_token"], credential),
                                   login_verify(b, begun["flow_token"], credential))
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200, 400], [r.text for r in results]
    refused = next(r for r in results if r.status_code == 400)
    assert refused.json()["code"] in {"challenge_expired", "flow_expired"}
