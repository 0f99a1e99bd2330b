"""The users API's OpenAPI document: every error status it answers, with the error body."""

import pytest

pytestmark = pytest.mark.integration

ERROR_STATUSES = {"400", "401", "403", "404", "405", "409", "429", "503"}


async def test_openapi_documents_every_error_status(users) -> None:
    document = (await users.client.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    assert schemas["ErrorBody"]["properties"]["error"]["$ref"].endswith("/ErrorDetail")
    assert "HTTPValidationError" not in schemas
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert ERROR_STATUSES <= responses.keys(), (method, path)
            assert "422" not in responses, (method, path)
            too_many = responses["429"]
            assert "retry-after" in too_many["headers"], (method, path)
    # What a validation error really answers is documented: 400 with the error body.
    r = await users.client.post("/v1/auth/login", json={"email": 5})
    assert r.status_code == 400 and r.json()["error"]["code"] == "BAD_USER_INPUT"
