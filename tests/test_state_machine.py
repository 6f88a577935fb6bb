"""The order state machine has one writer, channel_manager/orders/state.py, and the services
speak in domain errors, not HTTP.

Two source scans keep it so: no module but state.py writes `Order.status` or a history row, and
no service, selector, issuance or task module imports DRF or builds a problem+json answer. Then
the writer itself: it refuses what the table (TRANSITIONS) does not declare, writing nothing, and
for what it allows it writes the history and stamps updated_at, set-based for a batch.
"""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from catalog.selectors import venue_today
from channel_manager.orders import state, tasks
from channel_manager.orders.errors import InvalidState
from channel_manager.orders.models import TRANSITIONS, Order, OrderStatus, OrderStatusChange
from channel_manager.orders.services import LineInput, OrderInput, create_order

REPO = Path(__file__).resolve().parent.parent

# ---------------------------------------------------------------------------------------------
# scan 1: one writer of Order.status and of the history
# ---------------------------------------------------------------------------------------------

STATUS_SCAN_ROOTS = ("channel_manager", "catalog", "wallets", "notifications")
THE_WRITER = "channel_manager/orders/state.py"
SKIPPED_DIRS = {"migrations", "tests", "__pycache__"}
HISTORY_MODEL = "OrderStatusChange"
CREATING_METHODS = {"create", "bulk_create", "get_or_create", "update_or_create"}
WRITING_METHODS = CREATING_METHODS | {"update"}


def python_modules(roots: tuple[str, ...]) -> list[Path]:
    return sorted(
        path
        for root in roots
        for path in (REPO / root).rglob("*.py")
        if not SKIPPED_DIRS & set(path.relative_to(REPO).parts)
    )


def _root_name(node: ast.AST) -> str | None:
    """The name a chain like `Order.objects.filter(...).update` starts from."""
    while True:
        if isinstance(node, ast.Attribute):
            node = node.value
        elif isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Subscript):
            node = node.value
        elif isinstance(node, ast.Name):
            return node.id
        else:
            return None


def _names_status(node: ast.AST | None) -> bool:
    """A list/tuple/set of field names, or a dict, that holds "status"."""
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        return any(isinstance(e, ast.Constant) and e.value == "status" for e in node.elts)
    if isinstance(node, ast.Dict):
        return any(isinstance(k, ast.Constant) and k.value == "status" for k in node.keys)
    return False


def _passes_status(call: ast.Call) -> bool:
    """status=…, or "status" in a **{…} or a defaults={…}."""
    return any(
        kw.arg == "status" or (kw.arg in (None, "defaults") and _names_status(kw.value)) for kw in call.keywords
    )


class StatusWrites(ast.NodeVisitor):
    """Finds writes of an order's status and of its history. Only Order has a `status` field
    (notifications' Event and Delivery have `state` / `delivery_state`), so `x.status = …` on
    anything but `self` of a class other than Order is taken for an order; `.update(status=…)`
    counts unless the chain starts at another model class (`Delivery.objects…`)."""

    def __init__(self) -> None:
        self.found: list[tuple[int, str]] = []
        self.classes: list[ast.ClassDef] = []

    def flag(self, node: ast.AST, what: str) -> None:
        self.found.append((node.lineno, what))

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.classes.append(node)
        self.generic_visit(node)
        self.classes.pop()

    def _in_order_class(self) -> bool:
        if not self.classes:
            return False
        cls = self.classes[-1]
        bases = {_root_name(b) for b in cls.bases} | {b.attr for b in cls.bases if isinstance(b, ast.Attribute)}
        return cls.name == "Order" or "Order" in bases

    def _check_target(self, target: ast.AST) -> None:
        if isinstance(target, ast.Tuple | ast.List):
            for element in target.elts:
                self._check_target(element)
        elif isinstance(target, ast.Attribute) and target.attr == "status":
            on_self = isinstance(target.value, ast.Name) and target.value.id == "self"
            if not on_self or self._in_order_class():
                self.flag(target, "assigns .status")

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self._check_target(target)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._check_target(node.target)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self._check_target(node.target)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        method = func.attr if isinstance(func, ast.Attribute) else None
        called = func.id if isinstance(func, ast.Name) else method
        root = _root_name(func)
        if called == "setattr" and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) \
                and node.args[1].value == "status":
            self.flag(node, "setattr(…, 'status', …)")
        if method == "update" and _passes_status(node) and not (root and root[0].isupper() and root != "Order"):
            self.flag(node, ".update(status=…)")
        if method == "bulk_update" and len(node.args) >= 2 and _names_status(node.args[1]):
            self.flag(node, "bulk_update of status")
        if method == "save" and any(kw.arg == "update_fields" and _names_status(kw.value) for kw in node.keywords):
            self.flag(node, "save(update_fields=[…'status'…])")
        if (called == "Order" or (root == "Order" and method in CREATING_METHODS)) and _passes_status(node):
            self.flag(node, "creates an Order with a status")
        if called == HISTORY_MODEL or (root == HISTORY_MODEL and method in WRITING_METHODS):
            self.flag(node, f"writes {HISTORY_MODEL}")
        if method in WRITING_METHODS and isinstance(func.value, ast.Attribute) and func.value.attr == "status_changes":
            self.flag(node, "writes status_changes")
        self.generic_visit(node)


