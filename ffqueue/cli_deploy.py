"""``ffqueue flower``: Flower, the Celery monitor, configured from the settings.

Flower watches the workers' events on the broker: which worker is online, which run
each one trains, its epoch (``PROGRESS`` state) and how it ended. The web page, its
HTTP API and its Prometheus ``/metrics`` share one port; ``/metrics`` and
``/healthcheck`` answer without a password, so that port stays on a private address
(loopback by default) and only the pages behind basic auth are exposed through a
proxy or an SSH tunnel.
"""

from __future__ import annotations

import ipaddress
import os

import click

from ffqueue.errors import ConfigError
from ffqueue.settings import Settings

LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


def is_loopback(address: str) -> bool:
    """True for an address only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if address in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def check_basic_auth(value: str) -> None:
    """``user:password[,user:password…]``, with neither part empty."""
    for pair in value.split(","):
        user, _, password = pair.partition(":")
        if not user.strip() or not password:
            raise ConfigError("FFQ_FLOWER_BASIC_AUTH must be user:password (comma-separated "
                              "for several users)")


def check_flower(settings: Settings, address: str) -> None:
    """Refuse the set-ups that would show the cluster to anyone who asks.

    Production needs credentials; without them Flower may listen on loopback only.
    The folder queue sends no events, so Flower would have nothing to show.
    """
    if settings.uses_filesystem_broker:
        raise ConfigError("Flower needs a Redis or AMQP broker (FFQ_BROKER_URL); the local "
                          "folder queue carries no worker events")
    if settings.flower_basic_auth:
        check_basic_auth(settings.flower_basic_auth)
        return
    if settings.env == "production":
        raise ConfigError("FFQ_FLOWER_BASIC_AUTH (user:password) must be set to run Flower "
                          "in production")
    if not is_loopback(address):
        raise ConfigError(f"Flower without FFQ_FLOWER_BASIC_AUTH listens on loopback only "
                          f"(127.0.0.1), not {address!r}")


def flower_argv(address: str, port: int) -> list[str]:
    """Celery's command line for Flower. The password is not in it: it travels in the
    environment (``FLOWER_BASIC_AUTH``), where ``ps`` does not show it."""
    # An empty --conf: Flower would otherwise execute a flowerconfig.py from whatever
    # directory it was started in.
    return ["flower", f"--address={address}", f"--port={port}", f"--conf={os.devnull}"]


def autoscale_argv(value: str | None, concurrency: int, pool: str | None
                   ) -> tuple[list[str], int, str | None]:
    """``ffqueue worker --autoscale MAX[,MIN]`` → (Celery arguments, processes to size
    torch threads by, pool). Without it: no arguments, ``concurrency`` and ``pool``.

    Torch threads are sized for MAX processes, so a full worker never oversubscribes
    the cores; a shrunk one leaves some idle, which costs less.
    """
    if value is None:
        return [], concurrency, pool
    parts = value.split(",")
    try:
        high, low = int(parts[0]), int(parts[1]) if len(parts) > 1 else 1
    except ValueError:
        raise click.BadParameter("MAX[,MIN], e.g. 4,1", param_hint="--autoscale") from None
    if len(parts) > 2 or not 1 <= low <= high:
        raise click.BadParameter("MAX[,MIN] with 1 <= MIN <= MAX", param_hint="--autoscale")
    if pool not in (None, "prefork"):
        raise click.BadParameter(f"needs the prefork pool, not {pool}",
                                 param_hint="--autoscale")
    return ["--autoscale", f"{high},{low}"], high, "prefork"


@click.command()
@click.option("--address", default=None, help="Listen address [FFQ_FLOWER_ADDRESS, 127.0.0.1].")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Listen port [FFQ_FLOWER_PORT, 5555].")
def flower(address: str | None, port: int | None) -> None:
    """Start Flower, the web monitor of workers and runs (basic auth from
    FFQ_FLOWER_BASIC_AUTH; required in production)."""
    from ffqueue.celery_app import app
    from ffqueue.settings import get_settings

    settings = get_settings()
    address = settings.flower_address if address is None else address
    port = settings.flower_port if port is None else port
    check_flower(settings, address)
    if settings.flower_basic_auth:
        os.environ["FLOWER_BASIC_AUTH"] = settings.flower_basic_auth
    else:
        os.environ.pop("FLOWER_BASIC_AUTH", None)
    import ffqueue.tasks  # noqa: F401  (Flower lists the registered tasks)

    app.start(flower_argv(address, port))
