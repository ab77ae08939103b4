"""Walk every URL the project serves and call it without credentials.

New endpoints are covered automatically: the list of public ones is explicit, and anything else
that answers an anonymous caller with data fails this test.
"""
from __future__ import annotations

import re
import uuid

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.resolvers import RegexPattern, RoutePattern

pytestmark = pytest.mark.django_db

METHODS = ("get", "post", "put", "patch", "delete")
# Public on purpose: the probes, the Prometheus scraper and the site icon. Nothing else.
PUBLIC = {"health", "health/live", "health/ready", "metrics", "favicon.ico"}
# The site root only redirects to the admin home (the dashboard), which signs a stranger in.
ROOT_REDIRECT = {""}
# Browser pages that send a stranger to the admin sign-in instead of answering 401.
SIGN_IN_REDIRECT = {"api/docs/"}
# The admin's own sign-in pages; every other admin page redirects to them.
ADMIN_SIGN_IN = {"admin/login/", "admin/logout/"}
EXAMPLES = {"uuid": str(uuid.uuid4()), "int": "1", "slug": "x", "str": "x", "path": "x/y"}
# Answered before authentication with a refusal that carries no data: the event stream and the
# MCP endpoint under WSGI name the ASGI server that serves them (421 Misdirected Request).
REFUSED_BEFORE_AUTH = {"api/sessions/{uuid}/stream".format(uuid=EXAMPLES["uuid"]), "mcp"}


def _route(pattern) -> str:
    if isinstance(pattern, RoutePattern):
        route = str(pattern._route)
        return re.sub(
            r"<(?:(\w+):)?(\w+)>", lambda m: EXAMPLES.get(m.group(1) or "str", "1"), route
        )
    assert isinstance(pattern, RegexPattern), f"unknown pattern type {pattern!r}"
    regex = pattern._regex.lstrip("^").rstrip("$").replace("\\Z", "")

    def example(match: re.Match) -> str:
        body = match.group(2)
        if "|" in body and not any(ch in body for ch in "[]+*"):
            return body.split("|")[0]
        return "1"

    route = re.sub(r"\(\?P<(\w+)>((?:[^()]|\([^()]*\))*)\)", example, regex)
    return route.replace("\\", "")


def _urls(resolver: URLResolver, prefix: str = "") -> list[str]:
    urls = []
    for entry in resolver.url_patterns:
        route = prefix + _route(entry.pattern)
        if isinstance(entry, URLResolver):
            urls.extend(_urls(entry, route))
        else:
            assert isinstance(entry, URLPattern)
            urls.append(route)
    return sorted(set(urls))


def all_urls() -> list[str]:
    return _urls(get_resolver())


def test_it_builds_a_resolvable_url_for_every_pattern():
    urls = all_urls()
    assert {"health", "metrics", "api/cases/", "api/logs/"} <= set(urls)
    for url in urls:
        resolve("/" + url)  # raises Resolver404 if the walker built a wrong example


def test_it_refuses_every_non_public_endpoint_without_a_key(client):
    leaks = []
    for url in all_urls():
        if url in PUBLIC or url in ADMIN_SIGN_IN:
            continue
        for method in METHODS:
            response = getattr(client, method)("/" + url, content_type="application/json")
            if url in ROOT_REDIRECT:
                ok = response.status_code == 302 and response["Location"] == "/admin/"
            elif url in REFUSED_BEFORE_AUTH:
                ok = response.status_code == 421 and set(response.json()) == {"detail", "errors"}
            elif url.startswith("admin/") or url in SIGN_IN_REDIRECT:
                ok = response.status_code == 302 and "/admin/login/" in response["Location"]
                ok = ok or response.status_code in (401, 403, 404, 405)
            else:
                # 405 for a method the view does not have carries no data; GET must be refused.
                ok = response.status_code in (401, 403) or (method != "get" and response.status_code == 405)
            if not ok:
                leaks.append(f"{method.upper()} /{url} -> {response.status_code}")
    assert leaks == []


def test_it_asks_for_the_token_scheme(client):
    response = client.get("/api/cases/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert set(response.json()) == {"detail", "errors"}


def test_it_serves_the_public_endpoints_without_a_key(client):
    for url in ("/health", "/health/ready", "/metrics"):
        assert client.get(url).status_code == 200, url
