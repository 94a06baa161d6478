"""auth-url / auth-signin with nginx variables: the q_url filter, Lua module loading, route
checks and the admission webhook's view of the rendered result."""

from __future__ import annotations

import pytest

from ingressctl.ingress.annotations import PREFIX as ANN
from ingressctl.ingress.annotations import parse_annotations
from ingressctl.ingress.build import BuildOptions, build, ingress_routes
from ingressctl.ingress.classes import ClassFilter
from ingressctl.ingress.model import Model
from ingressctl.nginx.render import LUA_MODULES, RenderContext, RenderError, quote_url
from ingressctl.objects import Ingress, parse_object

from .admission_fixtures import PREFIX, ingress, snapshot, validator
from .injection_payloads import BREAKOUTS

OAUTH2 = {PREFIX + "auth-url": "https://$host/oauth2/auth",
          PREFIX + "auth-signin": "https://$host/oauth2/start?rd=$escaped_request_uri"}


@pytest.mark.parametrize("value", [
    "https://$host/oauth2/auth",
    "$scheme://$host:$server_port/x?rd=$escaped_request_uri",
    "https://a.example.com/?u=$request_uri",
])
def test_q_url_lets_allowed_variables_through(value: str) -> None:
    assert quote_url(value) == f'"{value}"'


@pytest.mark.parametrize("value", [
    "https://$hostname/", "https://$host_x/", "https://${host}/", "https://$http_cookie/",
    "https://a/$", 'https://a/"x', "https://a/x y", "https://a/x;y", "https://a/{x}", "https://a/#x",
    "https://a/\\x", "https://a/\nx", "https://a/'x", "https://a/" + "a" * 3000,
])
def test_q_url_refuses_other_variables_and_syntax(value: str) -> None:
    with pytest.raises(RenderError):
        quote_url(value)


@pytest.mark.parametrize("kind", sorted(BREAKOUTS))
def test_q_url_refuses_every_breakout_after_an_allowed_variable(kind: str) -> None:
    """The render-layer defence alone, as if validation had let the value through."""
    with pytest.raises(RenderError):
        quote_url("https://$host/oauth2/start?rd=$escaped_request_uri" + BREAKOUTS[kind])


def _model_with(annotations: dict[str, str]) -> Model:
    return build(snapshot(ingress("i", annotations=annotations)), BuildOptions(classes=ClassFilter())).model


def test_lua_modules_loaded_only_when_the_model_needs_them() -> None:
    ctx = RenderContext(prefix="/p")
    assert ctx.for_model(_model_with({})).modules == ()
    assert ctx.for_model(_model_with({PREFIX + "auth-url": "http://10.0.0.1/auth"})).modules == ()
    needs = _model_with(OAUTH2)
    assert ctx.for_model(needs).modules == LUA_MODULES
    dynamic = RenderContext(prefix="/p", modules=LUA_MODULES, dynamic=True)
    assert dynamic.for_model(needs).modules == LUA_MODULES  # already loaded: not twice
    assert RenderContext(prefix="/p", lua_modules=("/m/ngx_http_lua_module.so",)).for_model(
        needs).modules == ("/m/ngx_http_lua_module.so",)


def test_without_the_lua_module_rendering_says_why() -> None:
    with pytest.raises(RenderError, match="need nginx's Lua module"):
        RenderContext(prefix="/p", lua_modules=()).for_model(_model_with(OAUTH2))
    assert RenderContext(prefix="/p", lua_modules=()).for_model(_model_with({})).modules == ()


@pytest.mark.parametrize(("signin", "adds_rd", "needs_lua"), [
    ("https://sso.example.com/start", True, True),
    ("https://$host/oauth2/start?rd=$escaped_request_uri", False, True),
    ("https://$host/oauth2/start?rd=$scheme://$host$request_uri", False, False),
    ("https://sso.example.com/start?x=1&rd=/", False, False),
    ("https://sso.example.com/start?ard=1", True, True),
])
def test_signin_rd(signin: str, adds_rd: bool, needs_lua: bool) -> None:
    cfg, problems = parse_annotations({ANN + "auth-url": "http://10.0.0.1/auth", ANN + "auth-signin": signin})
    assert not problems
    assert (cfg.signin_adds_rd, cfg.needs_escaped_request_uri) == (adds_rd, needs_lua)


def _routes(host: str | None, annotations: dict[str, str]) -> tuple[int, list[str]]:
    ing = parse_object(ingress("i", host=host, annotations=annotations))
    assert isinstance(ing, Ingress)
    routes, problems = ingress_routes(ing, allow_snippets=False)
    return len(routes), [p.message for p in problems]


def test_host_variable_in_auth_url_needs_a_rule_with_a_host() -> None:
    n, problems = _routes(None, OAUTH2)
    assert n == 0 and any("uses $host, which needs a rule with an exact host" in p for p in problems), problems
    assert _routes("a.example.com", OAUTH2) == (1, [])
    # a wildcard rule lets the client choose the auth server among <label>.example.com
    assert _routes("*.example.com", OAUTH2)[0] == 0
    assert _routes(None, {PREFIX + "auth-url": "http://10.0.0.1/auth?u=$escaped_request_uri"}) == (1, [])


@pytest.mark.parametrize("allow_snippets", [False, True])
def test_webhook_admits_the_oauth2_pattern(allow_snippets: bool) -> None:
    """The first Ingress needing Lua adds load_module and a set_by_lua_block: not findings."""
    verdict = validator(allow_snippets=allow_snippets).check(
        snapshot(ingress("plain", host="b.example.com")), ingress("sso", annotations=OAUTH2))
    assert verdict.allowed, verdict
    _, conf = validator().render(snapshot(), parse_object(ingress("sso", annotations=OAUTH2)))
    assert "set_by_lua_block $escaped_request_uri { return ngx.escape_uri(ngx.var.request_uri) }" in conf
    assert 'set $ingressctl_auth_target "https://$host/oauth2/auth";' in conf


def test_webhook_refuses_other_variables() -> None:
    bad = {PREFIX + "auth-url": "https://$http_x_target/auth"}
    verdict = validator().check(snapshot(), ingress("sso", annotations=bad))
    assert not verdict.allowed and any("$http_x_target" in r for r in verdict.reasons), verdict
