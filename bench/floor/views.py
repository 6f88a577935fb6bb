"""The floor endpoint: POST /floor validates a small JSON body with a DRF serializer and inserts
one row; 201 with the row's id."""

from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bench.floor.models import FloorRow


class CustomerSerializer(serializers.Serializer):
    firstName = serializers.CharField(max_length=100)
    lastName = serializers.CharField(max_length=100)
    email = serializers.EmailField()


class FloorSerializer(serializers.Serializer):
    """The flat part of the intake's order body (bench/create_order.lua sends the same body); the items
    are not declared, so DRF ignores them: the floor parses them but validates no catalog."""

    partnerId = serializers.CharField(max_length=64)
    sellToOrderReference = serializers.CharField(max_length=64)
    paymentReference = serializers.CharField(max_length=64, required=False)
    customer = CustomerSerializer()


class FloorView(APIView):
    authentication_classes = []
    permission_classes = []

    def post(self, request: Request) -> Response:
        serializer = FloorSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        row = FloorRow.objects.create(
            partner_id=data["partnerId"], reference=data["sellToOrderReference"], email=data["customer"]["email"]
        )
        return Response({"id": row.id, "reference": row.reference}, status=status.HTTP_201_CREATED)
