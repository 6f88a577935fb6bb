"""DRF's content negotiation with its commonest case short-cut: a request without a query
string that accepts anything, or exactly the one renderer's media type, gets that renderer
without parsing the Accept header (every scan and partner call; the gate's scan profile showed
negotiation at ~5% of a scan's Python time). Anything else is DRF's, unchanged."""

from __future__ import annotations

from rest_framework.negotiation import DefaultContentNegotiation


class ContentNegotiation(DefaultContentNegotiation):
    def select_renderer(self, request, renderers, format_suffix=None):
        if len(renderers) == 1 and not format_suffix and not request.META.get("QUERY_STRING"):
            renderer = renderers[0]
            accept = request.META.get("HTTP_ACCEPT")
            if accept is None or accept == "*/*" or accept == renderer.media_type:
                return renderer, renderer.media_type
        return super().select_renderer(request, renderers, format_suffix)