def status_writes(source: str) -> list[tuple[int, str]]:
    visitor = StatusWrites()
    visitor.visit(ast.parse(source))
    return visitor.found


def test_only_the_state_module_writes_an_orders_status_or_history():
    modules = python_modules(STATUS_SCAN_ROOTS)
    assert REPO / THE_WRITER in modules and len(modules) > 50  # the scan sees the code base
    offenders = [
        f"{path.relative_to(REPO)}:{line}: {what}"
        for path in modules
        if path.relative_to(REPO).as_posix() != THE_WRITER
        for line, what in status_writes(path.read_text())
    ]
    assert offenders == [], "write the status through channel_manager.orders.state:\n" + "\n".join(offenders)


def test_the_state_module_is_where_the_writes_are():
    found = {what for _, what in status_writes((REPO / THE_WRITER).read_text())}
    assert {".update(status=…)", f"writes {HISTORY_MODEL}", "assigns .status"} <= found


@pytest.mark.parametrize(
    "source",
    [
        "order.status = OrderStatus.ISSUED",
        "locked.status, other = 'Error', 1",
        "order.status += ''",
        "setattr(order, 'status', 'Issued')",
        "Order.objects.filter(pk=1).update(status='Issued')",
        "Order.objects.filter(pk=1).update(updated_at=now, **{'status': 'Issued'})",
        "queryset.update(status=OrderStatus.CANCELLED)",
        "Order.objects.bulk_update(orders, ['status'])",
        "order.save(update_fields=['status', 'updated_at'])",
        "Order.objects.create(partner=p, status='Issued')",
        "Order(partner=p, status='Draft')",
        "Order.objects.update_or_create(pk=1, defaults={'status': 'Issued'})",
        "OrderStatusChange.objects.create(order=o, to_status='Issued')",
        "OrderStatusChange.objects.bulk_create([])",
        "OrderStatusChange(order=o, to_status='Issued').save()",
        "models.OrderStatusChange(order=o)",
        "order.status_changes.create(to_status='Issued')",
        "class Order(models.Model):\n    def issue(self):\n        self.status = 'Issued'",
    ],
)
def test_the_scan_catches_a_status_write(source):
    assert status_writes(source), source


@pytest.mark.parametrize(
    "source",
    [
        "class InvalidState(Conflict):\n    def __init__(self, status):\n        self.status = status",
        "Delivery.objects.filter(pk=1).update(state='failed', delivery_state='failed')",
        "Event.objects.filter(pk__in=pks).update(state='published')",
        "Order.objects.filter(status='Draft').count()",
        "OrderStatusChange.objects.filter(order=o).order_by('at')",
        "order.status_changes.order_by('at', 'id')",
        "order.save(update_fields=['payment_reference'])",
        "x = order.status",
        "body.update(title='x')",
    ],
)
def test_the_scan_lets_reads_and_other_models_be(source):
    assert status_writes(source) == [], source


# ---------------------------------------------------------------------------------------------
# scan 2: services speak domain errors, never HTTP
# ---------------------------------------------------------------------------------------------

# The apps whose service modules are scanned.
HTTP_FREE_APPS = (
    "channel_manager/kernel",
    "channel_manager/orders",
    "channel_manager/ops",
    "catalog",
    "wallets",
    "notifications",
)
# Where business logic lives: services write, selectors read, issuance, scheduling, the state
# machine and the tasks; the kernel's partners.py holds the partner services.
SERVICE_MODULES = {"services", "selectors", "issuance", "scheduling", "state", "tasks", "partners"}
EDGE_DIRS = {"admin", "api", "management"}
HTTP_MODULES = ("rest_framework", "django.http", "channel_manager.kernel.problems")
HTTP_NAMES = {"Problem", "validation_problem", "problem_for", "problem_response", "Http404", "HttpResponse"}


