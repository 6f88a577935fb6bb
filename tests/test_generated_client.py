"""A partner's generated client works: the live /api/schema/ is a valid OpenAPI document, and a
Python client generated from it by openapi-python-client (offline, into tmp_path) runs the order
lifecycle against a real server (gunicorn) with real issuance workers (qcluster), and reads the
problem+json errors into its error models."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone
from openapi_spec_validator import validate

from channel_manager.kernel.models import IdempotencyRecord
from tests import payloads
from tests.test_ops_metrics import free_port, get
from tests.test_worker_e2e import Cluster, worker_database_url

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

REPO = Path(__file__).resolve().parent.parent
CLIENT_PACKAGE = "cm_generated_client"
SETTLED = ("Draft", "Issued", "Error")


@pytest.fixture(autouse=True)
def _postgresql_only():
    if connection.vendor != "postgresql":
        pytest.fail("the server and the workers share the test database over PostgreSQL (make test provides it)")


@pytest.fixture
def server(tmp_path):
    """gunicorn with the production config on a free port, on the test database; its base URL."""
    port = free_port()
    env = dict(os.environ)
    env.update(
        CM_DEV="1", DATABASE_URL=worker_database_url(), PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
        GUNICORN_BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY="1", GUNICORN_THREADS="4", PYTHONUNBUFFERED="1",
    )
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "channel_manager/deploy/gunicorn.conf.py"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if get(f"{base}/healthz")[0] == 200:
                    break
            except OSError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        yield base
    finally:
        from tests.processes import kill_process_group

        kill_process_group(process)


@pytest.fixture
def workers():
    with Cluster() as cluster:
        yield cluster


def generate_client(schema_path: Path, out_dir: Path):
    """openapi-python-client, the venv's own executable (no network), then import the package."""
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")  # its ruff post-hooks
    result = subprocess.run(
        [str(bin_dir / "openapi-python-client"), "generate", "--path", str(schema_path),
         "--output-path", str(out_dir / CLIENT_PACKAGE), "--meta", "none"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # A warning means a part of the schema the generator could not turn into code.
    assert "warning" not in output.lower(), output
    sys.path.insert(0, str(out_dir))
    try:
        return importlib.import_module(CLIENT_PACKAGE)
    finally:
        sys.path.remove(str(out_dir))


@pytest.fixture
def generated(tmp_path, server):
    """The generated client package, from the live schema (validated first)."""
    with urllib.request.urlopen(f"{server}/api/schema/?format=json", timeout=30) as response:
        assert response.status == 200
        schema = json.loads(response.read())
    validate(schema)  # openapi-spec-validator: raises on an invalid document
    schema_path = tmp_path / "schema.json"
    schema_path.write_text(json.dumps(schema))
    try:
        yield generate_client(schema_path, tmp_path)
    finally:
        for name in [m for m in sys.modules if m == CLIENT_PACKAGE or m.startswith(CLIENT_PACKAGE + ".")]:
            del sys.modules[name]


def operations(package):
    """The operation modules of the generated package, by operationId."""
    api = f"{package.__name__}.api.channel_manager"
    return {
        name: importlib.import_module(f"{api}.{module}")
        for name, module in [("createOrder", "create_order"), ("getOrder", "get_order"),
                             ("confirmOrder", "confirm_order"), ("findOrders", "find_orders"),
                             ("deleteOrder", "delete_order")]
    }


def test_a_client_generated_from_the_live_schema_runs_the_order_lifecycle(generated, server, workers, catalog,
                                                                        api_key):
    ops = operations(generated)
    models = generated.models
    client = generated.AuthenticatedClient(base_url=server, token=api_key, raise_on_unexpected_status=True)
    body = payloads.contract_example_body(paymentReference=None)  # no payment: it settles in Draft

    created = ops["createOrder"].sync_detailed(client=client, body=models.OrderRequest.from_dict(body),
                                               idempotency_key=str(uuid.uuid4()))
    assert created.status_code == 202, created.content
    order = created.parsed
    assert isinstance(order, models.Order)
    assert order.status == models.OrderStatusEnum.SUBMITTED
    assert created.headers["Location"] == f"/channelManager/{order.order_id}"

    deadline = time.monotonic() + 60
    while order.status.value not in SETTLED:
        assert time.monotonic() < deadline, f"still {order.status} after 60 s:\n{workers.output()}"
        time.sleep(0.2)
        order = ops["getOrder"].sync(client=client, order_id=str(order.order_id))
        assert isinstance(order, models.Order)
    assert order.status == models.OrderStatusEnum.DRAFT, order.status_message
    assert order.hold_expires_at is not None
    wallets = [wallet for line in order.items for wallet in line.wallets]
    assert len(wallets) == 4  # two tickets, one group, one package
    assert all(wallet.assets and wallet.manifest_url for wallet in wallets)
    asset_types = {asset.asset_type.value for wallet in wallets for asset in wallet.assets}
    assert asset_types == {"ticket", "coupon"}

    confirmed = ops["confirmOrder"].sync(
        client=client, order_id=str(order.order_id), body=models.ConfirmOrderRequest(payment_reference="PAY-1"),
    )
    assert isinstance(confirmed, models.Order)
    assert confirmed.status == models.OrderStatusEnum.ISSUED
    assert confirmed.payment_reference == "PAY-1"
    assert confirmed.total_amount is not None

    page = ops["findOrders"].sync(client=client, sell_to_order_reference=body["sellToOrderReference"])
    assert isinstance(page, models.OrderPage)
    assert [found.order_id for found in page.results] == [order.order_id]
    assert page.next_ is None

    deleted = ops["deleteOrder"].sync_detailed(client=client, order_id=str(order.order_id))
    assert deleted.status_code == 200, deleted.content
    assert isinstance(deleted.parsed, models.Order)
    assert deleted.parsed.status == models.OrderStatusEnum.CANCELLED


def test_the_generated_client_reads_problem_json_errors_into_its_error_model(generated, server, catalog, api_key):
    ops = operations(generated)
    models = generated.models
    client = generated.AuthenticatedClient(base_url=server, token=api_key, raise_on_unexpected_status=True)
    body = models.OrderRequest.from_dict(payloads.order_body())
    key = str(uuid.uuid4())
    first = ops["createOrder"].sync(client=client, body=body, idempotency_key=key)
    assert isinstance(first, models.Order)

    # The same key again while the first request still runs (as its record says): 409.
    IdempotencyRecord.objects.filter(key=key).update(response_status=None, response_body=None,
                                                     locked_at=timezone.now())
    in_progress = ops["createOrder"].sync_detailed(client=client, body=body, idempotency_key=key)
    assert in_progress.status_code == 409
    assert isinstance(in_progress.parsed, models.OrderProblem)
    assert in_progress.parsed.code == "idempotency_in_progress"

    duplicate = ops["createOrder"].sync_detailed(client=client, body=body)
    assert duplicate.status_code == 400
    assert duplicate.headers["Content-Type"] == "application/problem+json"
    problem = duplicate.parsed
    assert isinstance(problem, models.OrderProblem)
    assert (problem.status, problem.code) == (400, "duplicate_order")
    assert problem.order_id == first.order_id

    invalid = ops["createOrder"].sync(
        client=client, body=models.OrderRequest.from_dict(payloads.order_body(items=[payloads.line(quantity=0)]))
    )
    assert isinstance(invalid, models.OrderProblem)
    assert invalid.code == "validation_error"
    assert [(e.field, e.message) for e in invalid.errors] == [("items[0].quantity", "Must be between 1 and 500.")]

    missing = ops["getOrder"].sync_detailed(client=client, order_id=str(uuid.uuid4()))
    assert missing.status_code == 404
    assert isinstance(missing.parsed, models.OrderProblem)
    assert missing.parsed.code == "not_found"

    anonymous = generated.AuthenticatedClient(base_url=server, token="cmk_wrong", raise_on_unexpected_status=True)
    refused = ops["findOrders"].sync(client=anonymous)
    assert isinstance(refused, models.OrderProblem)
    assert (refused.status, refused.code) == (401, "not_authenticated")
