"""A purchase and an admin refund through a client generated from openapi.yaml
by openapi-python-client (tests/openapi_client.sh generates it as `nts_client`
and runs this with a live nts): the contract, not nts's own tests, says how.
"""

import datetime
import sys
import uuid

from nts_client import AuthenticatedClient, Client
from nts_client.api.admin import create_event, refund
from nts_client.api.holds import checkout, create_hold
from nts_client.api.orders import get_order
from nts_client.api.payments import confirm
from nts_client.models import (
    AdminEventView,
    CheckoutView,
    ConfirmRequest,
    HoldRequest,
    HoldView,
    NewEvent,
    NewTicketType,
    OrderStatus,
    OrderView,
    PaymentView,
    RefundRequest,
    RefundView,
    SimulatedOutcome,
)


def expect(response, status, model):
    if response.status_code != status or not isinstance(response.parsed, model):
        sys.exit(f"openapi_client: expected {status} {model.__name__}, got {response.status_code}: {response.content!r}")
    return response.parsed


def main(base_url, admin_token):
    admin = AuthenticatedClient(base_url=base_url, token=admin_token, raise_on_unexpected_status=True)
    anyone = Client(base_url=base_url, raise_on_unexpected_status=True)

    new_event = NewEvent(
        name="Generated client night",
        venue="The Hall",
        currency="EUR",
        starts_at=datetime.datetime(2099, 1, 1, 20, 0, tzinfo=datetime.timezone.utc),
        ticket_types=[NewTicketType(name="GA", price_minor=2500, capacity=10, max_per_order=4)],
    )
    event = expect(create_event.sync_detailed(client=admin, body=new_event), 201, AdminEventView)
    ticket_type = event.ticket_types[0]

    hold_request = HoldRequest(ticket_type_id=ticket_type.id, quantity=2, name="Ada Lovelace", email="ada@example.com")
    key = str(uuid.uuid4())
    hold = expect(create_hold.sync_detailed(event.id, client=anyone, body=hold_request, idempotency_key=key), 201, HoldView)
    again = create_hold.sync_detailed(event.id, client=anyone, body=hold_request, idempotency_key=key)
    if expect(again, 201, HoldView).id != hold.id or again.headers.get("Idempotent-Replayed") != "true":
        sys.exit("openapi_client: the same Idempotency-Key did not replay the hold")

    as_holder = AuthenticatedClient(base_url=base_url, token=hold.secret, raise_on_unexpected_status=True)
    started = expect(checkout.sync_detailed(hold.id, client=as_holder), 201, CheckoutView)
    as_buyer = AuthenticatedClient(base_url=base_url, token=started.order.secret, raise_on_unexpected_status=True)
    paid = confirm.sync_detailed(started.payment.id, client=as_buyer, body=ConfirmRequest(outcome=SimulatedOutcome.SUCCEEDED))
    expect(paid, 200, PaymentView)
    order = expect(get_order.sync_detailed(started.order.id, client=as_buyer), 200, OrderView)
    if order.status != OrderStatus.PAID or len(order.tickets) != 2:
        sys.exit(f"openapi_client: the order is {order.status} with {len(order.tickets)} tickets, not paid with 2")

    refunded = refund.sync_detailed(
        order.id, client=admin, body=RefundRequest(release_seats=True), idempotency_key=str(uuid.uuid4())
    )
    view = expect(refunded, 200, RefundView)
    order = expect(get_order.sync_detailed(order.id, client=as_buyer), 200, OrderView)
    if order.status != OrderStatus.REFUNDED:
        sys.exit(f"openapi_client: after the refund ({view.to_dict()}) the order is {order.status}")
    print(f"openapi_client: purchase paid and refunded through the generated client (order {order.id})")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