def service_modules(apps: tuple[str, ...] = HTTP_FREE_APPS) -> list[Path]:
    return [
        path
        for path in python_modules(apps)
        if path.stem in SERVICE_MODULES and not EDGE_DIRS & set(path.relative_to(REPO).parts)
    ]


def http_uses(source: str) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, f"imports {a.name}") for a in node.names if a.name.startswith(HTTP_MODULES)]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(HTTP_MODULES):
            found.append((node.lineno, f"imports from {node.module}"))
        elif isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            if name in HTTP_NAMES:
                found.append((node.lineno, f"calls {name}("))
    return found


def test_service_modules_import_no_drf_and_build_no_http_answer():
    modules = service_modules()
    names = {path.relative_to(REPO).as_posix() for path in modules}
    assert {
        "channel_manager/orders/services.py", "channel_manager/orders/selectors.py",
        "channel_manager/orders/issuance.py", "channel_manager/orders/tasks.py",
        "channel_manager/orders/state.py", "channel_manager/kernel/partners.py",
        "catalog/services.py", "wallets/services.py", "notifications/services.py",
        "notifications/selectors.py", "notifications/tasks.py",
    } <= names
    offenders = [
        f"{path.relative_to(REPO)}:{line}: {what}" for path in modules for line, what in http_uses(path.read_text())
    ]
    assert offenders == [], "raise a domain error (channel_manager.kernel.errors):\n" + "\n".join(offenders)


@pytest.mark.parametrize(
    "source",
    [
        "from rest_framework import status",
        "import rest_framework.exceptions",
        "from channel_manager.kernel.problems import Problem",
        "from django.http import Http404",
        "raise Problem(404, 'not_found', 'No such order.')",
        "raise problems.validation_problem(errors)",
    ],
)
def test_the_http_scan_catches_drf_and_problems(source):
    assert http_uses(source), source


def test_the_http_scan_lets_domain_errors_be():
    assert http_uses("from channel_manager.kernel.errors import NotFound\nraise NotFound('No such order.')") == []


# ---------------------------------------------------------------------------------------------
# the transition function
# ---------------------------------------------------------------------------------------------


def submitted(partner, catalog, n: int = 1) -> list[Order]:
    """New orders as createOrder leaves them (Scheduled in the database), read back."""
    orders = []
    for _ in range(n):
        order = create_order(
            partner=partner,
            order_input=OrderInput(
                sell_to_order_reference=f"SM-{Order.objects.count() + 1:04d}",
                lines=(LineInput(item_code="DAY-ADULT", quantity=1,
                                 visit_date=venue_today() + dt.timedelta(days=30)),),
            ),
        )
        orders.append(Order.objects.get(pk=order.pk))
    return orders


def history(order: Order) -> list[tuple[str, str, str, str]]:
    return list(
        OrderStatusChange.objects.filter(order=order).order_by("at", "id")
        .values_list("from_status", "to_status", "actor", "message")
    )


NOT_DECLARED = [
    (from_status, to_status)
    for from_status in OrderStatus.values
    for to_status in OrderStatus.values
    if to_status not in TRANSITIONS[from_status]
]


@pytest.mark.django_db
@pytest.mark.parametrize("from_status,to_status", NOT_DECLARED)
def test_a_transition_not_in_the_table_is_refused_and_writes_nothing(partner, catalog, from_status, to_status):
    (order,) = submitted(partner, catalog)
    Order.objects.filter(pk=order.pk).update(status=from_status)  # the test sets the scene
    order.refresh_from_db()
    before = (order.status, order.updated_at, history(order))

    with CaptureQueriesContext(connection) as queries, pytest.raises(InvalidState) as refused:
        state.transition(order, to_status, actor="test")

    assert (refused.value.code, refused.value.status) == ("invalid_state", from_status)
    assert queries.captured_queries == []
    assert (order.status, order.updated_at) == before[:2]
    order.refresh_from_db()
    assert (order.status, order.updated_at, history(order)) == before


