"""Finance exports: a view on the Order admin (see channel_manager.orders.exports)."""

from __future__ import annotations

import tempfile

from django.core.exceptions import PermissionDenied
from django.http import FileResponse, StreamingHttpResponse
from django.template.response import TemplateResponse

from channel_manager.orders.admin.forms import ExportForm
from channel_manager.orders.exports import CSV_CONTENT_TYPE, XLSX_CONTENT_TYPE, OrderLinesExporter, export_summary

EXPORT_PERMISSION = "channel_manager.export_orders"


class OrderExportMixin:
    """The export page of the Order admin: filters, summary, CSV and XLSX."""

    def has_export_permission(self, request) -> bool:
        return request.user.has_perm(EXPORT_PERMISSION)

    def export_view(self, request):
        """Filters (date range on created / issued / cancelled, partner, statuses), then the
        summary per partner and currency, or the lines as CSV or XLSX."""
        if not self.has_export_permission(request):
            raise PermissionDenied
        form = ExportForm(request.GET or None)
        summary = None
        if form.is_bound and form.is_valid():
            filters = form.filters()
            wanted = request.GET.get("format")
            exporter = OrderLinesExporter(filters)
            if wanted == "csv":
                response = StreamingHttpResponse(exporter.iter_csv(), content_type=CSV_CONTENT_TYPE)
                response["Content-Disposition"] = f'attachment; filename="{filters.slug()}.csv"'
                return response
            if wanted == "xlsx":
                spool = tempfile.TemporaryFile(prefix="cm-export-", suffix=".xlsx")
                try:
                    exporter.write_xlsx(spool)
                    spool.seek(0)
                except BaseException:
                    spool.close()
                    raise
                return FileResponse(
                    spool, as_attachment=True, filename=f"{filters.slug()}.xlsx", content_type=XLSX_CONTENT_TYPE
                )
            summary = export_summary(filters)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Export orders",
            "form": form,
            "summary": summary,
        }
        return TemplateResponse(request, "admin/channel_manager/order/export.html", context)
