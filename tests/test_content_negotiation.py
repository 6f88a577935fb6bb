"""The kernel's content negotiation answers as DRF's does; it only skips parsing the common
Accept headers."""

from __future__ import annotations

import pytest
from django.http import Http404
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from channel_manager.kernel.negotiation import ContentNegotiation

ACCEPTS = [None, "*/*", "application/json", "application/json; indent=4", "application/*", "text/html",
           "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "", "image/png"]


def choice(negotiation, accept: str | None, path: str = "/gate/scans") -> tuple[str, str] | str:
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    request = Request(APIRequestFactory().post(path, **headers))
    try:
        renderer, media_type = negotiation.select_renderer(request, [JSONRenderer()])
    except NotAcceptable:
        return "406"
    except Http404:  # a ?format= no renderer has
        return "404"
    return type(renderer).__name__, media_type


@pytest.mark.parametrize("accept", ACCEPTS)
def test_the_renderer_and_media_type_chosen_are_drfs(accept):
    assert choice(ContentNegotiation(), accept) == choice(DefaultContentNegotiation(), accept)


@pytest.mark.parametrize("accept", ACCEPTS)
def test_a_format_in_the_query_string_is_drfs_to_judge(accept):
    for path in ("/gate/scans?format=json", "/gate/scans?format=xml"):
        assert choice(ContentNegotiation(), accept, path) == choice(DefaultContentNegotiation(), accept, path)


def test_the_api_uses_it():
    from rest_framework.settings import api_settings

    assert api_settings.DEFAULT_CONTENT_NEGOTIATION_CLASS is ContentNegotiation
