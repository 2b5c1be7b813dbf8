"""Browser sessions: signup, login, cookie flags, logout revocation, and the cross-site check."""

from __future__ import annotations

import secrets
from typing import Any

import httpx

from imageextract.models import Session
from tests.api.gqlutil import gql


async def _signup(client: httpx.AsyncClient) -> tuple[str, str, httpx.Response]:
    email = f"user-{secrets.token_hex(4)}@example.com"
    password = "correct horse battery"
    r = await client.post("/api/auth/signup", json={"email": email, "password": password, "name": "Jo"})
    return email, password, r


async def test_signup_login_logout(client: httpx.AsyncClient, db: Any) -> None:
    email, password, r = await _signup(client)
    assert r.status_code == 201, r.text
    cookie = r.headers["set-cookie"]
    assert "ie_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    assert "Secure" not in cookie, "plain http on loopback: not Secure"
    client.cookies.clear()

    r = await client.post("/api/auth/login", json={"email": email, "password": "wrong password"})
    assert r.status_code == 401 and "set-cookie" not in r.headers
    r = await client.post("/api/auth/login", json={"email": email.upper(), "password": password})
    assert r.status_code == 200
    token = r.cookies["ie_session"]
    jar = {"ie_session": token}
    async with httpx.AsyncClient(base_url=str(client.base_url), cookies=jar) as browser:
        me = await browser.get("/api/v1/account")
        assert me.status_code == 200 and me.json()["membership_role"] == "owner"
        # Same-origin mutation is fine; a cross-site one is refused.
        origin = str(client.base_url).rstrip("/")
        ok = await browser.post("/api/dashboard/keys", json={}, headers={"Origin": origin})
        assert ok.status_code == 200
        evil = await browser.post("/api/dashboard/keys", json={}, headers={"Origin": "https://evil.example"})
        assert evil.status_code == 403 and evil.json()["error"]["code"] == "forbidden"
        evil = await browser.post("/api/v1/projects", json={"name": "x"},
                                  headers={"Referer": "https://evil.example/page"})
        assert evil.status_code == 403
        evil = await browser.post("/api/v1/projects", json={"name": "x"}, headers={"Sec-Fetch-Site": "cross-site"})
        assert evil.status_code == 403
        g = await browser.post("/graphql", json={"query": "mutation { createDashboardKey { key } }"},
                               headers={"Origin": "https://evil.example"})
        assert g.json()["errors"][0]["extensions"]["code"] == "forbidden"
        out = await browser.post("/api/auth/logout", headers={"Origin": origin})
        assert out.status_code == 200 and out.json() == {"logged_out": True}
        browser.cookies.set("ie_session", token)
        assert (await browser.get("/api/v1/account")).status_code == 401, "logout revokes the session row"
    session = await Session.filter(user__email=email).order_by("-created_at").first()
    assert session is not None and session.revoked_at is not None
    assert session.token_hash != token


async def test_signup_validation(client: httpx.AsyncClient) -> None:
    for body in ({}, {"email": "not-an-email", "password": "longenough"}, {"email": "a@b.co", "password": "short"},
                 {"email": 5, "password": "longenough"}, {"email": "a@b.co"}):
        r = await client.post("/api/auth/signup", json=body)
        assert r.status_code == 400, body
        assert r.json()["error"]["code"] == "validation_error"
    email, _, r = await _signup(client)
    r = await client.post("/api/auth/signup", json={"email": email, "password": "another password"})
    assert r.status_code == 409


async def test_graphql_login_sets_cookie(client: httpx.AsyncClient) -> None:
    email, password, _ = await _signup(client)
    client.cookies.clear()
    r = await client.post("/graphql", json={
        "query": "mutation($e: String!, $p: String!) { logIn(email: $e, password: $p) { email accountId } }",
        "variables": {"e": email, "p": password}})
    assert r.json()["data"]["logIn"]["email"] == email
    assert "ie_session" in r.cookies
    g = await gql(client, "{ viewer { email authMethod account { membershipRole } } }")
    assert g["data"]["viewer"] == {"email": email, "authMethod": "session", "account": {"membershipRole": "owner"}}
    client.cookies.clear()


async def test_graphql_sign_up_and_log_out(client: httpx.AsyncClient) -> None:
    email = f"gql-{secrets.token_hex(4)}@example.com"
    signup = """mutation($e: String!, $p: String!) { signUp(email: $e, password: $p, name: "G") { email accountId } }"""
    r = await client.post("/graphql", json={"query": signup, "variables": {"e": email, "p": "short"}})
    assert r.json()["errors"][0]["extensions"]["code"] == "validation_error" and "ie_session" not in r.cookies
    r = await client.post("/graphql", json={"query": signup, "variables": {"e": email, "p": "long enough pw"}})
    assert r.json()["data"]["signUp"]["email"] == email and "ie_session" in r.cookies
    g = await gql(client, "{ viewer { email account { membershipRole plan } } }")
    assert g["data"]["viewer"] == {"email": email, "account": {"membershipRole": "owner", "plan": "free"}}
    r = await client.post("/graphql", json={"query": signup, "variables": {"e": email, "p": "long enough pw"}},
                          headers={"Origin": str(client.base_url)})
    assert r.json()["errors"][0]["extensions"]["code"] == "conflict"
    r = await client.post("/graphql", json={"query": "mutation { logOut }"}, headers={"Origin": str(client.base_url)})
    assert r.json()["data"]["logOut"] is True
    g = await gql(client, "{ viewer { email } }")
    assert g["errors"][0]["extensions"]["code"] == "unauthorized"