@pytest.mark.django_db
def test_one_refused_order_in_a_batch_stops_the_whole_batch(partner, catalog):
    orders = submitted(partner, catalog, 3)
    Order.objects.filter(pk=orders[1].pk).update(status=OrderStatus.ISSUED)
    orders[1].refresh_from_db()
    rows = OrderStatusChange.objects.count()

    with pytest.raises(InvalidState):
        state.transition(orders, OrderStatus.PROCESSING, actor="test")

    assert sorted(Order.objects.values_list("status", flat=True)) == ["Issued", "Scheduled", "Scheduled"]
    assert OrderStatusChange.objects.count() == rows


@pytest.mark.django_db
def test_a_refused_follow_up_step_writes_nothing_either(partner, catalog):
    (order,) = submitted(partner, catalog)
    rows = OrderStatusChange.objects.count()
    with pytest.raises(InvalidState):
        state.transition(order, OrderStatus.PROCESSING, actor="test",
                         then=[state.Step(OrderStatus.CANCELLED, actor="test")])
    order.refresh_from_db()
    assert order.status == OrderStatus.SCHEDULED and OrderStatusChange.objects.count() == rows


@pytest.mark.django_db
def test_a_transition_writes_the_history_row_and_stamps_updated_at(partner, catalog):
    (order,) = submitted(partner, catalog)
    earlier = timezone.now() - dt.timedelta(hours=1)
    Order.objects.filter(pk=order.pk).update(updated_at=earlier)
    order.refresh_from_db()
    order.issuance_attempts = 7

    started = timezone.now()
    state.transition(order, OrderStatus.PROCESSING, actor="worker", message="why",
                     also_save=["issuance_attempts"])

    stored = Order.objects.get(pk=order.pk)
    assert (stored.status, stored.issuance_attempts) == (OrderStatus.PROCESSING, 7)
    assert stored.updated_at >= started and stored.updated_at == order.updated_at
    assert order.status == OrderStatus.PROCESSING
    last = OrderStatusChange.objects.filter(order=order).latest("id")
    assert (last.from_status, last.to_status, last.actor, last.message) == ("Scheduled", "Processing", "worker", "why")
    assert last.at == stored.updated_at


@pytest.mark.django_db
def test_a_new_order_gets_its_initial_history_row(partner, catalog):
    (order,) = submitted(partner, catalog)
    assert history(order) == [
        ("", "Submitted", "partner:acme-travel", ""),
        ("Submitted", "Scheduled", "system", "queued for issuance"),
    ]
    assert order.status == OrderStatus.SCHEDULED
    rows = OrderStatusChange.objects.filter(order=order)
    assert {row.at for row in rows} == {order.updated_at}


@pytest.mark.django_db
def test_a_batch_is_one_update_and_one_insert_whatever_its_size(partner, catalog):
    orders = submitted(partner, catalog, 4)
    with CaptureQueriesContext(connection) as queries:
        state.transition(orders, OrderStatus.PROCESSING, actor="test")
    statements = [q["sql"].split(" ", 1)[0] for q in queries.captured_queries]
    assert statements == ["UPDATE", "INSERT"]
    assert set(Order.objects.values_list("status", flat=True)) == {OrderStatus.PROCESSING}
    assert OrderStatusChange.objects.filter(to_status=OrderStatus.PROCESSING).count() == 4


@pytest.mark.django_db
def test_the_sweeper_moves_its_batch_in_one_update_and_one_insert(partner, catalog, settings):
    orders = submitted(partner, catalog, 3)
    long_ago = timezone.now() - dt.timedelta(seconds=settings.ISSUANCE_STUCK_SECONDS + 60)
    Order.objects.update(status=OrderStatus.PROCESSING, updated_at=long_ago)  # their workers died

    with CaptureQueriesContext(connection) as queries:
        assert tasks.sweep_stuck_orders() == 3

    writes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith(("UPDATE", "INSERT"))]
    assert len([w for w in writes if w.startswith('UPDATE "channel_manager_order"')]) == 1
    assert len([w for w in writes if w.startswith('INSERT INTO "channel_manager_orderstatuschange"')]) == 1
    assert set(Order.objects.values_list("status", flat=True)) == {OrderStatus.SCHEDULED}
    assert history(orders[0])[-1] == ("Processing", "Scheduled", "sweeper", "re-enqueued by sweeper")
    assert history(orders[1])[-1] == ("Processing", "Scheduled", "sweeper", "re-enqueued by sweeper")
