"""The OpenAPI document, the offline docs page, and CORS."""

import re

from tests.conftest import TEST_ORIGIN

SPEC_ROUTES = {
    "/api/health": {"get"},
    "/api/health/live": {"get"},
    "/api/auth/register": {"post"},
    "/api/auth/login": {"post"},
    "/api/auth/logout": {"post"},
    "/api/auth/logout-all": {"post"},
    "/api/user/profile": {"get", "patch"},
    "/api/services": {"get", "post"},
    "/api/services/{service_id}": {"get", "put", "patch", "delete"},
    "/api/benefits": {"get", "post"},
    "/api/benefits/{benefit_id}": {"get", "put", "patch", "delete"},
    "/api/orders": {"get", "post"},
    "/api/orders/{order_id}": {"get", "put", "patch", "delete"},
}


def test_openapi_documents_every_spec_route(client):
    document = client.get("/api/openapi.json").json
    assert document["openapi"].startswith("3.")
    assert {path: set(item) - {"parameters"} for path, item in document["paths"].items()} == (
        SPEC_ROUTES
    )


def test_openapi_documents_the_error_shape_and_the_bearer_scheme(client):
    components = client.get("/api/openapi.json").json["components"]
    assert components["schemas"]["Error"]["required"] == ["error"]
    assert components["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "POST /api/auth/login",
    }


def test_openapi_marks_signed_in_operations(client):
    paths = client.get("/api/openapi.json").json["paths"]
    assert paths["/api/orders"]["post"]["security"] == [{"bearerAuth": []}]
    assert "security" not in paths["/api/services"]["get"]


def test_openapi_documents_x_read_after_lsn_where_it_applies(client):
    paths = client.get("/api/openapi.json").json["paths"]
    header = "X-Read-After-LSN"

    def takes_it(path: str) -> bool:
        return header in {p["name"] for p in paths[path]["get"].get("parameters", [])}

    replica_reads = ["/api/services", "/api/benefits/{benefit_id}", "/api/orders/{order_id}"]
    assert all(takes_it(path) for path in replica_reads)
    assert not takes_it("/api/user/profile"), "a profile is always read from the primary"
    assert header in paths["/api/orders"]["post"]["responses"]["201"]["headers"]
    assert header in paths["/api/auth/login"]["post"]["responses"]["200"]["headers"]


def test_the_docs_page_loads_only_local_assets(client):
    page = client.get("/api/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(source.startswith("/api/docs/assets/") for source in sources)
    for source in sources:
        assert client.get(source).status_code == 200


def test_cors_allows_the_configured_origin_only(client):
    allowed = client.get("/api/services", headers={"Origin": TEST_ORIGIN})
    assert allowed.headers["Access-Control-Allow-Origin"] == TEST_ORIGIN
    exposed = allowed.headers["Access-Control-Expose-Headers"]
    assert {"ETag", "Retry-After"} <= {name.strip() for name in exposed.split(",")}
    other = client.get("/api/services", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_cors_preflight_allows_the_authorization_header(client):
    response = client.options(
        "/api/orders",
        headers={
            "Origin": TEST_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Authorization, Content-Type",
        },
    )
    assert response.headers["Access-Control-Allow-Origin"] == TEST_ORIGIN
    assert "authorization" in response.headers["Access-Control-Allow-Headers"].lower()
