"""GraphiQL is served with every file it loads from the gateway itself (no CDN), and says
how to install those files when they are missing."""

from __future__ import annotations

import re

import pytest

from herald_gateway.transport.http import GRAPHIQL_FILES

pytestmark = pytest.mark.integration

HTML = {"accept": "text/html"}


async def test_page_loads_only_files_the_gateway_serves(gateway_factory) -> None:
    gw = await gateway_factory()
    assert gw.client is not None
    page = await gw.client.get("/graphql", headers=HTML)
    assert page.status_code == 200
    assert "https://" not in page.text and "http://" not in page.text
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sorted(sources) == sorted(f"/graphql/static/{name}" for name in GRAPHIQL_FILES)
    for source in sources:
        r = await gw.client.get(source)
        assert r.status_code == 200, source
        assert r.headers["content-type"] == GRAPHIQL_FILES[source.rsplit("/", 1)[1]]
        assert len(r.content) > 1000
    # The headers editor starts with the bearer token's shape.
    assert '{"Authorization": "Bearer' in page.text
    for name in ("../config.py", "nope.js", ".installed"):
        assert (await gw.client.get(f"/graphql/static/{name}")).status_code == 404


async def test_missing_files_answer_503_naming_the_fix(gateway_factory, tmp_path) -> None:
    gw = await gateway_factory(graphiql_dir=tmp_path)
    assert gw.client is not None
    page = await gw.client.get("/graphql", headers=HTML)
    assert page.status_code == 503 and "make graphiql" in page.text
    assert (await gw.client.get("/graphql/static/graphiql.min.js")).status_code == 404
    # The API itself does not need them.
    r = await gw.gql("{ unreadCount }")
    assert r.status_code == 200
