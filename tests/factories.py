"""factory-boy factories that build data the way production does."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import factory
from django.utils import timezone

from catalog.models import Capacity, Item, ItemType, PackageComponent, PackageCoupon, TimeSlot, Venue
from channel_manager.kernel.models import Partner


class VenueFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Venue

    name = "Harbour Park"
    time_zone = "Europe/Amsterdam"
    currency = "EUR"


class ItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Item
        django_get_or_create = ("item_id",)

    item_id = factory.Sequence(lambda n: f"ITEM-{n}")
    name = factory.LazyAttribute(lambda o: f"Item {o.item_id}")
    item_type = ItemType.TICKET
    price = Decimal("49.50")
    active = True
    sale_from = None
    sale_until = None
    capacity_per_day = None
    max_group_size = None


class TimeSlotFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TimeSlot

    item = factory.SubFactory(ItemFactory)
    time = dt.time(19, 30)
    capacity = 200


class PackageComponentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PackageComponent

    package = factory.SubFactory(ItemFactory, item_type=ItemType.PACKAGE)
    component = factory.SubFactory(ItemFactory)
    position = factory.Sequence(int)


class PackageCouponFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PackageCoupon

    package = factory.SubFactory(ItemFactory, item_type=ItemType.PACKAGE)
    code = factory.Sequence(lambda n: f"CPN{n}")
    description = "10% off food and drinks"
    valid_days = 1


class CapacityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Capacity

    item = factory.SubFactory(ItemFactory)
    visit_date = factory.LazyFunction(lambda: timezone.localdate() + dt.timedelta(days=30))
    visit_time = None
    capacity = 100
    sold = 0


class PartnerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Partner
        django_get_or_create = ("partner_id",)

    partner_id = factory.Sequence(lambda n: f"partner-{n}")
    name = factory.LazyAttribute(lambda o: f"{o.partner_id} travel")
    active_from = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(days=1))
    enabled = True


def demo_catalog() -> dict[str, Item]:
    """The contract's example catalog: DAY-ADULT, FAMILY-GROUP, SHOW-EVENING, PARK-AND-SHOW."""
    VenueFactory()
    day = ItemFactory(item_id="DAY-ADULT", name="Day ticket, adult", price=Decimal("49.50"), capacity_per_day=5000)
    family = ItemFactory(
        item_id="FAMILY-GROUP", name="Family group", item_type=ItemType.GROUP_TICKET,
        price=Decimal("150.00"), max_group_size=6,
    )
    show = ItemFactory(item_id="SHOW-EVENING", name="Evening show", price=Decimal("20.00"))
    TimeSlotFactory(item=show, time=dt.time(19, 30), capacity=200)
    TimeSlotFactory(item=show, time=dt.time(21, 0), capacity=200)
    package = ItemFactory(
        item_id="PARK-AND-SHOW", name="Park and show", item_type=ItemType.PACKAGE, price=Decimal("65.00")
    )
    PackageComponentFactory(package=package, component=day, position=0)
    PackageComponentFactory(package=package, component=show, position=1)
    PackageCouponFactory(package=package, code="FNB10", description="10% off food and drinks", valid_days=1)
    return {i.item_id: i for i in (day, family, show, package)}


def _new_webhook_secret() -> str:
    from notifications.signing import new_secret

    return new_secret()


class SubscriptionFactory(factory.django.DjangoModelFactory):
    """A webhook subscription as notifications.services.create_subscription stores it (without
    checking the URL: use the service or the API for that)."""

    class Meta:
        model = "notifications.Subscription"

    partner = factory.SubFactory(PartnerFactory)
    event_type = "ota_cm_order_processed"
    url = "http://127.0.0.1:9/hook"
    secret = factory.LazyFunction(_new_webhook_secret)
    active = True


# ---- staff users and orders for the admin tests ----------------------------------------------

STAFF_PASSWORD = "staff-pass-4-tests"


def staff_user(username: str, *groups: str, password: str = STAFF_PASSWORD):
    """A staff member (is_staff) in the named groups (Support, Finance: made by migration
    channel_manager 0003_staff_groups)."""
    from django.contrib.auth.models import Group, User

    user = User.objects.create_user(username=username, password=password, is_staff=True)
    found = list(Group.objects.filter(name__in=groups))
    assert len(found) == len(groups), f"missing groups: {set(groups) - {g.name for g in found}}"
    user.groups.add(*found)
    return user


def submit_order(partner: Partner, body: dict, *, settle: bool = True, livemode: bool = True):
    """An order placed as the partner API places it (the same serializer and service), then
    settled by issuance (as the worker would) unless settle=False; livemode=False: a test order."""
    from channel_manager.orders.api.serializers import OrderRequestSerializer
    from channel_manager.orders.api.views import order_input_from
    from channel_manager.orders.issuance import issue_order
    from channel_manager.orders.models import Order
    from channel_manager.orders.services import create_order

    serializer = OrderRequestSerializer(data=body)
    serializer.is_valid(raise_exception=True)
    order = create_order(
        partner=partner, order_input=order_input_from(serializer.validated_data), livemode=livemode
    )
    if settle:
        issue_order(order_pk=order.pk)
    return Order.objects.select_related("partner").get(pk=order.pk)
