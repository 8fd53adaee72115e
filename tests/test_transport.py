"""`SpreadTransport`: each request borrows a pool of one connection, and gives it back when its
response is closed, whatever happened to the request (against the real sandbox)."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest
from e2e_support import FROM, SCRIPT, au_mobiles

from batchcall._transport import SpreadTransport


def _body(phone: str) -> dict[str, object]:
    return {"from_number": FROM, "script_id": SCRIPT, "contact": {"phone_number": phone}}


def test_more_requests_than_pools_all_get_answers_and_every_pool_comes_back(make_sandbox):
    """Five requests at once over two pools (0.05 s latency, so they overlap): the three
    beyond the pools wait behind a lent one, every answer arrives, and both pools are free at
    the end, each having kept its one connection alive across requests."""
    server = make_sandbox(latency=0.05)
    transport = SpreadTransport(2)

    async def go() -> list[int]:
        async with httpx.AsyncClient(
            base_url=server.base_url, transport=transport,
            headers={"Authorization": f"Bearer {server.api_key}"},
        ) as client:  # fmt: skip
            replies = await asyncio.gather(
                *(
                    client.post(
                        "/api/v1/create-phone-call",
                        json=_body(phone),
                        headers={"Idempotency-Key": f"k-{n}"},
                    )
                    for n, phone in enumerate(au_mobiles(5))
                )
            )
            assert sorted(transport._free) == [0, 1] and transport._busy == [0, 0]
            return [reply.status_code for reply in replies]

    assert asyncio.run(go()) == [201] * 5
    assert len(server.calls()) == 5


def test_a_request_that_fails_gives_its_pool_back():
    """A connection refused: the error reaches the caller as httpx's own, and the pool is free
    again, so a pass that retries never runs out of pools."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    transport = SpreadTransport(1)

    async def go() -> None:
        async with httpx.AsyncClient(transport=transport) as client:
            for _ in range(2):
                with pytest.raises(httpx.ConnectError):
                    await client.post(f"http://127.0.0.1:{port}/x", json={})
                assert transport._free == [0] and transport._busy == [0]

    asyncio.run(go())


def test_behind_a_proxy_the_client_keeps_httpx_s_own_transport(monkeypatch):
    """httpx honours HTTPS_PROXY only with its own transport; without a proxy, each worker gets
    a pool of its own."""
    from batchcall._runner import _spread

    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    assert isinstance(_spread(4), SpreadTransport)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert _spread(4) is None
