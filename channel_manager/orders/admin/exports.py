"""Finance exports: a view on the Order admin (see channel_manager.orders.exports)."""

from __future__ import annotations

import tempfile

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, StreamingHttpResponse
from django.template.response import TemplateResponse

from channel_manager.orders.admin.forms import ExportForm
from channel_manager.orders.exports import (
    CSV_CONTENT_TYPE,
    XLSX_CONTENT_TYPE,
    DeletedOrdersExporter,
    OrderLinesExporter,
    deleted_summary,
    export_summary,
)

EXPORT_PERMISSION = "channel_manager.export_orders"
# ?format=… → (what, file format): the lines of the orders, or the deleted orders (tombstones).
FILES = {
    "csv": ("lines", "csv"),
    "xlsx": ("lines", "xlsx"),
    "deleted_csv": ("deleted", "csv"),
    "deleted_xlsx": ("deleted", "xlsx"),
}


class OrderExportMixin:
    """The export page of the Order admin: filters, summary, CSV and XLSX."""

    def has_export_permission(self, request) -> bool:
        return request.user.has_perm(EXPORT_PERMISSION)

    def export_view(self, request):
        """Filters (date range on created / issued / cancelled, partner, statuses), then the
        summary per partner and currency with the deleted orders of the range, or the lines
        (format=csv / xlsx) or the deleted orders (format=deleted_csv / deleted_xlsx) as files."""
        if not self.has_export_permission(request):
            raise PermissionDenied
        form = ExportForm(request.GET or None)
        summary = deleted = None
        if form.is_bound and form.is_valid():
            filters = form.filters()
            section, file_format = FILES.get(request.GET.get("format") or "", ("", ""))
            if section == "deleted":
                exporter, slug = DeletedOrdersExporter(filters), filters.slug("deleted-orders")
            else:
                exporter, slug = OrderLinesExporter(filters), filters.slug()
            if file_format == "csv":
                response = StreamingHttpResponse(exporter.iter_csv(), content_type=CSV_CONTENT_TYPE)
                response["Content-Disposition"] = f'attachment; filename="{slug}.csv"'
                return response
            if file_format == "xlsx":
                spool = tempfile.TemporaryFile(prefix="cm-export-", suffix=".xlsx")
                try:
                    exporter.write_xlsx(spool)
                    spool.seek(0)
                except BaseException:
                    spool.close()
                    raise
                return FileResponse(
                    spool, as_attachment=True, filename=f"{slug}.xlsx", content_type=XLSX_CONTENT_TYPE
                )
            summary = export_summary(filters)
            deleted = deleted_summary(filters)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Export orders",
            "form": form,
            "summary": summary,
            "deleted": deleted,
            "deleted_retention_days": settings.TOMBSTONE_RETENTION_DAYS,
        }
        return TemplateResponse(request, "admin/channel_manager/order/export.html", context)
