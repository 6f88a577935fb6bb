"""/octo/: OCTO's paths, with or without their trailing slash (octo-types writes /products/,
/bookings/, /supplier/)."""

from django.urls import re_path

from channel_manager.kernel.logs import register_operations
from channel_manager.octo import views

UUID = r"(?P<booking_uuid>[^/]+)"

urlpatterns = [
    re_path(r"^supplier/?$", views.SupplierView.as_view(), name="octo-supplier"),
    re_path(r"^capabilities/?$", views.CapabilitiesView.as_view(), name="octo-capabilities"),
    re_path(r"^products/?$", views.ProductsView.as_view(), name="octo-products"),
    re_path(r"^products/(?P<product_id>[^/]+)/?$", views.ProductView.as_view(), name="octo-product"),
    re_path(r"^availability/calendar/?$", views.AvailabilityCalendarView.as_view(), name="octo-calendar"),
    re_path(r"^availability/?$", views.AvailabilityView.as_view(), name="octo-availability"),
    re_path(r"^bookings/?$", views.BookingsView.as_view(), name="octo-bookings"),
    re_path(rf"^bookings/{UUID}/confirm/?$", views.BookingConfirmView.as_view(), name="octo-booking-confirm"),
    re_path(rf"^bookings/{UUID}/extend/?$", views.BookingExtendView.as_view(), name="octo-booking-extend"),
    re_path(rf"^bookings/{UUID}/cancel/?$", views.BookingCancelView.as_view(), name="octo-booking-cancel"),
    re_path(rf"^bookings/{UUID}/?$", views.BookingView.as_view(), name="octo-booking"),
    re_path(r"^(?P<rest>.*)$", views.NotFoundView.as_view(), name="octo-not-found"),
]

register_operations({
    ("octo-supplier", "GET"): "octoGetSupplier",
    ("octo-capabilities", "GET"): "octoListCapabilities",
    ("octo-products", "GET"): "octoGetProducts",
    ("octo-product", "GET"): "octoGetProduct",
    ("octo-calendar", "POST"): "octoAvailabilityCalendar",
    ("octo-availability", "POST"): "octoAvailabilityCheck",
    ("octo-bookings", "POST"): "octoBookingReservation",
    ("octo-bookings", "GET"): "octoGetBookings",
    ("octo-booking", "GET"): "octoGetBooking",
    ("octo-booking", "PATCH"): "octoBookingUpdate",
    ("octo-booking-confirm", "POST"): "octoBookingConfirmation",
    ("octo-booking-extend", "POST"): "octoExtendReservation",
    ("octo-booking-cancel", "POST"): "octoBookingCancellation",
})
