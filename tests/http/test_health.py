"""`/healthz` (the process answers) and `/readyz` (its database and queue answer)."""

from __future__ import annotations

from collections.abc import Callable

from receiver.http.loopback import free_port
from receiver.settings import Settings
from tests.support.app import running_app
from tests.support.events import SECRET
from tests.support.redis_server import private_redis
from tests.support.servers import PG_HOST, PG_USER

MakeSettings = Callable[..., Settings]


async def test_healthz_answers_200(make_settings: MakeSettings, database_url: str) -> None:
    async with running_app(make_settings(database_url=database_url)) as app:
        response = await app.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_answers_200_when_the_database_answers(
    make_settings: MakeSettings, database_url: str
) -> None:
    async with running_app(make_settings(database_url=database_url)) as app:
        response = await app.client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"] == {"database": "ok", "queue": "in-process"}


async def test_readyz_says_loudly_that_webhook_authentication_is_off(
    make_settings: MakeSettings, database_url: str
) -> None:
    async with running_app(make_settings(database_url=database_url)) as app:
        body = (await app.client.get("/readyz")).json()
    assert body["webhook_authentication"] == "NONE"
    assert "D360_WEBHOOK_SECRET" in body["warning"]


async def test_readyz_names_the_webhook_authentication_in_use_without_its_secret(
    make_settings: MakeSettings, database_url: str
) -> None:
    signed = make_settings(database_url=database_url, d360_webhook_secret=SECRET)
    async with running_app(signed) as app:
        response = await app.client.get("/readyz")
    assert response.json()["webhook_authentication"] == "signature"
    assert "warning" not in response.json()
    assert SECRET not in response.text

    shared = make_settings(database_url=database_url, webhook_shared_secret="shared-token")
    async with running_app(shared) as app:
        response = await app.client.get("/readyz")
    assert response.json()["webhook_authentication"] == "shared secret header"
    assert "shared-token" not in response.text


async def test_readyz_answers_503_when_redis_is_unreachable(
    make_settings: MakeSettings, database_url: str
) -> None:
    settings = make_settings(
        database_url=database_url, redis_url=f"redis://127.0.0.1:{free_port()}/0"
    )
    async with running_app(settings) as app:
        response = await app.client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready"
    assert body["checks"] == {"database": "ok", "redis": "down"}


async def test_readyz_follows_redis_going_down_and_coming_back(
    make_settings: MakeSettings, database_url: str
) -> None:
    async with private_redis() as redis:
        settings = make_settings(database_url=database_url, redis_url=redis.url)
        async with running_app(settings) as app:
            up = await app.client.get("/readyz")
            await redis.stop()
            down = await app.client.get("/readyz")
            await redis.start()
            back = await app.client.get("/readyz")
    assert (up.status_code, up.json()["checks"]["redis"]) == (200, "ok")
    assert (down.status_code, down.json()["checks"]["redis"]) == (503, "down")
    assert (back.status_code, back.json()["checks"]["redis"]) == (200, "ok")


async def test_readyz_answers_503_when_postgresql_is_unreachable(
    make_settings: MakeSettings,
) -> None:
    closed = f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{free_port()}/hub"
    async with running_app(make_settings(database_url=closed)) as app:
        response = await app.client.get("/readyz")
        alive = await app.client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "down"
    assert response.json()["status"] == "not ready"
    assert alive.status_code == 200
